package consumergroup

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// Share groups (queue semantics) on top of the offsets log: the state of
// each share-partition (its start offset and the records delivered since,
// with delivery counts, locks, delays), the quarantined keys and the dead
// letters are replicated as entries of the group's offsets partition, so a
// new coordinator continues exactly where the old one stopped. The
// coordinator keeps, as soft state, the records themselves (read from the
// data partitions) and the members.

// shareRuntime is the coordinator's soft state for one share group.
type shareRuntime struct {
	members  map[string]*shareMember
	feeds    map[string]*feed
	dlqTimes []time.Time // dead letters of the last minute (flood breaker)
	rotate   int
	exported shareExported
}

type shareMember struct {
	id, clientID, clientHost string
	lastSeen                 time.Time
}

// shareState is the share part of a shard: one mutex serialises every
// share operation of the shard (selection and its replicated write must
// not interleave with another's).
type shareState struct {
	mu     sync.Mutex
	groups map[string]*shareRuntime
	term   uint64
}

func (s *shard) shareRT(group string, term uint64) *shareRuntime {
	st := &s.shares
	if st.term != term || st.groups == nil {
		st.groups, st.term = map[string]*shareRuntime{}, term
	}
	rt := st.groups[group]
	if rt == nil {
		rt = &shareRuntime{members: map[string]*shareMember{}, feeds: map[string]*feed{}}
		st.groups[group] = rt
	}
	return rt
}

// shareOp starts a share operation on group's shard: it finds the led
// shard and takes the share lock and the shared write lock, in that order.
// done releases them.
func (c *Coordinator) shareOp(ctx context.Context, group string) (s *shard, term uint64, done func(), err error) {
	if s, err = c.shardFor(ctx, group); err != nil {
		return nil, 0, nil, err
	}
	s.shares.mu.Lock()
	s.writeMu.RLock()
	done = func() {
		s.writeMu.RUnlock()
		s.shares.mu.Unlock()
	}
	term, ok := s.log.LeaderTerm()
	if !ok {
		done()
		return nil, 0, nil, ErrNotCoordinator
	}
	return s, term, done, nil
}

// shareGroup returns a copy-free view of a group's replicated state (nil if
// it has none yet). s.mu must be held.
func (s *shard) shareGroup(group string) *shareGroupState { return s.table.shares[group] }

// ShareFetchRequest asks for records of a share group.
type ShareFetchRequest struct {
	Group      string
	MemberID   string
	Topics     []string
	Pattern    string
	MaxRecords int
	MaxWait    time.Duration
	ClientID   string
	ClientHost string
}

// ShareRecord is one delivered record.
type ShareRecord struct {
	TopicPartition
	Record        record.Record
	DeliveryCount int32
	LockUntil     time.Time
}

// ShareFetchResponse carries the delivered records.
type ShareFetchResponse struct {
	MemberID     string
	Records      []ShareRecord
	Paused       bool
	PausedReason string
	LockTimeout  time.Duration
}

// ShareFetch acquires up to MaxRecords available records for the member,
// waiting up to MaxWait while none is available.
func (c *Coordinator) ShareFetch(ctx context.Context, req ShareFetchRequest) (ShareFetchResponse, error) {
	if (len(req.Topics) == 0) == (req.Pattern == "") {
		return ShareFetchResponse{}, invalidf("subscribe to topic names or to a pattern (exactly one)")
	}
	var matcher Matcher
	if req.Pattern != "" {
		var err error
		if matcher, err = ParseSubscription(req.Pattern); err != nil {
			return ShareFetchResponse{}, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
		}
	}
	if req.MaxRecords <= 0 {
		req.MaxRecords = 100
	}
	req.MaxRecords = min(req.MaxRecords, 10000)
	if err := checkID("member id", req.MemberID, MaxMemberIDLength); err != nil {
		return ShareFetchResponse{}, err
	}
	if req.MemberID == "" {
		req.MemberID = newMemberID()
	}
	deadline := time.Now().Add(min(req.MaxWait, 30*time.Second))
	for {
		s, err := c.shardFor(ctx, req.Group)
		if err != nil {
			return ShareFetchResponse{}, err
		}
		resp, err := c.shareTryFetch(ctx, s, req, matcher)
		if err != nil || len(resp.Records) > 0 || resp.Paused || !time.Now().Before(deadline) {
			return resp, err
		}
		t := time.NewTimer(min(50*time.Millisecond, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return resp, nil
		case <-t.C:
		}
	}
}

// subscribedPartitions lists the partitions of the member's topics.
func (c *Coordinator) subscribedPartitions(req ShareFetchRequest, matcher Matcher) []TopicPartition {
	topics := c.host.Topics()
	var names []string
	if matcher != nil {
		names = MatchTopics(matcher, slices.Collect(maps.Keys(topics)))
	} else {
		for _, t := range req.Topics {
			if _, ok := topics[t]; ok {
				names = append(names, t)
			}
		}
	}
	var out []TopicPartition
	for _, t := range names {
		for p := range topics[t] {
			out = append(out, TopicPartition{Topic: t, Partition: p})
		}
	}
	slices.SortFunc(out, compareTP)
	return out
}

func (c *Coordinator) shareTryFetch(ctx context.Context, s *shard, req ShareFetchRequest, matcher Matcher) (ShareFetchResponse, error) {
	s.shares.mu.Lock()
	defer s.shares.mu.Unlock()
	s.writeMu.RLock()
	defer s.writeMu.RUnlock()
	term, ok := s.log.LeaderTerm()
	if !ok {
		return ShareFetchResponse{}, ErrNotCoordinator
	}
	now := c.cfg.Now()
	s.mu.Lock()
	rt := s.shareRT(req.Group, term)
	m := rt.members[req.MemberID]
	if m == nil {
		if len(rt.members) >= c.cfg.MaxGroupMembers {
			s.mu.Unlock()
			return ShareFetchResponse{}, tooManyMembers(req.Group, c.cfg.MaxGroupMembers)
		}
		m = &shareMember{id: req.MemberID}
		rt.members[req.MemberID] = m
	}
	m.clientID, m.clientHost, m.lastSeen = req.ClientID, req.ClientHost, now
	g := s.shareGroup(req.Group)
	var cfg shareConfig
	paused, reason := false, ""
	if g != nil {
		cfg, paused, reason = g.config(), g.Paused, g.PausedReason
	} else {
		cfg, _ = parseShareConfig(shareDefaults())
	}
	s.mu.Unlock()
	resp := ShareFetchResponse{MemberID: req.MemberID, LockTimeout: cfg.LockTimeout, Paused: paused, PausedReason: reason}
	if paused {
		return resp, nil
	}
	tps := c.subscribedPartitions(req, matcher)
	if err := c.shareInit(ctx, s, req.Group, tps, cfg); err != nil {
		return resp, err
	}
	if len(tps) == 0 {
		return resp, nil
	}
	start := rt.rotate % len(tps)
	rt.rotate++
	var entries []entry
	var picked []ShareRecord
	lockUntil := now.Add(cfg.LockTimeout)
	for i := range tps {
		if len(picked) >= req.MaxRecords {
			break
		}
		tp := tps[(start+i)%len(tps)]
		f, err := c.shareFeed(ctx, s, rt, req.Group, tp, cfg)
		if err != nil {
			c.logger.Debug("share feed", "group", req.Group, "partition", tp, "error", err)
			continue
		}
		s.mu.Lock()
		sp := s.shareGroup(req.Group).partition(tp.Topic, tp.Partition)
		offs := selectDeliverable(sp, f, cfg, now.UnixMilli(), req.MaxRecords-len(picked))
		s.mu.Unlock()
		if len(offs) == 0 {
			continue
		}
		entries = append(entries, entry{Kind: kindShareAcquire, Group: req.Group, Topic: tp.Topic, Partition: tp.Partition,
			Offsets: offs, Member: req.MemberID, LockUntil: lockUntil.UnixMilli(), At: now.UnixMilli()})
		for _, o := range offs {
			fr, _ := f.get(o)
			picked = append(picked, ShareRecord{TopicPartition: tp, Record: fr.rec, LockUntil: lockUntil})
		}
	}
	if len(entries) == 0 {
		return resp, nil
	}
	if err := s.append(ctx, entries); err != nil {
		return resp, err
	}
	if ctx.Err() != nil {
		// The caller gave up: nobody will see these records, so free them
		// now rather than after the lock timeout.
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		release := make([]entry, len(entries))
		for i, e := range entries {
			release[i] = entry{Kind: kindShareAck, Group: e.Group, Topic: e.Topic, Partition: e.Partition, Ack: ackRelease,
				Offsets: e.Offsets, Avail: make([]int64, len(e.Offsets)), At: now.UnixMilli()}
		}
		if err := s.append(rctx, release); err != nil {
			c.logger.Debug("release records of a cancelled fetch", "group", req.Group, "error", err)
		}
		return resp, ctx.Err()
	}
	s.mu.Lock()
	g = s.shareGroup(req.Group)
	for i := range picked {
		r := &picked[i]
		if sp := g.partition(r.Topic, r.Partition); sp != nil {
			if st := sp.Recs[r.Record.Offset]; st != nil {
				r.DeliveryCount = st.Deliveries
			}
		}
	}
	s.mu.Unlock()
	resp.Records = picked
	return resp, nil
}

// shareInit gives new share-partitions their start offset.
func (c *Coordinator) shareInit(ctx context.Context, s *shard, group string, tps []TopicPartition, cfg shareConfig) error {
	var entries []entry
	for _, tp := range tps {
		s.mu.Lock()
		g := s.shareGroup(group)
		known := g != nil && g.partition(tp.Topic, tp.Partition) != nil
		s.mu.Unlock()
		if known {
			continue
		}
		res, err := c.host.ReadPartition(ctx, tp.Topic, tp.Partition, 1<<62, 1)
		if err != nil {
			return fmt.Errorf("start share-partition %s/%d: %w", tp.Topic, tp.Partition, err)
		}
		start := res.End
		if cfg.ResetEarliest {
			start = res.Start
		}
		entries = append(entries, entry{Kind: kindShareInit, Group: group, Topic: tp.Topic, Partition: tp.Partition, Offset: start})
	}
	if len(entries) == 0 {
		return nil
	}
	return s.append(ctx, entries)
}

// shareFeed returns the share-partition's feed, trimmed to its start and
// filled up to its in-flight window.
func (c *Coordinator) shareFeed(ctx context.Context, s *shard, rt *shareRuntime, group string, tp TopicPartition, cfg shareConfig) (*feed, error) {
	s.mu.Lock()
	g := s.shareGroup(group)
	sp := g.partition(tp.Topic, tp.Partition)
	if sp == nil {
		s.mu.Unlock()
		return nil, ErrUnknownRecord
	}
	startOff := sp.Start
	var redrives []int64
	for _, q := range sp.Quarantine {
		if q.RedriveOffset >= 0 {
			redrives = append(redrives, q.RedriveOffset)
		}
	}
	s.mu.Unlock()
	k := tpKey(tp.Topic, tp.Partition)
	f := rt.feeds[k]
	if f == nil {
		f = &feed{base: startOff}
		rt.feeds[k] = f
	}
	f.trim(startOff)
	err := f.fill(ctx, c.host, tp.Topic, tp.Partition, startOff+cfg.MaxInflight)
	if errors.Is(err, errBelowLogStart) {
		// Retention deleted records the group never finished: like Kafka,
		// the share-partition moves on to the log start.
		c.logger.Warn("share-partition start fell below the log start; skipping the deleted records",
			"group", group, "partition", tp, "start", startOff, "log_start", f.logStart)
		if err := s.append(ctx, []entry{{Kind: kindShareInit, Group: group, Topic: tp.Topic, Partition: tp.Partition, Offset: f.logStart}}); err != nil {
			return nil, err
		}
		f.trim(f.logStart)
		err = f.fill(ctx, c.host, tp.Topic, tp.Partition, f.logStart+cfg.MaxInflight)
	}
	if errors.Is(err, errAboveLogEnd) {
		// The topic was deleted and created again (or its log lost its
		// tail): the old records' state means nothing for the new ones.
		c.logger.Warn("share-partition start is beyond the log's end; starting it over at the log start",
			"group", group, "partition", tp, "start", startOff, "log_end", f.hw)
		if err := s.append(ctx, []entry{{Kind: kindShareInit, Group: group, Topic: tp.Topic, Partition: tp.Partition,
			Offset: f.logStart, Action: actionReset}}); err != nil {
			return nil, err
		}
		f.base, f.recs, f.extra = f.logStart, nil, nil
		err = f.fill(ctx, c.host, tp.Topic, tp.Partition, f.logStart+cfg.MaxInflight)
	}
	if err != nil {
		return nil, err
	}
	for _, o := range redrives {
		if _, err := f.readOne(ctx, c.host, tp.Topic, tp.Partition, o); err != nil {
			c.logger.Debug("read redriven record", "partition", tp, "offset", o, "error", err)
		}
	}
	return f, nil
}

// Why a record is not deliverable now (ShareInspect's blocked_by).
const (
	blockedLocked     = "locked by a member"
	blockedDelayed    = "delayed (release backoff or not-before time)"
	blockedKeyBusy    = "an earlier record of its key is not done"
	blockedQuarantine = "its key is quarantined (a record of it is in the dead-letter topic)"
	blockedDone       = "done"
	blockedDead       = "on its way to the dead-letter topic (max deliveries reached)"
	blockedWindow     = "beyond the in-flight window (max.inflight)"
	blockedNotRead    = "not read yet"
)

// selectDeliverable returns up to n offsets deliverable now, in offset
// order, honouring locks, delays, not-before times, max deliveries and, in
// key-ordered mode, one in-flight record per key and quarantines.
func selectDeliverable(sp *sharePartition, f *feed, cfg shareConfig, nowMs int64, n int) []int64 {
	var out []int64
	walkShare(sp, f, cfg, nowMs, func(o int64, why string) bool {
		if why == "" {
			out = append(out, o)
		}
		return len(out) < n
	})
	return out
}

// walkShare visits the share-partition's records from its start, telling
// for each why it cannot be delivered now ("" if it can). visit returns
// false to stop.
func walkShare(sp *sharePartition, f *feed, cfg shareConfig, nowMs int64, visit func(o int64, why string) bool) {
	if sp == nil {
		return
	}
	busy := map[string]bool{}
	limit := min(f.end(), sp.Start+cfg.MaxInflight)
	check := func(o int64, fr *feedRec) string {
		r := sp.Recs[o]
		keyed := cfg.KeyOrdered && !fr.keyNull()
		key := string(fr.rec.Key)
		var why string
		switch {
		case r != nil && r.done():
			return blockedDone
		case r != nil && r.State == recDead:
			why = blockedDead
		case r != nil && r.State == recAcquired && r.LockUntil > nowMs:
			why = blockedLocked
		case r != nil && r.Deliveries >= cfg.MaxDeliveries:
			why = blockedDead
		case r != nil && r.State == recAvailable && r.AvailableAt > nowMs:
			why = blockedDelayed
		case fr.notBefore > nowMs:
			why = blockedDelayed
		}
		if keyed {
			if q := sp.Quarantine[key]; q != nil {
				if o != q.RedriveOffset {
					return blockedQuarantine
				}
			} else if busy[key] {
				why = blockedKeyBusy
			}
			busy[key] = true
		}
		return why
	}
	for o := sp.Start; o < limit; o++ {
		fr, _ := f.get(o)
		if !visit(o, check(o, fr)) {
			return
		}
	}
	// Redriven copies beyond the window.
	for _, q := range sp.Quarantine {
		if q.RedriveOffset >= limit {
			if fr, ok := f.get(q.RedriveOffset); ok {
				if !visit(q.RedriveOffset, check(q.RedriveOffset, fr)) {
					return
				}
			}
		}
	}
}

// ShareAckType says what an acknowledgement does.
type ShareAckType int

// Acknowledgement types.
const (
	ShareAccept ShareAckType = iota
	ShareRelease
	ShareReject
	ShareRenew
)

// ShareAck acknowledges one delivered record.
type ShareAck struct {
	TopicPartition
	Offset int64
	Type   ShareAckType
	// Delay before redelivery (ShareRelease): 0 now, negative the group's
	// backoff.
	Delay time.Duration
	Error string
}

// ShareAckResult is one acknowledgement's outcome.
type ShareAckResult struct {
	Err       error // nil, ErrNotHeld, ErrLockExpired or ErrUnknownRecord
	LockUntil time.Time
}

// ShareAcknowledge applies a member's acknowledgements. Each is checked
// alone: one failing leaves the others applied.
func (c *Coordinator) ShareAcknowledge(ctx context.Context, group, memberID string, acks []ShareAck) ([]ShareAckResult, error) {
	if memberID == "" {
		return nil, invalidf("member id is empty: fetch first")
	}
	if err := checkID("member id", memberID, MaxMemberIDLength); err != nil {
		return nil, err
	}
	s, term, done, err := c.shareOp(ctx, group)
	if err != nil {
		return nil, err
	}
	defer done()
	now := c.cfg.Now()
	nowMs := now.UnixMilli()
	results := make([]ShareAckResult, len(acks))
	type key struct {
		tp  TopicPartition
		ack string
	}
	grouped := map[key]*entry{}
	var order []key
	var dead []entry
	s.mu.Lock()
	rt := s.shareRT(group, term)
	if m := rt.members[memberID]; m != nil {
		m.lastSeen = now
	}
	g := s.shareGroup(group)
	if g == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: share group %s", ErrGroupNotFound, group)
	}
	cfg := g.config()
	seen := map[TopicPartition]map[int64]bool{}
	for i, a := range acks {
		sp := g.partition(a.Topic, a.Partition)
		if sp == nil {
			results[i].Err = fmt.Errorf("%w: %s/%d has no share state in group %s", ErrUnknownRecord, a.Topic, a.Partition, group)
			continue
		}
		r := sp.Recs[a.Offset]
		switch {
		case r == nil || a.Offset < sp.Start || r.State != recAcquired:
			results[i].Err = fmt.Errorf("%w: %s/%d@%d", ErrNotHeld, a.Topic, a.Partition, a.Offset)
			continue
		case r.Owner != memberID:
			results[i].Err = fmt.Errorf("%w: %s/%d@%d is held by another member", ErrNotHeld, a.Topic, a.Partition, a.Offset)
			continue
		case r.LockUntil <= nowMs:
			results[i].Err = fmt.Errorf("%w: %s/%d@%d (lock ended %s ago)", ErrLockExpired, a.Topic, a.Partition, a.Offset,
				now.Sub(time.UnixMilli(r.LockUntil)).Round(time.Millisecond))
			continue
		}
		if seen[a.TopicPartition] == nil {
			seen[a.TopicPartition] = map[int64]bool{}
		}
		if seen[a.TopicPartition][a.Offset] {
			results[i].Err = invalidf("%s/%d@%d acknowledged twice in one request", a.Topic, a.Partition, a.Offset)
			continue
		}
		seen[a.TopicPartition][a.Offset] = true
		if a.Type == ShareReject {
			dead = append(dead, entry{Kind: kindShareDead, Group: group, Topic: a.Topic, Partition: a.Partition,
				Offset: a.Offset, Err: a.Error})
			continue
		}
		var kind string
		switch a.Type {
		case ShareAccept:
			kind = ackAccept
		case ShareRelease:
			kind = ackRelease
		case ShareRenew:
			kind = ackRenew
		default:
			results[i].Err = invalidf("acknowledgement type %d", a.Type)
			continue
		}
		k := key{a.TopicPartition, kind + "\x00" + a.Error}
		e := grouped[k]
		if e == nil {
			e = &entry{Kind: kindShareAck, Group: group, Topic: a.Topic, Partition: a.Partition, Ack: kind, Err: a.Error, At: nowMs}
			grouped[k] = e
			order = append(order, k)
		}
		e.Offsets = append(e.Offsets, a.Offset)
		switch a.Type {
		case ShareRelease:
			delay := a.Delay
			if delay < 0 {
				delay = cfg.backoff(r.Deliveries)
			}
			e.Avail = append(e.Avail, now.Add(delay).UnixMilli())
		case ShareRenew:
			e.LockUntil = now.Add(cfg.LockTimeout).UnixMilli()
			results[i].LockUntil = time.UnixMilli(e.LockUntil)
		}
	}
	s.mu.Unlock()
	var entries []entry
	for _, k := range order {
		entries = append(entries, *grouped[k])
	}
	for _, d := range dead {
		f, err := c.shareFeed(ctx, s, rt, group, d.TopicPartition(), cfg)
		if err == nil {
			if fr, ok := f.get(d.Offset); ok {
				d.Key, d.KeyNull = fr.rec.Key, fr.keyNull()
				d.Quarantine = cfg.KeyOrdered && !fr.keyNull()
			}
		}
		entries = append(entries, d)
	}
	if len(entries) > 0 {
		if err := s.append(ctx, entries); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// TopicPartition returns the entry's partition.
func (e entry) TopicPartition() TopicPartition {
	return TopicPartition{Topic: e.Topic, Partition: e.Partition}
}

// ShareLeave releases every record the member holds.
func (c *Coordinator) ShareLeave(ctx context.Context, group, memberID string) (int, error) {
	s, term, done, err := c.shareOp(ctx, group)
	if err != nil {
		return 0, err
	}
	defer done()
	s.mu.Lock()
	delete(s.shareRT(group, term).members, memberID)
	held := 0
	if g := s.shareGroup(group); g != nil {
		for _, sp := range g.Partitions {
			for _, r := range sp.Recs {
				if r.State == recAcquired && r.Owner == memberID {
					held++
				}
			}
		}
	}
	s.mu.Unlock()
	if held == 0 {
		return 0, nil
	}
	return held, s.append(ctx, []entry{{Kind: kindShareLeave, Group: group, Member: memberID}})
}

// shareTick does a led shard's periodic share work: dead records to the
// dead-letter topic, the flood breaker, departed members' locks.
func (c *Coordinator) shareTick(ctx context.Context, s *shard) {
	s.shares.mu.Lock()
	defer s.shares.mu.Unlock()
	term, ok := s.log.LeaderTerm()
	if !ok {
		return
	}
	now := c.cfg.Now()
	nowMs := now.UnixMilli()
	s.mu.Lock()
	groups := slices.Sorted(maps.Keys(s.table.shares))
	s.mu.Unlock()
	for _, group := range groups {
		s.writeMu.RLock()
		c.shareTickGroup(ctx, s, term, group, now, nowMs)
		s.writeMu.RUnlock()
	}
}

func (c *Coordinator) shareTickGroup(ctx context.Context, s *shard, term uint64, group string, now time.Time, nowMs int64) {
	type deadRec struct {
		tp TopicPartition
		o  int64
	}
	var toDead []entry
	var toLetter []deadRec
	var gone []string
	s.mu.Lock()
	rt := s.shareRT(group, term)
	g := s.shareGroup(group)
	if g == nil {
		s.mu.Unlock()
		return
	}
	cfg := g.config()
	for id, m := range rt.members {
		if now.Sub(m.lastSeen) > c.cfg.SessionTimeout {
			gone = append(gone, id)
			delete(rt.members, id)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(g.Partitions)) {
		sp := g.Partitions[k]
		tp := parseTPKey(k)
		for _, o := range slices.Sorted(maps.Keys(sp.Recs)) {
			r := sp.Recs[o]
			switch {
			case r.State == recDead:
				toLetter = append(toLetter, deadRec{tp, o})
			case r.Deliveries >= cfg.MaxDeliveries && (r.State == recAvailable || (r.State == recAcquired && r.LockUntil <= nowMs)):
				reason := r.LastError
				if reason == "" {
					reason = fmt.Sprintf("not acknowledged after %d deliveries", r.Deliveries)
				}
				toDead = append(toDead, entry{Kind: kindShareDead, Group: group, Topic: tp.Topic, Partition: tp.Partition, Offset: o, Err: reason})
			}
		}
	}
	paused := g.Paused
	s.mu.Unlock()
	var entries []entry
	for _, id := range gone {
		entries = append(entries, entry{Kind: kindShareLeave, Group: group, Member: id})
	}
	for i := range toDead {
		d := &toDead[i]
		if f, err := c.shareFeed(ctx, s, rt, group, d.TopicPartition(), cfg); err == nil {
			if fr, ok := f.get(d.Offset); ok {
				d.Key, d.KeyNull = fr.rec.Key, fr.keyNull()
				d.Quarantine = cfg.KeyOrdered && !fr.keyNull()
			}
		}
		entries = append(entries, *d)
	}
	if len(entries) > 0 {
		if err := s.append(ctx, entries); err != nil {
			c.logger.Warn("share group upkeep", "group", group, "error", err)
			return
		}
	}
	for _, d := range toLetter {
		if err := c.deadLetter(ctx, s, rt, group, cfg, d.tp, d.o); err != nil {
			c.logger.Warn("write dead letter", "group", group, "partition", d.tp, "offset", d.o, "error", err)
			return
		}
		rt.dlqTimes = append(rt.dlqTimes, now)
	}
	cut := 0
	for cut < len(rt.dlqTimes) && now.Sub(rt.dlqTimes[cut]) > time.Minute {
		cut++
	}
	rt.dlqTimes = rt.dlqTimes[cut:]
	if !paused && cfg.FloodPerMinute > 0 && len(rt.dlqTimes) > cfg.FloodPerMinute {
		reason := fmt.Sprintf("%d records went to the dead-letter topic in the last minute (dlq.flood.per.minute=%d): delivery paused; fix the consumers, then `skiff share resume %s`",
			len(rt.dlqTimes), cfg.FloodPerMinute, group)
		c.logger.Warn("share group paused by the dead-letter flood breaker", "group", group, "dead_letters_last_minute", len(rt.dlqTimes))
		if err := s.append(ctx, []entry{{Kind: kindSharePause, Group: group, Reason: reason}}); err != nil {
			c.logger.Warn("pause share group", "group", group, "error", err)
		}
		c.metrics.sharePauses.WithLabelValues(group).Inc()
	}
}

func parseTPKey(k string) TopicPartition {
	for i := len(k) - 1; i >= 0; i-- {
		if k[i] == '/' {
			p, _ := strconv.Atoi(k[i+1:])
			return TopicPartition{Topic: k[:i], Partition: int32(p)}
		}
	}
	return TopicPartition{Topic: k}
}

// Headers of a dead letter.
const (
	HeaderDLQSourceTopic     = "skiff-dlq-source-topic"
	HeaderDLQSourcePartition = "skiff-dlq-source-partition"
	HeaderDLQSourceOffset    = "skiff-dlq-source-offset"
	HeaderDLQDeliveryCount   = "skiff-dlq-delivery-count"
	HeaderDLQLastError       = "skiff-dlq-last-error"
	HeaderDLQFirstDelivery   = "skiff-dlq-first-delivery"
	HeaderDLQLastDelivery    = "skiff-dlq-last-delivery"
	HeaderDLQGroup           = "skiff-dlq-group"
	HeaderRedrivenFrom       = "skiff-redriven-from"
)

// deadLetter writes a dead record, payload and provenance, to the group's
// dead-letter topic, then records that it is there.
func (c *Coordinator) deadLetter(ctx context.Context, s *shard, rt *shareRuntime, group string, cfg shareConfig, tp TopicPartition, o int64) error {
	// parseShareConfig refuses an internal dlq.topic, but placeholders
	// can still expand to one ("{topic}.dlq" of an internal source).
	if err := refuseInternal(cfg.dlqTopicFor(tp.Topic, group), "share groups cannot write dead letters to it"); err != nil {
		return fmt.Errorf("dead letter of %s/%d@%d in group %s: %w", tp.Topic, tp.Partition, o, group, err)
	}
	f, err := c.shareFeed(ctx, s, rt, group, tp, cfg)
	if err != nil {
		return err
	}
	fr, ok := f.get(o)
	if !ok {
		if fr, err = f.readOne(ctx, c.host, tp.Topic, tp.Partition, o); err != nil {
			return err
		}
	}
	s.mu.Lock()
	var r shareRec
	if g := s.shareGroup(group); g != nil {
		if sp := g.partition(tp.Topic, tp.Partition); sp != nil && sp.Recs[o] != nil {
			r = *sp.Recs[o]
		}
	}
	s.mu.Unlock()
	dlq := cfg.dlqTopicFor(tp.Topic, group)
	if err := c.host.EnsureTopic(ctx, dlq, 1); err != nil {
		return fmt.Errorf("dead-letter topic %s: %w", dlq, err)
	}
	rec := fr.rec
	rec.Offset = 0
	headers := append([]record.Header(nil), rec.Headers...)
	ms := func(v int64) []byte { return []byte(time.UnixMilli(v).UTC().Format(time.RFC3339Nano)) }
	headers = append(headers,
		record.Header{Key: HeaderDLQSourceTopic, Value: []byte(tp.Topic)},
		record.Header{Key: HeaderDLQSourcePartition, Value: []byte(strconv.Itoa(int(tp.Partition)))},
		record.Header{Key: HeaderDLQSourceOffset, Value: []byte(strconv.FormatInt(o, 10))},
		record.Header{Key: HeaderDLQDeliveryCount, Value: []byte(strconv.Itoa(int(r.Deliveries)))},
		record.Header{Key: HeaderDLQLastError, Value: []byte(r.LastError)},
		record.Header{Key: HeaderDLQFirstDelivery, Value: ms(r.FirstDelivery)},
		record.Header{Key: HeaderDLQLastDelivery, Value: ms(r.LastDelivery)},
		record.Header{Key: HeaderDLQGroup, Value: []byte(group)},
	)
	rec.Headers = headers
	batch, err := record.Encode(record.BatchOptions{}, []record.Record{rec})
	if err != nil {
		return err
	}
	// A write whose outcome was lost (the DLQ partition's leader changed)
	// is retried at the next tick: find it before writing it twice.
	off, found := c.findDeadLetter(ctx, dlq, group, tp, o)
	if !found {
		if off, err = c.host.ProducePartition(ctx, dlq, 0, batch); err != nil {
			return fmt.Errorf("produce to %s: %w", dlq, err)
		}
	}
	c.metrics.shareDeadLetters.WithLabelValues(group).Inc()
	return s.append(ctx, []entry{{Kind: kindShareDeadLettered, Group: group, Topic: tp.Topic, Partition: tp.Partition, Offset: o,
		DLQTopic: dlq, DLQPartition: 0, DLQOffset: off, Key: fr.rec.Key, KeyNull: fr.keyNull()}})
}

// deadLetterLookback is how many of the dead-letter topic's newest records
// findDeadLetter searches.
const deadLetterLookback = 256

// findDeadLetter looks among the newest records of the dead-letter topic
// for the dead letter of group's record tp@o, returning its offset.
func (c *Coordinator) findDeadLetter(ctx context.Context, dlq, group string, tp TopicPartition, o int64) (int64, bool) {
	bounds, err := c.host.ReadPartition(ctx, dlq, 0, 1<<62, 1)
	if err != nil || bounds.End == 0 {
		return 0, false
	}
	from := max(bounds.Start, bounds.End-deadLetterLookback)
	want := map[string]string{HeaderDLQGroup: group, HeaderDLQSourceTopic: tp.Topic,
		HeaderDLQSourcePartition: strconv.Itoa(int(tp.Partition)), HeaderDLQSourceOffset: strconv.FormatInt(o, 10)}
	for from < bounds.End {
		res, err := c.host.ReadPartition(ctx, dlq, 0, from, maxFeedReadBytes)
		if err != nil || len(res.Batches) == 0 {
			return 0, false
		}
		found, next := int64(-1), from
		for batch, err := range record.Batches(res.Batches) {
			if err != nil {
				break
			}
			record.Records(batch, func(r record.Record) error {
				next = r.Offset + 1
				matched := 0
				for _, h := range r.Headers {
					if v, ok := want[h.Key]; ok && v == string(h.Value) {
						matched++
					}
				}
				if matched == len(want) {
					found = r.Offset
				}
				return nil
			})
		}
		if found >= 0 {
			return found, true
		}
		if next <= from {
			return 0, false
		}
		from = next
	}
	return 0, false
}
