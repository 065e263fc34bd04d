package raftnet

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// waitFor polls cond until it holds, failing the test after timeout. The
// sleep is a polling interval, never an assertion.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newTestMux serves a Mux for node on a fresh loopback port, closed at the
// end of the test.
func newTestMux(t testing.TB, node string, mutate func(*MuxConfig)) *Mux {
	t.Helper()
	cfg := DefaultMuxConfig()
	cfg.NodeID = node
	if mutate != nil {
		mutate(&cfg)
	}
	m, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func mustLayer(t testing.TB, m *Mux, group string) raft.StreamLayer {
	t.Helper()
	l, err := m.StreamLayer(group)
	if err != nil {
		t.Fatalf("StreamLayer(%q): %v", group, err)
	}
	return l
}

type acceptResult struct {
	conn net.Conn
	err  error
}

// acceptAsync runs one Accept in the background.
func acceptAsync(l net.Listener) <-chan acceptResult {
	ch := make(chan acceptResult, 1)
	go func() {
		c, err := l.Accept()
		ch <- acceptResult{c, err}
	}()
	return ch
}

// awaitAccept waits for a result of acceptAsync.
func awaitAccept(t testing.TB, ch <-chan acceptResult, timeout time.Duration) net.Conn {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		t.Cleanup(func() { r.conn.Close() })
		return r.conn
	case <-time.After(timeout):
		t.Fatalf("no connection accepted within %v", timeout)
		return nil
	}
}

// dialPair dials from's group on to's Mux and returns both ends.
func dialPair(t testing.TB, from, to raft.StreamLayer) (dialed, accepted net.Conn) {
	t.Helper()
	ch := acceptAsync(to)
	c, err := from.Dial(raft.ServerAddress(to.Addr().String()), 2*time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, awaitAccept(t, ch, 2*time.Second)
}

// expectPeerClosed asserts that the other end closed c: a Read returns
// EOF or a reset before timeout, and no data.
func expectPeerClosed(t testing.TB, c net.Conn, timeout time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || !(errors.Is(err, io.EOF) || isReset(err)) {
		t.Fatalf("Read = %d, %v; want the peer to have closed the connection", n, err)
	}
}

// expectOpen asserts that nothing arrives on c for a moment and it is not
// closed: a short Read times out.
func expectOpen(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	defer c.SetReadDeadline(time.Time{})
	n, err := c.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %d, %v; want a timeout on an open, idle connection", n, err)
	}
}

// exchange writes msg on w and checks it arrives on r.
func exchange(t testing.TB, w, r net.Conn, msg string) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write([]byte(msg))
		errc <- err
	}()
	r.SetReadDeadline(time.Now().Add(2 * time.Second))
	defer r.SetReadDeadline(time.Time{})
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("read %q: %v", msg, err)
	}
	if string(got) != msg {
		t.Fatalf("read %q, want %q", got, msg)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
