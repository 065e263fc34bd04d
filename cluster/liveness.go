package cluster

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	"github.com/skiff-mq/skiff/internal/raftutil"
)

// Fast failover when a peer's process dies.
//
// Raft alone notices a dead leader by the silence of its heartbeats: 1-2.4 s
// at the default 800 ms heartbeat timeout, before the election even starts.
// A process that dies (crash, OOM kill, SIGKILL) is visible much sooner: its
// kernel resets every connection it had and its port refuses new ones. So
// every node holds one long-lived request open on each live peer's peer
// channel (GET /internal/v1/liveness, answered with headers and then held
// until that peer stops). When one breaks, the node dials the peer once;
// only a refused connection or a name that no longer resolves counts as
// "gone". A timeout does not: a paused or cut-off peer may be alive, and
// that is what Raft's own timers and pre-vote are for. For a gone peer,
// every local Raft group (partitions and meta) that it led and whose
// successor is this node (the voter with the most complete log, see
// peerGone) stands for election at once (raftutil.StandForDeadLeader).
const (
	livenessPath = "/internal/v1/liveness"
	// livenessProbeTimeout bounds the dial that tells a dead process (refused
	// at once) from a live one.
	livenessProbeTimeout = 300 * time.Millisecond
	// livenessArmed is how long after a stream broke its peer is still
	// probed: a graceful stop closes the stream before it closes the port.
	livenessArmed    = 5 * time.Second
	livenessRetryMin = 100 * time.Millisecond
	livenessRetryMax = 2 * time.Second
	// livenessRefresh is how often the set of watched peers follows gossip.
	livenessRefresh = time.Second
)

// serveLiveness answers with headers and holds the request until the caller
// goes away or this node stops; it never writes a body.
func (n *Node) serveLiveness(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	select {
	case <-r.Context().Done():
	case <-n.stop:
	}
}

// runLiveness keeps a watcher on every live peer gossip knows and the
// metadata has an address for, until the node stops.
func (n *Node) runLiveness() {
	ctx, cancel := n.stopContext()
	defer cancel()
	type watched struct {
		addr   string
		cancel context.CancelFunc
	}
	watching := map[string]watched{}
	var wg sync.WaitGroup
	defer func() {
		for _, w := range watching {
			w.cancel()
		}
		wg.Wait()
	}()
	tick := time.NewTicker(livenessRefresh)
	defer tick.Stop()
	for {
		want := map[string]string{}
		st := n.meta.fsm.State()
		for _, m := range n.members.Alive() {
			if b, ok := st.Brokers[m.Meta.ID]; ok && m.Meta.ID != n.id && b.RaftAddr != "" {
				want[m.Meta.ID] = b.RaftAddr
			}
		}
		for id, w := range watching {
			if want[id] != w.addr {
				w.cancel()
				delete(watching, id)
			}
		}
		for id, addr := range want {
			if _, ok := watching[id]; ok {
				continue
			}
			wctx, wcancel := context.WithCancel(ctx)
			watching[id] = watched{addr: addr, cancel: wcancel}
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.watchPeer(wctx, id, addr)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// watchPeer holds the liveness request to one peer and reacts when it
// breaks, until ctx ends.
func (n *Node) watchPeer(ctx context.Context, id, addr string) {
	backoff := livenessRetryMin
	var armedUntil time.Time
	for {
		up := n.holdLiveness(ctx, id, addr)
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		if up {
			armedUntil = now.Add(livenessArmed)
			backoff = livenessRetryMin
		}
		if now.Before(armedUntil) && n.peerProcessGone(ctx, addr) {
			armedUntil = time.Time{}
			n.peerGone(id)
		}
		// While armed, probe at the short interval: a crash is proven only
		// once the port refuses, which after an in-process stop or a slow
		// exit can trail the stream's break by a second or more.
		wait := backoff
		if time.Now().Before(armedUntil) {
			wait = livenessRetryMin
		} else {
			backoff = min(2*backoff, livenessRetryMax)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// holdLiveness opens the liveness request and blocks until it ends. It
// reports whether the peer answered it (the stream was up).
func (n *Node) holdLiveness(ctx context.Context, id, addr string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, peerURL(addr, livenessPath), nil)
	if err != nil {
		return false
	}
	resp, err := n.livenessClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	// A pointer of its own per stream: a watcher replaced since must not
	// clear its successor's mark.
	since := time.Now()
	n.livenessUp.Store(id, &since)
	defer n.livenessUp.CompareAndDelete(id, &since)
	_, _ = io.Copy(io.Discard, resp.Body)
	return true
}

// peerProcessGone dials the peer's Raft port once: true only when nothing
// listens there any more (refused, or its name or route is gone).
func (n *Node) peerProcessGone(ctx context.Context, addr string) bool {
	pctx, cancel := context.WithTimeout(ctx, livenessProbeTimeout)
	defer cancel()
	c, err := n.mux.Dial(pctx, peerGroup, addr)
	if err == nil {
		c.Close()
		return false
	}
	return processGone(err)
}

// upFor reports whether this node's liveness request to peer id has been
// open for at least d. A node (re)started moments ago opens its replicas
// one after another and catches each up; leadership handed to it then
// (the preferred-leader handover) stalls writes on a node busy starting
// (compose cluster under load: a restarted node opened its ~50 replicas
// over 7 s, and the partitions handed to it 3 s after its start went
// unanswered for seconds). Kafka waits minutes before a preferred-leader
// election for the same reason.
func (n *Node) upFor(id string, d time.Duration) bool {
	v, ok := n.livenessUp.Load(id)
	return ok && time.Since(*v.(*time.Time)) >= d
}

// processGone tells a dial error that proves no process listens at the
// address from one that may be the network's or a slow peer's.
func processGone(err error) bool {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return true
	case errors.As(err, &dnsErr):
		return dnsErr.IsNotFound
	}
	return false
}

// peerGone makes this node stand for election in every group that the gone
// node led and whose successor this node is: the voter the others will
// grant, the one with the most complete log (deadLeaderSuccessor). It asks
// the other voters for their logs' ends with the silence question, one
// request per peer for all groups. The lowest id alone, without asking,
// would often pick a voter restarted a moment ago: after a peer's
// failures its leader backs its replication off for up to ~10 s, so that
// voter's log still lags, it loses the vote, and the group waits for the
// silence check or Raft's own timers.
func (n *Node) peerGone(id string) {
	dead := raft.ServerID(id)
	self := raft.ServerID(n.id)
	type ledGroup struct {
		name   string
		g      raftGroup
		self   raftutil.FollowerView
		voters []raft.Server
	}
	var led []ledGroup
	ask := map[raft.ServerAddress][]string{} // peer -> groups to ask it about
	now := time.Now()
	for name, g := range n.raftGroups() {
		v, ok := g.view(now)
		if !ok || !v.Follower || v.Leader != dead {
			continue
		}
		voters, err := g.voters()
		if err != nil || !slices.ContainsFunc(voters, func(s raft.Server) bool { return s.ID == self }) {
			continue
		}
		for _, s := range voters {
			if s.ID != self && s.ID != dead {
				ask[s.Address] = append(ask[s.Address], name)
			}
		}
		led = append(led, ledGroup{name: name, g: g, self: v, voters: voters})
	}
	if len(led) == 0 {
		return
	}
	ctx, cancel := n.stopContext()
	defer cancel()
	answers := n.askSilence(ctx, ask)
	var (
		mu     sync.Mutex
		stood  []string
		failed int
		wg     sync.WaitGroup
	)
	for _, lg := range led {
		if deadLeaderSuccessor(lg.name, self, lg.self.LastIndex, dead, lg.voters, answers) != self {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := lg.g.standForDead(dead)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				failed++
				n.logger.Warn("stand for election", "group", lg.name, "dead_leader", id, "error", err)
			case ok:
				stood = append(stood, lg.name)
			}
		}()
	}
	wg.Wait()
	n.metrics.fastElections.Add(float64(len(stood)))
	n.logger.Info("peer process gone: standing for election where it led", "node", id, "groups", len(stood), "failed", failed)
}

// deadLeaderSuccessor picks who stands in group after its leader dead died:
// among this node (self, whose log ends at selfIndex) and the other voters
// that answered the silence question, the one with the most complete log.
// A voter that did not answer in time is left out (a voter that cannot be
// asked is unlikely to win an election quickly, and leaving it out keeps
// the pick the same on every node that hears the same answers). None is
// picked once any voter follows a new leader.
func deadLeaderSuccessor(group string, self raft.ServerID, selfIndex uint64, dead raft.ServerID, voters []raft.Server, answers map[raft.ServerAddress]map[string]silenceView) raft.ServerID {
	cands := []raftutil.Candidate{{ID: self, LastIndex: selfIndex}}
	for _, s := range voters {
		if s.ID == self || s.ID == dead {
			continue
		}
		v, ok := answers[s.Address][group]
		if !ok {
			continue
		}
		if v.Leader != "" && v.Leader != string(dead) {
			return ""
		}
		cands = append(cands, raftutil.Candidate{ID: s.ID, LastIndex: v.LastIndex})
	}
	return raftutil.MostComplete(cands)
}
