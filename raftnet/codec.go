package raftnet

import (
	"bytes"
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// Bodies are hashicorp/raft's RPC structs in msgpack, encoded by the same
// library raft.NetworkTransport uses, so every field raft adds travels
// without a change here. The handle is shared: it only caches type
// information, which is safe for concurrent use.
type rpcCodec struct {
	h codec.MsgpackHandle
}

func newRPCCodec() *rpcCodec {
	// MaxInitLen stays at its default: go-msgpack then bounds what a
	// length prefix inside a body can make it allocate up front by the
	// element size, and a []byte is checked against the bytes left in the
	// frame. (A small MaxInitLen makes a large []byte grow in steps that
	// cost seconds per megabyte.)
	return &rpcCodec{}
}

// encodeFrame returns a complete frame: the header appendHeader writes for
// the body's length, then v in msgpack. The header is written into the same
// buffer after the body is encoded, so the frame is built with one copy.
func (c *rpcCodec) encodeFrame(hdrLen int, appendHeader func(b []byte, bodyLen int) []byte, v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.Write(make([]byte, hdrLen))
	if err := codec.NewEncoder(&buf, &c.h).Encode(v); err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	b := buf.Bytes()
	appendHeader(b[:0], len(b)-hdrLen)
	return b, nil
}

func (c *rpcCodec) requestFrame(kind byte, id uint64, group string, req any) ([]byte, error) {
	return c.encodeFrame(frameLenSize+requestFixed+len(group), func(b []byte, n int) []byte {
		return appendRequestHeader(b, kind, id, group, n)
	}, req)
}

func (c *rpcCodec) responseFrame(kind byte, id uint64, resp any) ([]byte, error) {
	return c.encodeFrame(frameLenSize+frameFixed, func(b []byte, n int) []byte {
		return appendResponseHeader(b, kind|kindResponse, id, n)
	}, resp)
}

func (c *rpcCodec) decode(body []byte, v any) error {
	if err := codec.NewDecoderBytes(body, &c.h).Decode(v); err != nil {
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
