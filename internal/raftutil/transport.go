package raftutil

import "github.com/hashicorp/raft"

// entryOverhead approximates an entry's encoding beyond its payloads.
const entryOverhead = 32

// Transport is a raft.Transport that can also be closed and carries
// pre-votes: raft.NetworkTransport, or raftnet.Transport.
type Transport interface {
	raft.Transport
	raft.WithClose
	raft.WithPreVote
}

// NoPipeline wraps a Transport so that replication never uses
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
type NoPipeline struct {
	Transport
	MaxAppendBytes int
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
		return t.Transport.AppendEntries(id, target, args, resp)
	}
	for i, chunk := range chunks {
		req := *args
		req.Entries = chunk
		if i > 0 {
			prev := chunks[i-1][len(chunks[i-1])-1]
			req.PrevLogEntry, req.PrevLogTerm = prev.Index, prev.Term
		}
		var r raft.AppendEntriesResponse
		if err := t.Transport.AppendEntries(id, target, &req, &r); err != nil {
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
