package raftnet

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestMuxRoutesEachConnectionToItsGroup(t *testing.T) {
	a := newTestMux(t, "a", nil)
	b := newTestMux(t, "b", nil)
	groups := []string{"meta", "orders/0", "orders/1"}
	const connsPerGroup = 2

	from := map[string]raft.StreamLayer{}
	to := map[string]raft.StreamLayer{}
	for _, g := range groups {
		from[g] = mustLayer(t, a, g)
		to[g] = mustLayer(t, b, g)
	}

	// Each group's acceptor expects only its own group's payload and
	// answers with an ack naming the group: a connection routed to the
	// wrong group fails on either side.
	var wg sync.WaitGroup
	errc := make(chan error, 2*len(groups)*connsPerGroup)
	for _, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range connsPerGroup {
				c, err := to[g].Accept()
				if err != nil {
					errc <- fmt.Errorf("%s: Accept: %w", g, err)
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				want := "payload for " + g
				got := make([]byte, len(want))
				if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
					errc <- fmt.Errorf("%s: accepted conn carried %q (%v), want %q", g, got, err, want)
					return
				}
				if _, err := c.Write([]byte("ack " + g)); err != nil {
					errc <- fmt.Errorf("%s: write ack: %w", g, err)
					return
				}
			}
		}()
	}
	for _, g := range groups {
		for range connsPerGroup {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := from[g].Dial(raft.ServerAddress(b.Addr().String()), 5*time.Second)
				if err != nil {
					errc <- fmt.Errorf("%s: Dial: %w", g, err)
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write([]byte("payload for " + g)); err != nil {
					errc <- fmt.Errorf("%s: write: %w", g, err)
					return
				}
				want := "ack " + g
				got := make([]byte, len(want))
				if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
					errc <- fmt.Errorf("%s: dialed conn got %q (%v), want %q", g, got, err, want)
				}
			}()
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

func TestMuxDropsBadConnectionsWithoutDisturbingOthers(t *testing.T) {
	b := newTestMux(t, "b", func(c *MuxConfig) { c.HeaderTimeout = time.Second })
	good := mustLayer(t, b, "meta")
	a := newTestMux(t, "a", nil)
	dialer := mustLayer(t, a, "meta")

	tests := []struct {
		name string
		send []byte // nil: connect and stay silent
	}{
		{"bad magic", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"unsupported version", []byte("SKRF\x09\x00\x04meta\x00\x01x")},
		{"unknown group", header{group: "nope", node: "x"}.appendTo(nil)},
		{"invalid group name", []byte("SKRF\x01\x00\x03a b\x00\x01x")},
		{"oversized length", []byte("SKRF\x01\xff\xff")},
		{"silent", nil},
		{"partial header then silence", []byte("SKRF\x01\x00\x04me")},
	}
	bad := make([]net.Conn, len(tests))
	for i, tt := range tests {
		c, err := net.Dial("tcp", b.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write(tt.send); err != nil {
			t.Fatalf("%s: write: %v", tt.name, err)
		}
		bad[i] = c
	}

	// While the silent ones still hold their handshake slots, a good
	// connection is routed and carries data.
	d, acc := dialPair(t, dialer, good)
	exchange(t, d, acc, "still fine")
	expectOpen(t, bad[5])

	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectPeerClosed(t, bad[i], 5*time.Second)
		})
	}

	// None of them reached the group: the next Accept gets a new, good one.
	d2, acc2 := dialPair(t, dialer, good)
	exchange(t, d2, acc2, "next")
}

func TestMuxShedsConnectionsBeyondMaxPendingHandshakes(t *testing.T) {
	b := newTestMux(t, "b", func(c *MuxConfig) {
		c.MaxPendingHandshakes = 1
		c.HeaderTimeout = 5 * time.Second
	})
	mustLayer(t, b, "meta")

	silent, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// Once the silent connection holds the only slot, new ones are shed.
	waitFor(t, 5*time.Second, "a connection to be shed", func() bool {
		c, err := net.Dial("tcp", b.Addr().String())
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
	})
	expectOpen(t, silent)
}

func TestMuxCloseUnblocksAcceptAndClosesConnections(t *testing.T) {
	a := newTestMux(t, "a", nil)
	b := newTestMux(t, "b", nil)
	la, lb := mustLayer(t, a, "meta"), mustLayer(t, b, "meta")
	d, acc := dialPair(t, la, lb)
	exchange(t, d, acc, "hello")

	blocked := acceptAsync(lb)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case r := <-blocked:
		if !errors.Is(r.err, net.ErrClosed) {
			t.Fatalf("Accept after Close = %v, %v; want net.ErrClosed", r.conn, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still blocked after Close")
	}
	expectPeerClosed(t, d, 5*time.Second)

	if _, err := b.StreamLayer("other"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("StreamLayer after Close = %v, want net.ErrClosed", err)
	}
	if _, err := lb.Dial(raft.ServerAddress(a.Addr().String()), time.Second); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Dial after Close = %v, want net.ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", b.Addr().String(), time.Second); err == nil {
		t.Fatal("listener still accepts after Close")
	}
}

func TestStreamLayerCloseUnregistersGroupAndClosesItsConnections(t *testing.T) {
	a := newTestMux(t, "a", nil)
	b := newTestMux(t, "b", nil)
	la := mustLayer(t, a, "orders/0")
	lb := mustLayer(t, b, "orders/0")
	other := mustLayer(t, b, "orders/1")
	otherDialer := mustLayer(t, a, "orders/1")

	d, acc := dialPair(t, la, lb)
	od, oacc := dialPair(t, otherDialer, other)
	blocked := acceptAsync(lb)

	if err := lb.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r := <-blocked; !errors.Is(r.err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v; want net.ErrClosed", r.err)
	}
	expectPeerClosed(t, d, 5*time.Second)
	// To the Raft handler reading it, the end of the stream, not an error
	// worth logging.
	if _, err := acc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read on a connection its layer closed = %v, want io.EOF", err)
	}
	exchange(t, od, oacc, "other groups are untouched")

	// A dial to the unregistered group is dropped by the accepting mux.
	c, err := la.Dial(raft.ServerAddress(b.Addr().String()), time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	expectPeerClosed(t, c, 5*time.Second)

	// The name is free again, as for a replica that restarts.
	again := mustLayer(t, b, "orders/0")
	d2, acc2 := dialPair(t, la, again)
	exchange(t, d2, acc2, "second incarnation")
}

func TestStreamLayerRejectsDuplicateAndInvalidNames(t *testing.T) {
	m := newTestMux(t, "a", nil)
	mustLayer(t, m, "meta")
	tests := []struct {
		group string
		want  error
	}{
		{"meta", ErrGroupExists},
		{"", ErrInvalidName},
		{"has space", ErrInvalidName},
		{string(make([]byte, MaxNameLen+1)), ErrInvalidName},
	}
	for _, tt := range tests {
		if _, err := m.StreamLayer(tt.group); !errors.Is(err, tt.want) {
			t.Errorf("StreamLayer(%q) = %v, want %v", truncate(tt.group), err, tt.want)
		}
	}
}

func TestDialFailsWithContext(t *testing.T) {
	m := newTestMux(t, "a", nil)
	l := mustLayer(t, m, "meta")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	_, err = l.Dial(raft.ServerAddress(addr), time.Second)
	if err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}
	for _, want := range []string{`"meta"`, addr} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Dial error %q does not mention %s", err, want)
		}
	}
}
