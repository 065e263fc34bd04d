package raftutil

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func logsOfSizes(sizes ...int) []*raft.Log {
	var out []*raft.Log
	for i, n := range sizes {
		out = append(out, &raft.Log{Index: uint64(10 + i), Term: 3, Data: bytes.Repeat([]byte{'x'}, n)})
	}
	return out
}

func TestSplitEntries(t *testing.T) {
	tests := []struct {
		name     string
		sizes    []int
		maxBytes int
		want     []int // entries per chunk
	}{
		{"no entries (heartbeat)", nil, 100, nil},
		{"no limit", []int{500, 500, 500}, 0, []int{3}},
		{"all fit", []int{10, 10, 10}, 1000, []int{3}},
		{"split at the limit", []int{60, 60, 60, 60}, 200, []int{2, 2}},
		{"an entry over the limit goes alone", []int{10, 5000, 10}, 200, []int{1, 1, 1}},
		{"exact fit includes overhead", []int{68, 68}, 200, []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SplitEntries(logsOfSizes(tt.sizes...), tt.maxBytes)
			var counts []int
			next := uint64(10)
			for _, c := range got {
				counts = append(counts, len(c))
				for _, e := range c {
					if e.Index != next {
						t.Fatalf("chunks out of order: entry %d where %d expected", e.Index, next)
					}
					next++
				}
			}
			if len(counts) != len(tt.want) {
				t.Fatalf("chunks %v, want %v", counts, tt.want)
			}
			for i := range counts {
				if counts[i] != tt.want[i] {
					t.Fatalf("chunks %v, want %v", counts, tt.want)
				}
			}
		})
	}
}

// TestNoPipelineSplitsAppendEntries sends one large AppendEntries over a
// real loopback transport and checks the follower sees consecutive,
// chained requests each within the byte limit, carrying every entry once.
func TestNoPipelineSplitsAppendEntries(t *testing.T) {
	tests := []struct {
		name      string
		refuseAt  int // the follower refuses the request with this number (1-based); 0: never
		wantCalls int
		wantOK    bool
	}{
		{"all chunks accepted", 0, 4, true},
		{"a refusal ends the exchange", 2, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			follower, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 5*time.Second, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			defer follower.Close()
			leaderNT, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 5*time.Second, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			defer leaderNT.Close()
			leader := NoPipeline{Transport: leaderNT, MaxAppendBytes: 1000}

			got := make(chan *raft.AppendEntriesRequest, 16)
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				n := 0
				for {
					select {
					case rpc := <-follower.Consumer():
						req := rpc.Command.(*raft.AppendEntriesRequest)
						n++
						got <- req
						ok := n != tt.refuseAt
						rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, Success: ok, LastLog: 7}, nil)
					case <-stop:
						return
					}
				}
			}()

			entries := logsOfSizes(400, 400, 400, 400, 400, 400, 400, 400) // 8 entries, 2 per RPC
			req := &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 9, PrevLogTerm: 2, Entries: entries, LeaderCommitIndex: 9}
			var resp raft.AppendEntriesResponse
			if err := leader.AppendEntries("f", follower.LocalAddr(), req, &resp); err != nil {
				t.Fatal(err)
			}
			if resp.Success != tt.wantOK {
				t.Fatalf("combined response success = %v, want %v", resp.Success, tt.wantOK)
			}
			prevIdx, prevTerm := uint64(9), uint64(2)
			for i := 0; i < tt.wantCalls; i++ {
				var r *raft.AppendEntriesRequest
				select {
				case r = <-got:
				case <-time.After(5 * time.Second):
					t.Fatalf("request %d never arrived", i+1)
				}
				if r.PrevLogEntry != prevIdx || r.PrevLogTerm != prevTerm {
					t.Fatalf("request %d chained to (%d, %d), want (%d, %d)", i+1, r.PrevLogEntry, r.PrevLogTerm, prevIdx, prevTerm)
				}
				size := 0
				for _, e := range r.Entries {
					size += len(e.Data) + entryOverhead
				}
				if size > 1000 || len(r.Entries) != 2 {
					t.Fatalf("request %d: %d entries, %d bytes; want 2 entries within 1000 bytes", i+1, len(r.Entries), size)
				}
				last := r.Entries[len(r.Entries)-1]
				prevIdx, prevTerm = last.Index, last.Term
			}
			select {
			case r := <-got:
				t.Fatalf("unexpected extra request after entry %d", r.PrevLogEntry)
			default:
			}
		})
	}
}
