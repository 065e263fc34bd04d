package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/internal/raftutil"
	"github.com/skiff-mq/skiff/partition"
	"github.com/skiff-mq/skiff/raftnet"
)

// metaGroupName is the raftnet group of the metadata Raft group.
const metaGroupName = "meta"

// metaMaxAppendBytes splits the meta group's AppendEntries like a
// partition's (partition.DefaultRaftTiming's MaxAppendBytes): a metadata
// command may be up to maxForwardBody, and raft's default of 64 entries
// per append would otherwise exceed the Hub's frame bound.
const metaMaxAppendBytes = 4 << 20

// metaGroup is this node's member of the `meta` Raft group: a voter on up to
// MetaVoters nodes, a non-voter everywhere else, so every node holds the
// whole metadata locally (the KRaft idea).
type metaGroup struct {
	raft   *raft.Raft
	fsm    *metadata.FSM
	trans  *raftnet.Transport
	logs   *raftboltdb.BoltStore
	stable *raftboltdb.BoltStore
}

// lastCommandIndex is the index of the last metadata command in the meta
// log at or below last, the index the state reaches once it has replayed
// the log: every election appends a no-op, and membership changes append
// configuration entries, neither of which the state machine sees, so the
// log's last index is often beyond any command. 0 when the log holds no
// command (they are all in the snapshot, restored before this is asked).
func (m *metaGroup) lastCommandIndex(last uint64) uint64 {
	first, err := m.logs.FirstIndex()
	if err != nil {
		return last // cannot tell: wait for the last entry, as before
	}
	var e raft.Log
	for i := last; i >= first && i > 0; i-- {
		if err := m.logs.GetLog(i, &e); err != nil {
			return last
		}
		if e.Type == raft.LogCommand {
			return i
		}
	}
	return 0
}

func openMetaGroup(dir, nodeID string, hub *raftnet.Hub, timing partition.RaftTiming, logger *slog.Logger) (*metaGroup, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	m := &metaGroup{fsm: metadata.NewFSM()}
	var err error
	// Metadata writes are rare and must survive any crash: always fsync.
	if m.logs, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft-log.db")}); err != nil {
		return nil, fmt.Errorf("meta log store: %w", err)
	}
	if m.stable, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft-stable.db")}); err != nil {
		m.close()
		return nil, fmt.Errorf("meta stable store: %w", err)
	}
	hlog := raftutil.NewHCLogger(logger.With("group", metaGroupName))
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog)
	if err != nil {
		m.close()
		return nil, fmt.Errorf("meta snapshots: %w", err)
	}
	if m.trans, err = hub.Transport(metaGroupName, raftnet.TransportConfig{RPCTimeout: timing.RPCTimeout}); err != nil {
		m.close()
		return nil, fmt.Errorf("meta transport: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(nodeID)
	rc.HeartbeatTimeout = timing.HeartbeatTimeout
	rc.ElectionTimeout = timing.ElectionTimeout
	rc.LeaderLeaseTimeout = timing.LeaderLeaseTimeout
	rc.CommitTimeout = timing.CommitTimeout
	rc.SnapshotThreshold = 1024
	rc.TrailingLogs = 1024
	rc.Logger = hlog
	rc.NoLegacyTelemetry = true
	// The metadata FSM is small and in memory: restore it from the snapshot
	// at start (the default), unlike partition logs.
	if m.raft, err = raft.NewRaft(rc, m.fsm, m.logs, m.stable, snaps, raftutil.NoPipeline{Transport: m.trans, MaxAppendBytes: metaMaxAppendBytes}); err != nil {
		m.close()
		return nil, fmt.Errorf("start meta raft: %w", err)
	}
	return m, nil
}

func (m *metaGroup) hasState() bool {
	return m.raft.LastIndex() > 0
}

// bootstrap makes voters the meta group's first configuration; a no-op if
// the group already has state.
func (m *metaGroup) bootstrap(voters []raft.Server) error {
	err := m.raft.BootstrapCluster(raft.Configuration{Servers: voters}).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return nil
	}
	return err
}

func (m *metaGroup) isLeader() bool { return m.raft.State() == raft.Leader }

func (m *metaGroup) leader() (id, addr string) {
	a, i := m.raft.LeaderWithID()
	return string(i), string(a)
}

// apply proposes cmd on this node, which must lead the group.
func (m *metaGroup) apply(ctx context.Context, cmd []byte) (metadata.Result, error) {
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	f := m.raft.Apply(cmd, timeout)
	if err := raftutil.WaitFuture(ctx, f); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return metadata.Result{}, errMetaNotLeader
		}
		if errors.Is(err, raft.ErrLeadershipLost) {
			return metadata.Result{}, fmt.Errorf("%w (%v)", ErrMetaIndeterminate, err)
		}
		return metadata.Result{}, fmt.Errorf("metadata write: %w", err)
	}
	res, ok := f.Response().(metadata.Result)
	if !ok {
		return metadata.Result{}, fmt.Errorf("metadata write: unexpected result %T", f.Response())
	}
	return res, res.Err
}

func (m *metaGroup) servers(ctx context.Context) ([]raft.Server, error) {
	f := m.raft.GetConfiguration()
	if err := raftutil.WaitFuture(ctx, f); err != nil {
		return nil, err
	}
	return f.Configuration().Servers, nil
}

func (m *metaGroup) close() error {
	var errs []error
	if m.raft != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, raftutil.WaitFuture(ctx, m.raft.Shutdown()))
		cancel()
	}
	if m.trans != nil {
		errs = append(errs, m.trans.Close())
	}
	if m.logs != nil {
		errs = append(errs, m.logs.Close())
	}
	if m.stable != nil {
		errs = append(errs, m.stable.Close())
	}
	return errors.Join(errs...)
}

// ErrMetaIndeterminate means a metadata write reached the meta leader's
// Raft log, then the leader lost its leadership before the write was known
// to be committed: the next leader may have committed it or dropped it.
// Not retried here, because a retry of a create is not the same request
// (it would fail with "exists" if the first took effect).
var ErrMetaIndeterminate = errors.New("metadata write outcome unknown: the metadata leader changed while committing it; check whether the change took effect, then retry")

// errMetaNotLeader makes the caller forward the write to the meta leader.
var errMetaNotLeader = errors.New("not the metadata leader")
