package raftutil

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// StandForDeadLeader makes r, a follower whose leader is dead, stand for
// election now instead of after its heartbeat timeout, and reports whether
// it did.
//
// Why: hashicorp/raft notices a lost leader only when no heartbeat came for
// HeartbeatTimeout (then waits a random part of it again), 1-2.4 s at our
// defaults; the node layer knows within a few milliseconds that a peer's
// process is gone (its kernel reset every connection and its port refuses
// new ones). Lowering the timers for every group instead would cost
// heartbeat traffic on every idle group and elections on every CPU stall.
//
// Only one follower per group should stand: two at once split the vote and
// fall back to the timeout anyway. The caller picks it (the node layer asks
// the other voters and picks the one with the most complete log, which is
// the one they will grant; cluster/liveness.go). The candidate is started
// the way a leadership transfer starts it (a TimeoutNow request, sent to r
// through its own transport, since raft has no other door to its follower
// loop): it skips the pre-vote and the other voters grant it although they
// still believe in the old leader. That is safe for the same reasons a
// transfer is: a voter still grants only a candidate whose log is at least
// as up to date as its own, and terms keep any old leader from committing
// once it is deposed. A mistaken call (the leader was alive) costs one
// election, not data.
//
// self and its address must be r's own; dead is the node whose process the
// caller saw go away.
func StandForDeadLeader(r *raft.Raft, trans raft.Transport, self, dead raft.ServerID) (bool, error) {
	if dead == "" || dead == self || r.State() != raft.Follower {
		return false, nil
	}
	if _, leader := r.LeaderWithID(); leader != dead {
		return false, nil
	}
	selfAddr, err := voterAddr(r, self)
	if err != nil || selfAddr == "" {
		return false, err // not a voter: it cannot win
	}
	if err := timeoutNow(trans, self, selfAddr); err != nil {
		return false, err
	}
	return true, nil
}

// Candidate is a voter that could stand for election, with its last log
// index.
type Candidate struct {
	ID        raft.ServerID
	LastIndex uint64
}

// MostComplete returns the candidate the others will grant: the one with
// the longest log (ties: the lowest id, so that every node that sees the
// same candidates picks the same one). It returns "" for none.
//
// Raft compares the last entry's term before its index; among followers of
// one dead or silent leader that is the same term, or an older one for a
// follower that missed the leader's first entries, which the longer log
// then beats too.
func MostComplete(cands []Candidate) raft.ServerID {
	var best Candidate
	for _, c := range cands {
		if best.ID == "" || c.LastIndex > best.LastIndex || (c.LastIndex == best.LastIndex && c.ID < best.ID) {
			best = c
		}
	}
	return best.ID
}

// FollowerView is what a follower knows of its leader, for the node layer's
// silent-leader check (cluster/silence.go).
type FollowerView struct {
	Follower bool          // r is a follower (candidates and leaders are not)
	Leader   raft.ServerID // the leader r follows, empty when none is known
	Silence  time.Duration // since r last heard from a leader
	// HeardLeader says r has heard from a leader since it started: a
	// group still electing its first leader is left to Raft.
	HeardLeader bool
	// LastIndex is r's last log index: the voter with the most complete log
	// is the one the others will grant.
	LastIndex uint64
}

// ViewOf returns r's FollowerView at now.
func ViewOf(r *raft.Raft, now time.Time) FollowerView {
	_, leader := r.LeaderWithID()
	last := r.LastContact()
	return FollowerView{
		Follower:    r.State() == raft.Follower,
		Leader:      leader,
		Silence:     now.Sub(last),
		HeardLeader: !last.IsZero(),
		LastIndex:   r.LastIndex(),
	}
}

// StandNow makes r, a follower, stand for election at once the way a
// leadership transfer does (see StandForDeadLeader for why that is safe);
// the caller has established that its leader is silent to a majority.
func StandNow(r *raft.Raft, trans raft.Transport, self raft.ServerID) error {
	if r.State() != raft.Follower {
		return nil
	}
	selfAddr, err := voterAddr(r, self)
	if err != nil || selfAddr == "" {
		return err // not a voter: it cannot win
	}
	return timeoutNow(trans, self, selfAddr)
}

// voterAddr returns self's address in r's configuration, empty when self is
// not a voter.
func voterAddr(r *raft.Raft, self raft.ServerID) (raft.ServerAddress, error) {
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return "", fmt.Errorf("raft configuration: %w", err)
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == self && s.Suffrage == raft.Voter {
			return s.Address, nil
		}
	}
	return "", nil
}

// timeoutNow sends a TimeoutNow request to self through its own transport,
// the only door hashicorp/raft has into a follower's loop.
func timeoutNow(trans raft.Transport, self raft.ServerID, selfAddr raft.ServerAddress) error {
	req := &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersionMax,
		ID:              []byte(self),
		Addr:            trans.EncodePeer(self, selfAddr),
	}}
	var resp raft.TimeoutNowResponse
	if err := trans.TimeoutNow(self, selfAddr, req, &resp); err != nil {
		return fmt.Errorf("stand for election: %w", err)
	}
	return nil
}

// Voters returns the voters of r's current configuration.
func Voters(r *raft.Raft) ([]raft.Server, error) {
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	var out []raft.Server
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			out = append(out, s)
		}
	}
	return out, nil
}
