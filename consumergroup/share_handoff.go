package consumergroup

import (
	"context"
	"time"
)

// Hand-offs between members in key-ordered mode. When member A's ack
// settles a record, the next record of its key may go to member B. The
// ack is committed before B's acquisition of the next record (the working
// state frees records only once their acks are committed), but A's answer
// and B's records travel apart, and A could learn that its ack committed
// after B started on the next record. So B's answer waits until A's next
// request reached the coordinator (A has then read its answer, if it asks
// one thing at a time), or shareHandoffWait passed (A may be gone): a
// sequential worker that acks a record always sees its ack answered
// before any other member sees the next record of the key. The member
// that acked takes the next records of its keys with no wait.

// shareHandoffWait bounds how long an answer waits for a hand-off.
const shareHandoffWait = 100 * time.Millisecond

// handoff is a key whose previous record member settled; released closes
// when member's next request arrives.
type handoff struct {
	member   string
	released chan struct{}
	since    time.Time
}

// noteHandoffs records the keys of the records an ack of member settled.
func (rt *shareRuntime) noteHandoffs(a *shareAckCmd, member string, now time.Time) {
	if a.Ack != ackAccept && a.Ack != ackRelease {
		return
	}
	tp := TopicPartition{Topic: a.Topic, Partition: a.Partition}
	f := rt.feedOf(tp)
	if f == nil {
		return
	}
	ch := rt.pendingHandoff[member]
	if ch == nil {
		ch = make(chan struct{})
		if rt.pendingHandoff == nil {
			rt.pendingHandoff = map[string]chan struct{}{}
		}
		rt.pendingHandoff[member] = ch
	}
	for _, o := range a.Offsets {
		fr, ok := f.get(o)
		if !ok || fr.keyNull() {
			continue
		}
		if rt.handoffs == nil {
			rt.handoffs = map[TopicPartition]map[string]handoff{}
		}
		if rt.handoffs[tp] == nil {
			rt.handoffs[tp] = map[string]handoff{}
		}
		rt.handoffs[tp][fr.key] = handoff{member: member, released: ch, since: now}
	}
}

// memberArrived releases the hand-offs of member's earlier acks: it has
// sent a new request. sh.mu must be held.
func (rt *shareRuntime) memberArrived(member string) {
	if ch := rt.pendingHandoff[member]; ch != nil {
		close(ch)
		delete(rt.pendingHandoff, member)
	}
}

// handoffWaits returns what the answer to member's fetch of recs must
// wait for: the releases of keys another member settled the previous
// record of. Hand-offs older than shareHandoffWait are forgotten.
func (rt *shareRuntime) handoffWaits(member string, recs []ShareRecord, now time.Time) []<-chan struct{} {
	var out []<-chan struct{}
	seen := map[chan struct{}]bool{}
	for _, r := range recs {
		m := rt.handoffs[r.TopicPartition]
		if m == nil || r.Record.Key == nil {
			continue
		}
		key := string(r.Record.Key)
		h, ok := m[key]
		if !ok {
			continue
		}
		if now.Sub(h.since) > shareHandoffWait {
			delete(m, key)
			continue
		}
		if h.member != member && !seen[h.released] {
			seen[h.released] = true
			out = append(out, h.released)
		}
	}
	return out
}

// waitHandoffs waits until every channel is closed, shareHandoffWait
// passed, or ctx ended.
func waitHandoffs(ctx context.Context, waits []<-chan struct{}) {
	if len(waits) == 0 {
		return
	}
	t := time.NewTimer(shareHandoffWait)
	defer t.Stop()
	for _, ch := range waits {
		select {
		case <-ch:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}
