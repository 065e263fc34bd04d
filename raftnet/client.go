package raftnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// dialRetryAfter is how long a failed dial is reported to further callers
// instead of dialing again: a hundred groups heartbeating a dead peer would
// otherwise each dial it, several times a second.
const dialRetryAfter = 100 * time.Millisecond

// peer is this node's outbound lanes to one peer address, shared by every
// group.
type peer struct {
	addr  string
	lanes [laneSnapshot]*lane // control and data; snapshots dial their own
}

// peer returns the lanes to addr, creating them on first use.
func (h *Hub) peer(addr string) (*peer, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("hub: %w", net.ErrClosed)
	}
	p := h.peers[addr]
	if p == nil {
		p = &peer{addr: addr}
		for i := range p.lanes {
			p.lanes[i] = &lane{h: h, addr: addr, kind: byte(i), sem: make(chan struct{}, 1)}
		}
		h.peers[addr] = p
	}
	return p, nil
}

func (p *peer) close(err error) {
	for _, l := range p.lanes {
		l.close(err)
	}
}

func (p *peer) closeIdle(cutoff time.Time) {
	for _, l := range p.lanes {
		l.closeIdle(cutoff)
	}
}

// lane is one outbound connection to a peer, redialed when it fails. Many
// RPCs share it: each is written whole (sem serialises dialing and
// writing), and responses, in whatever order they come, are matched to
// their requests by id.
type lane struct {
	h    *Hub
	addr string
	kind byte
	sem  chan struct{} // one token: held to dial or to write
	ids  atomic.Uint64 // request ids, unique on the lane

	mu        sync.Mutex // guards the fields below
	cur       *clientConn
	lastUse   time.Time
	dialErr   error
	dialErrAt time.Time
	closed    error // set by close: the lane refuses RPCs
}

// call sends one request and waits for its response until deadline.
func (l *lane) call(t *Transport, kind byte, args any, deadline time.Time) (frame, error) {
	id := l.ids.Add(1)
	req, release, err := l.h.codec.requestFrame(kind, id, t.group, args)
	if err != nil {
		return frame{}, err
	}
	defer release()
	if len(req)-frameLenSize > l.h.cfg.MaxFrameBytes {
		return frame{}, fmt.Errorf("%w: request of %d bytes, limit %d (MaxFrameBytes)", ErrBadFrame, len(req)-frameLenSize, l.h.cfg.MaxFrameBytes)
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()

	select {
	case l.sem <- struct{}{}:
	case <-timer.C:
		return frame{}, timeoutErr("waiting for the connection")
	case <-t.shutdown:
		return frame{}, raft.ErrTransportShutdown
	case <-l.h.ctx.Done():
		return frame{}, fmt.Errorf("hub: %w", net.ErrClosed)
	}
	cc, ch, err := l.send(t, id, req, deadline)
	<-l.sem
	if err != nil {
		return frame{}, err
	}
	sent := time.Now()

	select {
	case r := <-ch:
		return r.f, r.err
	case <-timer.C:
		cc.forget(id)
		// Nothing at all from the peer since this request left: the
		// connection is presumed dead for every group on it (a silent
		// partition leaves TCP open), so the next RPC redials.
		if cc.lastRecv.Load() < sent.UnixNano() {
			cc.fail(timeoutErr("no response on the connection"))
		}
		return frame{}, timeoutErr("waiting for the response")
	case <-t.shutdown:
		cc.forget(id)
		return frame{}, raft.ErrTransportShutdown
	case <-l.h.ctx.Done():
		cc.forget(id)
		return frame{}, fmt.Errorf("hub: %w", net.ErrClosed)
	}
}

// send writes req on the lane's connection, dialing one if needed. The
// caller holds sem.
func (l *lane) send(t *Transport, id uint64, req []byte, deadline time.Time) (*clientConn, <-chan result, error) {
	cc, err := l.conn(t, deadline)
	if err != nil {
		return nil, nil, err
	}
	ch, err := cc.expect(id)
	if err != nil {
		return nil, nil, err
	}
	if err := cc.conn.SetWriteDeadline(deadline); err != nil {
		cc.fail(err)
		return nil, nil, err
	}
	if _, err := cc.conn.Write(req); err != nil {
		// A partial frame leaves the stream out of step: the connection
		// is done for every group.
		cc.fail(fmt.Errorf("write: %w", err))
		return nil, nil, fmt.Errorf("write: %w", err)
	}
	l.mu.Lock()
	l.lastUse = time.Now()
	l.mu.Unlock()
	return cc, ch, nil
}

// conn returns the lane's live connection or dials one. The caller holds
// sem.
func (l *lane) conn(t *Transport, deadline time.Time) (*clientConn, error) {
	l.mu.Lock()
	if l.closed != nil {
		l.mu.Unlock()
		return nil, l.closed
	}
	if l.cur != nil && l.cur.alive() {
		cc := l.cur
		l.mu.Unlock()
		return cc, nil
	}
	l.cur = nil
	if l.dialErr != nil && time.Since(l.dialErrAt) < dialRetryAfter {
		err := l.dialErr
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()

	conn, err := l.h.dial(l.addr, l.kind, deadline, t.shutdown)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.dialErr, l.dialErrAt = err, time.Now()
		return nil, err
	}
	l.dialErr = nil
	if l.closed != nil {
		conn.Close()
		return nil, l.closed
	}
	cc := &clientConn{conn: conn, pending: make(map[uint64]chan result)}
	if !l.h.track(func() { cc.readLoop(l.h.cfg.MaxFrameBytes, l.h.codec.bufs) }) {
		conn.Close()
		return nil, fmt.Errorf("hub: %w", net.ErrClosed)
	}
	l.cur = cc
	l.lastUse = time.Now()
	return cc, nil
}

// close fails the lane's connection and refuses further RPCs.
func (l *lane) close(err error) {
	l.mu.Lock()
	l.closed = fmt.Errorf("hub: %w", err)
	cc := l.cur
	l.cur = nil
	l.mu.Unlock()
	if cc != nil {
		cc.fail(l.closed)
	}
}

// closeIdle closes the connection if no RPC used it since cutoff and none
// is waiting. A lane busy writing is not idle.
func (l *lane) closeIdle(cutoff time.Time) {
	select {
	case l.sem <- struct{}{}:
	default:
		return
	}
	defer func() { <-l.sem }()
	l.mu.Lock()
	cc := l.cur
	if cc == nil || !l.lastUse.Before(cutoff) || cc.inflight() > 0 {
		l.mu.Unlock()
		return
	}
	l.cur = nil
	l.mu.Unlock()
	cc.fail(errors.New("idle connection closed"))
}

// clientConn is one dialed connection of a lane and the requests waiting
// for their answer on it.
type clientConn struct {
	conn     net.Conn
	lastRecv atomic.Int64 // unix nanos of the last frame read

	mu      sync.Mutex
	pending map[uint64]chan result // nil once failed
	err     error
}

type result struct {
	f   frame
	err error
}

func (c *clientConn) alive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil
}

func (c *clientConn) inflight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// expect registers request id and returns where its result arrives.
func (c *clientConn) expect(id uint64) (<-chan result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	ch := make(chan result, 1)
	c.pending[id] = ch
	return ch, nil
}

func (c *clientConn) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// fail closes the connection and fails every request waiting on it.
func (c *clientConn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	c.conn.Close()
	for _, ch := range pending {
		ch <- result{err: err}
	}
}

// readLoop delivers responses until the connection fails; then every
// request still waiting fails at once (a peer that went away).
func (c *clientConn) readLoop(maxFrame int, pool *bufPool) {
	r := newSmallReader(c.conn)
	for {
		f, err := readFrame(r, maxFrame, pool)
		if err == nil && f.isRequest() {
			err = fmt.Errorf("%w: request kind %#x on an outbound connection", ErrBadFrame, f.kind)
		}
		if err != nil {
			c.fail(fmt.Errorf("read: %w", err))
			return
		}
		c.lastRecv.Store(time.Now().UnixNano())
		c.mu.Lock()
		ch := c.pending[f.id]
		delete(c.pending, f.id)
		c.mu.Unlock()
		if ch != nil {
			ch <- result{f: f}
		} else {
			f.release() // its caller gave up
		}
	}
}

// newSmallReader buffers the responses of an outbound connection: they
// are small (a response is a few dozen bytes), so is the buffer.
func newSmallReader(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(c, 4<<10) }

// track starts fn on a goroutine the Hub waits for in Close, unless the
// Hub is closed.
func (h *Hub) track(fn func()) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		fn()
	}()
	return true
}

// dial opens a Hub connection of the given lane to addr: a Mux connection
// to the peer's Hub group (TCP, TLS, header), then the preamble.
func (h *Hub) dial(addr string, lane byte, deadline time.Time, shutdown <-chan struct{}) (net.Conn, error) {
	ctx, cancel := context.WithDeadline(h.ctx, deadline)
	defer cancel()
	stop := h.onStop(shutdown, cancel)
	defer stop()
	conn, err := h.mux.dial(ctx, h.cfg.MuxGroup, addr)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	conn.SetWriteDeadline(deadline)
	if _, err := conn.Write([]byte{RPCVersion, lane}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("write preamble: %w", err)
	}
	conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

// onStop runs fn if shutdown closes or the Hub closes before the returned
// stop is called; stop waits for the watcher to exit.
func (h *Hub) onStop(shutdown <-chan struct{}, fn func()) (stop func()) {
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case <-shutdown:
			fn()
		case <-h.ctx.Done():
			fn()
		case <-done:
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// rpcTimeoutError is ErrRPCTimeout as a net.Error timeout, which is how a
// caller of raft.NetworkTransport would have seen it.
type rpcTimeoutError struct{ what string }

func (e *rpcTimeoutError) Error() string   { return fmt.Sprintf("%v: %s", ErrRPCTimeout, e.what) }
func (e *rpcTimeoutError) Unwrap() []error { return []error{ErrRPCTimeout, os.ErrDeadlineExceeded} }
func (e *rpcTimeoutError) Timeout() bool   { return true }
func (e *rpcTimeoutError) Temporary() bool { return true }

func timeoutErr(what string) error { return &rpcTimeoutError{what: what} }
