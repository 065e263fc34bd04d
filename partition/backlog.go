package partition

import (
	"fmt"
	"sync"
	"time"
)

// ShareProgress is how far one share group has got through a partition,
// as its coordinator reports it: every record below Floor is done, and Done
// more records at or above Floor are done too (acknowledged or
// dead-lettered). Everything else from Floor to the end of the log is not
// done yet: available, in flight, or delayed.
//
// Reports of one group are ordered by (Epoch, Seq): Epoch is the
// coordinator's leader term, so a new coordinator's reports replace an old
// one's whatever the two nodes' clocks say, and Seq orders the reports of
// one coordinator, which may arrive out of order.
type ShareProgress struct {
	Floor int64
	Done  int64
	Epoch uint64
	Seq   uint64
}

// ShareProgressTTL is how long a group's last report counts. A coordinator
// reports every group it runs several times a second; a group that has not
// been reported for this long was deleted or lost its coordinator, and no
// longer holds records back. Longer than a coordinator failover, so that
// stalled workers keep pushing back on producers through one.
const ShareProgressTTL = 15 * time.Second

// shareBacklog holds the share groups' progress through one partition for
// overflow.policy=reject-unacked. Every replica keeps it (coordinators
// report to every replica), so a new leader bounds producers as the old
// one did. It is soft state: after a restart a replica knows no group until
// the next report, and meanwhile counts every record it holds as not done,
// which can only refuse more than the bound, never take more.
type shareBacklog struct {
	mu     sync.Mutex
	groups map[string]shareBacklogEntry // guarded by mu
}

type shareBacklogEntry struct {
	ShareProgress
	at time.Time // when the report arrived
}

// report records p for group unless a later report of the group is
// already known; it reports whether p was taken. The same report again
// (a resend while its coordinator is busy) renews it.
func (b *shareBacklog) report(group string, p ShareProgress, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.groups[group]; ok && now.Sub(old.at) < ShareProgressTTL &&
		(p.Epoch < old.Epoch || (p.Epoch == old.Epoch && p.Seq < old.Seq)) {
		return false
	}
	if b.groups == nil {
		b.groups = map[string]shareBacklogEntry{}
	}
	b.groups[group] = shareBacklogEntry{ShareProgress: p, at: now}
	return true
}

// undone returns the most records any share group has not done in a log
// holding [start, end), and that group. With no group reported within the
// TTL it returns every record held and group "": nothing is done that no
// group has said is done. Expired reports are forgotten.
func (b *shareBacklog) undone(start, end int64, now time.Time) (int64, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	most, who, any := int64(0), "", false
	for g, e := range b.groups {
		if now.Sub(e.at) >= ShareProgressTTL {
			delete(b.groups, g)
			continue
		}
		any = true
		// Records below the log start are gone, done or not; records done
		// above the floor that retention removed no longer count either,
		// so clamp rather than go negative.
		floor := max(e.Floor, start)
		n := max(end-floor-e.Done, 0)
		if n > most || who == "" || (n == most && g < who) {
			most, who = n, g
		}
	}
	if !any {
		return end - start, ""
	}
	return most, who
}

// ReportShareProgress tells the replica how far share group group has
// got through its partition (see ShareProgress). Any replica takes
// reports; only a leader uses them, to bound producers of a topic with
// overflow.policy=reject-unacked.
func (r *Replica) ReportShareProgress(group string, p ShareProgress) error {
	if group == "" || p.Floor < 0 || p.Done < 0 {
		return fmt.Errorf("partition %s: bad share progress of group %q (floor %d, done %d)", r.cfg.Group, group, p.Floor, p.Done)
	}
	r.backlog.report(group, p, time.Now())
	return nil
}

// ShareBacklog returns the records not yet done by the share group that
// has done the least of this partition, and that group ("" when no group
// has reported: then every record held counts).
func (r *Replica) ShareBacklog() (records int64, group string) {
	start, end := r.Offsets()
	return r.backlog.undone(start, end, time.Now())
}
