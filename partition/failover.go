package partition

import (
	"time"

	"github.com/hashicorp/raft"
	"github.com/skiff-mq/skiff/internal/raftutil"
)

// StandForDeadLeader makes this replica stand for election at once when it
// follows node, whose process the caller saw die, and is the group's
// designated successor (raftutil.StandForDeadLeader). It reports whether it
// stood.
func (r *Replica) StandForDeadLeader(node string) (bool, error) {
	if err := r.usable(); err != nil {
		return false, nil
	}
	return raftutil.StandForDeadLeader(r.raft, r.trans, raft.ServerID(r.cfg.NodeID), raft.ServerID(node))
}

// FollowerView is what this replica knows of its leader; ok is false when
// the replica is closed or failed.
func (r *Replica) FollowerView(now time.Time) (v raftutil.FollowerView, ok bool) {
	if r.usable() != nil {
		return v, false
	}
	return raftutil.ViewOf(r.raft, now), true
}

// Voters returns the voters of the group's current configuration.
func (r *Replica) Voters() ([]raft.Server, error) {
	if err := r.usable(); err != nil {
		return nil, err
	}
	return raftutil.Voters(r.raft)
}

// StandNow makes this replica, a follower, stand for election at once
// (raftutil.StandNow): the caller established that its leader is silent to
// a majority of the voters.
func (r *Replica) StandNow() error {
	if err := r.usable(); err != nil {
		return nil
	}
	return raftutil.StandNow(r.raft, r.trans, raft.ServerID(r.cfg.NodeID))
}
