package membership

import (
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks. memberlist calls most of them
// with its node lock held, so they must be quick, must not block and must
// never call back into memberlist.
type delegate struct{ m *Membership }

var (
	_ memberlist.Delegate         = (*delegate)(nil)
	_ memberlist.EventDelegate    = (*delegate)(nil)
	_ memberlist.AliveDelegate    = (*delegate)(nil)
	_ memberlist.ConflictDelegate = (*delegate)(nil)
)

// NodeMeta returns this node's encoded meta (validated against the limit
// before it was stored).
func (d *delegate) NodeMeta(limit int) []byte { return *d.m.advertised.Load() }

// Membership carries no user messages or state of its own over memberlist.
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// NotifyAlive keeps out nodes that are not Skiff nodes (another memberlist
// cluster reachable on the same port) or whose meta claims another id.
func (d *delegate) NotifyAlive(n *memberlist.Node) error {
	meta, _, err := decodeMeta(n.Meta)
	if err != nil {
		return err
	}
	if meta.ID != n.Name {
		return fmt.Errorf("meta id %q does not match node name %q", meta.ID, n.Name)
	}
	return nil
}

// NotifyJoin: a node is new, or came back from dead or left (perhaps at a
// new address).
func (d *delegate) NotifyJoin(n *memberlist.Node) {
	m := d.m
	meta, leaving := decodeMember(n)
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entryLocked(n.Name)
	e.member = Member{Meta: meta, Addr: n.Address(), State: StateAlive, Since: time.Now()}
	e.leaving = leaving
	m.publishLocked(Event{Type: EventJoined, Member: e.member})
}

// NotifyUpdate: an alive node changed its meta. A change of the leaving mark
// alone is bookkeeping, not an event.
func (d *delegate) NotifyUpdate(n *memberlist.Node) {
	m := d.m
	meta, leaving := decodeMember(n)
	m.mu.Lock()
	defer m.mu.Unlock()
	e, known := m.members[n.Name]
	if !known || e.member.State != StateAlive {
		// memberlist only updates alive nodes it knows; be robust anyway.
		e = m.entryLocked(n.Name)
		e.member = Member{Meta: meta, Addr: n.Address(), State: StateAlive, Since: time.Now()}
		e.leaving = leaving
		m.publishLocked(Event{Type: EventJoined, Member: e.member})
		return
	}
	e.leaving = leaving
	if e.member.Meta == meta && e.member.Addr == n.Address() {
		return
	}
	e.member.Meta, e.member.Addr = meta, n.Address()
	m.publishLocked(Event{Type: EventUpdated, Member: e.member})
}

// NotifyLeave: memberlist says a node is gone, without saying whether it
// died or left (Node.State is never filled in v0.6.0); the leaving mark in
// its last meta decides.
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	m := d.m
	meta, leaving := decodeMember(n)
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entryLocked(n.Name)
	e.leaving = e.leaving || leaving
	state, typ := StateDead, EventFailed
	if e.leaving {
		state, typ = StateLeft, EventLeft
	}
	e.member = Member{Meta: meta, Addr: n.Address(), State: state, Since: time.Now()}
	m.publishLocked(Event{Type: typ, Member: e.member})
}

// NotifyConflict: a node claims a known name at a different address. If the
// name is ours, a peer still remembers our previous process; its own
// Membership heals that. Otherwise remember the claimant so the reclaim loop
// can fetch it once memberlist allows the takeover.
func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	m := d.m
	if existing.Name == m.cfg.Meta.ID {
		m.log.Debug("a peer still has this node's previous address", "previous", other.Address())
		return
	}
	m.noteConflict(existing.Name, other.Address())
}

// entryLocked returns the entry for id, creating it. Caller holds mu.
func (m *Membership) entryLocked(id string) *entry {
	e, ok := m.members[id]
	if !ok {
		e = &entry{}
		m.members[id] = e
	}
	return e
}

// decodeMember reads a node's meta. The alive filter admits only decodable
// meta, so the fallback only covers a memberlist surprise.
func decodeMember(n *memberlist.Node) (Meta, bool) {
	meta, leaving, err := decodeMeta(n.Meta)
	if err != nil {
		return Meta{ID: n.Name}, false
	}
	return meta, leaving
}
