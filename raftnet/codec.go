package raftnet

import (
	"fmt"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// Bodies are hashicorp/raft's RPC structs in msgpack, encoded by the same
// library raft.NetworkTransport uses, so every field raft adds travels
// without a change here; AppendEntries requests alone have a binary body
// of their own (appendcodec.go). The handle is shared: it only caches type
// information, which is safe for concurrent use. Encoders and decoders are
// pooled (an idle node still sends thousands of RPCs a second:
// commit-index updates and heartbeats of every group), and so are frame
// buffers (bufs), in both directions.
type rpcCodec struct {
	h    codec.MsgpackHandle
	encs sync.Pool // *codec.Encoder, writing into a []byte
	decs sync.Pool // *codec.Decoder
	bufs *bufPool  // frame buffers: built here, read by readFrame
}

// emptyBody detaches a pooled decoder from the last body it read.
var emptyBody = []byte{}

func newRPCCodec() *rpcCodec {
	// MaxInitLen stays at its default: go-msgpack then bounds what a
	// length prefix inside a body can make it allocate up front by the
	// element size, and a []byte is checked against the bytes left in the
	// frame. (A small MaxInitLen makes a large []byte grow in steps that
	// cost seconds per megabyte.) Decoded []byte fields are copies, never
	// views of the frame, so a frame's buffer is free once decoded.
	return &rpcCodec{bufs: &bufPool{}}
}

// encodedMessage is the room a message's msgpack encoding takes beyond
// its byte fields, for sizing a frame's buffer up front: msgpack writes a
// struct as a map with its field names. Underestimating costs a copy,
// overestimating a larger buffer class.
const encodedMessage = 512

// encodedSize estimates the msgpack encoding of v.
func encodedSize(v any) int {
	switch m := v.(type) {
	case *raft.RequestVoteRequest:
		return encodedMessage + len(m.RPCHeader.ID) + len(m.RPCHeader.Addr) + len(m.Candidate) //nolint:staticcheck // still sent
	case *raft.InstallSnapshotRequest:
		return encodedMessage + len(m.RPCHeader.ID) + len(m.RPCHeader.Addr) + len(m.Leader) + len(m.Peers) + len(m.Configuration) //nolint:staticcheck // still sent
	default:
		return encodedMessage
	}
}

// encodeFrame returns a complete frame: the header appendHeader writes for
// the body's length, then v in msgpack, built in one pooled buffer. Call
// release once the frame is written and no longer used.
func (c *rpcCodec) encodeFrame(hdrLen int, appendHeader func(b []byte, bodyLen int) []byte, v any) (frame []byte, release func(), err error) {
	buf := c.bufs.get(hdrLen + encodedSize(v))
	// The encoder appends to the slice it is given, from its start: give
	// it the room after the header.
	body := buf[hdrLen:hdrLen]
	enc, _ := c.encs.Get().(*codec.Encoder)
	if enc == nil {
		enc = codec.NewEncoderBytes(&body, &c.h)
	} else {
		enc.ResetBytes(&body)
	}
	if err := enc.Encode(v); err != nil {
		// Not put back: a failed encoder's state is not worth trusting.
		c.bufs.put(buf)
		return nil, nil, fmt.Errorf("encode %T: %w", v, err)
	}
	// Pooled, the encoder still points at buf, which may meanwhile serve
	// another frame: harmless, as it writes nothing before its next
	// ResetBytes.
	c.encs.Put(enc)
	if len(body) > 0 && &body[0] != &buf[hdrLen:cap(buf)][0] {
		// The estimate was short and the encoder moved the body to a
		// larger slice without room for the header: one copy more.
		bigger := c.bufs.get(hdrLen + len(body))
		copy(bigger[hdrLen:], body)
		c.bufs.put(buf)
		buf = bigger
	}
	buf = buf[:hdrLen+len(body)]
	appendHeader(buf[:0], len(body))
	return buf, func() { c.bufs.put(buf) }, nil
}

func (c *rpcCodec) requestFrame(kind byte, id uint64, group string, req any) ([]byte, func(), error) {
	if ae, ok := req.(*raft.AppendEntriesRequest); ok && kind == rpcAppendEntries {
		return c.appendEntriesFrame(id, group, ae)
	}
	return c.encodeFrame(frameLenSize+requestFixed+len(group), func(b []byte, n int) []byte {
		return appendRequestHeader(b, kind, id, group, n)
	}, req)
}

func (c *rpcCodec) responseFrame(kind byte, id uint64, resp any) ([]byte, func(), error) {
	return c.encodeFrame(frameLenSize+frameFixed, func(b []byte, n int) []byte {
		return appendResponseHeader(b, kind|kindResponse, id, n)
	}, resp)
}

func (c *rpcCodec) decode(body []byte, v any) error {
	d, _ := c.decs.Get().(*codec.Decoder)
	if d == nil {
		d = codec.NewDecoderBytes(body, &c.h)
	} else {
		d.ResetBytes(body)
	}
	err := d.Decode(v)
	d.ResetBytes(emptyBody)
	c.decs.Put(d)
	if err != nil {
		return fmt.Errorf("%w: decode %T: %w", ErrBadFrame, v, err)
	}
	return nil
}

// decodeRequest decodes the body of a request of the given kind into the
// raft struct it carries.
func (c *rpcCodec) decodeRequest(kind byte, body []byte) (any, error) {
	var req any
	switch kind {
	case rpcAppendEntries:
		return decodeAppendEntries(body)
	case rpcRequestVote:
		req = &raft.RequestVoteRequest{}
	case rpcInstallSnapshot:
		req = &raft.InstallSnapshotRequest{}
	case rpcTimeoutNow:
		req = &raft.TimeoutNowRequest{}
	case rpcRequestPreVote:
		req = &raft.RequestPreVoteRequest{}
	default:
		return nil, fmt.Errorf("%w: request kind %#x", ErrBadFrame, kind)
	}
	if err := c.decode(body, req); err != nil {
		return nil, err
	}
	return req, nil
}

// isHeartbeat is hashicorp/raft's own test for a heartbeat (net_transport.go):
// such a request may take the fast path that skips the Raft main loop.
func isHeartbeat(req *raft.AppendEntriesRequest) bool {
	leader := req.RPCHeader.Addr
	if len(leader) == 0 {
		leader = req.Leader //nolint:staticcheck // older peers fill only Leader
	}
	return req.Term != 0 && leader != nil &&
		req.PrevLogEntry == 0 && req.PrevLogTerm == 0 &&
		len(req.Entries) == 0 && req.LeaderCommitIndex == 0
}
