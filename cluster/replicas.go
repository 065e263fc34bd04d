package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/log"
	"github.com/skiff-mq/skiff/partition"
)

// partitionKey names one partition of one incarnation of a topic: a topic
// deleted and created again under the same name gets a new ID, so its
// replicas never mix with the old one's files.
type partitionKey struct {
	Topic     string
	TopicID   uint64
	Partition int32
}

func (k partitionKey) group() string { return fmt.Sprintf("%s/%d/%d", k.Topic, k.Partition, k.TopicID) }
func (k partitionKey) dirName() string {
	return fmt.Sprintf("%s-%d-%d", k.Topic, k.Partition, k.TopicID)
}

// replicaSet owns this node's partition replicas and keeps them equal to
// what the metadata assigns to the node (the reconciliation loop).
type replicaSet struct {
	n *Node

	mu       sync.RWMutex
	replicas map[partitionKey]*partition.Replica // guarded by mu
	// seenIndex is the metadata index the last complete reconciliation saw.
	seenIndex uint64 // guarded by mu
	// catchUpIndex is the last index of the meta Raft log when the
	// reconcile loop started: until the local metadata has applied that
	// far, it may lack topics that exist (after a restart the meta FSM
	// starts empty, or at its snapshot, and replays its log only once the
	// group has a leader again), so nothing is removed. Without this gate
	// a node restarting while the meta group has no leader (every node
	// restarted at once) deleted every partition directory it had.
	catchUpIndex uint64 // reconcile goroutine only
	// catchUpLast is the meta log's last index at start, and
	// appliedSince when the meta group had applied that far: the gate
	// also opens a while after that, for a last command that was never
	// committed (a crashed meta leader's) and so will never be applied.
	catchUpLast  uint64    // reconcile goroutine only
	appliedSince time.Time // reconcile goroutine only
	// lastTransfer rate-limits preferred-leader handovers per partition.
	lastTransfer map[partitionKey]time.Time // reconcile goroutine only
	// ledSince is when this node began leading each partition in the term
	// it leads it now.
	ledSince map[partitionKey]termSince // reconcile goroutine only
	// logConfigs is the topic config last applied to each replica's log, so
	// a reconciliation touches a log only when its topic's config changed.
	logConfigs map[partitionKey]metadata.TopicConfig // reconcile goroutine only
	// reopen holds, per replica that failed (a write error such as a full
	// disk stops it), when to reopen it and the wait after that.
	reopen map[partitionKey]reopenState // reconcile goroutine only
}

// reopenState is the backoff of one failed replica.
type reopenState struct {
	at   time.Time
	wait time.Duration
}

// Failed replicas are reopened after reopenFirst, doubling up to
// reopenMax while they keep failing.
const (
	reopenFirst = time.Second
	reopenMax   = time.Minute
)

func newReplicaSet(n *Node) *replicaSet {
	return &replicaSet{n: n, replicas: map[partitionKey]*partition.Replica{},
		lastTransfer: map[partitionKey]time.Time{}, ledSince: map[partitionKey]termSince{}, logConfigs: map[partitionKey]metadata.TopicConfig{},
		reopen: map[partitionKey]reopenState{}}
}

func (s *replicaSet) dir() string { return filepath.Join(s.n.cfg.DataDir, "partitions") }

// get returns the local replica of a partition of the current incarnation
// of topic.
func (s *replicaSet) get(topic string, p int32) (*partition.Replica, partitionKey, bool) {
	t, ok := s.n.meta.fsm.State().Topics[topic]
	if !ok {
		return nil, partitionKey{}, false
	}
	key := partitionKey{Topic: topic, TopicID: t.ID, Partition: p}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.replicas[key]
	return r, key, ok
}

func (s *replicaSet) all() map[partitionKey]*partition.Replica {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[partitionKey]*partition.Replica, len(s.replicas))
	for k, r := range s.replicas {
		out[k] = r
	}
	return out
}

// inSyncWithMetadata reports whether the last reconciliation covered the
// newest metadata this node has applied.
func (s *replicaSet) inSyncWithMetadata() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.seenIndex == s.n.meta.fsm.State().Index
}

// run reconciles on every metadata change and every ReconcileInterval (to
// retry what failed and to follow Raft membership and leadership, which
// change without a metadata change).
func (s *replicaSet) run() {
	tick := time.NewTicker(s.n.cfg.ReconcileInterval)
	defer tick.Stop()
	// Membership changes can wait on unreachable peers; a stopping node
	// must not sit out their timeouts one partition after another.
	ctx, cancel := s.n.stopContext()
	defer cancel()
	s.catchUpLast = s.n.meta.raft.LastIndex()
	s.catchUpIndex = s.n.meta.lastCommandIndex(s.catchUpLast)
	for {
		changed := s.n.meta.fsm.Changed()
		s.reconcile(ctx)
		select {
		case <-s.n.stop:
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

// desired lists the partitions the metadata assigns to this node.
func (s *replicaSet) desired(st *metadata.State) map[partitionKey]*metadata.Topic {
	out := map[partitionKey]*metadata.Topic{}
	for _, t := range st.Topics {
		for _, pa := range t.Partitions {
			for _, id := range pa.Replicas {
				if id == s.n.id {
					out[partitionKey{Topic: t.Name, TopicID: t.ID, Partition: pa.Partition}] = t
				}
			}
		}
	}
	return out
}

func (s *replicaSet) reconcile(ctx context.Context) {
	st := s.n.meta.fsm.State()
	want := s.desired(st)
	ok := true
	if st.Index < s.catchUpIndex && !s.lastCommandLost(time.Now()) {
		// Metadata not yet replayed as far as this node had it: absent
		// topics may only be missing so far. Open what it assigns, remove
		// nothing.
		s.openAssigned(ctx, want)
		return
	}
	s.catchUpIndex = 0 // caught up once: the gate stays open
	// Stop and delete replicas no longer assigned here (topic deleted or
	// partition moved away). A replica moved away keeps serving its group
	// until the replicas that replace it are in sync (handingOver).
	keepDirs := maps.Clone(want)
	for key, r := range s.all() {
		if _, keep := want[key]; keep {
			continue
		}
		if t, moved := movedAway(st, key); moved && s.handingOver(ctx, key, r, t, st) {
			keepDirs[key] = t // looked at again at the next tick
			continue
		}
		if err := s.remove(key, r); err != nil {
			s.n.logger.Warn("remove replica", "partition", key.group(), "error", err)
			ok = false
		}
	}
	// Directories of partitions this node no longer has (deleted while the
	// node was down).
	s.removeStrayDirs(keepDirs)
	for key, t := range want {
		if ctx.Err() != nil {
			return
		}
		r, running := s.all()[key]
		if running {
			if err := r.Status().Failed; err != nil {
				s.closeFailed(key, r, err)
				running = false
			}
		}
		if !running {
			if ro, backingOff := s.reopen[key]; backingOff && time.Now().Before(ro.at) {
				ok = false
				continue
			}
		}
		if prev, ok := s.logConfigs[key]; running && ok && prev.Durability != t.Config.Durability {
			// The Raft log store's fsync mode is fixed when it opens:
			// reopen the replica (files kept) to switch durability.
			s.mu.Lock()
			delete(s.replicas, key)
			s.mu.Unlock()
			delete(s.logConfigs, key)
			if err := r.Close(); err != nil {
				s.n.logger.Warn("close replica to change durability", "partition", key.group(), "error", err)
			}
			running = false
		}
		if !running {
			var err error
			if r, err = s.open(key, t); err != nil {
				s.n.logger.Warn("open replica", "partition", key.group(), "error", err)
				if ro, failed := s.reopen[key]; failed {
					ro.wait = min(ro.wait*2, reopenMax)
					ro.at = time.Now().Add(ro.wait)
					s.reopen[key] = ro
				}
				ok = false
				continue
			}
		}
		if prev, ok := s.logConfigs[key]; !ok || prev != t.Config {
			if err := applyTopicRules(r, t); err != nil {
				s.n.logger.Warn("apply topic bounds and compaction", "partition", key.group(), "error", err)
			}
			if err := r.SetLogConfig(t.Config.LogConfig(log.DefaultConfig())); err != nil {
				s.n.logger.Warn("apply topic config", "partition", key.group(), "error", err)
			} else {
				s.logConfigs[key] = t.Config
			}
		}
		status := r.Status()
		if ro, ok := s.reopen[key]; ok && status.Failed == nil && time.Since(ro.at) > reopenMax {
			delete(s.reopen, key) // healthy for a while: the next failure starts the backoff afresh
		}
		if status.State == "Leader" {
			s.lead(ctx, key, r, t, st)
		}
	}
	for key := range s.reopen {
		if _, kept := want[key]; !kept {
			delete(s.reopen, key)
		}
	}
	if ok {
		s.mu.Lock()
		s.seenIndex = st.Index
		s.mu.Unlock()
	}
	s.n.metrics.observeReplicas(s)
}

// closeFailed closes a replica that stopped itself after an error (a
// failed write: disk full or broken) and schedules its reopening with
// backoff. Reopening keeps the files: the replica replays its Raft log,
// where the entry that failed to apply still is, or catches up from the
// leader. A replica that fails again waits twice as long.
func (s *replicaSet) closeFailed(key partitionKey, r *partition.Replica, failure error) {
	s.n.noteWriteFailure(failure)
	s.mu.Lock()
	delete(s.replicas, key)
	s.mu.Unlock()
	delete(s.logConfigs, key)
	if err := r.Close(); err != nil {
		s.n.logger.Debug("close failed replica", "partition", key.group(), "error", err)
	}
	ro := s.reopen[key]
	ro.wait = min(max(ro.wait*2, reopenFirst), reopenMax)
	ro.at = time.Now().Add(ro.wait)
	s.reopen[key] = ro
	s.n.logger.Warn("replica failed; reopening it after a wait", "partition", key.group(), "wait", ro.wait, "error", failure)
}

// movedAway reports whether key's partition still exists (same topic
// incarnation) but is no longer assigned to this node, and returns its
// topic.
func movedAway(st *metadata.State, key partitionKey) (*metadata.Topic, bool) {
	t, ok := st.Topics[key.Topic]
	if !ok || t.ID != key.TopicID || int(key.Partition) >= len(t.Partitions) {
		return nil, false
	}
	return t, true
}

// handingOver reports whether a replica that was moved off this node must
// keep running: until a leader among the new replicas reports every one
// of them in sync, this replica may be needed for a quorum (or be the
// partition's only copy, with replication factor 1), so deleting it on
// the metadata change alone could lose the partition. While it leads, it
// does the leader's membership work (adding the new replicas, then
// removing the old ones, itself last, which makes it step down).
func (s *replicaSet) handingOver(ctx context.Context, key partitionKey, r *partition.Replica, t *metadata.Topic, st *metadata.State) bool {
	if r.Status().State == "Leader" {
		s.lead(ctx, key, r, t, st)
		return true
	}
	pa := t.Partitions[key.Partition]
	for _, id := range pa.Replicas {
		addr := s.n.peerAddrOf(id)
		if addr == "" || !s.n.isAlive(id) {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		statuses, err := s.n.fetchPartitionStatus(pctx, addr)
		cancel()
		if err != nil {
			continue
		}
		for _, ps := range statuses {
			if ps.TopicID == key.TopicID && ps.Partition == key.Partition && ps.State == "Leader" {
				for _, want := range pa.Replicas {
					if !slices.Contains(ps.InSync, want) {
						return true
					}
				}
				return false
			}
		}
	}
	return true
}

func (s *replicaSet) open(key partitionKey, t *metadata.Topic) (*partition.Replica, error) {
	cfg := s.n.cfg.Partition
	cfg.Group = key.group()
	cfg.NodeID = s.n.id
	cfg.Dir = filepath.Join(s.dir(), key.dirName())
	cfg.Log = t.Config.LogConfig(log.DefaultConfig())
	d, err := partition.ParseDurability(t.Config.Durability)
	if err != nil {
		return nil, err
	}
	cfg.Durability = d
	cfg.Logger = s.n.logger
	cfg.Registerer = s.n.reg
	cfg.Node = s.n.partNode
	layer, err := s.n.mux.StreamLayer(key.group())
	if err != nil {
		return nil, err
	}
	r, err := partition.Open(cfg, layer)
	if err != nil {
		layer.Close()
		return nil, err
	}
	if err := applyTopicRules(r, t); err != nil {
		r.Close()
		return nil, err
	}
	// Every replica of the partition's first assignment bootstraps the same
	// configuration (a no-op once it has Raft state); replicas added later
	// are brought in by the leader with AddVoter.
	pa := t.Partitions[key.Partition]
	if slices.Contains(pa.Initial, s.n.id) {
		var servers []partition.Server
		st := s.n.meta.fsm.State()
		for _, id := range pa.Initial {
			b, ok := st.Brokers[id]
			if !ok {
				r.Close()
				return nil, fmt.Errorf("bootstrap %s: broker %s not registered yet", key.group(), id)
			}
			servers = append(servers, partition.Server{ID: id, Address: b.RaftAddr, Voter: true})
		}
		if err := r.Bootstrap(servers); err != nil {
			r.Close()
			return nil, fmt.Errorf("bootstrap %s: %w", key.group(), err)
		}
	}
	s.mu.Lock()
	s.replicas[key] = r
	s.mu.Unlock()
	s.n.logger.Info("replica started", "partition", key.group())
	return r, nil
}

func (s *replicaSet) remove(key partitionKey, r *partition.Replica) error {
	s.mu.Lock()
	delete(s.replicas, key)
	s.mu.Unlock()
	delete(s.logConfigs, key)
	delete(s.lastTransfer, key)
	delete(s.ledSince, key)
	delete(s.reopen, key)
	err := r.Close()
	if rerr := os.RemoveAll(filepath.Join(s.dir(), key.dirName())); rerr != nil {
		err = errors.Join(err, rerr)
	}
	s.n.logger.Info("replica removed", "partition", key.group())
	return err
}

// lastCommandLost says the command at catchUpIndex will never be applied:
// the meta group applied past the whole log this node started with
// (catchUpLast) some seconds ago, which a committed command at
// catchUpIndex would have reached the state by. Only an entry this node
// appended as leader and the cluster never committed, since replaced,
// does that.
func (s *replicaSet) lastCommandLost(now time.Time) bool {
	if s.n.meta.raft.AppliedIndex() < s.catchUpLast {
		s.appliedSince = time.Time{}
		return false
	}
	if s.appliedSince.IsZero() {
		s.appliedSince = now
	}
	return now.Sub(s.appliedSince) > 5*time.Second
}

// openAssigned opens the replicas want lists that are not running, and
// nothing else (see catchUpIndex).
func (s *replicaSet) openAssigned(ctx context.Context, want map[partitionKey]*metadata.Topic) {
	for key, t := range want {
		if ctx.Err() != nil {
			return
		}
		if _, running := s.all()[key]; running {
			continue
		}
		if _, err := s.open(key, t); err != nil {
			s.n.logger.Warn("open replica", "partition", key.group(), "error", err)
		}
	}
}

func (s *replicaSet) removeStrayDirs(want map[partitionKey]*metadata.Topic) {
	entries, err := os.ReadDir(s.dir())
	if err != nil {
		return
	}
	keep := map[string]bool{}
	for key := range want {
		keep[key.dirName()] = true
	}
	for _, e := range entries {
		if !keep[e.Name()] {
			if err := os.RemoveAll(filepath.Join(s.dir(), e.Name())); err != nil {
				s.n.logger.Warn("remove stray partition dir", "dir", e.Name(), "error", err)
			}
		}
	}
}

// lead runs a partition leader's duties: make the Raft voters equal to the
// assignment (add before remove, so the group never shrinks below what it
// needs), and hand leadership to the preferred leader when it is healthy.
func (s *replicaSet) lead(ctx context.Context, key partitionKey, r *partition.Replica, t *metadata.Topic, st *metadata.State) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// A full disk is a local fact: hand leadership away on it at once
	// rather than after the metadata records it (a write the meta group
	// may itself be slow to commit while this node's disk refuses it).
	if (!st.Mode(s.n.id).Active() || s.n.disk.degraded()) && s.handOff(ctx, key, r, t.Partitions[key.Partition], st) {
		return // the new leader does the rest
	}
	servers, err := r.Servers(ctx)
	if err != nil {
		return
	}
	pa := t.Partitions[key.Partition]
	have := map[string]partition.Server{}
	for _, sv := range servers {
		have[sv.ID] = sv
	}
	complete := true
	for _, id := range pa.Replicas {
		b, ok := st.Brokers[id]
		if !ok {
			complete = false
			continue
		}
		if sv, ok := have[id]; ok && sv.Voter && sv.Address == b.RaftAddr {
			continue
		}
		// AddVoter also updates the address of a member that came back
		// with a new one, and promotes a non-voter.
		if err := r.AddVoter(ctx, id, b.RaftAddr); err != nil {
			s.n.logger.Warn("add voter", "partition", key.group(), "broker", id, "error", err)
			complete = false
		}
	}
	if !complete {
		return
	}
	if !slices.Contains(pa.Replicas, s.n.id) {
		// Moving off this node: hand leadership to an in-sync replica of the
		// new assignment first, which then removes this one. A leader that
		// removed itself would leave the group leaderless until a
		// follower's heartbeat timeout (1-2.4 s of refused writes).
		s.handOff(ctx, key, r, pa, st)
		return
	}
	for id := range have {
		if slices.Contains(pa.Replicas, id) {
			continue
		}
		if err := r.RemoveServer(ctx, id); err != nil {
			s.n.logger.Warn("remove voter", "partition", key.group(), "broker", id, "error", err)
			return
		}
	}
	s.balanceLeader(ctx, key, r, pa, st)
}

// preferredLeaderDelay keeps a partition from bouncing leadership: a
// handover to the preferred leader is tried at most this often, and not
// before this node has led the partition this long. A new leader knows
// nothing yet of its followers' health (InSync counts a follower in sync
// until heartbeats to it fail), so right after an election that followed
// a network partition it would hand leadership to the cut-off preferred
// leader, and writes would stall for the transfer's election timeout
// (minority-partition: a 5 s gap on a partition the cut did not touch).
const preferredLeaderDelay = 5 * time.Second

// termSince is a leadership term and when this node saw it begin.
type termSince struct {
	term  uint64
	since time.Time
}

func (s *replicaSet) balanceLeader(ctx context.Context, key partitionKey, r *partition.Replica, pa metadata.PartitionAssignment, st *metadata.State) {
	if len(pa.Replicas) == 0 || pa.Replicas[0] == s.n.id {
		return
	}
	preferred := pa.Replicas[0]
	term, leads := r.LeaderTerm()
	if !leads {
		return
	}
	if led := s.ledSince[key]; led.term != term {
		s.ledSince[key] = termSince{term: term, since: time.Now()}
		return
	} else if time.Since(led.since) < preferredLeaderDelay {
		return
	}
	if time.Since(s.lastTransfer[key]) < preferredLeaderDelay || !st.Mode(preferred).Active() {
		return
	}
	if !s.n.isAlive(preferred) {
		return
	}
	if at, ok := s.n.peerFailed.Load(preferred); ok && time.Since(at.(time.Time)) < suspectFor {
		return // it just failed to answer a status probe
	}
	if !s.n.upFor(preferred, preferredLeaderDelay) {
		return // just (re)started: still opening its replicas, it would lead slowly
	}
	isr, err := r.InSync(ctx)
	if err != nil || !slices.Contains(isr, preferred) {
		return
	}
	if !s.n.holdsCommitted(ctx, key.group(), st.Brokers[preferred].RaftAddr, r.Status().CommitIndex) {
		return // still catching up: it would answer the transfer late
	}
	s.lastTransfer[key] = time.Now()
	if err := r.TransferLeadership(ctx, preferred, st.Brokers[preferred].RaftAddr); err != nil {
		s.n.logger.Debug("preferred leader handover", "partition", key.group(), "error", err)
	}
}

// holdsCommitted asks the node at raftAddr (the silence question) for the
// end of its log in group and reports whether it holds what the leader has
// committed, give or take one AppendEntries in flight (caughtUpSlack).
//
// Why: InSync counts a follower that answers heartbeats, and a node back
// from a crash does so at once while it still stores or installs its
// catch-up. Its Raft loop then takes a transfer's TimeoutNow only after
// that work, and hashicorp/raft refuses writes until the transfer ends
// (follower-kill on the compose cluster: the TimeoutNow was answered 6 s
// late, 2.7-5.6 s without writes).
func (n *Node) holdsCommitted(ctx context.Context, group, raftAddr string, commit uint64) bool {
	if raftAddr == "" {
		return false
	}
	addr := raft.ServerAddress(raftAddr)
	v, ok := n.askSilence(ctx, map[raft.ServerAddress][]string{addr: {group}})[addr][group]
	return ok && caughtUp(v.LastIndex, commit)
}

// caughtUpSlack is how far a follower's log may trail the leader's commit
// index and still count as caught up: one AppendEntries of the default
// 32 entries in flight, twice.
const caughtUpSlack = 64

func caughtUp(last, commit uint64) bool { return last+caughtUpSlack >= commit }

// handOffDelay spaces the handovers a node in maintenance tries per
// partition (a handover takes an election round trip).
const handOffDelay = time.Second

// handOff hands a partition's leadership from this node (in maintenance,
// or being decommissioned) to an in-sync replica in normal service,
// preferring the assignment's order. It reports whether a handover was
// started; without a candidate this node keeps leading, as a partition
// without a leader would refuse every write.
func (s *replicaSet) handOff(ctx context.Context, key partitionKey, r *partition.Replica, pa metadata.PartitionAssignment, st *metadata.State) bool {
	if time.Since(s.lastTransfer[key]) < handOffDelay {
		return true
	}
	isr, err := r.InSync(ctx)
	if err != nil {
		return false
	}
	for _, id := range pa.Replicas {
		if id == s.n.id || !st.Mode(id).Active() || !s.n.isAlive(id) || !slices.Contains(isr, id) {
			continue
		}
		s.lastTransfer[key] = time.Now()
		if err := r.TransferLeadership(ctx, id, st.Brokers[id].RaftAddr); err != nil {
			s.n.logger.Debug("maintenance handover", "partition", key.group(), "to", id, "error", err)
		}
		return true
	}
	return false
}

// handOffLeadership moves leadership of every locally led partition to
// another replica before a graceful shutdown.
func (s *replicaSet) handOffLeadership(ctx context.Context) {
	var wg sync.WaitGroup
	for key, r := range s.all() {
		if r.Status().State != "Leader" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if err := r.TransferLeadership(tctx, "", ""); err != nil {
				s.n.logger.Warn("leadership handover before shutdown", "partition", key.group(), "error", err)
			}
		}()
	}
	wg.Wait()
}

func (s *replicaSet) closeAll() error {
	var errs []error
	for key, r := range s.all() {
		if err := r.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", key.group(), err))
		}
	}
	s.mu.Lock()
	s.replicas = map[partitionKey]*partition.Replica{}
	s.mu.Unlock()
	return errors.Join(errs...)
}

// sortedPartitionKeys returns the keys of all by topic, then partition.
func sortedPartitionKeys(all map[partitionKey]*partition.Replica) []partitionKey {
	keys := make([]partitionKey, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Topic != keys[j].Topic {
			return keys[i].Topic < keys[j].Topic
		}
		return keys[i].Partition < keys[j].Partition
	})
	return keys
}
