package cluster

import (
	"time"

	"github.com/skiff-mq/skiff/partition"
)

// LoopbackConfig returns the configuration of a node for an in-process
// cluster (tests, examples, tools): every listener on 127.0.0.1 port 0, the
// node id given, Raft timers short enough that elections settle in well
// under a second, 1 MiB segments and a 3 s replace-after. The caller sets
// Join (and GRPCAddr when it serves gRPC: listen first, then put the real
// address here, so the node advertises it).
func LoopbackConfig(dataDir, id string, bootstrapExpect int) Config {
	cfg := DefaultConfig()
	cfg.ID = id
	cfg.DataDir = dataDir
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.GossipAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.BootstrapExpect = bootstrapExpect
	cfg.ReplaceAfter = 3 * time.Second
	cfg.ReconcileInterval = 200 * time.Millisecond
	cfg.Partition.Raft = partition.RaftTiming{
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 300 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		RPCTimeout:         time.Second,
		MaxAppendEntries:   512,
	}
	cfg.Partition.Log.SegmentBytes = 1 << 20
	// In-process clusters share the test machine's disk, whose free space
	// is not theirs to judge; tests of the disk checks set StatFS and a
	// threshold.
	cfg.MinFreeBytes, cfg.MinFreePercent = 0, 0
	cfg.DiskCheckInterval = 200 * time.Millisecond
	cfg.Partition.WatchdogTimeout = 0
	// A few offsets partitions keep small test clusters light; short
	// sessions make member failures quick to test.
	cfg.OffsetsPartitions = 4
	cfg.Groups.SessionTimeout = 3 * time.Second
	cfg.Groups.HeartbeatInterval = 250 * time.Millisecond
	cfg.Groups.LagInterval = time.Second
	return cfg
}
