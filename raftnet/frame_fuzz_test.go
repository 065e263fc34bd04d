package raftnet

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// FuzzReadFrame feeds arbitrary bytes to the frame reader and the request
// decoder, as a hostile peer would: they may refuse, never panic, and never
// accept a frame beyond the bound.
func FuzzReadFrame(f *testing.F) {
	c := newRPCCodec()
	seeds := []struct {
		kind byte
		req  any
	}{
		{rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: hdr("n1"), Term: 3, PrevLogEntry: 9, Entries: []*raft.Log{{Index: 10, Term: 3, Data: []byte("batch"), AppendedAt: time.Unix(1, 2)}}}},
		{rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: hdr("n1"), Term: 3}},
		{rpcRequestVote, &raft.RequestVoteRequest{RPCHeader: hdr("n1"), Term: 4, LastLogIndex: 9}},
		{rpcRequestPreVote, &raft.RequestPreVoteRequest{RPCHeader: hdr("n1"), Term: 5}},
		{rpcInstallSnapshot, &raft.InstallSnapshotRequest{RPCHeader: hdr("n1"), Term: 5, Size: 10, Configuration: []byte("c")}},
		{rpcTimeoutNow, &raft.TimeoutNowRequest{RPCHeader: hdr("n1")}},
	}
	for i, s := range seeds {
		b, _, err := c.requestFrame(s.kind, uint64(i), "orders/0/1", s.req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	resp, _, err := c.responseFrame(rpcRequestVote, 7, &raft.RequestVoteResponse{Term: 4, Granted: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(resp)
	f.Add(errorFrame(8, "raftnet: unknown group"))
	f.Add(binary.BigEndian.AppendUint32(nil, 1<<31))
	f.Add([]byte{0, 0, 0, 9, 0x42, 0, 0, 0, 0, 0, 0, 0, 1})

	const maxLen = 1 << 20
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for {
			// The codec's pool: buffers one frame gave back serve the next.
			fr, err := readFrame(r, maxLen, c.bufs)
			if err != nil {
				return
			}
			if len(fr.body) > maxLen {
				t.Fatalf("accepted a body of %d bytes, bound %d", len(fr.body), maxLen)
			}
			if fr.isRequest() {
				if err := validateName(fr.group); err != nil {
					t.Fatalf("accepted group %q: %v", fr.group, err)
				}
				c.decodeRequest(fr.kind, fr.body)
			} else if fr.kind != kindError {
				var v raft.AppendEntriesResponse
				c.decode(fr.body, &v)
			}
			fr.release()
		}
	})
}
