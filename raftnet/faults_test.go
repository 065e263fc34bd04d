package raftnet

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// faultNode is one in-process node of a FaultNetwork test: a Mux and one
// group's StreamLayer on it.
type faultNode struct {
	mux   *Mux
	layer raft.StreamLayer
}

func newFaultNodes(t testing.TB, fn *FaultNetwork, ids ...string) map[string]faultNode {
	t.Helper()
	nodes := make(map[string]faultNode)
	for _, id := range ids {
		m, err := fn.NewMux(id, DefaultMuxConfig())
		if err != nil {
			t.Fatalf("NewMux(%s): %v", id, err)
		}
		t.Cleanup(func() { m.Close() })
		nodes[id] = faultNode{mux: m, layer: mustLayer(t, m, "g")}
	}
	// Heal first at cleanup (cleanups run last-in first-out), so nothing
	// is left stalled while the Muxes close.
	t.Cleanup(fn.Heal)
	return nodes
}

func TestFaultNetworkLinkState(t *testing.T) {
	fn := NewFaultNetwork()
	newFaultNodes(t, fn, "a", "b", "c")
	type links struct{ ab, ac, bc bool }
	state := func() links {
		return links{fn.Connected("a", "b"), fn.Connected("a", "c"), fn.Connected("b", "c")}
	}
	steps := []struct {
		do   func()
		desc string
		want links
	}{
		{func() {}, "all up at start", links{true, true, true}},
		{func() { fn.Partition("a", "b") }, "Partition(a,b)", links{false, true, true}},
		{func() { fn.Partition("b", "a") }, "Partition is symmetric and idempotent", links{false, true, true}},
		{fn.Heal, "Heal", links{true, true, true}},
		{func() { fn.Isolate("a") }, "Isolate(a)", links{false, false, true}},
		{func() { fn.HealPair("c", "a") }, "HealPair(c,a)", links{false, true, true}},
		{func() { fn.Partition("b", "c") }, "Partition(b,c) on top", links{false, true, false}},
		{fn.Heal, "Heal again", links{true, true, true}},
	}
	for _, s := range steps {
		s.do()
		if got := state(); got != s.want {
			t.Fatalf("after %s: links %+v, want %+v", s.desc, got, s.want)
		}
	}
}

func TestPartitionStallsOpenConnectionsUntilHeal(t *testing.T) {
	fn := NewFaultNetwork()
	n := newFaultNodes(t, fn, "a", "b", "c")
	ab, ba := dialPair(t, n["a"].layer, n["b"].layer)
	ac, ca := dialPair(t, n["a"].layer, n["c"].layer)
	exchange(t, ab, ba, "before")

	fn.Partition("a", "b")

	// Both directions stall until the connection's deadline: a timeout,
	// as on a real partition, not a reset.
	for _, c := range []net.Conn{ab, ba} {
		c.SetDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) || !isTimeout(err) {
			t.Fatalf("Write across the cut = %v, want a timeout", err)
		}
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) || !isTimeout(err) {
			t.Fatalf("Read across the cut = %v, want a timeout", err)
		}
		c.SetDeadline(time.Time{})
	}
	exchange(t, ac, ca, "a and c still talk")

	// A write blocked by the cut goes through once the link heals.
	done := make(chan error, 1)
	go func() {
		_, err := ab.Write([]byte("after"))
		done <- err
	}()
	fn.Heal()
	ba.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 5)
	if _, err := io.ReadFull(ba, got); err != nil || string(got) != "after" {
		t.Fatalf("after Heal read %q, %v; want %q", got, err, "after")
	}
	if err := <-done; err != nil {
		t.Fatalf("blocked Write: %v", err)
	}
}

func TestPartitionHidesPeerCloseUntilHeal(t *testing.T) {
	fn := NewFaultNetwork()
	n := newFaultNodes(t, fn, "a", "b")
	ab, ba := dialPair(t, n["a"].layer, n["b"].layer)

	// b is already waiting in Read when the cut and then a's FIN happen:
	// the FIN reaches b's socket, but must not show through the cut.
	readDone := make(chan error, 1)
	go func() {
		_, err := ba.Read(make([]byte, 1))
		readDone <- err
	}()
	fn.Partition("a", "b")
	ab.Close()
	ba.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	select {
	case err := <-readDone:
		if !isTimeout(err) {
			t.Fatalf("Read across the cut = %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read ignored its deadline")
	}

	fn.Heal()
	ba.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := ba.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("Read after Heal = %v, want EOF", err)
	}
}

func TestDialAcrossACutHangsUntilTimeoutOrHeal(t *testing.T) {
	fn := NewFaultNetwork()
	n := newFaultNodes(t, fn, "a", "b")
	addrB := raft.ServerAddress(n["b"].mux.Addr().String())
	fn.Isolate("b")

	const timeout = 100 * time.Millisecond
	start := time.Now()
	_, err := n["a"].layer.Dial(addrB, timeout)
	if elapsed := time.Since(start); err == nil || !isTimeout(err) || elapsed < timeout {
		t.Fatalf("Dial across a cut = %v after %v; want a timeout after >= %v", err, elapsed, timeout)
	}

	// A dial waiting when the link heals connects, like a retried SYN.
	accepted := acceptAsync(n["b"].layer)
	dialed := make(chan error, 1)
	go func() {
		c, err := n["a"].layer.Dial(addrB, 10*time.Second)
		if err == nil {
			c.Close()
		}
		dialed <- err
	}()
	fn.Heal()
	if err := <-dialed; err != nil {
		t.Fatalf("Dial during Heal: %v", err)
	}
	awaitAccept(t, accepted, 5*time.Second)
}

func TestDelayAddsOneWayLatencyAndKeepsOrderAndThroughput(t *testing.T) {
	fn := NewFaultNetwork()
	n := newFaultNodes(t, fn, "a", "b")
	ab, ba := dialPair(t, n["a"].layer, n["b"].layer)
	const delay = 50 * time.Millisecond
	const msgs = 100
	fn.SetDelay("a", "b", delay)

	start := time.Now()
	for i := range msgs {
		if _, err := fmt.Fprintf(ab, "%04d", i); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}

	ba.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4)
	for i := range msgs {
		if _, err := io.ReadFull(ba, buf); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if i == 0 {
			if got := time.Since(start); got < delay {
				t.Fatalf("first bytes arrived after %v, want >= %v", got, delay)
			}
		}
		if want := fmt.Sprintf("%04d", i); string(buf) != want {
			t.Fatalf("message %d is %q, want %q: order lost", i, buf, want)
		}
	}
	// Serialising one write per delay would take msgs*delay = 5s; it takes
	// about one delay. The bound is loose on purpose (shared CI cores).
	if total := time.Since(start); total > msgs*delay/2 {
		t.Errorf("%d messages took %v over a %v link; the delay serialises throughput", msgs, total, delay)
	}

	// The reverse direction is not delayed; and a delay can be lifted.
	exchange(t, ba, ab, "reply")
	fn.SetDelay("a", "b", 0)
	exchange(t, ab, ba, "undelayed")
}

func TestDelayedRoundTripIsAtLeastBothDelays(t *testing.T) {
	fn := NewFaultNetwork()
	n := newFaultNodes(t, fn, "a", "b")
	ab, ba := dialPair(t, n["a"].layer, n["b"].layer)
	const delay = 50 * time.Millisecond
	fn.SetDelay("a", "b", delay)
	fn.SetDelay("b", "a", delay)

	echoed := make(chan error, 1)
	go func() {
		buf := make([]byte, 4)
		_, err := io.ReadFull(ba, buf)
		if err == nil {
			_, err = ba.Write(buf)
		}
		echoed <- err
	}()
	start := time.Now()
	if _, err := ab.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	ab.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(ab, buf); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	rtt := time.Since(start)
	if err := <-echoed; err != nil {
		t.Fatalf("echo: %v", err)
	}
	if rtt < 2*delay {
		t.Fatalf("round trip %v over a link delayed %v each way, want >= %v", rtt, delay, 2*delay)
	}
	t.Logf("round trip %v with %v each way", rtt, delay)
}

func TestDelayedWriteReturnsAtOnceAndCloseDiscardsIt(t *testing.T) {
	fn := NewFaultNetwork()
	n := newFaultNodes(t, fn, "a", "b")
	ab, _ := dialPair(t, n["a"].layer, n["b"].layer)
	fn.SetDelay("a", "b", time.Hour)
	// Returns although its bytes may only leave in an hour: a Write never
	// waits for the delay, which is what keeps a delayed link's throughput.
	if _, err := ab.Write([]byte("never delivered")); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- ab.Close() }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a queued delayed write")
	}
	if _, err := ab.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close = %v, want net.ErrClosed", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
