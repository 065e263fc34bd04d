package raftutil

import (
	"errors"
	"io"
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
