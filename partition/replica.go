// Package partition runs one replica of a partition: a hashicorp/raft group
// whose state machine is the partition's segmented log (package log) plus the
// idempotent-producer table. It knows nothing of topics, the cluster, gRPC or
// consumer groups; the cluster layer starts replicas and changes their voters.
package partition

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/skiff-mq/skiff/internal/raftutil"

	"github.com/skiff-mq/skiff/log"
	"github.com/skiff-mq/skiff/raftnet"
	"github.com/skiff-mq/skiff/record"
)

// Replica is one replica of a partition.
type Replica struct {
	cfg     Config
	logger  *slog.Logger
	raft    *raft.Raft
	fsm     *fsm
	trans   *raftnet.Transport
	logs    *raftLog              // Raft log; fsynced unless durability=replicated
	cached  *cachedLogStore       // logs behind the node's entry cache
	stable  *raftboltdb.BoltStore // term and vote; always fsynced
	node    *Node                 // shared with the node's other replicas
	ownNode bool                  // node was made by Open (no Config.Node) and is closed with r
	snaps   *snapshotStore
	metrics *metrics
	pending *pendingWrites
	peers   peerHealth
	bounds  atomic.Pointer[Bounds] // set by SetBounds; nil = unbounded
	// backlog is the share groups' progress, for reject-unacked bounds.
	backlog shareBacklog
	// compaction is set by SetCompaction; nil = off.
	compaction atomic.Pointer[Compaction]
	// dirtyRatio is 1 + the float64 bits of the last measured dirty ratio;
	// 0 before the first measurement.
	dirtyRatio atomic.Uint64

	// readyTerm is the term in which this replica, as leader, has committed
	// a barrier; it serves leader-only requests only while it equals the
	// current term.
	readyTerm atomic.Uint64
	notifyCh  chan bool

	failed atomic.Pointer[error]
	// failStop is the Raft shutdown fail started. A second Shutdown call
	// returns at once, before Raft's goroutines have exited, so Close
	// waits on this one before it closes the stores under them.
	stopMu    sync.Mutex
	failStop  raft.Future // guarded by stopMu
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Server is a member of the replica's Raft group.
type Server struct {
	ID      string
	Address string
	Voter   bool
}

// Open starts a replica whose Raft traffic runs over hub, the node's
// raftnet.Hub (shared by all its groups), registered as cfg.Group. A
// replica with no Raft state waits for Bootstrap or for a leader to add it.
func Open(cfg Config, hub *raftnet.Hub) (*Replica, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("partition", cfg.Group)
	r := &Replica{cfg: cfg, logger: logger, stop: make(chan struct{}), notifyCh: make(chan bool, 16), pending: newPendingWrites()}
	if err := r.open(hub); err != nil {
		r.closeResources()
		return nil, fmt.Errorf("open partition %s: %w", cfg.Group, err)
	}
	return r, nil
}

// maxRaftBatch is the largest batch the FSM's log accepts. The per-topic
// limit (which may change at runtime and differ between replicas for a
// moment) is enforced before Raft, so the FSM never rejects a committed
// entry for its size: that would fork the replicas' logs.
const maxRaftBatch = 64 << 20

func (r *Replica) open(hub *raftnet.Hub) error {
	cfg := r.cfg
	if cfg.RaftLogSegmentBytes == 0 {
		cfg.RaftLogSegmentBytes = DefaultConfig().RaftLogSegmentBytes
	}
	if cfg.Raft.MaxAppendBytes == 0 {
		cfg.Raft.MaxAppendBytes = DefaultRaftTiming().MaxAppendBytes
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return err
	}
	var err error
	r.snaps, err = newSnapshotStore(filepath.Join(cfg.Dir, "snapshots"), cfg.RetainSnapshots)
	if err != nil {
		return err
	}
	logCfg := cfg.Log
	logCfg.MaxBatchBytes = maxRaftBatch
	// The Raft log is the durable record of every acknowledged batch; the
	// segment files are synced before a snapshot lets Raft forget entries.
	logCfg.Sync = log.SyncNever
	r.fsm, err = openFSM(cfg.Dir, logCfg, cfg.Producers.withDefaults(), r.snaps, r.logger, r.fail)
	if err != nil {
		return err
	}
	r.node = cfg.Node
	if r.node == nil {
		if r.node, err = NewNode(DefaultMemoryConfig()); err != nil {
			return err
		}
		r.ownNode = true
	}
	r.snaps.catchUp = r.node.catchUp
	hlog := raftutil.NewHCLogger(r.logger)
	r.logs, err = openRaftLog(cfg.Dir, cfg.RaftLogSegmentBytes, r.node.syncs, cfg.Durability == DurabilityReplicated, hlog)
	if err != nil {
		return fmt.Errorf("open raft log store: %w", err)
	}
	r.stable, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, stableStoreDB)})
	if err != nil {
		return fmt.Errorf("open raft stable store: %w", err)
	}
	var base raft.LogStore = r.logs
	if cfg.wrapLogStore != nil {
		base = cfg.wrapLogStore(base)
	}
	// The WAL is monotonic even when a test wrapper hides its IsMonotonic.
	r.cached = r.node.cache.wrap(base, r.logs.IsMonotonic())
	if r.trans, err = hub.Transport(cfg.Group, raftnet.TransportConfig{RPCTimeout: cfg.Raft.RPCTimeout}); err != nil {
		return fmt.Errorf("raft transport: %w", err)
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.Raft.HeartbeatTimeout
	rc.ElectionTimeout = cfg.Raft.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.Raft.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.Raft.CommitTimeout
	rc.MaxAppendEntries = cfg.Raft.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.NoSnapshotRestoreOnStart = true
	rc.NotifyCh = r.notifyCh
	rc.Logger = hlog
	rc.NoLegacyTelemetry = true
	r.raft, err = raft.NewRaft(rc, r.fsm, r.cached, r.stable, r.snaps, raftutil.NoPipeline{Transport: r.trans, MaxAppendBytes: cfg.Raft.MaxAppendBytes})
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	r.metrics = newMetrics(r, cfg.Registerer)
	obsCh := make(chan raft.Observation, 256)
	obs := raft.NewObserver(obsCh, false, peerObservation)
	r.raft.RegisterObserver(obs)
	r.wg.Add(5)
	go r.watchPeers(obsCh, obs)
	go r.watchLeadership()
	go r.runRetention()
	go r.runCompaction()
	go r.runWatchdog()
	return nil
}

// Bootstrap makes servers the group's first configuration. It is a no-op on
// a replica that already has Raft state, so every initial replica may call it
// with the same list.
func (r *Replica) Bootstrap(servers []Server) error {
	conf := raft.Configuration{}
	for _, s := range servers {
		suffrage := raft.Voter
		if !s.Voter {
			suffrage = raft.Nonvoter
		}
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: suffrage, ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Address)})
	}
	err := r.raft.BootstrapCluster(conf).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return nil
	}
	return err
}

// Addr is the address peers reach this replica's Raft group at.
func (r *Replica) Addr() string { return string(r.trans.LocalAddr()) }

// ID is this replica's Raft server id.
func (r *Replica) ID() string { return r.cfg.NodeID }

// Group is the Raft group name.
func (r *Replica) Group() string { return r.cfg.Group }

// IsLeader reports whether this replica leads and has caught up in its term.
func (r *Replica) IsLeader() bool {
	return r.raft.State() == raft.Leader && r.readyTerm.Load() == r.raft.CurrentTerm()
}

// LeaderTerm returns the term in which this replica leads and has caught
// up; ok is false when it does not (yet) lead. State kept per leadership,
// such as a group coordinator's, is valid only while the term holds.
func (r *Replica) LeaderTerm() (term uint64, ok bool) {
	term = r.readyTerm.Load()
	if term == 0 || r.raft.State() != raft.Leader || r.raft.CurrentTerm() != term {
		return 0, false
	}
	return term, true
}

// DeleteBefore deletes this replica's log segments whose records all lie
// below offset: prefix deletion for a partition whose owner compacts it
// (the offsets log after a checkpoint). Each replica trims its own copy.
func (r *Replica) DeleteBefore(offset int64) error {
	if err := r.usable(); err != nil {
		return err
	}
	r.fsm.snapshotMu.Lock()
	defer r.fsm.snapshotMu.Unlock()
	n, err := r.fsm.log().DeleteBefore(offset)
	if n > 0 {
		r.logger.Info("deleted segments below offset", "offset", offset, "segments", n)
	}
	return err
}

// Leader returns the current leader's id and address, empty when unknown.
func (r *Replica) Leader() (id, addr string) {
	a, i := r.raft.LeaderWithID()
	return string(i), string(a)
}

func (r *Replica) notLeader() error {
	id, addr := r.Leader()
	if id == r.cfg.NodeID {
		return ErrNotReady
	}
	return &NotLeaderError{LeaderID: id, LeaderAddr: addr}
}

// watchLeadership commits a barrier whenever this replica becomes leader:
// until the barrier applies, entries of earlier terms may still be unapplied,
// so the high watermark could be behind what the old leader acknowledged.
func (r *Replica) watchLeadership() {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		case leader := <-r.notifyCh:
			r.cached.setLeading(leader)
			if !leader {
				r.readyTerm.Store(0)
				continue
			}
			term := r.raft.CurrentTerm()
			if err := r.barrier(term); err != nil {
				r.logger.Warn("leader barrier failed", "term", term, "error", err)
				continue
			}
			r.readyTerm.Store(term)
			r.logger.Info("leading", "term", term)
		}
	}
}

func (r *Replica) barrier(term uint64) error {
	// Retry while we still lead in this term: a barrier can time out on a
	// loaded node without leadership being lost.
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := raftutil.WaitFuture(ctx, r.raft.Barrier(5*time.Second))
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-r.stop:
			return ErrClosed
		default:
		}
		if r.raft.State() != raft.Leader || r.raft.CurrentTerm() != term {
			return err
		}
	}
}

// ProduceResult is the acknowledgement of one batch.
type ProduceResult struct {
	BaseOffset  int64
	LastOffset  int64
	LeaderEpoch int32 // the Raft term the batch was committed in
	Duplicate   bool  // a retry of an already-appended batch
}

// Produce replicates one encoded batch and returns once a majority has
// committed it (fsynced it, with DurabilityFsync) and this replica applied
// it. Many Produce calls may run at once; Raft pipelines them.
//
// Errors: *NotLeaderError and ErrNotReady (nothing written, retry
// elsewhere/later); ErrInvalidBatch, ErrBatchTooLarge,
// ErrOutOfOrderSequence, ErrProducerFenced (rejected); ErrIndeterminate
// (may or may not be written: retry with the same producer sequence).
func (r *Replica) Produce(ctx context.Context, batch []byte, maxBatchBytes int) (ProduceResult, error) {
	return r.ProduceAsync(ctx, batch, maxBatchBytes).Wait(ctx)
}

// PendingProduce is a batch handed to Raft whose outcome is not known yet.
type PendingProduce struct {
	r       *Replica
	f       raft.ApplyFuture
	err     error // set when the batch never reached Raft
	start   time.Time
	done    func()
	size    int
	records int
	budget  int64  // bytes of the node's produce budget held until Wait
	term    uint64 // the leader term the batch was reserved in (bounds.go)
	// full, when set, is the refusal of a batch sent only to learn whether
	// it is a retry (opAppendIfDuplicate).
	full *FullError
}

// ProduceAsync validates batch and hands it to Raft, returning as soon as it
// is queued. Batches handed over by successive calls from one goroutine are
// committed in that order, so a caller can keep many batches of one
// partition in flight and still get offsets in its own order. Wait returns
// the outcome (errors as for Produce).
func (r *Replica) ProduceAsync(ctx context.Context, batch []byte, maxBatchBytes int) *PendingProduce {
	return r.produceAsync(ctx, batch, maxBatchBytes, true)
}

// ProduceInOrder is ProduceAsync for a caller whose later batches depend
// on the earlier ones (the share committer pipelines appends decided one
// after the other): when it returns, the batch either never reached Raft
// (Err says why) or is queued in Raft behind every batch handed over
// before it. ProduceAsync gives up queueing into Raft at the context's
// deadline, which can leave a batch out while a later one gets in;
// ProduceInOrder waits for Raft's queue without a timer instead (Raft
// drains it as leader and refuses it as follower; only a shutdown stops
// the wait, and then nothing later gets in either).
func (r *Replica) ProduceInOrder(ctx context.Context, batch []byte) *PendingProduce {
	return r.produceAsync(ctx, batch, 0, false)
}

// Err is why the batch never reached Raft, known as soon as it was handed
// over; nil when it did, and Wait gives the outcome.
func (p *PendingProduce) Err() error { return p.err }

func (r *Replica) produceAsync(ctx context.Context, batch []byte, maxBatchBytes int, enqueueTimeout bool) *PendingProduce {
	p := &PendingProduce{r: r}
	p.err = r.validateProduce(batch, maxBatchBytes)
	if p.err != nil {
		return p
	}
	h, _ := record.ParseHeader(batch)
	p.size, p.records = len(batch), int(h.RecordCount)
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
		if timeout <= 0 {
			p.err = context.DeadlineExceeded
			return p
		}
	}
	// The node's produce budget bounds the bytes queued in Raft and not yet
	// acknowledged; waiting for room is bounded by the caller's deadline,
	// and a batch refused here never reached Raft.
	bctx, cancel := context.WithTimeout(ctx, timeout)
	p.budget, p.err = r.node.produce.acquire(bctx, int64(len(batch)))
	cancel()
	if p.err != nil {
		p.err = fmt.Errorf("partition %s: waiting for produce memory budget: %w", r.cfg.Group, p.err)
		return p
	}
	p.term = r.readyTerm.Load()
	cmd, full, err := r.admit(p.term, batch, int64(p.records))
	if full != nil {
		p.full, p.records, p.size = full, 0, 0 // nothing reserved
	}
	if err != nil {
		r.node.produce.release(p.budget)
		r.metrics.produceError(err)
		p.err = err
		return p
	}
	p.start = time.Now()
	done := r.pending.add(p.start)
	p.done = func() {
		done()
		r.node.produce.release(p.budget)
	}
	applyTimeout := timeout
	if !enqueueTimeout {
		applyTimeout = 0 // no timer: wait for room in Raft's queue
	}
	p.f = r.raft.Apply(cmd, applyTimeout)
	return p
}

// Wait returns the batch's acknowledgement, waiting at most until ctx ends
// (after which the outcome is indeterminate).
func (p *PendingProduce) Wait(ctx context.Context) (ProduceResult, error) {
	if p.err != nil {
		return ProduceResult{}, p.err
	}
	defer p.done()
	r := p.r
	if err := raftutil.WaitFuture(ctx, p.f); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrEnqueueTimeout) {
			// Never entered the log: the FSM will not settle it.
			r.release(p.term, int64(p.records), int64(p.size))
		}
		err = classifyApplyError(err, r)
		r.metrics.produceError(err)
		return ProduceResult{}, err
	}
	res, ok := p.f.Response().(*appendResult)
	if !ok || res == nil {
		return ProduceResult{}, fmt.Errorf("partition %s: unexpected apply response %T", r.cfg.Group, p.f.Response())
	}
	if errors.Is(res.Err, errNotDuplicate) && p.full != nil {
		r.metrics.produceError(p.full)
		return ProduceResult{}, p.full
	}
	if res.Err != nil {
		r.metrics.produceError(res.Err)
		return ProduceResult{}, res.Err
	}
	r.metrics.produced(p.size, p.records, time.Since(p.start))
	return ProduceResult{BaseOffset: res.BaseOffset, LastOffset: res.LastOffset, LeaderEpoch: res.LeaderEpoch, Duplicate: res.Duplicate}, nil
}

// validateProduce checks what can be checked before Raft: leadership, size
// and the batch's framing and CRC.
func (r *Replica) validateProduce(batch []byte, maxBatchBytes int) error {
	if err := r.usable(); err != nil {
		return err
	}
	if !r.IsLeader() {
		return r.notLeader()
	}
	if maxBatchBytes <= 0 || maxBatchBytes > maxRaftBatch {
		maxBatchBytes = maxRaftBatch
	}
	if len(batch) > maxBatchBytes {
		return fmt.Errorf("%w: %d bytes, limit %d (max.message.bytes)", ErrBatchTooLarge, len(batch), maxBatchBytes)
	}
	h, err := record.Verify(batch)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidBatch, err)
	}
	if h.Size() != len(batch) {
		return fmt.Errorf("%w: %d bytes after the batch", ErrInvalidBatch, len(batch)-h.Size())
	}
	if h.RecordCount == 0 || int64(h.RecordCount) != int64(h.LastOffsetDelta)+1 {
		return fmt.Errorf("%w: recordCount %d does not match lastOffsetDelta %d", ErrInvalidBatch, h.RecordCount, h.LastOffsetDelta)
	}
	return nil
}

// classifyApplyError sorts Raft's outcomes into definite and indeterminate
// failures (hashicorp/raft: ErrLeadershipLost does not mean "not written").
func classifyApplyError(err error, r *Replica) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
		// Never entered this leader's log.
		return r.notLeader()
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", ErrIndeterminate, ErrClosed)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled), errors.Is(err, raftutil.ErrFutureTimeout):
		return fmt.Errorf("%w: %v", ErrIndeterminate, err)
	}
	return fmt.Errorf("%w: %v", ErrIndeterminate, err)
}

// FetchRequest asks for batches from Offset on.
type FetchRequest struct {
	Offset   int64
	MaxBytes int           // at least one whole batch is returned even if larger
	MaxWait  time.Duration // long-poll: wait this long for data at the end of the log
	// AllowFollower lets a follower serve the read (its data is committed,
	// possibly a little behind the leader's).
	AllowFollower bool
}

// FetchResult holds whole batches and the log's bounds at read time.
type FetchResult struct {
	Batches        []byte
	HighWatermark  int64
	LogStartOffset int64
}

// Fetch reads committed batches. At the end of the log it waits up to
// MaxWait for new data. Reading past the end on a caught-up leader, or below
// the log start, fails with a *log.OffsetOutOfRangeError carrying the valid
// range; a follower or a new leader still catching up waits instead, since
// the offset may yet become valid.
func (r *Replica) Fetch(ctx context.Context, req FetchRequest) (FetchResult, error) {
	if err := r.usable(); err != nil {
		return FetchResult{}, err
	}
	if req.Offset < 0 {
		return FetchResult{}, &log.OffsetOutOfRangeError{Offset: req.Offset, Start: r.fsm.log().LogStartOffset(), End: r.fsm.log().NextOffset()}
	}
	if !req.AllowFollower && !r.IsLeader() {
		return FetchResult{}, r.notLeader()
	}
	if req.MaxBytes <= 0 {
		req.MaxBytes = 1 << 20
	}
	req.MaxBytes = int(min(int64(req.MaxBytes), r.node.fetch.limit))
	timer := closedTimer // no wait: answer at once
	if req.MaxWait > 0 {
		t := time.NewTimer(req.MaxWait)
		defer t.Stop()
		timer = t.C
	}
	for {
		lg := r.fsm.log()
		changed := lg.Changed()
		hw := lg.NextOffset()
		if req.Offset < hw {
			held, err := r.node.fetch.acquire(ctx, int64(req.MaxBytes))
			if err != nil {
				return FetchResult{HighWatermark: hw, LogStartOffset: lg.LogStartOffset()}, err
			}
			data, err := lg.Read(req.Offset, req.MaxBytes)
			r.node.fetch.release(held)
			switch {
			case errors.Is(err, log.ErrClosed):
				// A snapshot install swapped the log; read the new one.
				if err := r.usable(); err != nil {
					return FetchResult{}, err
				}
				continue
			case err != nil:
				return FetchResult{}, err
			}
			r.metrics.fetched(len(data))
			return FetchResult{Batches: data, HighWatermark: hw, LogStartOffset: lg.LogStartOffset()}, nil
		}
		if req.Offset > hw && r.IsLeader() {
			return FetchResult{}, &log.OffsetOutOfRangeError{Offset: req.Offset, Start: lg.LogStartOffset(), End: hw}
		}
		select {
		case <-changed:
		case <-timer:
			return FetchResult{HighWatermark: hw, LogStartOffset: lg.LogStartOffset()}, nil
		case <-ctx.Done():
			return FetchResult{HighWatermark: hw, LogStartOffset: lg.LogStartOffset()}, ctx.Err()
		case <-r.stop:
			return FetchResult{}, ErrClosed
		}
	}
}

var closedTimer = func() <-chan time.Time {
	c := make(chan time.Time)
	close(c)
	return c
}()

// Offsets returns the log's start offset and high watermark on this replica.
func (r *Replica) Offsets() (start, highWatermark int64) {
	lg := r.fsm.log()
	return lg.LogStartOffset(), lg.NextOffset()
}

// FindOffset returns the first offset whose batch has a timestamp at or
// after ts (milliseconds), or the high watermark if none.
func (r *Replica) FindOffset(ts int64) (int64, error) {
	return r.fsm.log().FindOffsetByTimestamp(ts)
}

// Size is the replica's log size in bytes.
func (r *Replica) Size() int64 { return r.fsm.log().Size() }

// SetLogConfig changes retention and segment settings at runtime.
func (r *Replica) SetLogConfig(cfg log.Config) error {
	cfg.MaxBatchBytes = maxRaftBatch
	cfg.Sync = log.SyncNever
	return r.fsm.log().SetConfig(cfg)
}

// AddVoter adds (or promotes) a voting member.
func (r *Replica) AddVoter(ctx context.Context, id, addr string) error {
	return r.membership(ctx, func(t time.Duration) raft.Future {
		return r.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, t)
	})
}

// AddNonvoter adds a member that replicates but does not vote (a learner,
// used to let a new replica catch up before it counts for the quorum).
func (r *Replica) AddNonvoter(ctx context.Context, id, addr string) error {
	return r.membership(ctx, func(t time.Duration) raft.Future {
		return r.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, t)
	})
}

// RemoveServer removes a member.
func (r *Replica) RemoveServer(ctx context.Context, id string) error {
	return r.membership(ctx, func(t time.Duration) raft.Future {
		return r.raft.RemoveServer(raft.ServerID(id), 0, t)
	})
}

// TransferLeadership hands leadership to id (or to the most up-to-date
// follower when id is empty) and waits for the handover.
func (r *Replica) TransferLeadership(ctx context.Context, id, addr string) error {
	if r.raft.State() != raft.Leader {
		return r.notLeader()
	}
	var f raft.Future
	if id == "" {
		f = r.raft.LeadershipTransfer()
	} else {
		f = r.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr))
	}
	return raftutil.WaitFuture(ctx, f)
}

func (r *Replica) membership(ctx context.Context, op func(time.Duration) raft.Future) error {
	if r.raft.State() != raft.Leader {
		return r.notLeader()
	}
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	err := raftutil.WaitFuture(ctx, op(timeout))
	if errors.Is(err, raft.ErrNotLeader) {
		return r.notLeader()
	}
	return err
}

// Servers returns the group's latest configuration.
func (r *Replica) Servers(ctx context.Context) ([]Server, error) {
	f := r.raft.GetConfiguration()
	if err := raftutil.WaitFuture(ctx, f); err != nil {
		return nil, err
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// Status is a point-in-time view of the replica for metadata and operators.
type Status struct {
	State          string // Leader, Follower, Candidate, Shutdown
	Term           uint64
	LeaderID       string
	CommitIndex    uint64
	AppliedIndex   uint64
	LastContact    time.Time
	HighWatermark  int64
	LogStartOffset int64
	SizeBytes      int64
	Failed         error
}

// Status returns the replica's state.
func (r *Replica) Status() Status {
	lg := r.fsm.log()
	id, _ := r.Leader()
	st := Status{
		State:          r.raft.State().String(),
		Term:           r.raft.CurrentTerm(),
		LeaderID:       id,
		CommitIndex:    r.raft.CommitIndex(),
		AppliedIndex:   r.raft.AppliedIndex(),
		LastContact:    r.raft.LastContact(),
		HighWatermark:  lg.NextOffset(),
		LogStartOffset: lg.LogStartOffset(),
		SizeBytes:      lg.Size(),
	}
	if p := r.failed.Load(); p != nil {
		st.Failed = *p
	}
	return st
}

// Snapshot takes a snapshot now (normally Raft decides when).
func (r *Replica) Snapshot(ctx context.Context) error {
	return raftutil.WaitFuture(ctx, r.raft.Snapshot())
}

// fail stops the replica from serving after an error that makes its state
// untrustworthy; the cluster layer sees it in Status and rebuilds it.
func (r *Replica) fail(err error) {
	if r.failed.CompareAndSwap(nil, &err) {
		r.logger.Error("partition replica failed; it stops serving", "error", err)
		// Shutdown only signals Raft's goroutines; waiting for them (the
		// future's Error) could wait for the FSM goroutine, which may be
		// our caller, so Close does that.
		r.stopMu.Lock()
		r.failStop = r.raft.Shutdown()
		r.stopMu.Unlock()
	}
}

// Fail stops the replica as a failed disk write does (fault injection:
// tests and chaos tools use it to exercise the cluster layer's reopening
// of failed replicas).
func (r *Replica) Fail(err error) { r.fail(err) }

func (r *Replica) usable() error {
	if p := r.failed.Load(); p != nil {
		return fmt.Errorf("partition replica failed: %w", *p)
	}
	select {
	case <-r.stop:
		return ErrClosed
	default:
		return nil
	}
}

// Close stops the replica. It does not hand leadership away; callers doing
// a graceful shutdown call TransferLeadership first.
func (r *Replica) Close() error {
	r.closeOnce.Do(func() {
		close(r.stop)
		r.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Only the first Shutdown's future waits: fail's or this one.
		r.stopMu.Lock()
		f, failed := r.raft.Shutdown(), r.failStop
		r.stopMu.Unlock()
		err := raftutil.WaitFuture(ctx, f)
		if failed != nil && err == nil {
			err = raftutil.WaitFuture(ctx, failed)
		}
		r.metrics.unregister()
		r.closeErr = errors.Join(err, r.closeResources())
	})
	return r.closeErr
}

func (r *Replica) closeResources() error {
	var errs []error
	if r.node != nil {
		r.node.cleaner.forget(r.cfg.Group)
	}
	if r.trans != nil {
		errs = append(errs, r.trans.Close())
	}
	if r.fsm != nil {
		if err := r.fsm.log().Close(); err != nil && !errors.Is(err, log.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if r.cached != nil {
		r.cached.close()
	}
	if r.logs != nil {
		errs = append(errs, r.logs.Close())
	}
	if r.stable != nil {
		errs = append(errs, r.stable.Close())
	}
	if r.ownNode && r.node != nil {
		r.node.Close()
	}
	return errors.Join(errs...)
}
