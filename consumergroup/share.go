package consumergroup

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// Share groups (queue semantics) on top of the offsets log: the state of
// each share-partition (its start offset and the records delivered since,
// with delivery counts, locks, delays), the quarantined keys and the dead
// letters are replicated as share commands (share_cmd.go) in the group's
// offsets partition, so a new coordinator continues exactly where the old
// one stopped. The decisions are the pure core's (share_core.go); this
// file is the shell around it: it resolves subscriptions, reads records
// into feeds, writes dead letters, and hands the core's commands to the
// group committer (share_commit.go), answering each caller once its
// commands are committed.

// ShareFetchRequest asks for records of a share group.
type ShareFetchRequest struct {
	Group      string
	MemberID   string
	Topics     []string
	Pattern    string
	MaxRecords int
	// MaxBytes bounds the keys, values and headers of the records
	// returned (the first record is returned whatever its size). 0: 1 MiB.
	MaxBytes   int
	MaxWait    time.Duration
	ClientID   string
	ClientHost string
	// Acks are acknowledgements of earlier deliveries, applied before
	// records are selected (Kafka's KIP-932 piggybacking); their results
	// are in the response, in order.
	Acks []ShareAck
	// MayRead, when set, bounds what Pattern resolves to: topics it
	// rejects are not fetched from (the caller's read permission; named
	// Topics are checked before the request gets here). nil: all topics.
	MayRead func(topic string) bool
}

// Bounds of a share fetch.
const (
	defaultShareFetchRecords = 100
	maxShareFetchRecords     = 10000
	defaultShareFetchBytes   = 1 << 20
	maxShareFetchBytes       = 64 << 20
	// MaxShareAcksPerRequest bounds the acknowledgements of one request.
	MaxShareAcksPerRequest = 20000
	// shareFetchPoll is how often a waiting fetch looks again for
	// records newly written to the data partitions, or whose lock or
	// delay ended; records freed by acks, releases and leaves wake it at
	// once.
	shareFetchPoll = 20 * time.Millisecond
)

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
	// AckResults are the outcomes of the request's Acks, in order.
	AckResults []ShareAckResult
}

// ShareFetch applies the request's acknowledgements, then acquires up to
// MaxRecords available records for the member, waiting up to MaxWait
// while none is available.
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
		req.MaxRecords = defaultShareFetchRecords
	}
	req.MaxRecords = min(req.MaxRecords, maxShareFetchRecords)
	if req.MaxBytes <= 0 {
		req.MaxBytes = defaultShareFetchBytes
	}
	req.MaxBytes = min(req.MaxBytes, maxShareFetchBytes)
	if len(req.Acks) > MaxShareAcksPerRequest {
		return ShareFetchResponse{}, invalidf("%d acknowledgements in one request: at most %d", len(req.Acks), MaxShareAcksPerRequest)
	}
	if err := checkID("member id", req.MemberID, MaxMemberIDLength); err != nil {
		return ShareFetchResponse{}, err
	}
	if req.MemberID == "" {
		if len(req.Acks) > 0 {
			return ShareFetchResponse{}, invalidf("acknowledgements without a member id: fetch first")
		}
		req.MemberID = newMemberID()
	}
	deadline := time.Now().Add(min(req.MaxWait, 30*time.Second))
	// Once the request's acks are committed the call answers them, even
	// when a later attempt to find records fails.
	var acked []ShareAckResult
	answerAcks := func(err error) (ShareFetchResponse, error) {
		if acked != nil {
			return ShareFetchResponse{MemberID: req.MemberID, AckResults: acked}, nil
		}
		return ShareFetchResponse{}, err
	}
	for {
		s, err := c.shardFor(ctx, req.Group)
		if err != nil {
			return answerAcks(err)
		}
		resp, op, acquired, changed, waits, err := c.shareTryFetch(ctx, s, &req, matcher)
		if err != nil {
			return answerAcks(err)
		}
		err = op.wait(ctx)
		if err != nil {
			if ctx.Err() != nil && len(acquired) > 0 {
				c.releaseUnseen(s, req.Group, acquired)
			}
			return answerAcks(err)
		}
		if req.Acks != nil {
			acked, req.Acks = resp.AckResults, nil
			if acked == nil {
				acked = []ShareAckResult{}
			}
		}
		resp.AckResults = acked
		waitHandoffs(ctx, waits)
		if ctx.Err() != nil && len(acquired) > 0 {
			// The caller gave up: nobody will see these records, so free
			// them now rather than after the lock timeout.
			c.releaseUnseen(s, req.Group, acquired)
			return answerAcks(ctx.Err())
		}
		// A request that carried acks answers at once even without
		// records: its caller learns the acks' outcomes now, not after
		// the long poll, and fetches again.
		if len(resp.Records) > 0 || resp.Paused || len(acked) > 0 || !time.Now().Before(deadline) {
			return resp, nil
		}
		t := time.NewTimer(min(shareFetchPoll, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return resp, nil
		case <-changed:
			t.Stop()
		case <-t.C:
		}
	}
}

// releaseUnseen hands back records a fetch acquired for a caller that went
// away.
func (c *Coordinator) releaseUnseen(s *shard, group string, acquired []shareCmd) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	term, err := s.shareBegin(ctx)
	if err != nil {
		return
	}
	op, err := s.submit(term, decideRelease(group, acquired, c.cfg.Now().UnixMilli()))
	s.shares.mu.Unlock()
	if err == nil {
		err = op.wait(ctx)
	}
	if err != nil {
		c.logger.Debug("release records of a cancelled fetch", "group", group, "error", err)
	}
}

// subscribedPartitions lists the partitions of the member's topics.
func (c *Coordinator) subscribedPartitions(req *ShareFetchRequest, matcher Matcher) []TopicPartition {
	topics := c.host.Topics()
	var names []string
	if matcher != nil {
		names = MatchTopics(matcher, slices.Collect(maps.Keys(topics)))
		if req.MayRead != nil {
			names = slices.DeleteFunc(names, func(t string) bool { return !req.MayRead(t) })
		}
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

// shareTryFetch is one attempt of a fetch. Under the shell's lock it
// registers the member and queues the request's acks; without the lock it
// reads new records of the subscribed partitions (a read may go to
// another node); under the lock again it adds them to the feeds and lets
// the core pick records. The returned op commits all of it; changed is
// closed when a wait for records should end early.
func (c *Coordinator) shareTryFetch(ctx context.Context, s *shard, req *ShareFetchRequest, matcher Matcher) (resp ShareFetchResponse, op *commitOp, acquired []shareCmd, changed <-chan struct{}, waits []<-chan struct{}, err error) {
	term, err := s.shareBegin(ctx)
	if err != nil {
		return resp, nil, nil, nil, nil, err
	}
	sh := &s.shares
	locked := true
	defer func() {
		if locked {
			sh.mu.Unlock()
		}
	}()
	now := c.cfg.Now()
	changed = sh.changed
	rt := sh.rt(req.Group)
	m := rt.members[req.MemberID]
	if m == nil {
		if len(rt.members) >= c.cfg.MaxGroupMembers {
			return resp, nil, nil, nil, nil, tooManyMembers(req.Group, c.cfg.MaxGroupMembers)
		}
		m = &shareMember{id: req.MemberID}
		rt.members[req.MemberID] = m
	}
	m.clientID, m.clientHost, m.lastSeen, m.maxRecords = req.ClientID, req.ClientHost, now, req.MaxRecords
	rt.memberArrived(req.MemberID)
	g := sh.state(req.Group)
	cfg, _ := parseShareConfig(shareDefaults())
	if g != nil {
		cfg = g.config()
		resp.Paused, resp.PausedReason = g.Paused, g.PausedReason
	}
	resp.MemberID, resp.LockTimeout = req.MemberID, cfg.LockTimeout
	// The request's acks are decided with its selection below (the
	// records they free are selected against a view with them applied),
	// and queued with the records it takes, as one operation: one append
	// commits both. A fetch that selects nothing (a paused or unknown
	// group) decides them here.
	var ackCmds []shareCmd
	acksDecided := false
	decideAcks := func(now time.Time) error {
		if len(req.Acks) == 0 || acksDecided {
			return nil
		}
		acksDecided = true
		var results []ShareAckResult
		var err error
		ackCmds, results, err = c.shareAckLocked(ctx, s, rt, req.Group, req.MemberID, req.Acks, now)
		resp.AckResults = results
		return err
	}
	if g == nil || resp.Paused {
		if err := decideAcks(now); err != nil {
			return resp, nil, nil, nil, nil, err
		}
		if resp.Paused {
			op, err = s.submitFrom(term, req.MemberID, ackCmds)
			if err != nil {
				return resp, nil, nil, nil, nil, err
			}
			return resp, op, nil, changed, nil, nil
		}
	}
	noRecords := func(err error) (ShareFetchResponse, *commitOp, []shareCmd, <-chan struct{}, []<-chan struct{}, error) {
		return resp, nil, nil, nil, nil, err
	}
	tps := c.subscribedPartitions(req, matcher)
	initCmds, err := c.shareInit(ctx, req.Group, tps, g, cfg)
	if err != nil {
		return noRecords(err)
	}
	if initOp, err := s.submit(term, initCmds); err != nil {
		return noRecords(err)
	} else if initOp != nil {
		op = initOp
	}

	// Read new records without the lock.
	type job struct {
		tp          TopicPartition
		f           *feed
		from, limit int64
		reads       []ReadResult
		err         error
	}
	var jobs []*job
	g = sh.state(req.Group)
	for _, tp := range tps {
		sp := g.partition(tp.Topic, tp.Partition)
		if sp == nil {
			continue
		}
		f := rt.feedFor(tp, sp.Start)
		f.trim(sp.Start)
		limit := sp.Start + g.config().MaxInflight
		// A feed with half its window ahead and more known to be in the
		// log skips this read; at the log's end it always looks for new
		// records.
		if f.end() < limit && (f.end() >= f.hw || f.end()-sp.Start < g.config().MaxInflight/2) {
			jobs = append(jobs, &job{tp: tp, f: f, from: f.end(), limit: limit})
		}
	}
	sh.mu.Unlock()
	locked = false
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j.reads, j.err = readFeed(ctx, c.host, j.tp.Topic, j.tp.Partition, j.from, j.limit)
		}()
	}
	wg.Wait()
	if term2, err := s.shareBegin(ctx); err != nil {
		return noRecords(err)
	} else if term2 != term {
		sh.mu.Unlock()
		return noRecords(ErrNotCoordinator)
	}
	locked = true

	rt = sh.rt(req.Group)
	now = c.cfg.Now()
	refill := map[TopicPartition]bool{}
	for _, j := range jobs {
		if rt.feeds[tpKey(j.tp.Topic, j.tp.Partition)] != j.f || j.f.end() != j.from {
			continue // another request filled it meanwhile
		}
		if err := j.f.absorb(j.reads, j.limit); err != nil || j.err != nil {
			// The start fell below the log start or beyond its end, or
			// the read failed: the slow path, under the lock.
			refill[j.tp] = true
		}
	}
	if err := decideAcks(now); err != nil {
		return noRecords(err)
	}
	g = sh.state(req.Group)
	var parts []TopicPartition
	for _, tp := range tps {
		if _, err := c.shareFeed(ctx, s, term, rt, req.Group, tp, refill[tp]); err != nil {
			c.logger.Debug("share feed", "group", req.Group, "partition", tp, "error", err)
			continue
		}
		parts = append(parts, tp)
	}
	sel, view := g, false
	if g != nil && len(ackCmds) > 0 {
		sel, view = g.withAcks(req.Group, ackCmds), true
	}
	acquired, resp.Records = decideFetch(sel, rt, now, fetchDecision{Group: req.Group, Member: req.MemberID,
		Parts: parts, MaxRecs: req.MaxRecords, MaxBytes: req.MaxBytes, View: view, Base: g, Acks: ackCmds})
	// The acks first: the view's selection assumed them.
	last, err := s.submitFrom(term, req.MemberID, append(slices.Clip(ackCmds), acquired...))
	if err != nil {
		return noRecords(err)
	}
	if last != nil {
		op = last
	}
	return resp, op, acquired, changed, rt.handoffWaits(req.MemberID, resp.Records, time.Now()), nil
}

// feedFor returns the feed of a share-partition, made (starting at start)
// when missing.
func (rt *shareRuntime) feedFor(tp TopicPartition, start int64) *feed {
	k := tpKey(tp.Topic, tp.Partition)
	f := rt.feeds[k]
	if f == nil {
		f = &feed{base: start}
		rt.feeds[k] = f
	}
	return f
}

// shareInit returns the commands that give new share-partitions their
// start offset.
func (c *Coordinator) shareInit(ctx context.Context, group string, tps []TopicPartition, g *shareGroupState, cfg shareConfig) ([]shareCmd, error) {
	var cmds []shareCmd
	for _, tp := range tps {
		if g != nil && g.partition(tp.Topic, tp.Partition) != nil {
			continue
		}
		res, err := c.host.ReadPartition(ctx, tp.Topic, tp.Partition, 1<<62, 1)
		if err != nil {
			return nil, fmt.Errorf("start share-partition %s/%d: %w", tp.Topic, tp.Partition, err)
		}
		start := res.End
		if cfg.ResetEarliest {
			start = res.Start
		}
		cmds = append(cmds, &shareInitCmd{Group: group, Topic: tp.Topic, Partition: tp.Partition, Offset: start})
	}
	return cmds, nil
}

// shareFeed returns the share-partition's feed, trimmed to its start and,
// with fill, filled up to its in-flight window; s.shares.mu must be held.
// When the data partition no longer holds the start (retention, a
// recreated topic) it queues the commands that move the start.
func (c *Coordinator) shareFeed(ctx context.Context, s *shard, term uint64, rt *shareRuntime, group string, tp TopicPartition, fill bool) (*feed, error) {
	g := s.shares.state(group)
	if g == nil {
		return nil, ErrUnknownRecord
	}
	cfg := g.config()
	sp := g.partition(tp.Topic, tp.Partition)
	if sp == nil {
		return nil, ErrUnknownRecord
	}
	startOff := sp.Start
	var redrives []int64
	for _, q := range sp.Quarantine {
		if q.RedriveOffset >= 0 {
			redrives = append(redrives, q.RedriveOffset)
		}
	}
	f := rt.feedFor(tp, startOff)
	f.trim(startOff)
	var err error
	if fill {
		err = f.fill(ctx, c.host, tp.Topic, tp.Partition, startOff+cfg.MaxInflight)
	}
	if errors.Is(err, errBelowLogStart) {
		// Retention deleted records the group never finished: like Kafka,
		// the share-partition moves on to the log start.
		c.logger.Warn("share-partition start fell below the log start; skipping the deleted records",
			"group", group, "partition", tp, "start", startOff, "log_start", f.logStart)
		if _, err := s.submit(term, []shareCmd{&shareInitCmd{Group: group, Topic: tp.Topic, Partition: tp.Partition, Offset: f.logStart}}); err != nil {
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
		if _, err := s.submit(term, []shareCmd{&shareInitCmd{Group: group, Topic: tp.Topic, Partition: tp.Partition,
			Offset: f.logStart, Action: actionReset}}); err != nil {
			return nil, err
		}
		f.reset(f.logStart)
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

// deliverability says why record o (fr) cannot be delivered now by its
// own state, "" if it can; walkShare and selectKeyOrdered add the key
// rules.
func deliverability(sp *sharePartition, cfg shareConfig, nowMs int64, o int64, fr *feedRec) string {
	r := sp.Recs[o]
	switch {
	case r != nil && r.done():
		return blockedDone
	case r != nil && r.State == recDead:
		return blockedDead
	case r != nil && r.State == recAcquired && r.LockUntil > nowMs:
		return blockedLocked
	case r != nil && r.Deliveries >= cfg.MaxDeliveries:
		return blockedDead
	case r != nil && r.State == recAvailable && r.AvailableAt > nowMs:
		return blockedDelayed
	case fr.notBefore > nowMs:
		return blockedDelayed
	}
	return ""
}

// settledIn tells whether record o is settled in sp: below its start, or
// done.
func settledIn(sp *sharePartition, o int64) bool {
	r := sp.Recs[o]
	return o < sp.Start || (r != nil && r.done())
}

// keyTally counts, over the keys of key-ordered share-partitions, the
// keys whose next record is locked to each member and those whose next
// record is deliverable now: what the fair share of keys among members
// is computed from (decideFetch).
type keyTally struct {
	held map[string]int // member -> keys it holds
	free int
}

func (t *keyTally) hold(member string) {
	if t.held == nil {
		t.held = map[string]int{}
	}
	t.held[member]++
}

// selectKeyOrdered returns, in offset order, the records of a key-ordered
// share-partition deliverable now: of each key the first record not done,
// when its own state allows; the redriven copy of each quarantined key;
// and up to maxNulls null-key records. It is walkShare's verdict without
// walking the window (a fetch then costs the number of keys, not of
// records in flight); TestSelectKeyOrderedAgreesWithTheWalk holds the two
// equal. With prune (sp itself, or the committed state a view of it was
// made from) it drops the offsets prune settled from the feed's key
// queues; what only a view settled (uncommitted acks) must stay.
// tally, when not nil, adds the keys (within the window; of a quarantined
// key its redriven copy) whose next record is locked, per member, or
// deliverable.
func selectKeyOrdered(sp *sharePartition, f *feed, cfg shareConfig, nowMs int64, maxNulls int, prune *sharePartition, tally *keyTally) []int64 {
	limit := min(f.end(), sp.Start+cfg.MaxInflight)
	var out []int64
	settled := func(o int64) bool { return settledIn(sp, o) }
	for key, q := range f.byKey {
		for prune != nil && !q.empty() && settledIn(prune, q.front()) {
			q.pop()
		}
		if prune != nil && q.empty() {
			delete(f.byKey, key)
			continue
		}
		i := q.head
		for i < len(q.offs) && settled(q.offs[i]) {
			i++
		}
		if i >= len(q.offs) {
			continue
		}
		if sp.Quarantine[key] != nil {
			continue // only its redriven copy, below
		}
		o := q.offs[i]
		if o >= limit {
			continue
		}
		fr, ok := f.get(o)
		if !ok {
			continue
		}
		switch why := deliverability(sp, cfg, nowMs, o, fr); {
		case why == "":
			out = append(out, o)
			if tally != nil {
				tally.free++
			}
		case why == blockedLocked && tally != nil:
			tally.hold(sp.Recs[o].Owner)
		}
	}
	for _, q := range sp.Quarantine {
		if q.RedriveOffset < sp.Start {
			continue
		}
		fr, ok := f.get(q.RedriveOffset)
		if !ok {
			continue
		}
		switch why := deliverability(sp, cfg, nowMs, q.RedriveOffset, fr); {
		case why == "":
			out = append(out, q.RedriveOffset)
			if tally != nil {
				tally.free++
			}
		case why == blockedLocked && tally != nil:
			tally.hold(sp.Recs[q.RedriveOffset].Owner)
		}
	}
	for prune != nil && !f.nulls.empty() && settledIn(prune, f.nulls.front()) {
		f.nulls.pop()
	}
	nulls := 0
	for _, o := range f.nulls.offs[f.nulls.head:] {
		if o >= limit || nulls >= maxNulls {
			break
		}
		if settled(o) {
			continue
		}
		if fr, ok := f.get(o); ok && deliverability(sp, cfg, nowMs, o, fr) == "" {
			out = append(out, o)
			nulls++
		}
	}
	slices.Sort(out)
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
		keyed := cfg.KeyOrdered && !fr.keyNull()
		key := fr.key
		why := deliverability(sp, cfg, nowMs, o, fr)
		if why == blockedDone {
			return why
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

// shareAckLocked decides a member's acknowledgements; s.shares.mu must be
// held. It reads the feeds of rejected records' partitions first (a
// reject quarantines the record's key).
func (c *Coordinator) shareAckLocked(ctx context.Context, s *shard, rt *shareRuntime, group, memberID string, acks []ShareAck, now time.Time) ([]shareCmd, []ShareAckResult, error) {
	g := s.shares.state(group)
	if g == nil {
		return nil, nil, fmt.Errorf("%w: share group %s", ErrGroupNotFound, group)
	}
	if m := rt.members[memberID]; m != nil {
		m.lastSeen = now
	}
	for _, a := range acks {
		if a.Type == ShareReject && rt.feedOf(a.TopicPartition) == nil {
			if _, err := c.shareFeed(ctx, s, s.shares.term, rt, group, a.TopicPartition, true); err != nil {
				c.logger.Debug("share feed", "group", group, "partition", a.TopicPartition, "error", err)
			}
		}
	}
	cmds, results := decideAck(g, rt, now, ackDecision{Group: group, Member: memberID, Acks: acks, Jitter: rand.Float64})
	return cmds, results, nil
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
	if len(acks) > MaxShareAcksPerRequest {
		return nil, invalidf("%d acknowledgements in one request: at most %d", len(acks), MaxShareAcksPerRequest)
	}
	s, err := c.shardFor(ctx, group)
	if err != nil {
		return nil, err
	}
	term, err := s.shareBegin(ctx)
	if err != nil {
		return nil, err
	}
	s.shares.rt(group).memberArrived(memberID)
	cmds, results, err := c.shareAckLocked(ctx, s, s.shares.rt(group), group, memberID, acks, c.cfg.Now())
	var op *commitOp
	if err == nil {
		op, err = s.submitFrom(term, memberID, cmds)
	}
	s.shares.mu.Unlock()
	if err != nil {
		return nil, err
	}
	err = op.wait(ctx)
	if err != nil {
		return nil, err
	}
	return results, nil
}

// ShareLeave releases every record the member holds.
func (c *Coordinator) ShareLeave(ctx context.Context, group, memberID string) (int, error) {
	s, err := c.shardFor(ctx, group)
	if err != nil {
		return 0, err
	}
	term, err := s.shareBegin(ctx)
	if err != nil {
		return 0, err
	}
	cmds, held := decideLeave(s.shares.state(group), s.shares.rt(group), group, memberID)
	op, err := s.submit(term, cmds)
	s.shares.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return held, op.wait(ctx)
}

// shareTick does a led shard's periodic share work at now: departed
// members' locks, records out of deliveries to the dead-letter topic, the
// flood breaker. The coordinator's loop drives it; tests call it with a
// fake clock.
func (c *Coordinator) shareTick(ctx context.Context, s *shard, now time.Time) {
	if _, ok := s.log.LeaderTerm(); !ok {
		return
	}
	term, err := s.shareBegin(ctx)
	if err != nil {
		return
	}
	sh := &s.shares
	groups := slices.Sorted(maps.Keys(sh.work))
	type letter struct {
		group string
		tpOffset
	}
	var letters []letter
	var last *commitOp
	for _, group := range groups {
		g, rt := sh.state(group), sh.rt(group)
		cfg := g.config()
		// Read the records of partitions with records about to go dead
		// (a dead record's key is quarantined).
		for k, sp := range g.Partitions {
			for _, r := range sp.Recs {
				if r.Deliveries >= cfg.MaxDeliveries {
					if _, err := c.shareFeed(ctx, s, term, rt, group, parseTPKey(k), true); err != nil {
						c.logger.Debug("share feed", "group", group, "partition", k, "error", err)
					}
					break
				}
			}
		}
		d := decideTick(g, rt, now, c.cfg.SessionTimeout, group)
		op, err := s.submit(term, d.cmds)
		if err != nil {
			c.logger.Warn("share group upkeep", "group", group, "error", err)
			continue
		}
		if op != nil {
			last = op
		}
		for _, tpo := range d.toLetter {
			letters = append(letters, letter{group, tpo})
		}
	}
	progress := shareProgress(sh, term)
	sh.mu.Unlock()
	if len(progress) > 0 {
		c.host.ReportShareProgress(progress)
	}
	if err := last.wait(ctx); err != nil {
		c.logger.Warn("share group upkeep", "error", err)
		return
	}
	// A group whose dead letter could not be written tries again at the
	// next tick, in order.
	failed := map[string]bool{}
	for _, l := range letters {
		if failed[l.group] {
			continue
		}
		if err := c.deadLetter(ctx, s, l.group, l.TopicPartition, l.Offset, now); err != nil {
			c.logger.Warn("write dead letter", "group", l.group, "partition", l.TopicPartition, "offset", l.Offset, "error", err)
			failed[l.group] = true
		}
	}
	for _, group := range groups {
		term, err := s.shareBegin(ctx)
		if err != nil {
			return
		}
		var op *commitOp
		if g := sh.state(group); g != nil {
			if p := decideFlood(g, sh.rt(group), now, group); p != nil {
				c.logger.Warn("share group paused by the dead-letter flood breaker", "group", group, "dead_letters_last_minute", len(sh.rt(group).dlqTimes))
				c.metrics.sharePauses.WithLabelValues(group).Inc()
				op, err = s.submit(term, []shareCmd{p})
			}
		}
		sh.mu.Unlock()
		if err == nil {
			err = op.wait(ctx)
		}
		if err != nil {
			c.logger.Warn("pause share group", "group", group, "error", err)
		}
	}
}

// shareProgress lists how far every group of the shell has got through
// each share-partition it works on, from the committed state (records are
// done only once their acks are committed); sh.mu must be held.
func shareProgress(sh *shareShell, term uint64) []ShareProgress {
	sh.reportSeq++ // never reset: (term, seq) must grow across terms too
	var out []ShareProgress
	for _, group := range slices.Sorted(maps.Keys(sh.work)) {
		for _, k := range slices.Sorted(maps.Keys(sh.work[group].Partitions)) {
			sp := sh.work[group].Partitions[k]
			var done int64
			for _, r := range sp.Recs {
				if r.done() {
					done++
				}
			}
			out = append(out, ShareProgress{Group: group, TopicPartition: parseTPKey(k), Floor: sp.Start, Done: done, Epoch: term, Seq: sh.reportSeq})
		}
	}
	return out
}

// deadLetter writes a dead record, payload and provenance, to the group's
// dead-letter topic, then records that it is there. The shell's lock is
// not held while it writes to the dead-letter topic.
func (c *Coordinator) deadLetter(ctx context.Context, s *shard, group string, tp TopicPartition, o int64, now time.Time) error {
	term, err := s.shareBegin(ctx)
	if err != nil {
		return err
	}
	sh := &s.shares
	g := sh.state(group)
	var r shareRec
	if g != nil {
		if sp := g.partition(tp.Topic, tp.Partition); sp != nil && sp.Recs[o] != nil {
			r = *sp.Recs[o]
		}
	}
	if g == nil || r.State != recDead {
		sh.mu.Unlock()
		return nil // settled meanwhile
	}
	cfg := g.config()
	// parseShareConfig refuses an internal dlq.topic, but placeholders
	// can still expand to one ("{topic}.dlq" of an internal source).
	if err := refuseInternal(cfg.dlqTopicFor(tp.Topic, group), "share groups cannot write dead letters to it"); err != nil {
		sh.mu.Unlock()
		return fmt.Errorf("dead letter of %s/%d@%d in group %s: %w", tp.Topic, tp.Partition, o, group, err)
	}
	rt := sh.rt(group)
	f, err := c.shareFeed(ctx, s, term, rt, group, tp, true)
	if err != nil {
		sh.mu.Unlock()
		return err
	}
	fr, ok := f.get(o)
	if !ok {
		if fr, err = f.readOne(ctx, c.host, tp.Topic, tp.Partition, o); err != nil {
			sh.mu.Unlock()
			return err
		}
	}
	rec := fr.rec
	keyNull := fr.keyNull()
	sh.mu.Unlock()

	dlq := cfg.dlqTopicFor(tp.Topic, group)
	if err := c.host.EnsureTopic(ctx, dlq, 1); err != nil {
		return fmt.Errorf("dead-letter topic %s: %w", dlq, err)
	}
	key := rec.Key
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
	if term, err = s.shareBegin(ctx); err != nil {
		return err
	}
	op, err := s.submit(term, []shareCmd{&shareDeadLetteredCmd{Group: group, Topic: tp.Topic, Partition: tp.Partition, Offset: o,
		DLQTopic: dlq, DLQPartition: 0, DLQOffset: off, Key: key, KeyNull: keyNull}})
	if err == nil {
		sh.rt(group).dlqTimes = append(sh.rt(group).dlqTimes, now)
	}
	sh.mu.Unlock()
	if err != nil {
		return err
	}
	return op.wait(ctx)
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
