package membership

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// failureBound is how long the "local" profile may take to declare a crashed
// node dead here: ~3-6s measured, with room for -race on 2 shared CPUs.
const failureBound = 30 * time.Second

func TestNodesStartedInReverseOrderFormOneCluster(t *testing.T) {
	t.Parallel()
	ports := reservePorts(t, 3)
	addrs := make([]string, 3)
	metas := make([]Meta, 3)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", ports[i])
		metas[i] = testMeta(fmt.Sprintf("rev%d", i), i)
	}
	nodes := make([]*Membership, 3)
	for i := 2; i >= 0; i-- {
		// Every node gets the full seed list, its own address included, and
		// the first nodes' seeds are not listening yet.
		cfg := testConfig(metas[i], addrs...)
		cfg.BindAddr = addrs[i]
		nodes[i] = start(t, cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for i, m := range nodes {
		if err := m.WaitForMembers(ctx, 3); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		got := m.Alive()
		if len(got) != 3 {
			t.Fatalf("node %d sees %s", i, describe(got))
		}
		for j, mb := range got { // sorted by ID: rev0, rev1, rev2
			if mb.Meta != withMetaVersion(metas[j]) || mb.Addr != addrs[j] || mb.State != StateAlive {
				t.Errorf("node %d sees %+v, want meta %+v at %s", i, mb, metas[j], addrs[j])
			}
		}
	}
}

// TestCrashIsFailedAndLeaveIsLeft follows one cluster through joins, a crash
// and a graceful leave, as seen by node 0's subscribers.
func TestCrashIsFailedAndLeaveIsLeft(t *testing.T) {
	t.Parallel()
	a := start(t, testConfig(testMeta("life0", 0)))
	events, unsubscribe := a.Subscribe()
	defer unsubscribe()
	_, _ = a.Subscribe() // never read: must not hold anything up

	b := start(t, testConfig(testMeta("life1", 1), a.Addr()))
	c := start(t, testConfig(testMeta("life2", 2), a.Addr()))
	// The two joins may be seen in either order.
	joined := map[string]bool{}
	for len(joined) < 2 {
		ev := nextEvent(t, events, 10*time.Second, "life1 and life2 joined", func(ev Event) bool {
			return ev.Type == EventJoined && (ev.Member.Meta.ID == "life1" || ev.Member.Meta.ID == "life2")
		})
		if ev.Member.State != StateAlive || ev.Member.Meta.Rack != "rack-"+ev.Member.Meta.ID {
			t.Fatalf("joined event %+v", ev)
		}
		joined[ev.Member.Meta.ID] = true
	}
	waitView(t, c, 10*time.Second, "c sees 3", func([]Member) bool { return len(c.Alive()) == 3 })

	crashed := time.Now()
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, events, failureBound, "life2 failed", eventIs(EventFailed, "life2"))
	t.Logf("crash detected by a after %v", time.Since(crashed).Round(time.Millisecond))
	if ev.Member.State != StateDead || ev.Member.Since.Before(crashed) {
		t.Fatalf("failed event %+v", ev)
	}
	waitView(t, b, failureBound, "b sees life2 dead", hasState("life2", StateDead))

	// Dead members stay listed with the time they died.
	mb, ok := member(a.Members(), "life2")
	if !ok || mb.State != StateDead || !mb.Since.Equal(ev.Member.Since) || mb.Addr != c.Addr() {
		t.Fatalf("a lists life2 as %+v (ok=%v)", mb, ok)
	}

	leaveCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	leaving := time.Now()
	if err := b.Leave(leaveCtx); err != nil {
		t.Fatal(err)
	}
	// memberlist's leave is one broadcast; under load its UDP packets can
	// all be lost, and a then learns of the leave only when its suspicion
	// of b runs out (up to about 20 s with nobody left to confirm it).
	ev = nextEvent(t, events, 30*time.Second, "life1 left", func(ev Event) bool { return ev.Member.Meta.ID == "life1" })
	if ev.Type != EventLeft || ev.Member.State != StateLeft {
		t.Fatalf("graceful leave seen as %v/%v, want left", ev.Type, ev.Member.State)
	}
	t.Logf("leave seen by a after %v", time.Since(leaving).Round(time.Millisecond))

	alive := a.Alive()
	if len(alive) != 1 || alive[0].Meta.ID != "life0" {
		t.Fatalf("a.Alive() = %s", describe(alive))
	}
	if all := a.Members(); len(all) != 3 {
		t.Fatalf("a.Members() = %s, want dead and left members kept", describe(all))
	}
}

func TestRestartedNodeReclaimsItsNameAtANewAddress(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, "re", 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	oldAddr := c.Addr()

	// Crash c and restart it at once on a new port with new meta, before
	// anyone has noticed the crash: peers first reject the new address.
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	crashed := time.Now()
	meta := testMeta("re2", 2)
	meta.GRPCAddr = "127.0.0.1:29999"
	c2 := start(t, testConfig(meta, a.Addr()))
	if c2.Addr() == oldAddr {
		t.Fatalf("restart got the same address %s", oldAddr)
	}

	for _, m := range []*Membership{a, b} {
		waitView(t, m, failureBound, "peer sees re2 back at its new address", func(ms []Member) bool {
			mb, ok := member(ms, "re2")
			return ok && mb.State == StateAlive && mb.Addr == c2.Addr() && mb.Meta == withMetaVersion(meta)
		})
		mb, _ := member(m.Members(), "re2")
		if !mb.Since.After(crashed) {
			t.Errorf("%s: re2 alive since %v, before the crash at %v", m.Local().Meta.ID, mb.Since, crashed)
		}
	}
	t.Logf("restarted node accepted by both peers %v after the crash", time.Since(crashed).Round(time.Millisecond))
	waitView(t, c2, 10*time.Second, "restarted node sees 3", func([]Member) bool { return len(c2.Alive()) == 3 })
}

func TestUpdateMetaPropagates(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, "up", 2, nil)
	a, b := nodes[0], nodes[1]
	before, _ := member(a.Members(), "up1")
	events, unsubscribe := a.Subscribe()
	defer unsubscribe()

	meta := testMeta("up1", 1)
	meta.HTTPAddr = "127.0.0.1:28080"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.UpdateMeta(ctx, meta); err != nil {
		t.Fatal(err)
	}
	if got := b.Local().Meta; got != withMetaVersion(meta) {
		t.Fatalf("b.Local().Meta = %+v", got)
	}
	ev := nextEvent(t, events, 10*time.Second, "update seen", eventIs(EventUpdated, "up1"))
	if ev.Member.Meta != withMetaVersion(meta) {
		t.Fatalf("updated event carries %+v", ev.Member.Meta)
	}
	after, _ := member(a.Members(), "up1")
	if after.Meta != withMetaVersion(meta) || !after.Since.Equal(before.Since) || after.State != StateAlive {
		t.Fatalf("after update a lists %+v (before %+v)", after, before)
	}
}

func TestUpdateMetaRejectsInvalidMeta(t *testing.T) {
	t.Parallel()
	m := start(t, testConfig(testMeta("um", 0)))
	ctx := context.Background()
	other := testMeta("someone-else", 0)
	if err := m.UpdateMeta(ctx, other); !isField(err, "Meta.ID") {
		t.Errorf("changing the id: %v", err)
	}
	big := testMeta("um", 0)
	big.Rack = string(make([]byte, 600))
	if err := m.UpdateMeta(ctx, big); !isField(err, "Meta") {
		t.Errorf("oversized meta: %v", err)
	}
	if got := m.Local().Meta; got != withMetaVersion(testMeta("um", 0)) {
		t.Errorf("a rejected update changed the meta to %+v", got)
	}
}

// TestFailureDetectionTime measures how long each profile takes to declare a
// crashed member of a 3-node cluster dead.
func TestFailureDetectionTime(t *testing.T) {
	if testing.Short() {
		t.Skip("measures real failure-detection timeouts")
	}
	t.Parallel()
	for _, profile := range []string{ProfileLocal, ProfileLAN} {
		t.Run(profile, func(t *testing.T) {
			t.Parallel()
			nodes := startCluster(t, "fd-"+profile+"-", 3, func(c *Config) { c.Profile = profile })
			crashed := time.Now()
			if err := nodes[2].Shutdown(); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			took := make([]time.Duration, 2)
			for i, m := range nodes[:2] {
				wg.Go(func() {
					deadline := time.After(failureBound)
					for {
						changed := m.Changed()
						if mb, _ := member(m.Members(), nodes[2].Local().Meta.ID); mb.State == StateDead {
							took[i] = mb.Since.Sub(crashed)
							return
						}
						select {
						case <-changed:
						case <-deadline:
							return
						}
					}
				})
			}
			wg.Wait()
			for i, d := range took {
				if d == 0 {
					t.Fatalf("node %d did not see the crash within %v", i, failureBound)
				}
			}
			t.Logf("profile %s: crash declared dead after %v and %v", profile, took[0].Round(time.Millisecond), took[1].Round(time.Millisecond))
		})
	}
}
