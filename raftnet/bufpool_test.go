package raftnet

import (
	"bufio"
	"bytes"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestBufPoolClasses(t *testing.T) {
	for _, tc := range []struct {
		n, up, down int
	}{
		{0, 0, -1},
		{1, 0, -1},
		{4095, 0, -1},
		{4096, 0, 0},
		{4097, 1, 0},
		{8192, 1, 1},
		{1 << 24, numPoolClass - 1, numPoolClass - 1},
		{1<<24 + 1, -1, numPoolClass - 1},
		{1 << 25, -1, -1},
	} {
		if got := classUp(tc.n); got != tc.up {
			t.Errorf("classUp(%d) = %d, want %d", tc.n, got, tc.up)
		}
		if got := classDown(tc.n); got != tc.down {
			t.Errorf("classDown(%d) = %d, want %d", tc.n, got, tc.down)
		}
	}
}

func TestBufPoolGetFitsAndReuses(t *testing.T) {
	var p bufPool
	for _, n := range []int{0, 10, 4096, 5000, 1 << 20, 1<<24 + 5} {
		b := p.get(n)
		if len(b) != n {
			t.Fatalf("get(%d): len %d", n, len(b))
		}
		if c := classUp(n); c >= 0 && cap(b) != 1<<(minPoolShift+c) {
			t.Fatalf("get(%d): cap %d, want the class's %d", n, cap(b), 1<<(minPoolShift+c))
		}
		p.put(b)
	}
	// A nil pool allocates and keeps nothing.
	var none *bufPool
	if b := none.get(100); len(b) != 100 {
		t.Fatalf("nil pool get: len %d", len(b))
	}
	if _, ok := none.tryGet(100); ok {
		t.Fatal("nil pool handed out a buffer")
	}
	none.put(make([]byte, 8192))
}

// An AppendEntries goes through the codec and the frame reader intact
// whether or not the size estimate was enough, and buffers given back
// carry nothing into the next frame.
func TestCodecRoundTripWithPooledBuffers(t *testing.T) {
	c := newRPCCodec()
	big := bytes.Repeat([]byte{0xAB}, 300<<10)
	for _, entries := range [][]*raft.Log{
		nil,
		{{Index: 1, Term: 1, Data: []byte("x"), AppendedAt: time.Unix(5, 6).UTC()}},
		{{Index: 2, Term: 1, Data: big, Extensions: []byte("ext")}, {Index: 3, Term: 1, Data: big[:1000]}},
		// Many empty entries: the estimate still holds their fixed fields.
		make([]*raft.Log, 500),
	} {
		for i := range entries {
			if entries[i] == nil {
				entries[i] = &raft.Log{Index: uint64(i + 1), Term: 2}
			}
		}
		req := &raft.AppendEntriesRequest{RPCHeader: hdr("n1"), Term: 2, PrevLogEntry: 1, Entries: entries, LeaderCommitIndex: 1}
		for round := 0; round < 3; round++ {
			b, release, err := c.requestFrame(rpcAppendEntries, 9, "orders/0", req)
			if err != nil {
				t.Fatal(err)
			}
			f, err := readFrame(bufio.NewReader(bytes.NewReader(b)), 8<<20, c.bufs)
			release()
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.decodeRequest(f.kind, f.body)
			f.release()
			if err != nil {
				t.Fatal(err)
			}
			ae := got.(*raft.AppendEntriesRequest)
			if f.group != "orders/0" || f.id != 9 || ae.Term != 2 || len(ae.Entries) != len(entries) {
				t.Fatalf("round %d: got group %q id %d term %d, %d entries", round, f.group, f.id, ae.Term, len(ae.Entries))
			}
			for i, e := range ae.Entries {
				want := entries[i]
				if e.Index != want.Index || !bytes.Equal(e.Data, want.Data) || !bytes.Equal(e.Extensions, want.Extensions) || !e.AppendedAt.Equal(want.AppendedAt) {
					t.Fatalf("round %d: entry %d differs", round, i)
				}
			}
		}
	}
}

// A message the size estimate does not foresee still makes a whole frame:
// the encoder outgrows the pooled buffer and the body moves once more.
func TestEncodeFrameOutgrowsEstimate(t *testing.T) {
	c := newRPCCodec()
	v := &raft.RequestVoteResponse{RPCHeader: raft.RPCHeader{ID: bytes.Repeat([]byte("i"), 100<<10)}, Term: 7}
	b, release, err := c.responseFrame(rpcRequestVote, 3, v)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	f, err := readFrame(bufio.NewReader(bytes.NewReader(b)), 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got raft.RequestVoteResponse
	if err := c.decode(f.body, &got); err != nil {
		t.Fatal(err)
	}
	if f.id != 3 || got.Term != 7 || !bytes.Equal(got.ID, v.ID) {
		t.Fatalf("got id %d term %d, %d ID bytes", f.id, got.Term, len(got.ID))
	}
}
