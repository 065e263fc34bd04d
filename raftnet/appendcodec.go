package raftnet

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/raft"
)

// AppendEntries requests, nearly all of the Hub's bytes, have a binary
// body of their own instead of msgpack. go-msgpack reads a []byte longer
// than 256 KiB in 256 KiB steps, allocating and copying the whole slice
// again at every step (10% of all CPU with 1 MiB batches in
// BenchmarkProduce3Replicas, on the Hub and on NetworkTransport alike),
// and it encodes every field name of every entry. Here each payload is one
// exact allocation and one copy, and the frame is sized exactly before it
// is built. TestAppendCodecCoversRaftFields fails when hashicorp/raft adds
// a field this layout does not carry.
//
// Layout, big-endian; "bytes" is a uint32 length and that many bytes:
//
//	ProtocolVersion int64 | ID bytes | Addr bytes | Term uint64 | Leader bytes
//	PrevLogEntry uint64 | PrevLogTerm uint64 | LeaderCommitIndex uint64
//	entry count uint32, then per entry:
//	  Index uint64 | Term uint64 | Type uint8
//	  AppendedAt: Unix seconds int64, nanoseconds uint32 | Data bytes | Extensions bytes
const (
	appendFixed      = 8 + 4 + 4 + 8 + 4 + 8 + 8 + 8 + 4
	appendEntryFixed = 8 + 8 + 1 + 8 + 4 + 4 + 4
)

// appendEntriesSize is the exact body size of req.
func appendEntriesSize(req *raft.AppendEntriesRequest) int {
	n := appendFixed + len(req.RPCHeader.ID) + len(req.RPCHeader.Addr) + len(req.Leader) //nolint:staticcheck // still sent by raft
	for _, e := range req.Entries {
		n += appendEntryFixed + len(e.Data) + len(e.Extensions)
	}
	return n
}

// appendAppendEntries appends req's body to b.
func appendAppendEntries(b []byte, req *raft.AppendEntriesRequest) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(int64(req.RPCHeader.ProtocolVersion)))
	b = appendBytes(b, req.RPCHeader.ID)
	b = appendBytes(b, req.RPCHeader.Addr)
	b = binary.BigEndian.AppendUint64(b, req.Term)
	b = appendBytes(b, req.Leader) //nolint:staticcheck // still sent by raft
	b = binary.BigEndian.AppendUint64(b, req.PrevLogEntry)
	b = binary.BigEndian.AppendUint64(b, req.PrevLogTerm)
	b = binary.BigEndian.AppendUint64(b, req.LeaderCommitIndex)
	b = binary.BigEndian.AppendUint32(b, uint32(len(req.Entries)))
	for _, e := range req.Entries {
		b = binary.BigEndian.AppendUint64(b, e.Index)
		b = binary.BigEndian.AppendUint64(b, e.Term)
		b = append(b, byte(e.Type))
		b = binary.BigEndian.AppendUint64(b, uint64(e.AppendedAt.Unix()))
		b = binary.BigEndian.AppendUint32(b, uint32(e.AppendedAt.Nanosecond()))
		b = appendBytes(b, e.Data)
		b = appendBytes(b, e.Extensions)
	}
	return b
}

func appendBytes(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// appendEntriesFrame builds a complete AppendEntries request frame in one
// pooled buffer of exactly its size.
func (c *rpcCodec) appendEntriesFrame(id uint64, group string, req *raft.AppendEntriesRequest) ([]byte, func(), error) {
	bodyLen := appendEntriesSize(req)
	if bodyLen > math.MaxUint32-requestFixed-MaxNameLen {
		return nil, nil, fmt.Errorf("%w: AppendEntries of %d bytes", ErrBadFrame, bodyLen)
	}
	hdrLen := frameLenSize + requestFixed + len(group)
	buf := c.bufs.get(hdrLen + bodyLen)
	b := appendRequestHeader(buf[:0], rpcAppendEntries, id, group, bodyLen)
	b = appendAppendEntries(b, req)
	return b, func() { c.bufs.put(buf) }, nil
}

// appendReader reads an AppendEntries body, refusing (never panicking on)
// anything malformed: every length is checked against the bytes left.
type appendReader struct {
	b   []byte
	err error
}

func (r *appendReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: AppendEntries: %s", ErrBadFrame, what)
	}
	r.b = nil
}

func (r *appendReader) u64(what string) uint64 {
	if len(r.b) < 8 {
		r.fail("short " + what)
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *appendReader) u32(what string) uint32 {
	if len(r.b) < 4 {
		r.fail("short " + what)
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

// bytes returns a copy (the frame's buffer goes back to its pool), nil
// for an empty field.
func (r *appendReader) bytes(what string) []byte {
	n := r.u32(what + " length")
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.b)) {
		r.fail(fmt.Sprintf("%s of %d bytes, %d left", what, n, len(r.b)))
		return nil
	}
	if n == 0 {
		return nil
	}
	v := make([]byte, n)
	copy(v, r.b)
	r.b = r.b[n:]
	return v
}

// decodeAppendEntries decodes an AppendEntries body.
func decodeAppendEntries(body []byte) (*raft.AppendEntriesRequest, error) {
	r := &appendReader{b: body}
	req := &raft.AppendEntriesRequest{}
	pv := int64(r.u64("protocol version"))
	if r.err == nil && (pv < math.MinInt32 || pv > math.MaxInt32) {
		r.fail(fmt.Sprintf("protocol version %d", pv))
	}
	req.RPCHeader.ProtocolVersion = raft.ProtocolVersion(pv)
	req.RPCHeader.ID = r.bytes("ID")
	req.RPCHeader.Addr = r.bytes("Addr")
	req.Term = r.u64("term")
	req.Leader = r.bytes("leader") //nolint:staticcheck // still sent by raft
	req.PrevLogEntry = r.u64("previous index")
	req.PrevLogTerm = r.u64("previous term")
	req.LeaderCommitIndex = r.u64("commit index")
	count := r.u32("entry count")
	if r.err == nil && uint64(count) > uint64(len(r.b)/appendEntryFixed) {
		r.fail(fmt.Sprintf("%d entries in %d bytes", count, len(r.b)))
	}
	if r.err != nil {
		return nil, r.err
	}
	if count > 0 {
		req.Entries = make([]*raft.Log, count)
		logs := make([]raft.Log, count)
		for i := range logs {
			e := &logs[i]
			e.Index = r.u64("entry index")
			e.Term = r.u64("entry term")
			if len(r.b) < 1 {
				r.fail("short entry type")
				break
			}
			e.Type = raft.LogType(r.b[0])
			r.b = r.b[1:]
			sec := int64(r.u64("entry time"))
			nsec := r.u32("entry time")
			if r.err == nil && nsec >= 1e9 {
				r.fail(fmt.Sprintf("entry time of %d ns", nsec))
			}
			e.AppendedAt = time.Unix(sec, int64(nsec)).UTC()
			e.Data = r.bytes("entry data")
			e.Extensions = r.bytes("entry extensions")
			if r.err != nil {
				break
			}
			req.Entries[i] = e
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail(fmt.Sprintf("%d bytes after the last entry", len(r.b)))
	}
	if r.err != nil {
		return nil, r.err
	}
	return req, nil
}
