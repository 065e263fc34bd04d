package partition

import (
	"context"
	"sync"

	"github.com/hashicorp/raft"
)

// peerHealth follows the leader's heartbeats to its followers. hashicorp/raft
// does not expose followers' match indexes, but it reports when heartbeats
// to a peer start failing and when they resume; a voter whose heartbeats
// fail is out of sync. A follower that answers heartbeats but trails the log
// counts as in sync until it fails them: the approximation is documented on
// InSync.
type peerHealth struct {
	mu      sync.Mutex
	failing map[raft.ServerID]struct{} // guarded by mu
}

func (p *peerHealth) set(id raft.ServerID, failing bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if failing {
		if p.failing == nil {
			p.failing = map[raft.ServerID]struct{}{}
		}
		p.failing[id] = struct{}{}
	} else {
		delete(p.failing, id)
	}
}

func (p *peerHealth) reset() {
	p.mu.Lock()
	p.failing = nil
	p.mu.Unlock()
}

func (p *peerHealth) isFailing(id raft.ServerID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.failing[id]
	return ok
}

// watchPeers consumes heartbeat observations until the replica stops.
func (r *Replica) watchPeers(ch <-chan raft.Observation, obs *raft.Observer) {
	defer r.wg.Done()
	defer r.raft.DeregisterObserver(obs)
	for {
		select {
		case <-r.stop:
			return
		case o := <-ch:
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				r.peers.set(d.PeerID, true)
			case raft.ResumedHeartbeatObservation:
				r.peers.set(d.PeerID, false)
			case raft.LeaderObservation:
				// A new term starts with a clean slate of peer health.
				r.peers.reset()
			}
		}
	}
}

func peerObservation(o *raft.Observation) bool {
	switch o.Data.(type) {
	case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation:
		return true
	}
	return false
}

// InSync returns the ids of the voters the leader currently hears from (the
// leader included): Kafka's in-sync replicas, approximated by heartbeat
// health because hashicorp/raft keeps followers' match indexes private.
// Only the leader can answer.
func (r *Replica) InSync(ctx context.Context) ([]string, error) {
	if r.raft.State() != raft.Leader {
		return nil, r.notLeader()
	}
	servers, err := r.Servers(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range servers {
		if s.Voter && (s.ID == r.cfg.NodeID || !r.peers.isFailing(raft.ServerID(s.ID))) {
			out = append(out, s.ID)
		}
	}
	return out, nil
}
