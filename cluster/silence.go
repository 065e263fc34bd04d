package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/skiff-mq/skiff/internal/raftutil"
	"github.com/skiff-mq/skiff/partition"
)

// Fast failover when a leader falls silent without dying.
//
// A leader cut off by the network, or paused, resets no connection, so the
// liveness watch (liveness.go) cannot call it gone. Raft then takes its
// time twice over: each follower notices the silence only after a random
// 1-2 heartbeat timeouts (re-armed when the timer fires early), and the
// first follower to notice is refused its pre-vote by the other, which
// still believes in the leader until its own timer fires. With the default
// 800 ms timer that was 2.2-3 s from the cut to a new leader on the compose
// cluster.
//
// So every node looks, every silenceCheckEvery, for the Raft groups it
// follows that have not heard from a leader for SilentLeaderAfter (the
// leader it knows went silent, or an election left it with none known).
// For those it asks the group's other voters (one request per peer, all
// groups at once) what they see. When a majority of the voters, itself
// included, has heard from no leader for as long, no leader can commit
// anything anyway, and the one among them with the most complete log
// (ties: the lowest id) stands for election at once, as after a dead
// leader (raftutil.StandNow). That also rescues an election stuck on a
// candidate whose log is too short to win (a voter whose own timer fired
// first). A majority that still hears the leader, or a peer that cannot be
// asked, leaves the group to Raft's own timers: a node that is itself the
// one cut off never gets its majority.
const (
	silencePath       = "/internal/v1/silence"
	silenceCheckEvery = 100 * time.Millisecond
	// silenceAskTimeout bounds the question to the other voters.
	silenceAskTimeout = 300 * time.Millisecond
	// silenceStandAgain is how long a node leaves a group alone after it
	// stood in it, so that a lost election falls back to Raft's timers
	// instead of repeating.
	silenceStandAgain = 3 * time.Second
	// silenceMaxGroups and silenceMaxBytes bound one question and the
	// answer read for it (100,000 group names of up to ~80 bytes).
	silenceMaxGroups = 100_000
	silenceMaxBytes  = 8 << 20
)

// raftGroup is one of this node's Raft groups (a partition replica or the
// meta group) as the silence check sees it.
type raftGroup struct {
	view   func(now time.Time) (raftutil.FollowerView, bool)
	voters func() ([]raft.Server, error)
	stand  func() error
	// standForDead stands if the group still follows dead, whose process
	// is gone, and reports whether it did.
	standForDead func(dead raft.ServerID) (bool, error)
}

// raftGroups returns this node's Raft groups by name.
func (n *Node) raftGroups() map[string]raftGroup {
	out := map[string]raftGroup{}
	for key, r := range n.replicas.all() {
		out[key.group()] = raftGroup{view: r.FollowerView, voters: r.Voters, stand: r.StandNow,
			standForDead: func(dead raft.ServerID) (bool, error) { return r.StandForDeadLeader(string(dead)) }}
	}
	if m := n.meta; m != nil && m.raft != nil {
		self := raft.ServerID(n.id)
		out[metaGroupName] = raftGroup{
			view:   func(now time.Time) (raftutil.FollowerView, bool) { return raftutil.ViewOf(m.raft, now), true },
			voters: func() ([]raft.Server, error) { return raftutil.Voters(m.raft) },
			stand:  func() error { return raftutil.StandNow(m.raft, m.trans, self) },
			standForDead: func(dead raft.ServerID) (bool, error) {
				return raftutil.StandForDeadLeader(m.raft, m.trans, self, dead)
			},
		}
	}
	return out
}

// silenceView is one group's FollowerView on the wire.
type silenceView struct {
	Follower  bool   `json:"follower"`
	Leader    string `json:"leader"`
	SilenceMS int64  `json:"silence_ms"`
	LastIndex uint64 `json:"last_index"`
}

func toSilenceView(v raftutil.FollowerView) silenceView {
	return silenceView{Follower: v.Follower, Leader: string(v.Leader), SilenceMS: v.Silence.Milliseconds(), LastIndex: v.LastIndex}
}

// serveSilence answers a peer's silence question: the views of the named
// groups this node has (unknown names are left out).
func (n *Node) serveSilence(w http.ResponseWriter, r *http.Request) {
	var q struct {
		Groups []string `json:"groups"`
	}
	body := http.MaxBytesReader(w, r.Body, silenceMaxBytes)
	if err := json.NewDecoder(body).Decode(&q); err != nil {
		http.Error(w, "silence question: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(q.Groups) > silenceMaxGroups {
		http.Error(w, fmt.Sprintf("silence question: %d groups, at most %d", len(q.Groups), silenceMaxGroups), http.StatusBadRequest)
		return
	}
	groups := n.raftGroups()
	now := time.Now()
	out := make(map[string]silenceView, len(q.Groups))
	for _, name := range q.Groups {
		if g, ok := groups[name]; ok {
			if v, ok := g.view(now); ok {
				out[name] = toSilenceView(v)
			}
		}
	}
	writeJSON(w, map[string]any{"groups": out})
}

// runSilenceCheck runs the silent-leader check until the node stops.
func (n *Node) runSilenceCheck() {
	after := n.cfg.SilentLeaderAfter
	if after < 0 {
		return
	}
	if after == 0 {
		after = n.cfg.Partition.Raft.HeartbeatTimeout
	}
	if after <= 0 {
		after = partition.DefaultConfig().Raft.HeartbeatTimeout
	}
	ctx, cancel := n.stopContext()
	defer cancel()
	stood := map[string]time.Time{}
	tick := time.NewTicker(silenceCheckEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n.checkSilence(ctx, after, stood, time.Now())
	}
}

// silentGroup is a group whose leader this node has not heard from.
type silentGroup struct {
	name   string
	g      raftGroup
	leader raft.ServerID
	self   raftutil.FollowerView
	voters []raft.Server
}

// checkSilence is one round of the silent-leader check.
func (n *Node) checkSilence(ctx context.Context, after time.Duration, stood map[string]time.Time, now time.Time) {
	self := raft.ServerID(n.id)
	for name, at := range stood {
		if now.Sub(at) > silenceStandAgain {
			delete(stood, name)
		}
	}
	var silent []silentGroup
	ask := map[raft.ServerAddress][]string{} // peer -> groups to ask it about
	for name, g := range n.raftGroups() {
		if _, recently := stood[name]; recently {
			continue
		}
		v, ok := g.view(now)
		if !ok || !v.Follower || v.Leader == self || !v.HeardLeader || v.Silence < after {
			continue
		}
		voters, err := g.voters()
		if err != nil {
			continue
		}
		sg := silentGroup{name: name, g: g, leader: v.Leader, self: v, voters: voters}
		isVoter := false
		for _, s := range voters {
			switch s.ID {
			case self:
				isVoter = true
			case v.Leader:
			default:
				ask[s.Address] = append(ask[s.Address], name)
			}
		}
		if isVoter {
			silent = append(silent, sg)
		}
	}
	if len(silent) == 0 {
		return
	}
	answers := n.askSilence(ctx, ask)
	for _, sg := range silent {
		if n.standIfSilentToMajority(sg, after, answers) {
			stood[sg.name] = now
		}
	}
}

// askSilence asks each peer about its groups, concurrently, and returns the
// answers by peer; a peer that did not answer in time is missing.
func (n *Node) askSilence(ctx context.Context, ask map[raft.ServerAddress][]string) map[raft.ServerAddress]map[string]silenceView {
	var (
		mu  sync.Mutex
		out = map[raft.ServerAddress]map[string]silenceView{}
		wg  sync.WaitGroup
	)
	for addr, groups := range ask {
		wg.Add(1)
		go func() {
			defer wg.Done()
			actx, cancel := context.WithTimeout(ctx, silenceAskTimeout)
			defer cancel()
			views, err := n.askSilenceOf(actx, addr, groups)
			if err != nil {
				n.logger.Debug("silence question", "peer", addr, "error", err)
				return
			}
			mu.Lock()
			out[addr] = views
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (n *Node) askSilenceOf(ctx context.Context, addr raft.ServerAddress, groups []string) (map[string]silenceView, error) {
	body, err := json.Marshal(map[string][]string{"groups": groups})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, peerURL(string(addr), silencePath), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.peerClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("silence question: %s", resp.Status)
	}
	var a struct {
		Groups map[string]silenceView `json:"groups"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, silenceMaxBytes)).Decode(&a); err != nil {
		return nil, fmt.Errorf("silence answer: %w", err)
	}
	return a.Groups, nil
}

// standIfSilentToMajority decides one group: it stands (and reports true)
// when a majority of the voters has not heard from the leader for after
// and this node has the most complete log among them.
func (n *Node) standIfSilentToMajority(sg silentGroup, after time.Duration, answers map[raft.ServerAddress]map[string]silenceView) bool {
	self := raft.ServerID(n.id)
	agree := []raftutil.Candidate{{ID: self, LastIndex: sg.self.LastIndex}}
	for _, s := range sg.voters {
		if s.ID == self || (sg.leader != "" && s.ID == sg.leader) {
			continue
		}
		v, ok := answers[s.Address][sg.name]
		if !ok || v.Leader == string(s.ID) || time.Duration(v.SilenceMS)*time.Millisecond < after {
			continue // not asked, not answering, leading, or hearing a leader
		}
		agree = append(agree, raftutil.Candidate{ID: s.ID, LastIndex: v.LastIndex})
	}
	if len(agree) < len(sg.voters)/2+1 {
		return false
	}
	if raftutil.MostComplete(agree) != self {
		return false
	}
	if err := sg.g.stand(); err != nil {
		n.logger.Warn("stand for election", "group", sg.name, "silent_leader", sg.leader, "error", err)
		return false
	}
	n.metrics.fastElections.Inc()
	n.logger.Info("leader silent to a majority: standing for election", "group", sg.name, "silent_leader", sg.leader, "voters_agreeing", len(agree))
	return true
}
