package raftnet

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// connSet remembers the connections a StreamLayer handed out so that
// closing the StreamLayer closes them too.
//
// Why: raft.NetworkTransport.Close closes its StreamLayer but neither its
// pooled outbound connections nor the inbound ones its handlers are reading.
// Left open, an inbound handler of a stopped replica keeps a goroutine and
// a socket, and the peer's pooled connection keeps feeding a transport that
// is gone. Closing them makes the peer see EOF at once and redial, which
// reaches the replica's next incarnation if it registers again.
type connSet struct {
	mu     sync.Mutex                // guards the fields below
	closed bool                      // set once by closeAll; track then refuses
	conns  map[*trackedConn]struct{} // open connections handed out
}

// track wraps c so that its Close unregisters it. It returns false (and
// leaves c open, for the caller to close) once the set is closed.
func (s *connSet) track(c net.Conn) (net.Conn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	if s.conns == nil {
		s.conns = make(map[*trackedConn]struct{})
	}
	tc := &trackedConn{Conn: c, set: s}
	s.conns[tc] = struct{}{}
	return tc, true
}

func (s *connSet) remove(tc *trackedConn) {
	s.mu.Lock()
	delete(s.conns, tc)
	s.mu.Unlock()
}

// closeAll closes every tracked connection and refuses new ones.
func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for tc := range conns {
		tc.shut.Store(true)
		tc.Close()
	}
}

// trackedConn is the connection a StreamLayer hands to Raft. It embeds the
// net.Conn it wraps, so Read and Write go straight to the socket: one
// interface call more per Read or Write, nothing per byte, and no
// goroutine in between.
type trackedConn struct {
	net.Conn
	set  *connSet
	shut atomic.Bool // closed by its StreamLayer, not by its user
	once sync.Once
	err  error // result of the one real Close
}

// Read reads from the socket. When the StreamLayer closed the connection
// under a reader, the reader sees io.EOF rather than "use of closed
// network connection": raft.NetworkTransport's inbound handlers log every
// error but EOF at ERROR level, and a replica shutting down is not one.
func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.shut.Load() {
		err = io.EOF
	}
	return n, err
}

// Close closes the connection once and forgets it.
func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.set.remove(c)
		c.err = c.Conn.Close()
	})
	return c.err
}
