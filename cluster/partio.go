package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/consumergroup"
	"github.com/skiff-mq/skiff/log"
	"github.com/skiff-mq/skiff/partition"
)

// Node-to-node reads and writes of partitions, for the group coordinator:
// a share group's coordinator reads records of partitions it may not host
// and writes dead letters and redriven records through their leaders.

// ReadPartition reads committed batches of a partition from any replica:
// this node's when it has one, else a live node's that has.
func (n *Node) ReadPartition(ctx context.Context, topic string, p int32, offset int64, maxBytes int) (consumergroup.ReadResult, error) {
	local, _, haveLocal := n.replicas.get(topic, p)
	var localRes consumergroup.ReadResult
	leader := ""
	if haveLocal {
		res, err := readReplica(ctx, local, offset, maxBytes)
		// A follower may trail the leader by a few entries: read from the
		// leader what this replica does not have yet.
		if err == nil && (local.IsLeader() || res.End > offset) {
			return res, nil
		}
		if err == nil {
			localRes = res
		}
		leader, _ = local.Leader()
	}
	pa, err := n.assignment(topic, p)
	if err != nil {
		return consumergroup.ReadResult{}, err
	}
	targets := pa.Replicas
	if leader != "" {
		targets = append([]string{leader}, targets...)
	}
	var errs []error
	for _, id := range targets {
		addr := n.peerAddrOf(id)
		if id == n.id || addr == "" || !n.isAlive(id) {
			continue
		}
		res, err := n.remoteRead(ctx, addr, topic, p, offset, maxBytes)
		if err == nil {
			return res, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", id, err))
	}
	if haveLocal {
		return localRes, nil
	}
	return consumergroup.ReadResult{}, fmt.Errorf("read %s/%d: no replica answered: %w", topic, p, errors.Join(errs...))
}

func (n *Node) assignment(topic string, p int32) (metadata.PartitionAssignment, error) {
	t, ok := n.meta.fsm.State().Topics[topic]
	if !ok {
		return metadata.PartitionAssignment{}, fmt.Errorf("%w: %s", metadata.ErrUnknownTopic, topic)
	}
	if p < 0 || int(p) >= len(t.Partitions) {
		return metadata.PartitionAssignment{}, &metadata.InvalidArgumentError{Field: "partition", Reason: fmt.Sprintf("%d out of range for %s", p, topic)}
	}
	return t.Partitions[p], nil
}

func readReplica(ctx context.Context, r *partition.Replica, offset int64, maxBytes int) (consumergroup.ReadResult, error) {
	res, err := r.Fetch(ctx, partition.FetchRequest{Offset: offset, MaxBytes: maxBytes, AllowFollower: true})
	var oor *log.OffsetOutOfRangeError
	if errors.As(err, &oor) {
		return consumergroup.ReadResult{Start: oor.Start, End: oor.End}, nil
	}
	if err != nil {
		return consumergroup.ReadResult{}, err
	}
	if offset > res.HighWatermark {
		// A follower behind the asked offset: nothing to read yet.
		return consumergroup.ReadResult{Start: res.LogStartOffset, End: res.HighWatermark}, nil
	}
	return consumergroup.ReadResult{Batches: res.Batches, Start: res.LogStartOffset, End: res.HighWatermark}, nil
}

const (
	headerHighWatermark = "X-Skiff-High-Watermark"
	headerLogStart      = "X-Skiff-Log-Start"
	headerLeaderID      = "X-Skiff-Leader-Id"
)

func partitionURL(addr, topic string, p int32, op string) string {
	return peerURL(addr, fmt.Sprintf("/internal/v1/partitions/%s/%d/%s", url.PathEscape(topic), p, op))
}

func (n *Node) remoteRead(ctx context.Context, addr, topic string, p int32, offset int64, maxBytes int) (consumergroup.ReadResult, error) {
	u := partitionURL(addr, topic, p, "read") + fmt.Sprintf("?offset=%d&max_bytes=%d", offset, maxBytes)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return consumergroup.ReadResult{}, err
	}
	resp, err := n.peerClient.Do(req)
	if err != nil {
		return consumergroup.ReadResult{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(maxBytes)+64<<20))
	if err != nil {
		return consumergroup.ReadResult{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return consumergroup.ReadResult{}, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
	}
	hw, _ := strconv.ParseInt(resp.Header.Get(headerHighWatermark), 10, 64)
	start, _ := strconv.ParseInt(resp.Header.Get(headerLogStart), 10, 64)
	return consumergroup.ReadResult{Batches: body, Start: start, End: hw}, nil
}

// serveRead answers remoteRead from a local replica.
func (n *Node) serveRead(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	p, err1 := strconv.ParseInt(r.PathValue("partition"), 10, 32)
	offset, err2 := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	maxBytes, err3 := strconv.Atoi(r.URL.Query().Get("max_bytes"))
	if err := errors.Join(err1, err2, err3); err != nil || maxBytes <= 0 || maxBytes > 64<<20 {
		http.Error(w, "bad partition, offset or max_bytes", http.StatusBadRequest)
		return
	}
	rep, _, ok := n.replicas.get(topic, int32(p))
	if !ok {
		http.Error(w, "no replica here", http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	res, err := readReplica(ctx, rep, offset, maxBytes)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set(headerHighWatermark, strconv.FormatInt(res.End, 10))
	w.Header().Set(headerLogStart, strconv.FormatInt(res.Start, 10))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(res.Batches)
}

// ProducePartition appends a batch through the partition's leader,
// following NotLeader answers, and returns its base offset.
func (n *Node) ProducePartition(ctx context.Context, topic string, p int32, batch []byte) (int64, error) {
	pa, err := n.assignment(topic, p)
	if err != nil {
		return 0, err
	}
	limit := int(metadata.DefaultMaxMessageBytes)
	if t, ok := n.meta.fsm.State().Topics[topic]; ok {
		limit = t.Config.MaxMessageBytes
	}
	backoff := 50 * time.Millisecond
	leader := ""
	for {
		if r, _, ok := n.replicas.get(topic, p); ok {
			res, err := r.Produce(ctx, batch, limit)
			if err == nil {
				return res.BaseOffset, nil
			}
			var nl *partition.NotLeaderError
			if !errors.As(err, &nl) && !errors.Is(err, partition.ErrNotReady) {
				return 0, err
			}
			if nl != nil {
				leader = nl.LeaderID
			}
		}
		targets := pa.Replicas
		if leader != "" && leader != n.id {
			targets = []string{leader}
		}
		for _, id := range targets {
			if id == n.id || !n.isAlive(id) {
				continue
			}
			addr := n.peerAddrOf(id)
			if addr == "" {
				continue
			}
			off, hint, err := n.remoteProduce(ctx, addr, topic, p, batch)
			if err == nil {
				return off, nil
			}
			if hint != "" {
				leader = hint
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("produce to %s/%d: no leader reachable: %w", topic, p, ctx.Err())
		case <-n.stop:
			return 0, errors.New("node is shutting down")
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

type produceAnswer struct {
	BaseOffset int64  `json:"base_offset"`
	Error      string `json:"error,omitempty"`
}

func (n *Node) remoteProduce(ctx context.Context, addr, topic string, p int32, batch []byte) (int64, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, partitionURL(addr, topic, p, "produce"), bytes.NewReader(batch))
	if err != nil {
		return 0, "", err
	}
	resp, err := n.peerClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var a produceAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&a); err != nil {
		return 0, "", fmt.Errorf("%s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, resp.Header.Get(headerLeaderID), fmt.Errorf("%s: %s", resp.Status, a.Error)
	}
	return a.BaseOffset, "", nil
}

// serveProduce answers remoteProduce when this node leads the partition.
func (n *Node) serveProduce(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	p, err := strconv.ParseInt(r.PathValue("partition"), 10, 32)
	answer := func(code int, a produceAnswer) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(a)
	}
	if err != nil {
		answer(http.StatusBadRequest, produceAnswer{Error: "bad partition"})
		return
	}
	batch, err := io.ReadAll(io.LimitReader(r.Body, 65<<20))
	if err != nil {
		answer(http.StatusBadRequest, produceAnswer{Error: err.Error()})
		return
	}
	rep, _, ok := n.replicas.get(topic, int32(p))
	if !ok {
		answer(http.StatusMisdirectedRequest, produceAnswer{Error: "no replica here"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	limit := int(metadata.DefaultMaxMessageBytes)
	if t, ok := n.meta.fsm.State().Topics[topic]; ok {
		limit = t.Config.MaxMessageBytes
	}
	res, err := rep.Produce(ctx, batch, limit)
	if err != nil {
		var nl *partition.NotLeaderError
		if errors.As(err, &nl) {
			w.Header().Set(headerLeaderID, nl.LeaderID)
			answer(http.StatusMisdirectedRequest, produceAnswer{Error: err.Error()})
			return
		}
		answer(http.StatusServiceUnavailable, produceAnswer{Error: err.Error()})
		return
	}
	answer(http.StatusOK, produceAnswer{BaseOffset: res.BaseOffset})
}

// EnsureTopic creates a topic (replication min(3, live nodes)) unless it
// exists and waits until every partition has a leader.
func (n *Node) EnsureTopic(ctx context.Context, name string, partitions int32) error {
	if _, ok := n.meta.fsm.State().Topics[name]; !ok {
		st := n.meta.fsm.State()
		rf := max(1, min(3, len(n.placeableNodes(st))))
		_, err := n.CreateTopic(ctx, TopicSpec{Name: name, Partitions: int(partitions), ReplicationFactor: rf})
		if err != nil && !errors.Is(err, metadata.ErrTopicExists) {
			return err
		}
	}
	for {
		if n.partitionsLed(ctx, name) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s has no leaders yet: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// partitionsLed reports whether every partition of topic has a leader.
func (n *Node) partitionsLed(ctx context.Context, name string) bool {
	t, ok := n.meta.fsm.State().Topics[name]
	if !ok {
		return false
	}
	led := map[int32]bool{}
	for _, ps := range n.gatherPartitionStatus(ctx, n.meta.fsm.State()) {
		if ps.Topic == name && ps.TopicID == t.ID && ps.State == "Leader" {
			led[ps.Partition] = true
		}
	}
	return len(led) == len(t.Partitions)
}
