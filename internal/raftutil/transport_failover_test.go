package raftutil

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// A leadership transfer's TimeoutNow is given up on after TimeoutNowWithin
// when the target's Raft loop does not take it, and answered normally when
// it does.
func TestTimeoutNowGivesUpOnATargetThatDoesNotAnswer(t *testing.T) {
	newTrans := func() *raft.NetworkTransport {
		tr, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 10*time.Second, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	leader, target := newTrans(), newTrans()
	w := NoPipeline{NetworkTransport: leader, TimeoutNowWithin: 100 * time.Millisecond}
	req := &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("a"), Addr: []byte(leader.LocalAddr())}}
	addr := target.LocalAddr()

	// The target's loop is busy: the request waits unanswered.
	var resp raft.TimeoutNowResponse
	err := w.TimeoutNow("b", addr, req, &resp)
	if !errors.Is(err, ErrTimeoutNowUnanswered) {
		t.Fatalf("TimeoutNow to a busy target = %v, want ErrTimeoutNowUnanswered", err)
	}
	select {
	case rpc := <-target.Consumer():
		if _, ok := rpc.Command.(*raft.TimeoutNowRequest); !ok {
			t.Fatalf("target got %T, want the TimeoutNowRequest", rpc.Command)
		}
		rpc.Respond(&raft.TimeoutNowResponse{}, nil) // late: the abandoned request ends
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the target")
	}

	// The target answers: the answer comes through.
	go func() {
		rpc := <-target.Consumer()
		rpc.Respond(&raft.TimeoutNowResponse{RPCHeader: raft.RPCHeader{ID: []byte("b")}}, nil)
	}()
	w.TimeoutNowWithin = 10 * time.Second
	resp = raft.TimeoutNowResponse{}
	if err := w.TimeoutNow("b", addr, req, &resp); err != nil {
		t.Fatalf("TimeoutNow to an answering target: %v", err)
	}
	if string(resp.ID) != "b" {
		t.Fatalf("response from %q, want the target's", resp.ID)
	}
}

// trackingStream is a TCP StreamLayer that remembers the connections it
// accepted, so that a test can drop them as a restarted peer would.
type trackingStream struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (s *trackingStream) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err == nil {
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
	}
	return c, err
}

func (s *trackingStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

// dropAll closes every accepted connection: the peer's process is gone and
// back, and the other side's pooled connections to it are stale.
func (s *trackingStream) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// A vote request whose pooled connection went stale (the voter restarted)
// is sent again on a fresh one instead of losing the vote.
func TestRequestVoteRetriesOnAStaleConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stream := &trackingStream{Listener: ln}
	voter := raft.NewNetworkTransport(stream, 3, 10*time.Second, io.Discard)
	t.Cleanup(func() { voter.Close() })
	served := make(chan struct{})
	t.Cleanup(func() { close(served) })
	go func() {
		for {
			select {
			case rpc := <-voter.Consumer():
				rpc.Respond(&raft.RequestVoteResponse{Granted: true}, nil)
			case <-served:
				return
			}
		}
	}()
	candidate, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, 10*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { candidate.Close() })
	req := &raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("a"), Addr: []byte(candidate.LocalAddr())}, Term: 2}
	addr := raft.ServerAddress(ln.Addr().String())

	for _, tc := range []struct {
		name string
		vote func(resp *raft.RequestVoteResponse) error
	}{
		{"bare transport", func(resp *raft.RequestVoteResponse) error { return candidate.RequestVote("b", addr, req, resp) }},
		{"NoPipeline", func(resp *raft.RequestVoteResponse) error {
			return NoPipeline{NetworkTransport: candidate}.RequestVote("b", addr, req, resp)
		}},
	} {
		var resp raft.RequestVoteResponse
		if err := tc.vote(&resp); err != nil || !resp.Granted { // leaves a connection in the pool
			t.Fatalf("%s: first vote: %v, granted %v", tc.name, err, resp.Granted)
		}
		stream.dropAll()
		resp = raft.RequestVoteResponse{}
		err := tc.vote(&resp)
		switch tc.name {
		case "bare transport":
			// What raft alone sees: the vote is lost. (This is what the
			// wrapper exists for; if the transport ever retries by itself,
			// the wrapper can go.)
			if err == nil {
				t.Fatalf("bare transport: a vote over a stale pooled connection succeeded; the retry is no longer needed")
			}
		default:
			if err != nil || !resp.Granted {
				t.Fatalf("%s: vote after the voter dropped its connections: %v, granted %v", tc.name, err, resp.Granted)
			}
		}
	}
}
