package consumergroup

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// The share core: pure decisions over one share group. Each decide
// function takes the group's state (its replicated part, and the
// coordinator's soft state of members), the time, and a request, and
// returns the commands that carry the decision out and the reply. It does
// no I/O and reads no clock or random source: the shell (share_shell.go)
// reads the records the decision needs into feeds beforehand, draws the
// jitter, applies the commands to its working state and commits them.
// Only soft state (members' last-seen times, the fetch rotation) is
// updated in place.

// shareRuntime is the coordinator's soft state for one share group.
type shareRuntime struct {
	members  map[string]*shareMember
	feeds    map[string]*feed
	dlqTimes []time.Time // dead letters of the last minute (flood breaker)
	// settling counts the queued, uncommitted commands that settle a
	// record (accept, release, reject): a second ack of it fails.
	settling map[tpOffset]int
	// handoffs are the keys whose previous record a member settled, and
	// pendingHandoff the release of each member's (share_handoff.go).
	handoffs       map[TopicPartition]map[string]handoff
	pendingHandoff map[string]chan struct{}
	rotate         int
	exported       shareExported
}

type shareMember struct {
	id, clientID, clientHost string
	lastSeen                 time.Time
	// maxRecords is what the member's last fetch asked for at most: its
	// demand in the fair share of keys.
	maxRecords int
}

func newShareRuntime() *shareRuntime {
	return &shareRuntime{members: map[string]*shareMember{}, feeds: map[string]*feed{}}
}

// feedOf returns the cached records of a share-partition (nil when none
// were read).
func (rt *shareRuntime) feedOf(tp TopicPartition) *feed {
	return rt.feeds[tpKey(tp.Topic, tp.Partition)]
}

// fetchDecision is a fetch as the core sees it: the subscription resolved
// to partitions and their records read into the runtime's feeds.
type fetchDecision struct {
	Group    string
	Member   string
	Parts    []TopicPartition // subscribed partitions with share state, sorted
	MaxRecs  int
	MaxBytes int // bound of keys, values and headers; the first record always fits
	// View is true when the state is a view with the request's own
	// uncommitted acks applied (withAcks). The feeds' key queues are then
	// pruned against Base, the state the view was made from (not at all
	// when it is nil): what only the view settled must stay in them.
	View bool
	Base *shareGroupState
	// Acks are the request's own ack commands (those of the view): in
	// key-ordered mode the next records of the keys they settle are
	// picked first, so that a member keeps its keys and no other member
	// has to wait for a hand-off (share_handoff.go).
	Acks []shareCmd
}

// shareActiveWindow is how recently a member must have been heard from to
// count in the fair share of keys (decideFetch): members that wait for
// records ask again every shareFetchPoll, so only those busy with a
// batch for longer, or gone, drop out; their share goes to the others.
const shareActiveWindow = time.Second

// recordBytes is what a record weighs against a fetch's byte bound.
func recordBytes(fr *feedRec) int {
	n := len(fr.rec.Key) + len(fr.rec.Value)
	for _, h := range fr.rec.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// decideFetch picks up to MaxRecs deliverable records (and MaxBytes),
// across the partitions starting at the runtime's rotation so that no
// partition starves, and locks them to the member until now plus the
// group's lock timeout.
//
// In key-ordered mode the keys are what bounds the records in flight (one
// of each), so a member takes keyed records only up to its fair share of
// them: the keys held or deliverable, divided by the members heard from
// in the last shareActiveWindow. Without it the first member to fetch
// takes every key and keeps them (its acks free the next records for
// itself first), and the others idle: one member's request at a time
// would carry the whole group's work. Null-key records are not bounded
// by keys and do not count.
func decideFetch(g *shareGroupState, rt *shareRuntime, now time.Time, req fetchDecision) ([]shareCmd, []ShareRecord) {
	if g == nil || g.Paused || len(req.Parts) == 0 || req.MaxRecs <= 0 {
		return nil, nil
	}
	cfg := g.config()
	start := rt.rotate % len(req.Parts)
	rt.rotate++
	nowMs := now.UnixMilli()
	lockUntil := now.Add(cfg.LockTimeout)

	// The deliverable offsets of each partition, in rotation order.
	type part struct {
		tp   TopicPartition
		f    *feed
		sp   *sharePartition
		sel  []int64 // key-ordered: the deliverable records
		offs []int64 // picked
	}
	parts := make([]part, 0, len(req.Parts))
	var tally keyTally
	for i := range req.Parts {
		tp := req.Parts[(start+i)%len(req.Parts)]
		f, sp := rt.feedOf(tp), g.partition(tp.Topic, tp.Partition)
		if f == nil || sp == nil {
			continue
		}
		p := part{tp: tp, f: f, sp: sp}
		if cfg.KeyOrdered {
			prune := sp
			if req.View {
				prune = nil
				if req.Base != nil {
					prune = req.Base.partition(tp.Topic, tp.Partition)
				}
			}
			p.sel = selectKeyOrdered(sp, f, cfg, nowMs, req.MaxRecs, prune, &tally)
		}
		parts = append(parts, p)
	}
	keyed := req.MaxRecs // keyed records this member may still take
	var prefer map[TopicPartition]map[string]bool
	if cfg.KeyOrdered {
		keyed = fairKeyShare(rt, now, req.Member, req.MaxRecs, tally)
		prefer = ackedKeys(rt, req.Acks)
	}

	var picked []ShareRecord
	bytes := 0
	full := false
	// A record whose ack (or reject) is queued and not yet committed is
	// still in flight: its lock may have ended meanwhile, yet handing it
	// to another member would let the acquisition commit after the
	// accept and deliver an acknowledged record again.
	settling := func(p *part, o int64) bool {
		return len(rt.settling) > 0 && rt.settling[tpOffset{p.tp, o}] > 0
	}
	// take picks record o of p; false when the fetch is full.
	take := func(p *part, o int64) bool {
		fr, _ := p.f.get(o)
		size := recordBytes(fr)
		if len(picked) > 0 && req.MaxBytes > 0 && bytes+size > req.MaxBytes {
			full = true
			return false
		}
		bytes += size
		p.offs = append(p.offs, o)
		dc := int32(1)
		if r := p.sp.Recs[o]; r != nil {
			dc = r.Deliveries + 1
		}
		picked = append(picked, ShareRecord{TopicPartition: p.tp, Record: fr.rec, DeliveryCount: dc, LockUntil: lockUntil})
		return len(picked) < req.MaxRecs
	}
	if cfg.KeyOrdered {
		// The keys this request settled first, then the others.
		for pass := range 2 {
			if pass == 0 && len(prefer) == 0 {
				continue
			}
			for i := range parts {
				p := &parts[i]
				mine := prefer[p.tp]
				for _, o := range p.sel {
					if full || len(picked) >= req.MaxRecs {
						break
					}
					fr, _ := p.f.get(o)
					if isMine := !fr.keyNull() && mine[fr.key]; (pass == 0) != isMine {
						continue
					}
					if settling(p, o) {
						continue
					}
					if !fr.keyNull() {
						if keyed <= 0 {
							continue
						}
						keyed--
					}
					if !take(p, o) {
						break
					}
				}
			}
		}
	} else {
		for i := range parts {
			if full || len(picked) >= req.MaxRecs {
				break
			}
			p := &parts[i]
			walkShare(p.sp, p.f, cfg, nowMs, func(o int64, why string) bool {
				return why != "" || settling(p, o) || take(p, o)
			})
		}
	}
	var cmds []shareCmd
	for _, p := range parts {
		if len(p.offs) == 0 {
			continue
		}
		offs := p.offs
		if cfg.KeyOrdered {
			slices.Sort(offs)
		}
		cmds = append(cmds, &shareAcquireCmd{Group: req.Group, Topic: p.tp.Topic, Partition: p.tp.Partition,
			Offsets: offs, Member: req.Member, LockUntil: lockUntil.UnixMilli(), At: nowMs})
	}
	return cmds, picked
}

// fairKeyShare is how many more keys member may take: its fair share of
// the keys held or deliverable (tally), less those it holds. The share is
// max-min fair over the members heard from lately: a member that asks for
// fewer records (maxRecords) than an even split leaves the rest to the
// others.
func fairKeyShare(rt *shareRuntime, now time.Time, member string, maxRecords int, tally keyTally) int {
	demands := []int{maxRecords}
	for id, m := range rt.members {
		if id != member && now.Sub(m.lastSeen) <= shareActiveWindow {
			demands = append(demands, max(m.maxRecords, 1))
		}
	}
	left := tally.free
	for _, n := range tally.held {
		left += n
	}
	slices.Sort(demands)
	level := maxRecords // every demand fits
	for i, d := range demands {
		n := len(demands) - i
		if even := (left + n - 1) / n; d >= even {
			level = even
			break
		}
		left -= d
	}
	return min(maxRecords, level) - tally.held[member]
}

// ackedKeys returns the keys of the records that acks settles (accepts
// and releases), per partition.
func ackedKeys(rt *shareRuntime, acks []shareCmd) map[TopicPartition]map[string]bool {
	var out map[TopicPartition]map[string]bool
	for _, c := range acks {
		a, ok := c.(*shareAckCmd)
		if !ok || (a.Ack != ackAccept && a.Ack != ackRelease) {
			continue
		}
		tp := TopicPartition{Topic: a.Topic, Partition: a.Partition}
		f := rt.feedOf(tp)
		if f == nil {
			continue
		}
		for _, o := range a.Offsets {
			fr, ok := f.get(o)
			if !ok || fr.keyNull() {
				continue
			}
			if out == nil {
				out = map[TopicPartition]map[string]bool{}
			}
			if out[tp] == nil {
				out[tp] = map[string]bool{}
			}
			out[tp][fr.key] = true
		}
	}
	return out
}

// withAcks returns a view of g with the accepts and releases among cmds
// applied, copying only the partitions they touch; g is unchanged. A
// fetch that carries acks selects against it, so that the member's own
// acks free the next records of their keys for it in the same request:
// they commit in the same append, the acks first. Other members keep
// deciding against the state without them until they are committed.
func (g *shareGroupState) withAcks(group string, cmds []shareCmd) *shareGroupState {
	out := *g
	out.Partitions = maps.Clone(g.Partitions)
	m := map[string]*shareGroupState{group: &out}
	for _, c := range cmds {
		a, ok := c.(*shareAckCmd)
		if !ok || a.Ack == ackRenew {
			continue
		}
		k := tpKey(a.Topic, a.Partition)
		sp := out.Partitions[k]
		if sp == nil {
			continue
		}
		if sp == g.Partitions[k] {
			sp = sp.shallowCopy()
			out.Partitions[k] = sp
		}
		// The records the ack changes are copied before it changes them.
		for _, o := range a.Offsets {
			if r := sp.Recs[o]; r != nil {
				rc := *r
				sp.Recs[o] = &rc
			}
		}
		a.apply(m)
	}
	return &out
}

// shallowCopy copies the partition and its maps, sharing the records: a
// view copies a record before it changes it (withAcks). An ack only
// deletes from Quarantine.
func (sp *sharePartition) shallowCopy() *sharePartition {
	c := *sp
	c.Recs = maps.Clone(sp.Recs)
	c.Quarantine = maps.Clone(sp.Quarantine)
	return &c
}

// decideRelease hands back records of a fetch whose caller went away
// before it saw them.
func decideRelease(group string, acquired []shareCmd, nowMs int64) []shareCmd {
	var out []shareCmd
	for _, c := range acquired {
		a, ok := c.(*shareAcquireCmd)
		if !ok {
			continue
		}
		out = append(out, &shareAckCmd{Group: group, Topic: a.Topic, Partition: a.Partition, Ack: ackRelease,
			Offsets: slices.Clone(a.Offsets), Avail: make([]int64, len(a.Offsets)), At: nowMs})
	}
	return out
}

// ackDecision is a member's batch of acknowledgements. Jitter draws the
// backoff jitter of releases in [0, 1); Key looks up a record's key
// (for rejects in key-ordered mode) in the feeds the shell read.
type ackDecision struct {
	Group  string
	Member string
	Acks   []ShareAck
	Jitter func() float64
}

// decideAck checks each acknowledgement alone against the state (one
// failing leaves the others to apply) and returns the commands of those
// that pass, one per partition and kind of acknowledgement.
func decideAck(g *shareGroupState, rt *shareRuntime, now time.Time, req ackDecision) ([]shareCmd, []ShareAckResult) {
	results := make([]ShareAckResult, len(req.Acks))
	nowMs := now.UnixMilli()
	cfg := g.config()
	type key struct {
		tp  TopicPartition
		ack string
	}
	grouped := map[key]*shareAckCmd{}
	var cmds []shareCmd
	var dead []shareCmd
	seen := map[TopicPartition]map[int64]bool{}
	for i, a := range req.Acks {
		sp := g.partition(a.Topic, a.Partition)
		if sp == nil {
			results[i].Err = fmt.Errorf("%w: %s/%d has no share state in group %s", ErrUnknownRecord, a.Topic, a.Partition, req.Group)
			continue
		}
		r := sp.Recs[a.Offset]
		switch {
		case r == nil || a.Offset < sp.Start || r.State != recAcquired:
			results[i].Err = fmt.Errorf("%w: %s/%d@%d", ErrNotHeld, a.Topic, a.Partition, a.Offset)
			continue
		case rt.settling[tpOffset{a.TopicPartition, a.Offset}] > 0:
			results[i].Err = fmt.Errorf("%w: %s/%d@%d is being settled by an earlier request", ErrNotHeld, a.Topic, a.Partition, a.Offset)
			continue
		case r.Owner != req.Member:
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
		var kind string
		switch a.Type {
		case ShareReject:
			d := &shareDeadCmd{Group: req.Group, Topic: a.Topic, Partition: a.Partition, Offset: a.Offset, Err: a.Error}
			if f := rt.feedOf(a.TopicPartition); f != nil {
				if fr, ok := f.get(a.Offset); ok {
					d.Key, d.KeyNull = fr.rec.Key, fr.keyNull()
					d.Quarantine = cfg.KeyOrdered && !fr.keyNull()
				}
			}
			dead = append(dead, d)
			continue
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
		c := grouped[k]
		if c == nil {
			c = &shareAckCmd{Group: req.Group, Topic: a.Topic, Partition: a.Partition, Ack: kind, Err: a.Error, At: nowMs}
			grouped[k] = c
			cmds = append(cmds, c)
		}
		c.Offsets = append(c.Offsets, a.Offset)
		switch a.Type {
		case ShareRelease:
			delay := a.Delay
			if delay < 0 {
				delay = cfg.backoff(r.Deliveries, req.Jitter())
			}
			c.Avail = append(c.Avail, now.Add(delay).UnixMilli())
		case ShareRenew:
			c.LockUntil = now.Add(cfg.LockTimeout).UnixMilli()
			results[i].LockUntil = time.UnixMilli(c.LockUntil)
		}
	}
	return append(cmds, dead...), results
}

// decideLeave releases every record the member holds; it returns how
// many.
func decideLeave(g *shareGroupState, rt *shareRuntime, group, member string) ([]shareCmd, int) {
	delete(rt.members, member)
	rt.memberArrived(member)
	held := 0
	if g != nil {
		for _, sp := range g.Partitions {
			for _, r := range sp.Recs {
				if r.State == recAcquired && r.Owner == member {
					held++
				}
			}
		}
	}
	if held == 0 {
		return nil, 0
	}
	return []shareCmd{&shareLeaveCmd{Group: group, Member: member}}, held
}

// tickDecision is what the periodic upkeep of a group decided: commands to
// commit, and records marked dead whose dead letters the shell writes.
type tickDecision struct {
	cmds     []shareCmd
	toLetter []tpOffset
}

// tpOffset names one record.
type tpOffset struct {
	TopicPartition
	Offset int64
}

// decideTick does a group's upkeep at now: members silent for longer
// than sessionTimeout leave (their records come back), records out of
// deliveries whose lock ended go dead, and dead records are listed for
// the dead-letter topic.
func decideTick(g *shareGroupState, rt *shareRuntime, now time.Time, sessionTimeout time.Duration, group string) tickDecision {
	var out tickDecision
	nowMs := now.UnixMilli()
	cfg := g.config()
	for _, id := range slices.Sorted(maps.Keys(rt.members)) {
		if now.Sub(rt.members[id].lastSeen) > sessionTimeout {
			delete(rt.members, id)
			rt.memberArrived(id)
			out.cmds = append(out.cmds, &shareLeaveCmd{Group: group, Member: id})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(g.Partitions)) {
		sp := g.Partitions[k]
		tp := parseTPKey(k)
		for _, o := range slices.Sorted(maps.Keys(sp.Recs)) {
			r := sp.Recs[o]
			switch {
			case r.State == recDead:
				out.toLetter = append(out.toLetter, tpOffset{tp, o})
			case r.Deliveries >= cfg.MaxDeliveries && (r.State == recAvailable || (r.State == recAcquired && r.LockUntil <= nowMs)):
				reason := r.LastError
				if reason == "" {
					reason = fmt.Sprintf("not acknowledged after %d deliveries", r.Deliveries)
				}
				d := &shareDeadCmd{Group: group, Topic: tp.Topic, Partition: tp.Partition, Offset: o, Err: reason}
				if f := rt.feedOf(tp); f != nil {
					if fr, ok := f.get(o); ok {
						d.Key, d.KeyNull = fr.rec.Key, fr.keyNull()
						d.Quarantine = cfg.KeyOrdered && !fr.keyNull()
					}
				}
				out.cmds = append(out.cmds, d)
			}
		}
	}
	return out
}

// decideFlood trims the dead-letter times to the last minute and pauses
// the group when more than the group's limit went to the dead-letter
// topic in it.
func decideFlood(g *shareGroupState, rt *shareRuntime, now time.Time, group string) shareCmd {
	cut := 0
	for cut < len(rt.dlqTimes) && now.Sub(rt.dlqTimes[cut]) > time.Minute {
		cut++
	}
	rt.dlqTimes = rt.dlqTimes[cut:]
	cfg := g.config()
	if g.Paused || cfg.FloodPerMinute <= 0 || len(rt.dlqTimes) <= cfg.FloodPerMinute {
		return nil
	}
	return &sharePauseCmd{Group: group, Reason: fmt.Sprintf("%d records went to the dead-letter topic in the last minute (dlq.flood.per.minute=%d): delivery paused; fix the consumers, then `skiff share resume %s`",
		len(rt.dlqTimes), cfg.FloodPerMinute, group)}
}
