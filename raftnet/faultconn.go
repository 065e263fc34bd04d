package raftnet

import (
	"bytes"
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// maxDelayQueued bounds the bytes a delayed connection holds back; beyond
// it Write blocks, as a full socket send buffer would.
const maxDelayQueued = 4 << 20

// faultConn is one end of a connection between local and peer, carrying
// the faults FaultNetwork sets on their link (see FaultNetwork's doc for
// the semantics). Both ends of a connection are wrapped: the dialing end by
// the dialer, the accepting end by the AcceptHook. Each end stalls on a cut
// and delays the bytes it writes, so each direction is delayed once.
type faultConn struct {
	net.Conn
	fn          *FaultNetwork
	local, peer string

	closed    chan struct{} // closed by Close; wakes every wait
	closeOnce sync.Once
	closeErr  error

	dl deadlines // the deadlines set on the conn, for waits the socket knows nothing about

	rmu     sync.Mutex // serialises Reads; guards held and heldErr
	held    []byte     // read from the socket while the link was cut, shown after it heals
	heldErr error      // EOF or reset read while the link was cut, likewise

	wmu sync.Mutex // serialises Writes: queue-or-write must not race another Write

	qmu      sync.Mutex    // guards the delay queue below
	queue    []chunk       // delayed writes, in order
	queued   int           // bytes in queue, including the chunk being written
	qErr     error         // first error of the pump: the connection is broken, as TCP's would be
	qClosed  bool          // set by Close; no pump may start after it
	qChanged chan struct{} // closed at the next queue change; nil when nobody waits
	pumpDone chan struct{} // nil until the first delayed Write starts the pump; closed when it exits
}

// chunk is one delayed Write.
type chunk struct {
	data []byte
	due  time.Time // when the bytes may leave
}

func newFaultConn(c net.Conn, fn *FaultNetwork, local, peer string) *faultConn {
	return &faultConn{Conn: c, fn: fn, local: local, peer: peer, closed: make(chan struct{})}
}

// Read reads from the socket unless the link is cut; see FaultNetwork.
func (c *faultConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if err := c.await(false, c.linkReady); err != nil {
		return 0, c.opErr("read", &cutLinkError{a: c.local, b: c.peer, err: err})
	}
	if len(c.held) > 0 || c.heldErr != nil {
		return c.readHeld(p)
	}

	n, err := c.Conn.Read(p)
	if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, err // our own deadline, not news from the peer
	}
	if up, _ := c.linkReady(); up {
		return n, err
	}
	// The link was cut while this Read waited on the socket. What arrived
	// (data, a FIN, a reset) crossed the cut; a black hole would have
	// dropped it and TCP would resend it after the heal. Show it then.
	c.held = append(c.held[:0], p[:n]...)
	c.heldErr = err
	if err := c.await(false, c.linkReady); err != nil {
		return 0, c.opErr("read", &cutLinkError{a: c.local, b: c.peer, err: err})
	}
	return c.readHeld(p)
}

// readHeld returns held bytes, then the held error once; the socket keeps
// reporting a real EOF or reset on later Reads by itself.
func (c *faultConn) readHeld(p []byte) (int, error) {
	n := copy(p, c.held)
	c.held = c.held[n:]
	if len(c.held) > 0 {
		return n, nil
	}
	c.held = nil
	err := c.heldErr
	c.heldErr = nil
	return n, err
}

// Write writes to the socket, or queues p behind the link's delay; it
// blocks while the link is cut.
func (c *faultConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.await(true, c.linkReady); err != nil {
		return 0, c.opErr("write", &cutLinkError{a: c.local, b: c.peer, err: err})
	}
	d := c.fn.delay(c.local, c.peer)

	c.qmu.Lock()
	if err := c.qErr; err != nil {
		c.qmu.Unlock()
		return 0, err
	}
	// Only Write adds to the queue and Writes are serialised, so an empty
	// queue stays empty until this Write is done: writing directly cannot
	// overtake queued bytes.
	direct := d == 0 && c.queued == 0
	c.qmu.Unlock()
	if direct {
		return c.Conn.Write(p)
	}
	return c.enqueue(p, time.Now().Add(d))
}

// enqueue hands a copy of p to the pump, waiting for room if the queue is
// full. It returns as soon as p is queued, as a socket write returns once
// the kernel has the bytes.
func (c *faultConn) enqueue(p []byte, due time.Time) (int, error) {
	data := bytes.Clone(p) // the caller may reuse p once Write returns
	roomy := func() (bool, <-chan struct{}) {
		c.qmu.Lock()
		defer c.qmu.Unlock()
		ok := c.qErr != nil || c.qClosed || c.queued == 0 || c.queued+len(data) <= maxDelayQueued
		return ok, c.qChangedLocked()
	}
	if err := c.await(true, roomy); err != nil {
		return 0, c.opErr("write", err)
	}

	c.qmu.Lock()
	defer c.qmu.Unlock()
	if err := c.qErr; err != nil {
		return 0, err
	}
	if c.qClosed {
		return 0, c.opErr("write", net.ErrClosed)
	}
	c.queue = append(c.queue, chunk{data: data, due: due})
	c.queued += len(data)
	if c.pumpDone == nil {
		c.pumpDone = make(chan struct{})
		go c.pump(c.pumpDone)
	}
	c.notifyQLocked()
	return len(p), nil
}

// pump writes queued chunks in order, each when due and while the link is
// up, until Close or the first write error. It is owned by the connection:
// Close stops it and waits for it.
func (c *faultConn) pump(done chan struct{}) {
	defer close(done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c.qmu.Lock()
		for len(c.queue) == 0 && !c.qClosed {
			changed := c.qChangedLocked()
			c.qmu.Unlock()
			select {
			case <-changed:
			case <-c.closed:
				return
			}
			c.qmu.Lock()
		}
		if c.qClosed {
			c.qmu.Unlock()
			return
		}
		head := c.queue[0]
		c.qmu.Unlock()

		if wait := time.Until(head.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-c.closed:
				return
			}
		}
		// A link cut after the bytes were queued holds them too. No
		// deadline applies: the Write that queued them has returned.
		if !c.awaitLinkOrClose() {
			return
		}
		_, err := c.Conn.Write(head.data)

		c.qmu.Lock()
		c.queue[0] = chunk{}
		c.queue = c.queue[1:]
		c.queued -= len(head.data)
		if err != nil {
			c.qErr = err
			c.queue, c.queued = nil, 0
		}
		c.notifyQLocked()
		c.qmu.Unlock()
		if err != nil {
			return
		}
	}
}

// Close closes the socket, discards queued bytes (an abortive close: Raft
// never relies on bytes written just before Close) and waits for the pump.
func (c *faultConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.qmu.Lock()
		c.qClosed = true
		done := c.pumpDone
		c.notifyQLocked()
		c.qmu.Unlock()
		c.closeErr = c.Conn.Close()
		if done != nil {
			<-done
		}
	})
	return c.closeErr
}

func (c *faultConn) SetDeadline(t time.Time) error {
	c.dl.set(true, true, t)
	return c.Conn.SetDeadline(t)
}

func (c *faultConn) SetReadDeadline(t time.Time) error {
	c.dl.set(true, false, t)
	return c.Conn.SetReadDeadline(t)
}

func (c *faultConn) SetWriteDeadline(t time.Time) error {
	c.dl.set(false, true, t)
	return c.Conn.SetWriteDeadline(t)
}

// linkReady is a readiness check for await: the link is up.
func (c *faultConn) linkReady() (bool, <-chan struct{}) {
	return c.fn.linkUp(c.local, c.peer)
}

// await blocks until ready reports true, waking whenever ready's channel,
// the deadline or Close says something changed. It fails with
// os.ErrDeadlineExceeded when the read (or write) deadline passes, and
// with net.ErrClosed on Close.
func (c *faultConn) await(write bool, ready func() (bool, <-chan struct{})) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		ok, changed := ready()
		if ok {
			return nil
		}
		select {
		case <-c.closed:
			return net.ErrClosed
		default:
		}
		dl, dlChanged := c.dl.get(write)
		var expired <-chan time.Time
		if !dl.IsZero() {
			wait := time.Until(dl)
			if wait <= 0 {
				return os.ErrDeadlineExceeded
			}
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			expired = timer.C
		}
		select {
		case <-changed:
		case <-dlChanged:
		case <-expired: // the next round returns the timeout
		case <-c.closed:
			return net.ErrClosed
		}
	}
}

// awaitLinkOrClose waits for the link to be up; false means Close.
func (c *faultConn) awaitLinkOrClose() bool {
	for {
		up, changed := c.linkReady()
		if up {
			return true
		}
		select {
		case <-changed:
		case <-c.closed:
			return false
		}
	}
}

// qChangedLocked returns the channel the next queue change closes. c.qmu
// is held.
func (c *faultConn) qChangedLocked() <-chan struct{} {
	if c.qChanged == nil {
		c.qChanged = make(chan struct{})
	}
	return c.qChanged
}

// notifyQLocked wakes whoever waits on the queue. c.qmu is held.
func (c *faultConn) notifyQLocked() {
	if c.qChanged != nil {
		close(c.qChanged)
		c.qChanged = nil
	}
}

func (c *faultConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// deadlines mirrors the deadlines set on a connection, so that a wait the
// socket knows nothing about (a cut link, a full delay queue) honours them.
type deadlines struct {
	mu          sync.Mutex    // guards the fields below
	read, write time.Time     // zero: none
	changed     chan struct{} // closed at the next set; nil when nobody waits
}

func (d *deadlines) set(read, write bool, t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if read {
		d.read = t
	}
	if write {
		d.write = t
	}
	if d.changed != nil {
		close(d.changed)
		d.changed = nil
	}
}

// get returns the read or write deadline and a channel closed when any
// deadline is set again.
func (d *deadlines) get(write bool) (time.Time, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.changed == nil {
		d.changed = make(chan struct{})
	}
	if write {
		return d.write, d.changed
	}
	return d.read, d.changed
}
