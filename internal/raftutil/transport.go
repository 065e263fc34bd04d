package raftutil

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// entryOverhead approximates an entry's encoding beyond its payloads.
const entryOverhead = 32

// NoPipeline wraps a NetworkTransport so that replication never uses
// hashicorp/raft's AppendEntries pipeline.
//
// Why: the pipeline can wedge for ever. When a follower answers an append
// with Success=false, raft's pipelineDecode returns and stops draining the
// pipeline's done channel; the send loop may still issue one more append,
// which blocks on the in-progress channel while the transport's decoder
// blocks on the done channel. Nothing closes the pipeline, so that follower
// never receives another entry (heartbeats still flow, so no election heals
// it) and Raft.Shutdown waits on the stuck goroutine. We hit the shutdown
// hang in tests (30 s per replica); others hit the stuck follower in
// production (grafana/pyroscope #5518). Without the pipeline each follower
// gets one AppendEntries in flight, each carrying up to MaxAppendEntries
// batches.
//
// It also bounds an AppendEntries on the wire by bytes, which hashicorp/raft
// does not (MaxAppendEntries counts entries): when MaxAppendBytes > 0, a
// request whose entries add up to more is sent as consecutive requests of
// at most MaxAppendBytes each (at least one entry), each chained to the one
// before by PrevLogEntry/PrevLogTerm, so the follower checks and appends
// them exactly as it would the whole. The follower's decode buffer and the
// bytes a broken link resends are bounded by MaxAppendBytes.
//
// And it bounds the TimeoutNow request of a leadership transfer by
// TimeoutNowWithin (see TimeoutNow).
type NoPipeline struct {
	*raft.NetworkTransport
	MaxAppendBytes int
	// TimeoutNowWithin bounds a TimeoutNow request; 0 leaves it to the
	// transport's RPC timeout.
	TimeoutNowWithin time.Duration
}

// ErrTimeoutNowUnanswered is returned when the target of a leadership
// transfer did not answer its TimeoutNow request within TimeoutNowWithin.
var ErrTimeoutNowUnanswered = fmt.Errorf("leadership transfer: target did not answer TimeoutNow in time")

// TransferAnswerBound is the TimeoutNowWithin for a group whose election
// timeout is electionTimeout: that long (hashicorp/raft's own deadline for
// the transfer's catch-up), but at least a second, so that short test
// timers on a loaded machine do not fail every transfer.
func TransferAnswerBound(electionTimeout time.Duration) time.Duration {
	return max(electionTimeout, time.Second)
}

// TimeoutNow sends a leadership transfer's TimeoutNow request and gives up
// waiting for the answer after TimeoutNowWithin.
//
// Why: hashicorp/raft refuses every write while a transfer is in progress,
// and a transfer that has sent its TimeoutNow stays in progress until the
// request returns, past its own election-timeout deadline. The target
// answers only when its Raft loop takes the request, which waits behind
// whatever that loop is busy with: a node restarted moments ago storing
// its catch-up took 5.2 s on the compose cluster, and writes stopped for
// as long (the RPC timeout would allow 10 s). Given up on, the transfer
// fails and the leader takes writes again at once; if the request is
// still delivered, the target stands then, as the transfer meant it to.
// The request itself runs on until it is answered or the transport's RPC
// timeout ends it.
func (t NoPipeline) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	if t.TimeoutNowWithin <= 0 {
		return t.NetworkTransport.TimeoutNow(id, target, args, resp)
	}
	type answer struct {
		resp raft.TimeoutNowResponse
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		var a answer
		a.err = t.NetworkTransport.TimeoutNow(id, target, args, &a.resp)
		done <- a
	}()
	timer := time.NewTimer(t.TimeoutNowWithin)
	defer timer.Stop()
	select {
	case a := <-done:
		*resp = a.resp
		return a.err
	case <-timer.C:
		return fmt.Errorf("%w (%v, %s)", ErrTimeoutNowUnanswered, t.TimeoutNowWithin, id)
	}
}

var (
	_ raft.Transport   = NoPipeline{}
	_ raft.WithClose   = NoPipeline{}
	_ raft.WithPreVote = NoPipeline{}
)

// AppendEntriesPipeline refuses, which makes raft replicate synchronously.
func (NoPipeline) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

// AppendEntries sends args, split by MaxAppendBytes (see NoPipeline).
func (t NoPipeline) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	chunks := SplitEntries(args.Entries, t.MaxAppendBytes)
	if len(chunks) <= 1 {
		return t.NetworkTransport.AppendEntries(id, target, args, resp)
	}
	for i, chunk := range chunks {
		req := *args
		req.Entries = chunk
		if i > 0 {
			prev := chunks[i-1][len(chunks[i-1])-1]
			req.PrevLogEntry, req.PrevLogTerm = prev.Index, prev.Term
		}
		var r raft.AppendEntriesResponse
		if err := t.NetworkTransport.AppendEntries(id, target, &req, &r); err != nil {
			return err
		}
		*resp = r
		// A refusal or a newer term ends the exchange: the leader reacts to
		// it as to a refusal of the whole request (it resends from an
		// earlier index or steps down); what the follower already accepted
		// matches the leader's log and is checked again on resend.
		if !r.Success || r.Term > args.Term {
			return nil
		}
	}
	return nil
}

// SplitEntries cuts entries into consecutive runs of at most maxBytes of
// payload each (a run holds at least one entry); maxBytes <= 0 means no
// limit.
func SplitEntries(entries []*raft.Log, maxBytes int) [][]*raft.Log {
	if len(entries) == 0 {
		return nil
	}
	if maxBytes <= 0 {
		return [][]*raft.Log{entries}
	}
	var out [][]*raft.Log
	start, size := 0, 0
	for i, e := range entries {
		n := len(e.Data) + len(e.Extensions) + entryOverhead
		if i > start && size+n > maxBytes {
			out = append(out, entries[start:i])
			start, size = i, 0
		}
		size += n
	}
	return append(out, entries[start:])
}

// staleConnAttempts bounds the tries of a vote request: the transport pools
// up to 3 connections per peer (MaxPool), each of which may be stale, and
// the last try dials afresh.
const staleConnAttempts = 4

// RequestVote asks target for its vote, again on another connection when
// the one it took from the pool was stale (see retryStale).
func (t NoPipeline) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return retryStale(func() error { return t.NetworkTransport.RequestVote(id, target, args, resp) })
}

// RequestPreVote is RequestVote for the pre-vote round.
func (t NoPipeline) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return retryStale(func() error { return t.NetworkTransport.RequestPreVote(id, target, args, resp) })
}

// retryStale runs a vote request until it fails otherwise than on a stale
// pooled connection, at most staleConnAttempts times.
//
// Why: hashicorp/raft keeps idle connections to each peer in a pool, and a
// peer that restarted since left them dead. A follower seldom talks to the
// other followers, so its pooled connections to a node restarted seconds
// ago are still the old ones at the next election, and its first vote
// request to that node fails with "broken pipe" or "connection reset".
// raft does not resend a vote request within an election, so with the old
// leader dead that vote is lost, and the election waits for its timeout
// and a pre-vote round: leader-kill on the compose cluster, 3.3 s instead
// of under 1 s. A vote request is safe to repeat: a voter answers the same
// candidate in the same term the same way. The transport drops a
// connection that failed, so the next try takes another or dials.
func retryStale(call func() error) error {
	var err error
	for range staleConnAttempts {
		if err = call(); err == nil || !staleConn(err) {
			return err
		}
	}
	return err
}

// staleConn tells the failure of a connection the peer closed (it
// restarted or died) from a timeout or a refusal. Some of the transport's
// errors come through its codec as text only.
func staleConn(err error) bool {
	if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "broken pipe") || strings.Contains(msg, "connection reset by peer") || strings.HasSuffix(msg, "EOF")
}
