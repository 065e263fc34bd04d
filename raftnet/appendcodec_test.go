package raftnet

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// The binary AppendEntries layout carries every field raft has: a raft
// upgrade that adds one fails here instead of dropping it on the wire.
func TestAppendCodecCoversRaftFields(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want []string
	}{
		{raft.AppendEntriesRequest{}, []string{"RPCHeader", "Term", "Leader", "PrevLogEntry", "PrevLogTerm", "Entries", "LeaderCommitIndex"}},
		{raft.RPCHeader{}, []string{"ProtocolVersion", "ID", "Addr"}},
		{raft.Log{}, []string{"Index", "Term", "Type", "Data", "Extensions", "AppendedAt"}},
	} {
		rt := reflect.TypeOf(tc.v)
		var got []string
		for i := 0; i < rt.NumField(); i++ {
			got = append(got, rt.Field(i).Name)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s has fields %v; appendcodec.go carries %v", rt, got, tc.want)
		}
	}
}

func TestAppendCodecRoundTrip(t *testing.T) {
	full := &raft.AppendEntriesRequest{
		RPCHeader:         raft.RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte("127.0.0.1:9401")},
		Term:              7,
		Leader:            []byte("127.0.0.1:9401"),
		PrevLogEntry:      41,
		PrevLogTerm:       6,
		LeaderCommitIndex: 40,
		Entries: []*raft.Log{
			{Index: 42, Term: 7, Type: raft.LogCommand, Data: bytes.Repeat([]byte{1}, 300<<10), Extensions: []byte("x"), AppendedAt: time.Unix(1700000000, 123456789).UTC()},
			{Index: 43, Term: 7, Type: raft.LogBarrier},
		},
	}
	for _, req := range []*raft.AppendEntriesRequest{full, {Term: 1}} {
		body := appendAppendEntries(nil, req)
		if len(body) != appendEntriesSize(req) {
			t.Fatalf("encoded %d bytes, size says %d", len(body), appendEntriesSize(req))
		}
		got, err := decodeAppendEntries(body)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, req) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, req)
		}
		// The decoded payloads are copies: the frame buffer is reused.
		for i := range body {
			body[i] = 0xFF
		}
		if !reflect.DeepEqual(got, req) {
			t.Fatal("decoded request aliases the frame body")
		}
	}
}

// Every cut of a valid body, and bodies with lengths and counts beyond
// the bytes present, are refused without panicking.
func TestAppendCodecRefusesMalformed(t *testing.T) {
	req := &raft.AppendEntriesRequest{
		RPCHeader: hdr("n1"), Term: 2,
		Entries: []*raft.Log{{Index: 1, Term: 2, Data: []byte("batch")}, {Index: 2, Term: 2, Data: []byte("more")}},
	}
	body := appendAppendEntries(nil, req)
	for i := 0; i < len(body); i++ {
		if _, err := decodeAppendEntries(body[:i]); err == nil {
			t.Fatalf("accepted a body cut to %d of %d bytes", i, len(body))
		}
	}
	if _, err := decodeAppendEntries(append(body[:len(body):len(body)], 0)); err == nil {
		t.Fatal("accepted a trailing byte")
	}
	// A huge entry count in a tiny body must not allocate for it.
	bad := appendAppendEntries(nil, &raft.AppendEntriesRequest{Term: 1})
	copy(bad[len(bad)-4:], []byte{0xFF, 0xFF, 0xFF, 0xFF})
	if _, err := decodeAppendEntries(bad); err == nil {
		t.Fatal("accepted 4 billion entries in no bytes")
	}
	// A nanosecond field out of range.
	one := appendAppendEntries(nil, &raft.AppendEntriesRequest{Entries: []*raft.Log{{Index: 1}}})
	off := appendFixed + 8 + 8 + 1 + 8
	copy(one[off:], []byte{0xFF, 0xFF, 0xFF, 0xFF})
	if _, err := decodeAppendEntries(one); err == nil {
		t.Fatal("accepted 4e9 ns")
	}
}
