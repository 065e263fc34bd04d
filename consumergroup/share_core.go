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
	// uncommitted acks applied (withAcks): the feeds' key queues are then
	// left as they are.
	View bool
}

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
func decideFetch(g *shareGroupState, rt *shareRuntime, now time.Time, req fetchDecision) ([]shareCmd, []ShareRecord) {
	if g == nil || g.Paused || len(req.Parts) == 0 || req.MaxRecs <= 0 {
		return nil, nil
	}
	cfg := g.config()
	start := rt.rotate % len(req.Parts)
	rt.rotate++
	nowMs := now.UnixMilli()
	lockUntil := now.Add(cfg.LockTimeout)
	var cmds []shareCmd
	var picked []ShareRecord
	bytes := 0
	full := false
	for i := range req.Parts {
		if full || len(picked) >= req.MaxRecs {
			break
		}
		tp := req.Parts[(start+i)%len(req.Parts)]
		f := rt.feedOf(tp)
		sp := g.partition(tp.Topic, tp.Partition)
		if f == nil || sp == nil {
			continue
		}
		var offs []int64
		take := func(o int64) bool {
			fr, _ := f.get(o)
			size := recordBytes(fr)
			if len(picked) > 0 && req.MaxBytes > 0 && bytes+size > req.MaxBytes {
				full = true
				return false
			}
			bytes += size
			offs = append(offs, o)
			dc := int32(1)
			if r := sp.Recs[o]; r != nil {
				dc = r.Deliveries + 1
			}
			picked = append(picked, ShareRecord{TopicPartition: tp, Record: fr.rec, DeliveryCount: dc, LockUntil: lockUntil})
			return len(picked) < req.MaxRecs
		}
		if cfg.KeyOrdered {
			for _, o := range selectKeyOrdered(sp, f, cfg, nowMs, req.MaxRecs-len(picked), !req.View) {
				if !take(o) {
					break
				}
			}
		} else {
			walkShare(sp, f, cfg, nowMs, func(o int64, why string) bool {
				return why != "" || take(o)
			})
		}
		if len(offs) > 0 {
			cmds = append(cmds, &shareAcquireCmd{Group: req.Group, Topic: tp.Topic, Partition: tp.Partition,
				Offsets: offs, Member: req.Member, LockUntil: lockUntil.UnixMilli(), At: nowMs})
		}
	}
	return cmds, picked
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
		if sp := out.Partitions[k]; sp != nil && sp == g.Partitions[k] {
			out.Partitions[k] = sp.copyRecs()
		}
		a.apply(m)
	}
	return &out
}

// copyRecs copies the partition with its records (what acks change).
func (sp *sharePartition) copyRecs() *sharePartition {
	c := *sp
	c.Recs = make(map[int64]*shareRec, len(sp.Recs))
	recs := make([]shareRec, 0, len(sp.Recs))
	for o, r := range sp.Recs {
		recs = append(recs, *r)
		c.Recs[o] = &recs[len(recs)-1]
	}
	c.Quarantine = maps.Clone(sp.Quarantine)
	for k, q := range c.Quarantine {
		qc := *q
		c.Quarantine[k] = &qc
	}
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
