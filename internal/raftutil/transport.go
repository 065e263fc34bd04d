package raftutil

import "github.com/hashicorp/raft"

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
type NoPipeline struct {
	*raft.NetworkTransport
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
