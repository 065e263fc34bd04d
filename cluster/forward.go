package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/skiff-mq/skiff/cluster/metadata"
)

// wireResult carries a metadata.Result across a forwarded write. Errors
// keep their kind so the caller can still branch on them.
type wireResult struct {
	Result    metadata.Result `json:"result"`
	Error     string          `json:"error,omitempty"`
	ErrorKind string          `json:"error_kind,omitempty"`
	Field     string          `json:"field,omitempty"`
}

func toWireResult(res metadata.Result, err error) wireResult {
	w := wireResult{Result: res}
	w.Result.Err = nil
	if err == nil {
		return w
	}
	w.Error = err.Error()
	var ia *metadata.InvalidArgumentError
	switch {
	case errors.As(err, &ia):
		w.ErrorKind, w.Field, w.Error = "invalid_argument", ia.Field, ia.Reason
	case errors.Is(err, metadata.ErrTopicExists):
		w.ErrorKind = "topic_exists"
	case errors.Is(err, metadata.ErrUnknownTopic):
		w.ErrorKind = "unknown_topic"
	case errors.Is(err, metadata.ErrUserExists):
		w.ErrorKind = "user_exists"
	case errors.Is(err, metadata.ErrUnknownUser):
		w.ErrorKind = "unknown_user"
	case errors.Is(err, metadata.ErrUnknownBroker):
		w.ErrorKind = "unknown_broker"
	case errors.Is(err, metadata.ErrFailedPrecondition):
		w.ErrorKind = "failed_precondition"
	case errors.Is(err, errMetaNotLeader), errors.Is(err, errNoMetaLeader):
		w.ErrorKind = "not_leader"
	case errors.Is(err, ErrMetaIndeterminate):
		w.ErrorKind = "indeterminate"
	}
	return w
}

func (w wireResult) err() error {
	switch w.ErrorKind {
	case "":
		if w.Error != "" {
			return errors.New(w.Error)
		}
		return nil
	case "invalid_argument":
		return &metadata.InvalidArgumentError{Field: w.Field, Reason: w.Error}
	case "topic_exists":
		return fmt.Errorf("%w: %s", metadata.ErrTopicExists, w.Error)
	case "unknown_topic":
		return fmt.Errorf("%w: %s", metadata.ErrUnknownTopic, w.Error)
	case "user_exists":
		return fmt.Errorf("%w: %s", metadata.ErrUserExists, w.Error)
	case "unknown_user":
		return fmt.Errorf("%w: %s", metadata.ErrUnknownUser, w.Error)
	case "unknown_broker":
		return fmt.Errorf("%w: %s", metadata.ErrUnknownBroker, w.Error)
	case "failed_precondition":
		return &metadata.PreconditionError{Reason: w.Error}
	case "not_leader":
		return errMetaNotLeader
	case "indeterminate":
		return fmt.Errorf("%w: %s", ErrMetaIndeterminate, w.Error)
	}
	return errors.New(w.Error)
}

// proposeMeta writes a metadata command through the meta leader: applied
// here when this node leads, forwarded otherwise. It retries while an
// election runs, until ctx ends.
func (n *Node) proposeMeta(ctx context.Context, cmd metadata.Command) (metadata.Result, error) {
	raw, err := metadata.EncodeCommand(cmd)
	if err != nil {
		return metadata.Result{}, err
	}
	backoff := 20 * time.Millisecond
	for {
		res, err := n.proposeOnce(ctx, raw)
		if !errors.Is(err, errMetaNotLeader) && !errors.Is(err, errNoMetaLeader) {
			return res, err
		}
		select {
		case <-ctx.Done():
			return metadata.Result{}, fmt.Errorf("metadata write: no meta leader reachable (%v): %w", err, ctx.Err())
		case <-n.stop:
			return metadata.Result{}, errors.New("node is shutting down")
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 500*time.Millisecond)
	}
}

var errNoMetaLeader = errors.New("no metadata leader known (election in progress?)")

func (n *Node) proposeOnce(ctx context.Context, raw []byte) (metadata.Result, error) {
	if n.meta.isLeader() {
		return n.meta.apply(ctx, raw)
	}
	return n.forwardToLeader(ctx, raw)
}

// leaderHeader carries the meta leader's peer address in a "not leader"
// answer, so the sender can post straight to it.
const leaderHeader = "X-Skiff-Meta-Leader"

// redirectError is a "not leader" answer naming the leader's address.
type redirectError struct{ addr string }

func (e *redirectError) Error() string { return "metadata leader is at " + e.addr }
func (e *redirectError) Unwrap() error { return errMetaNotLeader }

// forwardToLeader sends a command to the meta leader over the peer
// channel. A node outside the meta group (just joined) knows no leader; it
// asks the live members, one of which names the leader, and then posts to
// the leader itself. Commands are never relayed: the leader always hears
// them from the node they come from, whose identity the peer channel has
// checked (checkCommandOrigin).
func (n *Node) forwardToLeader(ctx context.Context, raw []byte) (metadata.Result, error) {
	leaderID, _ := n.meta.leader()
	var targets []string
	if leaderID != "" {
		if addr := n.peerAddrOf(leaderID); addr != "" {
			targets = append(targets, addr)
		}
	} else {
		for _, m := range n.members.Alive() {
			if m.Meta.ID != n.id && m.Meta.RaftAddr != "" {
				targets = append(targets, m.Meta.RaftAddr)
			}
		}
	}
	if len(targets) == 0 {
		return metadata.Result{}, errNoMetaLeader
	}
	var last error
	for _, addr := range targets {
		res, err := n.postMeta(ctx, addr, raw)
		var redirect *redirectError
		if errors.As(err, &redirect) && redirect.addr != addr {
			res, err = n.postMeta(ctx, redirect.addr, raw)
		}
		if errors.Is(err, errNoMetaLeader) || errors.Is(err, errMetaNotLeader) {
			last = err
			continue
		}
		return res, err
	}
	return metadata.Result{}, last
}

func (n *Node) postMeta(ctx context.Context, addr string, raw []byte) (metadata.Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, peerURL(addr, "/internal/v1/meta"), bytes.NewReader(raw))
	if err != nil {
		return metadata.Result{}, err
	}
	resp, err := n.peerClient.Do(req)
	if err != nil {
		// The leader may have just died; look again.
		return metadata.Result{}, fmt.Errorf("%w: forward to %s: %v", errNoMetaLeader, addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusMisdirectedRequest {
		if leader := resp.Header.Get(leaderHeader); leader != "" {
			return metadata.Result{}, &redirectError{addr: leader}
		}
		return metadata.Result{}, errMetaNotLeader
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return metadata.Result{}, fmt.Errorf("forward metadata write to %s: %s: %s", addr, resp.Status, bytes.TrimSpace(b))
	}
	var w wireResult
	if err := json.NewDecoder(resp.Body).Decode(&w); err != nil {
		return metadata.Result{}, fmt.Errorf("forward metadata write to %s: %w", addr, err)
	}
	return w.Result, w.err()
}
