package membership

import (
	"fmt"
	"time"
)

// State is a member's liveness as seen by the local node.
type State int

const (
	// StateAlive: the member answers probes (or has not yet been found dead).
	StateAlive State = iota
	// StateSuspect is reserved: memberlist v0.6.0 has no suspect callback,
	// so it is not reported today (see the package doc).
	StateSuspect
	// StateDead: the member stopped answering and the cluster declared it
	// failed. It may come back (restart), flipping to StateAlive.
	StateDead
	// StateLeft: the member left gracefully (Leave).
	StateLeft
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Member is one node as seen by the local node.
type Member struct {
	Meta Meta
	// Addr is the member's gossip host:port.
	Addr  string
	State State
	// Since is when the member entered State, by the local clock (not the
	// member's). A meta update does not change it.
	Since time.Time
}

// EventType says what happened to a member.
type EventType int

const (
	// EventJoined: a member became alive — new, or back after dying or
	// leaving (possibly at a new address).
	EventJoined EventType = iota
	// EventUpdated: an alive member changed its Meta.
	EventUpdated
	// EventFailed: a member was declared dead.
	EventFailed
	// EventLeft: a member left gracefully.
	EventLeft
)

func (t EventType) String() string {
	switch t {
	case EventJoined:
		return "joined"
	case EventUpdated:
		return "updated"
	case EventFailed:
		return "failed"
	case EventLeft:
		return "left"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one membership change; Member is the member's state after it.
type Event struct {
	Type   EventType
	Member Member
}
