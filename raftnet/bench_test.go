package raftnet

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkThroughput streams bytes one way over loopback through a plain
// TCP connection and through a Mux connection (and a FaultNetwork one with
// no fault set). After the header the Mux hands Raft the socket itself, so
// the first two should not differ beyond noise.
func BenchmarkThroughput(b *testing.B) {
	pairs := []struct {
		name string
		pair func(testing.TB) (w, r net.Conn)
	}{
		{"tcp", tcpPair},
		{"mux", func(tb testing.TB) (net.Conn, net.Conn) {
			a, m := newTestMux(tb, "a", nil), newTestMux(tb, "b", nil)
			return dialPair(tb, mustLayer(tb, a, "g"), mustLayer(tb, m, "g"))
		}},
		{"faultnet-idle", func(tb testing.TB) (net.Conn, net.Conn) {
			n := newFaultNodes(tb, NewFaultNetwork(), "a", "b")
			return dialPair(tb, n["a"].layer, n["b"].layer)
		}},
	}
	for _, size := range []int{4 << 10, 64 << 10} {
		for _, p := range pairs {
			b.Run(fmt.Sprintf("%s/write=%dKiB", p.name, size>>10), func(b *testing.B) {
				w, r := p.pair(b)
				stream(b, w, r, size)
			})
		}
	}
}

// stream writes b.N buffers of size bytes on w while a reader drains r.
func stream(b *testing.B, w, r net.Conn, size int) {
	total := int64(size) * int64(b.N)
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		var got int64
		for got < total {
			n, err := r.Read(buf)
			got += int64(n)
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	buf := make([]byte, size)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N {
		if _, err := w.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDial measures opening a connection: the Mux's only per
// connection cost is its header (one write, read on the other side).
func BenchmarkDial(b *testing.B) {
	b.Run("tcp", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		go drainAccepts(ln)
		for b.Loop() {
			c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
			if err != nil {
				b.Fatal(err)
			}
			roundTrip(b, c)
		}
	})
	b.Run("mux", func(b *testing.B) {
		a, m := newTestMux(b, "a", nil), newTestMux(b, "b", nil)
		from, to := mustLayer(b, a, "g"), mustLayer(b, m, "g")
		go drainAccepts(to)
		addr := raft.ServerAddress(m.Addr().String())
		for b.Loop() {
			c, err := from.Dial(addr, time.Second)
			if err != nil {
				b.Fatal(err)
			}
			roundTrip(b, c)
		}
	})
}

// roundTrip sends a byte and waits for its echo, so a benchmarked dial
// counts only once the connection really carries data, then closes c.
func roundTrip(b *testing.B, c net.Conn) {
	defer c.Close()
	if _, err := c.Write([]byte{1}); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		b.Fatal(err)
	}
}

// drainAccepts echoes one byte on every accepted connection until ln closes.
func drainAccepts(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 1)
			if _, err := io.ReadFull(c, buf); err == nil {
				c.Write(buf)
			}
			io.Copy(io.Discard, c)
		}()
	}
}

func tcpPair(tb testing.TB) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan acceptResult, 1)
	go func() {
		c, err := ln.Accept()
		ch <- acceptResult{c, err}
	}()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { w.Close() })
	return w, awaitAccept(tb, ch, 5*time.Second)
}

// BenchmarkRPC is one AppendEntries round trip at a time between two
// nodes, the way Raft's replication goroutine sends them, over a Hub and
// over a raft.NetworkTransport on the same Muxes: the per-RPC cost each
// adds (an idle node's CPU is mostly these). "empty" is a commit-index
// update (no entries), "16KiB" carries one entry.
func BenchmarkRPC(b *testing.B) {
	for _, entries := range []struct {
		name string
		logs []*raft.Log
	}{{"empty", nil}, {"16KiB", []*raft.Log{{Index: 11, Term: 2, Data: make([]byte, 16<<10)}}}} {
		req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("a"), Addr: []byte("addr-a")},
			Term: 2, PrevLogEntry: 10, PrevLogTerm: 2, LeaderCommitIndex: 10, Entries: entries.logs}
		answer := func(trans raft.Transport, stop <-chan struct{}) {
			for {
				select {
				case rpc := <-trans.Consumer():
					rpc.Respond(&raft.AppendEntriesResponse{Term: 2, LastLog: 10, Success: true}, nil)
				case <-stop:
					return
				}
			}
		}
		b.Run("hub/"+entries.name, func(b *testing.B) {
			ma, mb := newTestMux(b, "a", nil), newTestMux(b, "b", nil)
			ta := mustTransport(b, newTestHub(b, ma, nil), "g", 5*time.Second)
			tb := mustTransport(b, newTestHub(b, mb, nil), "g", 5*time.Second)
			rpcLoop(b, ta, tb, req, answer)
		})
		b.Run("networktransport/"+entries.name, func(b *testing.B) {
			ma, mb := newTestMux(b, "a", nil), newTestMux(b, "b", nil)
			ta := raft.NewNetworkTransport(mustLayer(b, ma, "g"), 3, 5*time.Second, io.Discard)
			tb := raft.NewNetworkTransport(mustLayer(b, mb, "g"), 3, 5*time.Second, io.Discard)
			b.Cleanup(func() { ta.Close(); tb.Close() })
			rpcLoop(b, ta, tb, req, answer)
		})
	}
}

func rpcLoop(b *testing.B, from, to raft.Transport, req *raft.AppendEntriesRequest, answer func(raft.Transport, <-chan struct{})) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		answer(to, stop)
	}()
	defer func() { close(stop); <-done }()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var resp raft.AppendEntriesResponse
		if err := from.AppendEntries("b", to.LocalAddr(), req, &resp); err != nil || !resp.Success {
			b.Fatalf("rpc: %v %+v", err, resp)
		}
	}
}
