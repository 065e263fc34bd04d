package partition

import (
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
