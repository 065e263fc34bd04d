package raftnet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/skiff-mq/skiff/internal/certs"
)

// newTestHub serves a Hub on m, closed at the end of the test (before m,
// whose cleanup was registered earlier).
func newTestHub(t testing.TB, m *Mux, mutate func(*HubConfig)) *Hub {
	t.Helper()
	var cfg HubConfig
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := NewHub(m, cfg)
	if err != nil {
		t.Fatalf("NewHub: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func mustTransport(t testing.TB, h *Hub, group string, timeout time.Duration) *Transport {
	t.Helper()
	tr, err := h.Transport(group, TransportConfig{RPCTimeout: timeout})
	if err != nil {
		t.Fatalf("Transport(%q): %v", group, err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// serve answers every RPC reaching tr with answer(rpc) until the test
// ends, as Raft's main loop would; it also records the commands.
func serve(t testing.TB, tr *Transport, answer func(raft.RPC) (any, error)) *recorder {
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		for {
			select {
			case rpc := <-tr.Consumer():
				rec.add(rpc.Command)
				resp, err := answer(rpc)
				rpc.Respond(resp, err)
			case <-ctx.Done():
				return
			}
		}
	})
	return rec
}

type recorder struct {
	mu   sync.Mutex
	cmds []any
}

func (r *recorder) add(c any) {
	r.mu.Lock()
	r.cmds = append(r.cmds, c)
	r.mu.Unlock()
}

func (r *recorder) all() []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]any(nil), r.cmds...)
}

func hdr(id string) raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte("addr-of-" + id)}
}

// twoHubs is a Hub on n1 and one on n2, over plain loopback.
func twoHubs(t *testing.T) (h1, h2 *Hub) {
	m1, m2 := newTestMux(t, "n1", nil), newTestMux(t, "n2", nil)
	return newTestHub(t, m1, nil), newTestHub(t, m2, nil)
}

func TestHubRoundTripsEveryRPC(t *testing.T) {
	h1, h2 := twoHubs(t)
	client := mustTransport(t, h1, "orders/0/7", 2*time.Second)
	server := mustTransport(t, h2, "orders/0/7", 2*time.Second)
	target := server.LocalAddr()

	appended := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	cases := []struct {
		name string
		req  any
		resp any
		send func(resp any) error
	}{
		{"AppendEntries", &raft.AppendEntriesRequest{RPCHeader: hdr("n1"), Term: 7, PrevLogEntry: 41, PrevLogTerm: 6, LeaderCommitIndex: 40,
			Entries: []*raft.Log{
				{Index: 42, Term: 7, Type: raft.LogCommand, Data: []byte("batch-1"), Extensions: []byte("x"), AppendedAt: appended},
				{Index: 43, Term: 7, Type: raft.LogConfiguration, Data: bytes.Repeat([]byte{0xAB}, 100_000), AppendedAt: appended},
			}},
			&raft.AppendEntriesResponse{RPCHeader: hdr("n2"), Term: 7, LastLog: 43, Success: true, NoRetryBackoff: true},
			func(resp any) error {
				return client.AppendEntries("n2", target, &raft.AppendEntriesRequest{RPCHeader: hdr("n1"), Term: 7, PrevLogEntry: 41, PrevLogTerm: 6, LeaderCommitIndex: 40,
					Entries: []*raft.Log{
						{Index: 42, Term: 7, Type: raft.LogCommand, Data: []byte("batch-1"), Extensions: []byte("x"), AppendedAt: appended},
						{Index: 43, Term: 7, Type: raft.LogConfiguration, Data: bytes.Repeat([]byte{0xAB}, 100_000), AppendedAt: appended},
					}}, resp.(*raft.AppendEntriesResponse))
			}},
		{"RequestVote", &raft.RequestVoteRequest{RPCHeader: hdr("n1"), Term: 8, LastLogIndex: 43, LastLogTerm: 7, LeadershipTransfer: true},
			&raft.RequestVoteResponse{RPCHeader: hdr("n2"), Term: 8, Granted: true},
			func(resp any) error {
				return client.RequestVote("n2", target, &raft.RequestVoteRequest{RPCHeader: hdr("n1"), Term: 8, LastLogIndex: 43, LastLogTerm: 7, LeadershipTransfer: true}, resp.(*raft.RequestVoteResponse))
			}},
		{"RequestPreVote", &raft.RequestPreVoteRequest{RPCHeader: hdr("n1"), Term: 9, LastLogIndex: 43, LastLogTerm: 7},
			&raft.RequestPreVoteResponse{RPCHeader: hdr("n2"), Term: 8, Granted: true},
			func(resp any) error {
				return client.RequestPreVote("n2", target, &raft.RequestPreVoteRequest{RPCHeader: hdr("n1"), Term: 9, LastLogIndex: 43, LastLogTerm: 7}, resp.(*raft.RequestPreVoteResponse))
			}},
		{"TimeoutNow", &raft.TimeoutNowRequest{RPCHeader: hdr("n1")},
			&raft.TimeoutNowResponse{RPCHeader: hdr("n2")},
			func(resp any) error {
				return client.TimeoutNow("n2", target, &raft.TimeoutNowRequest{RPCHeader: hdr("n1")}, resp.(*raft.TimeoutNowResponse))
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan any, 1)
			var wg sync.WaitGroup
			defer wg.Wait()
			wg.Go(func() {
				select {
				case rpc := <-server.Consumer():
					got <- rpc.Command
					rpc.Respond(tc.resp, nil)
				case <-time.After(5 * time.Second):
					got <- nil
				}
			})
			resp := reflect.New(reflect.TypeOf(tc.resp).Elem()).Interface()
			if err := tc.send(resp); err != nil {
				t.Fatalf("rpc: %v", err)
			}
			if cmd := <-got; !reflect.DeepEqual(cmd, tc.req) {
				t.Fatalf("server got %#v, want %#v", cmd, tc.req)
			}
			if !reflect.DeepEqual(resp, tc.resp) {
				t.Fatalf("client got %#v, want %#v", resp, tc.resp)
			}
		})
	}

	t.Run("heartbeat takes the fast path", func(t *testing.T) {
		var fast atomic.Int32
		server.SetHeartbeatHandler(func(rpc raft.RPC) {
			fast.Add(1)
			rpc.Respond(&raft.AppendEntriesResponse{RPCHeader: hdr("n2"), Term: 5, Success: true}, nil)
		})
		defer server.SetHeartbeatHandler(nil)
		var resp raft.AppendEntriesResponse
		// Nobody reads the consumer: only the fast path can answer.
		if err := client.AppendEntries("n2", target, &raft.AppendEntriesRequest{RPCHeader: hdr("n1"), Term: 5}, &resp); err != nil {
			t.Fatal(err)
		}
		if fast.Load() != 1 || resp.Term != 5 || !resp.Success {
			t.Fatalf("fast path calls %d, response %+v", fast.Load(), resp)
		}
	})

	t.Run("error from raft reaches the caller", func(t *testing.T) {
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() {
			rpc := <-server.Consumer()
			rpc.Respond(nil, errors.New("not today"))
		})
		var resp raft.RequestVoteResponse
		err := client.RequestVote("n2", target, &raft.RequestVoteRequest{RPCHeader: hdr("n1"), Term: 1}, &resp)
		if err == nil || !strings.Contains(err.Error(), "not today") {
			t.Fatalf("err = %v, want the server's error", err)
		}
	})

	t.Run("peer encoding", func(t *testing.T) {
		if got := client.DecodePeer(client.EncodePeer("n2", "127.0.0.1:9")); got != "127.0.0.1:9" {
			t.Fatalf("DecodePeer(EncodePeer) = %q", got)
		}
		if _, err := client.AppendEntriesPipeline("n2", target); !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
			t.Fatalf("AppendEntriesPipeline err = %v", err)
		}
	})
}

// countAccepted makes m count the connections it hands to a group.
func countAccepted(n *atomic.Int32) func(*MuxConfig) {
	return func(c *MuxConfig) {
		c.AcceptHook = func(_ string, conn net.Conn) (net.Conn, error) {
			n.Add(1)
			return conn, nil
		}
	}
}

func TestHubManyGroupsShareTwoConnections(t *testing.T) {
	var accepted atomic.Int32
	m1, m2 := newTestMux(t, "n1", nil), newTestMux(t, "n2", countAccepted(&accepted))
	h1, h2 := newTestHub(t, m1, nil), newTestHub(t, m2, nil)

	const groups, perGroup = 40, 25
	clients := make([]*Transport, groups)
	for g := range groups {
		name := fmt.Sprintf("topic/%d/1", g)
		clients[g] = mustTransport(t, h1, name, 5*time.Second)
		srv := mustTransport(t, h2, name, 5*time.Second)
		// The answer names the group and echoes the request, so a response
		// delivered to the wrong caller shows.
		serve(t, srv, func(rpc raft.RPC) (any, error) {
			req := rpc.Command.(*raft.AppendEntriesRequest)
			return &raft.AppendEntriesResponse{RPCHeader: raft.RPCHeader{ID: []byte(name)}, Term: req.Term, LastLog: req.PrevLogEntry + uint64(len(req.Entries)), Success: true}, nil
		})
	}
	target := raft.ServerAddress(m2.Addr().String())

	var wg sync.WaitGroup
	errs := make(chan error, groups*perGroup)
	for g := range groups {
		for i := range perGroup {
			wg.Go(func() {
				req := &raft.AppendEntriesRequest{RPCHeader: hdr("n1"), Term: uint64(g + 1), PrevLogEntry: uint64(i * 10)}
				if i%2 == 0 {
					req.Entries = []*raft.Log{{Index: uint64(i*10 + 1), Term: 1, Data: []byte(fmt.Sprint(g, i))}}
				}
				var resp raft.AppendEntriesResponse
				if err := clients[g].AppendEntries("n2", target, req, &resp); err != nil {
					errs <- err
					return
				}
				want := raft.AppendEntriesResponse{RPCHeader: raft.RPCHeader{ID: []byte(fmt.Sprintf("topic/%d/1", g))}, Term: uint64(g + 1), LastLog: req.PrevLogEntry + uint64(len(req.Entries)), Success: true}
				if !reflect.DeepEqual(resp, want) {
					errs <- fmt.Errorf("group %d request %d: got %+v, want %+v", g, i, resp, want)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// One control lane (empty appends) and one data lane, for all 40
	// groups.
	if n := accepted.Load(); n != 2 {
		t.Fatalf("n2 accepted %d connections, want 2 (control and data lanes)", n)
	}
}

func TestHubSlowGroupDoesNotHoldUpOthers(t *testing.T) {
	h1, h2 := twoHubs(t)
	slowC := mustTransport(t, h1, "slow", 30*time.Second)
	slowS := mustTransport(t, h2, "slow", 5*time.Second)
	fastC := mustTransport(t, h1, "fast", 5*time.Second)
	fastS := mustTransport(t, h2, "fast", 5*time.Second)
	release, arrived := make(chan struct{}), make(chan struct{})
	serve(t, slowS, func(rpc raft.RPC) (any, error) {
		close(arrived)
		<-release // a Raft loop stuck on its disk
		return &raft.AppendEntriesResponse{Success: true}, nil
	})
	serve(t, fastS, func(rpc raft.RPC) (any, error) {
		return &raft.AppendEntriesResponse{Success: true}, nil
	})
	target := fastS.LocalAddr()

	// A stuck group with a large append outstanding, on the same data
	// lane the fast group uses.
	slowDone := make(chan error, 1)
	go func() {
		big := &raft.AppendEntriesRequest{RPCHeader: hdr("n1"), Term: 1, Entries: []*raft.Log{{Index: 1, Term: 1, Data: make([]byte, 8<<20)}}}
		slowDone <- slowC.AppendEntries("n2", target, big, &raft.AppendEntriesResponse{})
	}()
	// Generous: encoding and decoding 8 MiB under -race on a loaded
	// 2-core machine took seconds.
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the large append never reached the slow group")
	}
	for i := range 20 {
		start := time.Now()
		req := &raft.AppendEntriesRequest{RPCHeader: hdr("n1"), Term: 1, Entries: []*raft.Log{{Index: uint64(i + 1), Term: 1, Data: []byte("x")}}}
		if i%2 == 1 {
			req.Entries = nil
		}
		var resp raft.AppendEntriesResponse
		if err := fastC.AppendEntries("n2", target, req, &resp); err != nil || !resp.Success {
			t.Fatalf("fast group rpc %d: %v %+v", i, err, resp)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("fast group rpc %d took %v behind the stuck group", i, d)
		}
	}
	close(release)
	if err := <-slowDone; err != nil {
		t.Fatalf("slow group's rpc after release: %v", err)
	}
}

func TestHubFailsPendingRPCsWhenPeerGoes(t *testing.T) {
	t.Run("peer closes", func(t *testing.T) {
		m1 := newTestMux(t, "n1", nil)
		h1 := newTestHub(t, m1, nil)
		cfg := DefaultMuxConfig()
		cfg.NodeID = "n2"
		m2, err := Listen("127.0.0.1:0", cfg)
		if err != nil {
			t.Fatal(err)
		}
		h2, err := NewHub(m2, HubConfig{})
		if err != nil {
			t.Fatal(err)
		}
		client := mustTransport(t, h1, "g", 10*time.Second)
		server, err := h2.Transport("g", TransportConfig{})
		if err != nil {
			t.Fatal(err)
		}
		received := make(chan struct{})
		go func() {
			<-server.Consumer() // never answered
			close(received)
		}()
		errc := make(chan error, 1)
		start := time.Now()
		go func() {
			errc <- client.RequestVote("n2", raft.ServerAddress(m2.Addr().String()), &raft.RequestVoteRequest{Term: 1}, &raft.RequestVoteResponse{})
		}()
		<-received
		h2.Close()
		m2.Close()
		select {
		case err := <-errc:
			if err == nil {
				t.Fatal("rpc to a node that went away succeeded")
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("failed after %v, want well before the 10s timeout", d)
			}
			t.Logf("pending rpc failed with: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("pending rpc still waiting 5s after the peer closed")
		}
	})

	t.Run("link goes silent, then heals", func(t *testing.T) {
		fn := NewFaultNetwork()
		m1, err := fn.NewMux("n1", DefaultMuxConfig())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m1.Close() })
		m2, err := fn.NewMux("n2", DefaultMuxConfig())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m2.Close() })
		h1, h2 := newTestHub(t, m1, nil), newTestHub(t, m2, nil)
		const timeout = 300 * time.Millisecond
		client := mustTransport(t, h1, "g", timeout)
		server := mustTransport(t, h2, "g", timeout)
		serve(t, server, func(rpc raft.RPC) (any, error) { return &raft.RequestVoteResponse{Granted: true}, nil })
		target := server.LocalAddr()
		vote := func() (time.Duration, error) {
			start := time.Now()
			var resp raft.RequestVoteResponse
			err := client.RequestVote("n2", target, &raft.RequestVoteRequest{Term: 1}, &resp)
			if err == nil && !resp.Granted {
				err = errors.New("vote not granted")
			}
			return time.Since(start), err
		}
		if _, err := vote(); err != nil {
			t.Fatalf("before the cut: %v", err)
		}
		fn.Partition("n1", "n2")
		for range 3 {
			d, err := vote()
			if err == nil {
				t.Fatal("rpc across a cut link succeeded")
			}
			if d > timeout+500*time.Millisecond {
				t.Fatalf("rpc across a cut link failed after %v, want about %v", d, timeout)
			}
		}
		fn.Heal()
		waitFor(t, 5*time.Second, "rpcs to work again after heal", func() bool {
			_, err := vote()
			return err == nil
		})
	})
}

func TestHubTransportClose(t *testing.T) {
	h1, h2 := twoHubs(t)
	client := mustTransport(t, h1, "g", 5*time.Second)
	server, err := h2.Transport("g", TransportConfig{RPCTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	target := server.LocalAddr()
	server.Close()
	var resp raft.RequestVoteResponse
	err = client.RequestVote("n2", target, &raft.RequestVoteRequest{Term: 1}, &resp)
	if err == nil || !strings.Contains(err.Error(), "unknown group") {
		t.Fatalf("rpc to a closed group: %v, want an unknown group error", err)
	}
	// The name can be registered again, and works.
	again := mustTransport(t, h2, "g", 5*time.Second)
	serve(t, again, func(raft.RPC) (any, error) { return &raft.RequestVoteResponse{Term: 3}, nil })
	if err := client.RequestVote("n2", target, &raft.RequestVoteRequest{Term: 1}, &resp); err != nil || resp.Term != 3 {
		t.Fatalf("rpc to the group registered again: %v %+v", err, resp)
	}
	if _, err := h2.Transport("g", TransportConfig{}); !errors.Is(err, ErrGroupExists) {
		t.Fatalf("second registration: %v, want ErrGroupExists", err)
	}
	// A closed transport sends nothing.
	client.Close()
	if err := client.RequestVote("n2", target, &raft.RequestVoteRequest{Term: 1}, &resp); !errors.Is(err, raft.ErrTransportShutdown) {
		t.Fatalf("rpc from a closed transport: %v", err)
	}
}

// rawHubConn dials m2's Hub group from m1 and writes the preamble.
func rawHubConn(t *testing.T, m1 *Mux, addr net.Addr, preamble []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := m1.Dial(ctx, DefaultHubMuxGroup, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(preamble); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

func TestHubRefusesHostileFrames(t *testing.T) {
	m1, m2 := newTestMux(t, "n1", nil), newTestMux(t, "n2", nil)
	h2 := newTestHub(t, m2, func(c *HubConfig) { c.MaxFrameBytes = 64 << 10 })
	server := mustTransport(t, h2, "g", time.Second)
	serve(t, server, func(raft.RPC) (any, error) { return &raft.RequestVoteResponse{Term: 9, Granted: true}, nil })
	codec := newRPCCodec()
	vote, _, err := codec.requestFrame(rpcRequestVote, 5, "g", &raft.RequestVoteRequest{Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	good := []byte{RPCVersion, laneControl}

	closedCases := []struct {
		name     string
		preamble []byte
		frame    []byte
	}{
		{"wrong version", []byte{RPCVersion + 1, laneControl}, vote},
		{"unknown lane", []byte{RPCVersion, 9}, vote},
		{"oversize length", good, binary.BigEndian.AppendUint32(nil, 64<<10+1)},
		{"length below the fixed part", good, binary.BigEndian.AppendUint32(nil, 3)},
		{"unknown kind", good, append(binary.BigEndian.AppendUint32(nil, 9), 0x42, 0, 0, 0, 0, 0, 0, 0, 1)},
		{"response on an inbound lane", good, append(binary.BigEndian.AppendUint32(nil, 9), kindResponse|rpcRequestVote, 0, 0, 0, 0, 0, 0, 0, 1)},
		{"group name longer than the frame", good, appendRequestHeader(nil, rpcRequestVote, 1, "g", 0)[:frameLenSize+requestFixed-1]},
		{"group name with a bad byte", good, appendRequestHeader(nil, rpcRequestVote, 1, "g\x00", 0)},
		{"snapshot on the control lane", good, mustFrame(t, codec, rpcInstallSnapshot, "g", &raft.InstallSnapshotRequest{Size: 1})},
		{"body that is not msgpack", good, append(appendRequestHeader(nil, rpcRequestVote, 1, "g", 3), 0xc1, 0xc1, 0xc1)},
		{"body of the wrong struct", good, append(appendRequestHeader(nil, rpcAppendEntries, 1, "g", 1), 0x07)},
	}
	for _, tc := range closedCases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := rawHubConn(t, m1, m2.Addr(), tc.preamble)
			if _, err := c.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			if tc.name == "group name longer than the frame" {
				// The frame announces more than it holds: pad it so the
				// server has all the bytes and must judge them.
				c.Write(make([]byte, 8))
			}
			expectPeerClosed(t, c, 3*time.Second)
		})
	}

	t.Run("unknown group is answered, connection stays", func(t *testing.T) {
		c, r := rawHubConn(t, m1, m2.Addr(), good)
		other, _, err := codec.requestFrame(rpcRequestVote, 4, "no-such-group", &raft.RequestVoteRequest{Term: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(append(other, vote...)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		got := map[uint64]frame{}
		for range 2 {
			f, err := readFrame(r, 1<<20, nil)
			if err != nil {
				t.Fatal(err)
			}
			got[f.id] = f
		}
		if f := got[4]; f.kind != kindError || !strings.Contains(string(f.body), "unknown group") {
			t.Fatalf("answer to the unknown group: kind %#x %q", f.kind, f.body)
		}
		var resp raft.RequestVoteResponse
		if f := got[5]; f.kind != kindResponse|rpcRequestVote {
			t.Fatalf("answer to the vote: kind %#x %q", f.kind, f.body)
		} else if err := codec.decode(f.body, &resp); err != nil || resp.Term != 9 {
			t.Fatalf("vote response %+v, %v", resp, err)
		}
	})

	t.Run("sender refuses an oversize request", func(t *testing.T) {
		h1 := newTestHub(t, m1, func(c *HubConfig) { c.MaxFrameBytes = 64 << 10 })
		client := mustTransport(t, h1, "g", time.Second)
		req := &raft.AppendEntriesRequest{Term: 1, Entries: []*raft.Log{{Data: make([]byte, 65<<10)}}}
		err := client.AppendEntries("n2", server.LocalAddr(), req, &raft.AppendEntriesResponse{})
		if !errors.Is(err, ErrBadFrame) {
			t.Fatalf("oversize append: %v, want ErrBadFrame", err)
		}
	})
}

func mustFrame(t *testing.T, c *rpcCodec, kind byte, group string, req any) []byte {
	t.Helper()
	b, _, err := c.requestFrame(kind, 1, group, req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// patternReader yields n deterministic bytes without allocating.
type patternReader struct {
	n, off int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	for i := range b {
		x := uint64(p.off + int64(i))
		b[i] = byte(x*2654435761>>13) ^ byte(x)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func TestHubInstallSnapshotStreamsInBoundedMemory(t *testing.T) {
	h1, h2 := twoHubs(t)
	client := mustTransport(t, h1, "g", 5*time.Second)
	server := mustTransport(t, h2, "g", 5*time.Second)
	const size = 48 << 20
	want := sha256.New()
	io.Copy(want, &patternReader{n: size})

	type got struct {
		req  *raft.InstallSnapshotRequest
		n    int64
		hash []byte
	}
	gotc := make(chan got, 1)
	serve(t, server, func(rpc raft.RPC) (any, error) {
		h := sha256.New()
		n, err := io.Copy(h, rpc.Reader)
		gotc <- got{rpc.Command.(*raft.InstallSnapshotRequest), n, h.Sum(nil)}
		return &raft.InstallSnapshotResponse{Term: 3, Success: err == nil}, err
	})

	req := &raft.InstallSnapshotRequest{RPCHeader: hdr("n1"), SnapshotVersion: 1, Term: 3, LastLogIndex: 1000, LastLogTerm: 2,
		Configuration: []byte("conf"), ConfigurationIndex: 9, Size: size}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var resp raft.InstallSnapshotResponse
	if err := client.InstallSnapshot("n2", server.LocalAddr(), req, &resp, &patternReader{n: size}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	g := <-gotc
	if !resp.Success || resp.Term != 3 {
		t.Fatalf("response %+v", resp)
	}
	if g.n != size || !bytes.Equal(g.hash, want.Sum(nil)) {
		t.Fatalf("server read %d bytes with another hash, want %d", g.n, size)
	}
	if !reflect.DeepEqual(g.req, req) {
		t.Fatalf("server got request %+v, want %+v", g.req, req)
	}
	// Both ends of the stream together, plus the sha256 states: a copy of
	// the snapshot anywhere would show as tens of MB.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Fatalf("a %d MiB snapshot allocated %d KiB, want under 4 MiB", size>>20, alloc>>10)
	} else {
		t.Logf("a %d MiB snapshot allocated %d KiB in all", size>>20, alloc>>10)
	}

	t.Run("short reader fails the rpc", func(t *testing.T) {
		short := *req
		short.Size = 1 << 20
		err := client.InstallSnapshot("n2", server.LocalAddr(), &short, &resp, &patternReader{n: 1000})
		if err == nil {
			t.Fatal("snapshot with fewer bytes than announced succeeded")
		}
		<-gotc
	})
}

func TestHubOverTLS(t *testing.T) {
	dir := t.TempDir()
	if err := certs.Create(certs.CreateOptions{Dir: dir, Nodes: []string{"n1", "n2", "n3"}}); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if err := certs.Create(certs.CreateOptions{Dir: other, Nodes: []string{"n1"}}); err != nil {
		t.Fatal(err)
	}
	tlsFor := func(dir, name string) func(*MuxConfig) {
		return func(c *MuxConfig) {
			crt, key := certs.Paths(dir, name)
			r, err := certs.NewReloader(certs.Files{CertFile: crt, KeyFile: key, CAFile: filepath.Join(dir, "ca.crt")}, nil)
			if err != nil {
				t.Fatal(err)
			}
			c.TLS = &MuxTLS{Server: r.PeerServerConfig(), Client: r.PeerClientConfig(), PeerID: certs.PeerNodeID}
		}
	}
	var refused atomic.Int32
	m2 := newTestMux(t, "n2", func(c *MuxConfig) {
		tlsFor(dir, "n2")(c)
		c.OnRefused = func(string) { refused.Add(1) }
	})
	h2 := newTestHub(t, m2, nil)
	server := mustTransport(t, h2, "g", 2*time.Second)
	serve(t, server, func(rpc raft.RPC) (any, error) {
		return &raft.RequestVoteResponse{Term: 4, Granted: true}, nil
	})

	cases := []struct {
		name string
		id   string
		tls  func(*MuxConfig)
		ok   bool
	}{
		{"cluster node", "n1", tlsFor(dir, "n1"), true},
		{"no certificate", "n1", nil, false},
		{"certificate of another CA", "n1", tlsFor(other, "n1"), false},
		{"claims another node", "n1", tlsFor(dir, "n3"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestMux(t, tc.id, tc.tls)
			h := newTestHub(t, m, nil)
			client := mustTransport(t, h, "g", 2*time.Second)
			var resp raft.RequestVoteResponse
			err := client.RequestVote("n2", server.LocalAddr(), &raft.RequestVoteRequest{Term: 4}, &resp)
			if tc.ok && (err != nil || !resp.Granted || resp.Term != 4) {
				t.Fatalf("vote over TLS: %v %+v", err, resp)
			}
			if !tc.ok && err == nil {
				t.Fatal("a stranger's rpc was answered")
			}
		})
	}
	// n2 counts a refusal when its side of the handshake ends, which may be
	// just after the stranger's side saw it fail.
	waitFor(t, 5*time.Second, "n2 to count a refusal per stranger", func() bool { return refused.Load() >= 3 })
}

func TestHubConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  HubConfig
		ok   bool
	}{
		{"zero is defaults", HubConfig{}, true},
		{"bad group name", HubConfig{MuxGroup: "a b"}, false},
		{"tiny frames", HubConfig{MaxFrameBytes: 100}, false},
		{"negative inflight", HubConfig{MaxInflight: -1}, false},
		{"negative idle", HubConfig{IdleTimeout: -time.Second}, false},
		{"negative handshake", HubConfig{HandshakeTimeout: -time.Second}, false},
		{"explicit", HubConfig{MuxGroup: "x:rpc", MaxFrameBytes: 1 << 20, MaxInflight: 8, IdleTimeout: time.Minute, HandshakeTimeout: time.Second}, true},
	}
	for _, tc := range cases {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestHubClosesIdleConnections(t *testing.T) {
	var accepted atomic.Int32
	m1, m2 := newTestMux(t, "n1", nil), newTestMux(t, "n2", countAccepted(&accepted))
	h1 := newTestHub(t, m1, func(c *HubConfig) { c.IdleTimeout = 200 * time.Millisecond })
	h2 := newTestHub(t, m2, nil)
	client := mustTransport(t, h1, "g", time.Second)
	server := mustTransport(t, h2, "g", time.Second)
	serve(t, server, func(raft.RPC) (any, error) { return &raft.RequestVoteResponse{Granted: true}, nil })
	vote := func() {
		t.Helper()
		var resp raft.RequestVoteResponse
		if err := client.RequestVote("n2", server.LocalAddr(), &raft.RequestVoteRequest{Term: 1}, &resp); err != nil || !resp.Granted {
			t.Fatalf("vote: %v %+v", err, resp)
		}
	}
	vote()
	p, err := h1.peer(string(server.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	l := p.lanes[laneControl]
	waitFor(t, 3*time.Second, "the idle control lane to close", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.cur == nil
	})
	vote() // redials
	if n := accepted.Load(); n != 2 {
		t.Fatalf("n2 accepted %d connections, want 2 (the first and the redial)", n)
	}
}
