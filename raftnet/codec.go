package raftnet

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// Bodies are hashicorp/raft's RPC structs in msgpack, encoded by the same
// library raft.NetworkTransport uses, so every field raft adds travels
// without a change here. The handle is shared: it only caches type
// information, which is safe for concurrent use. Encoders, decoders and
// small frame buffers are pooled: an idle node still sends thousands of
// RPCs a second (commit-index updates and heartbeats of every group).
type rpcCodec struct {
	h    codec.MsgpackHandle
	encs sync.Pool // *frameEncoder
	decs sync.Pool // *codec.Decoder
}

// maxPooledFrame is the largest frame buffer kept for reuse; a large
// append's buffer goes to the garbage collector, so the pool never pins
// more than a few small buffers.
const maxPooledFrame = 64 << 10

// frameEncoder builds one frame in buf: the header's room, then the body
// enc writes after it.
type frameEncoder struct {
	buf bytes.Buffer
	enc *codec.Encoder
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
	return &rpcCodec{}
}

// encodeFrame returns a complete frame: the header appendHeader writes for
// the body's length, then v in msgpack, built in one buffer. Call release
// once the frame is written and no longer used.
func (c *rpcCodec) encodeFrame(hdrLen int, appendHeader func(b []byte, bodyLen int) []byte, v any) (frame []byte, release func(), err error) {
	fe, _ := c.encs.Get().(*frameEncoder)
	if fe == nil {
		fe = &frameEncoder{}
		fe.enc = codec.NewEncoder(&fe.buf, &c.h)
	}
	fe.buf.Reset()
	var zero [frameLenSize + requestFixed + MaxNameLen]byte
	fe.buf.Write(zero[:hdrLen])
	fe.enc.Reset(&fe.buf)
	if err := fe.enc.Encode(v); err != nil {
		// Not put back: a failed encoder's state is not worth trusting.
		return nil, nil, fmt.Errorf("encode %T: %w", v, err)
	}
	b := fe.buf.Bytes()
	appendHeader(b[:0], len(b)-hdrLen)
	return b, func() { c.putEncoder(fe) }, nil
}

func (c *rpcCodec) putEncoder(fe *frameEncoder) {
	if fe.buf.Cap() <= maxPooledFrame {
		c.encs.Put(fe)
	}
}

func (c *rpcCodec) requestFrame(kind byte, id uint64, group string, req any) ([]byte, func(), error) {
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
		req = &raft.AppendEntriesRequest{}
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
