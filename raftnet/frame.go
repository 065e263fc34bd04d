package raftnet

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// RPCVersion is the version of the Hub's wire format (the lane preamble and
// the frames after it; see the package doc). A Hub refuses a connection of
// another version.
const RPCVersion = 2 // 2: AppendEntries requests in their own binary layout

// Lanes: which traffic a Hub connection carries, named in its preamble.
const (
	laneControl  byte = 0 // heartbeats, votes, pre-votes, TimeoutNow
	laneData     byte = 1 // AppendEntries that carry entries
	laneSnapshot byte = 2 // one InstallSnapshot and its stream, then closed
	numLanes          = 3
)

// RPC types, as in a request frame's kind byte. The values are
// hashicorp/raft's own, so logs read alike.
const (
	rpcAppendEntries   byte = 0
	rpcRequestVote     byte = 1
	rpcInstallSnapshot byte = 2
	rpcTimeoutNow      byte = 3
	rpcRequestPreVote  byte = 4
	maxRPCType              = rpcRequestPreVote
)

// Response kinds: a response frame's kind byte.
const (
	kindResponse byte = 0x80 // | RPC type: the body is the msgpack response
	kindError    byte = 0xC0 // the body is an error message (UTF-8)
)

// Frame layout sizes.
const (
	frameLenSize = 4                // the length prefix
	frameFixed   = 1 + 8            // kind + request id, counted by the length
	requestFixed = frameFixed + 2   // + group name length
	preambleSize = 2                // version + lane
	maxErrorText = 1024             // an error response's text is cut to this
	readChunk    = 64 << 10         // a body's buffer starts at this, then doubles as bytes arrive
	minFrameMax  = requestFixed + 1 // smallest MaxFrameBytes that can carry anything
)

// frame is one decoded frame. For a request, group names the Raft group;
// for a response it is empty.
type frame struct {
	kind  byte
	id    uint64
	group string
	body  []byte
	pool  *bufPool // where body goes back to (see release); nil: nowhere
}

func (f frame) isRequest() bool { return f.kind <= maxRPCType }

// appendRequestHeader appends a request frame's header for a body of
// bodyLen bytes.
func appendRequestHeader(b []byte, kind byte, id uint64, group string, bodyLen int) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(requestFixed+len(group)+bodyLen))
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, id)
	b = binary.BigEndian.AppendUint16(b, uint16(len(group)))
	return append(b, group...)
}

// appendResponseHeader appends a response frame's header for a body of
// bodyLen bytes.
func appendResponseHeader(b []byte, kind byte, id uint64, bodyLen int) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(frameFixed+bodyLen))
	b = append(b, kind)
	return binary.BigEndian.AppendUint64(b, id)
}

// errorFrame is a complete error response to request id.
func errorFrame(id uint64, msg string) []byte {
	if len(msg) > maxErrorText {
		msg = msg[:maxErrorText]
	}
	b := appendResponseHeader(make([]byte, 0, frameLenSize+frameFixed+len(msg)), kindError, id, len(msg))
	return append(b, msg...)
}

// readFrame reads one frame of at most maxLen bytes (after the length
// prefix). Errors wrap ErrBadFrame when the bytes are malformed (the
// connection must then be closed: the stream is out of step), or are the
// read error. The body comes from pool (nil: allocated); call the frame's
// release once its body is no longer used. A peer that announces a large
// frame and sends little costs little: see readBody.
func readFrame(r *bufio.Reader, maxLen int, pool *bufPool) (frame, error) {
	var prefix [frameLenSize + frameFixed]byte
	if _, err := io.ReadFull(r, prefix[:frameLenSize]); err != nil {
		return frame{}, err
	}
	// Judge the length before waiting for more: a hostile length is
	// refused at once.
	n := int(binary.BigEndian.Uint32(prefix[:frameLenSize]))
	if n < frameFixed || n > maxLen {
		return frame{}, fmt.Errorf("%w: length %d, want %d..%d", ErrBadFrame, n, frameFixed, maxLen)
	}
	if _, err := io.ReadFull(r, prefix[frameLenSize:]); err != nil {
		return frame{}, unexpectedEOF(err)
	}
	f := frame{kind: prefix[4], id: binary.BigEndian.Uint64(prefix[5:])}
	n -= frameFixed
	switch {
	case f.isRequest():
		if n < 2 {
			return frame{}, fmt.Errorf("%w: request of %d bytes has no group", ErrBadFrame, n)
		}
		var gl [2]byte
		if _, err := io.ReadFull(r, gl[:]); err != nil {
			return frame{}, unexpectedEOF(err)
		}
		g := int(binary.BigEndian.Uint16(gl[:]))
		n -= 2
		if g == 0 || g > MaxNameLen || g > n {
			return frame{}, fmt.Errorf("%w: group name length %d in a request of %d bytes", ErrBadFrame, g, n)
		}
		var name [MaxNameLen]byte
		if _, err := io.ReadFull(r, name[:g]); err != nil {
			return frame{}, unexpectedEOF(err)
		}
		if err := validateName(string(name[:g])); err != nil {
			return frame{}, fmt.Errorf("%w: group: %w", ErrBadFrame, err)
		}
		f.group = string(name[:g])
		n -= g
	case f.kind == kindError, f.kind&^0x7f == kindResponse && f.kind&0x7f <= maxRPCType:
	default:
		return frame{}, fmt.Errorf("%w: kind %#x", ErrBadFrame, f.kind)
	}
	body, err := readBody(r, n, pool)
	if err != nil {
		return frame{}, unexpectedEOF(err)
	}
	f.body, f.pool = body, pool
	return f, nil
}

// release gives the frame's body back to its pool: neither the body nor
// anything that aliases it may be used afterwards. (Decoded messages do
// not alias it: the codec copies byte fields out.)
func (f *frame) release() {
	if f.pool != nil && f.body != nil {
		f.pool.put(f.body)
	}
	f.body, f.pool = nil, nil
}

// readBody reads exactly n bytes into a buffer from pool. A pooled buffer
// large enough is used at once: it costs nothing new however little the
// peer then sends. Otherwise the buffer starts at readChunk and doubles as
// bytes arrive, so what a peer makes this side allocate is never more
// than twice what it actually sent; the buffers outgrown go back to the
// pool.
func readBody(r io.Reader, n int, pool *bufPool) ([]byte, error) {
	if b, ok := pool.tryGet(n); ok {
		if _, err := io.ReadFull(r, b); err != nil {
			pool.put(b)
			return nil, err
		}
		return b, nil
	}
	buf := pool.get(min(n, readChunk))
	got := 0
	for {
		m, err := io.ReadFull(r, buf[got:])
		got += m
		if err != nil {
			pool.put(buf)
			return nil, err
		}
		if got == n {
			return buf, nil
		}
		bigger := pool.get(min(n, 2*len(buf)))
		copy(bigger, buf)
		pool.put(buf)
		buf = bigger
	}
}

// unexpectedEOF turns an EOF inside a frame into io.ErrUnexpectedEOF: the
// peer hung up mid-frame.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
