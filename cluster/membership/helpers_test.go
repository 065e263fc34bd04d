package membership

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

var verboseLog = flag.Bool("membership.log", false, "print membership and memberlist logs to stderr")

// testLogger discards by default. It never writes through t.Log: memberlist's
// goroutines outlive Shutdown and would log after the test ended.
func testLogger(id string) *slog.Logger {
	if !*verboseLog {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test-node", id)
}

// testMeta gives each node distinct, recognisable addresses.
func testMeta(id string, n int) Meta {
	return Meta{
		ID:       id,
		GRPCAddr: fmt.Sprintf("127.0.0.1:%d", 19000+n),
		RaftAddr: fmt.Sprintf("127.0.0.1:%d", 19100+n),
		HTTPAddr: fmt.Sprintf("127.0.0.1:%d", 19200+n),
		Rack:     "rack-" + id,
	}
}

// testConfig is a fast-gossip config on a loopback port chosen by the kernel.
func testConfig(meta Meta, join ...string) Config {
	cfg := DefaultConfig()
	cfg.Meta = meta
	cfg.BindAddr = "127.0.0.1:0"
	cfg.Join = join
	cfg.Profile = ProfileLocal
	cfg.JoinRetryInterval = 100 * time.Millisecond
	cfg.DeadNodeReclaimTime = time.Second
	cfg.Logger = testLogger(meta.ID)
	return cfg
}

// start starts a node and shuts it down at the end of the test.
func start(t *testing.T, cfg Config) *Membership {
	t.Helper()
	m, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start(%s): %v", cfg.Meta.ID, err)
	}
	t.Cleanup(func() {
		if err := m.Shutdown(); err != nil {
			t.Errorf("Shutdown(%s): %v", cfg.Meta.ID, err)
		}
	})
	return m
}

// startCluster starts n nodes, node 0 first and the others joining it, and
// waits until every node sees all n alive.
func startCluster(t *testing.T, prefix string, n int, tweak func(*Config)) []*Membership {
	t.Helper()
	nodes := make([]*Membership, n)
	for i := range nodes {
		cfg := testConfig(testMeta(fmt.Sprintf("%s%d", prefix, i), i))
		if i > 0 {
			cfg.Join = []string{nodes[0].Addr()}
		}
		if tweak != nil {
			tweak(&cfg)
		}
		nodes[i] = start(t, cfg)
	}
	for _, m := range nodes {
		waitView(t, m, 10*time.Second, fmt.Sprintf("%d alive", n), func([]Member) bool { return len(m.Alive()) == n })
	}
	return nodes
}

// reservePorts returns n loopback ports free for both TCP and UDP right now,
// so tests can hand out addresses of nodes that have not started yet.
func reservePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		ports = append(ports, port)
	}
	return ports
}

// waitView waits, with a deadline, until cond holds for m's member list,
// re-checking on every membership change.
func waitView(t *testing.T, m *Membership, within time.Duration, what string, cond func([]Member) bool) []Member {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		changed := m.Changed()
		members := m.Members()
		if cond(members) {
			return members
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%s: not within %v: %s sees %v", what, within, m.Local().Meta.ID, describe(members))
		}
	}
}

// member returns id's entry in members.
func member(members []Member, id string) (Member, bool) {
	for _, mb := range members {
		if mb.Meta.ID == id {
			return mb, true
		}
	}
	return Member{}, false
}

func hasState(id string, s State) func([]Member) bool {
	return func(ms []Member) bool {
		mb, ok := member(ms, id)
		return ok && mb.State == s
	}
}

// nextEvent returns the first event on ch that matches, skipping others.
func nextEvent(t *testing.T, ch <-chan Event, within time.Duration, what string, match func(Event) bool) Event {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("%s: subscription closed", what)
			}
			if match(ev) {
				return ev
			}
		case <-deadline.C:
			t.Fatalf("%s: no matching event within %v", what, within)
		}
	}
}

func eventIs(typ EventType, id string) func(Event) bool {
	return func(ev Event) bool { return ev.Type == typ && ev.Member.Meta.ID == id }
}

func describe(members []Member) string {
	s := ""
	for _, mb := range members {
		s += fmt.Sprintf("[%s %s %s] ", mb.Meta.ID, mb.Addr, mb.State)
	}
	return s
}

func withMetaVersion(m Meta) Meta {
	m.Version = MetaVersion
	return m
}
