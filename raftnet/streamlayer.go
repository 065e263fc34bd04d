package raftnet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is one group's view of a Mux: the raft.StreamLayer its
// raft.NetworkTransport runs on.
type streamLayer struct {
	mux  *Mux
	name string

	// acceptCh is unbuffered: a routed connection stays with its routing
	// goroutine (which closes it on shutdown) until Accept takes it, so no
	// connection is ever stranded in a buffer.
	acceptCh chan net.Conn

	// ctx is cancelled by shutdown (or the Mux's Close); it unblocks Accept
	// and aborts Dials in flight.
	ctx    context.Context
	cancel context.CancelFunc

	conns connSet // connections handed out, closed by shutdown
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(m *Mux, name string) *streamLayer {
	ctx, cancel := context.WithCancel(m.ctx)
	return &streamLayer{
		mux:      m,
		name:     name,
		acceptCh: make(chan net.Conn),
		ctx:      ctx,
		cancel:   cancel,
	}
}

// Accept waits for the next connection a peer dialed to this group.
func (g *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-g.acceptCh:
		tc, ok := g.conns.track(c)
		if !ok {
			c.Close()
			return nil, g.closedErr("accept")
		}
		return tc, nil
	case <-g.ctx.Done():
		return nil, g.closedErr("accept")
	}
}

// deliver hands c to Accept, waiting at most timeout: a group whose
// transport does not accept must not pin a handshake slot for ever.
func (g *streamLayer) deliver(c net.Conn, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case g.acceptCh <- c:
		return nil
	case <-g.ctx.Done():
		return g.closedErr("deliver")
	case <-t.C:
		return fmt.Errorf("raftnet: group %q accepted nothing for %v", g.name, timeout)
	}
}

// Close unregisters the group, makes Accept return an error wrapping
// net.ErrClosed and closes every connection this layer handed out.
// raft.NetworkTransport.Close calls it.
func (g *streamLayer) Close() error {
	g.mux.unregister(g)
	g.shutdown()
	return nil
}

// shutdown is Close without unregistering (the Mux's Close has already
// dropped its whole map).
func (g *streamLayer) shutdown() {
	g.cancel()
	g.conns.closeAll()
}

// Addr is the Mux's advertised address: what this server's peers dial, and
// what raft.NetworkTransport.LocalAddr reports.
func (g *streamLayer) Addr() net.Addr { return g.mux.addr }

// Dial connects to the same group on the Mux at address and sends the
// header. timeout bounds both the connect and the header write; zero means
// no bound other than the layer being closed.
func (g *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx := g.ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return nil, g.closedErr("dial " + string(address))
	}

	conn, err := g.mux.dial(ctx, g.name, string(address))
	if err != nil {
		return nil, g.dialErr(address, err)
	}
	tc, ok := g.conns.track(conn)
	if !ok {
		conn.Close()
		return nil, g.closedErr("dial " + string(address))
	}
	return tc, nil
}

// dial connects to group on the Mux at address: TCP, the TLS handshake
// when the Mux has TLS, then the header.
func (m *Mux) dial(ctx context.Context, group, address string) (net.Conn, error) {
	conn, err := m.cfg.Dialer(ctx, "tcp", address)
	if err != nil {
		return nil, err
	}
	if m.cfg.TLS != nil {
		tc := tls.Client(conn, m.cfg.TLS.Client)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		conn = tc
	}
	if err := writeHeader(ctx, conn, group, m.cfg.NodeID); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// Dial connects to group on the Mux at address without registering the
// group here: for request/response traffic (node-to-node HTTP) whose
// accepting side is a registered group on the peer. The connection is the
// caller's to close; it is not closed by Close.
func (m *Mux) Dial(ctx context.Context, group, address string) (net.Conn, error) {
	if err := validateName(group); err != nil {
		return nil, fmt.Errorf("raftnet: dial: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(m.ctx, cancel)
	defer stop()
	conn, err := m.dial(ctx, group, address)
	if err != nil {
		return nil, fmt.Errorf("raftnet: group %q: dial %s: %w", group, address, err)
	}
	return conn, nil
}

// writeHeader writes the header in one write, aborted when ctx ends.
func writeHeader(ctx context.Context, conn net.Conn, group, node string) error {
	// A write blocks on a full socket buffer and ignores ctx; a deadline in
	// the past is how the net package lets another goroutine interrupt it.
	stop := context.AfterFunc(ctx, func() {
		conn.SetWriteDeadline(time.Unix(1, 0))
	})
	buf := header{group: group, node: node}.appendTo(make([]byte, 0, 64))
	_, err := conn.Write(buf)
	if !stop() {
		// ctx ended: the deadline may have cut the write, or may still be
		// poisoning the connection. Either way it is unusable.
		return fmt.Errorf("write header: %w", errors.Join(ctx.Err(), err))
	}
	if err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	return nil
}

func (g *streamLayer) dialErr(address raft.ServerAddress, err error) error {
	return fmt.Errorf("raftnet: group %q: dial %s: %w", g.name, address, err)
}

func (g *streamLayer) closedErr(op string) error {
	return fmt.Errorf("raftnet: group %q: %s: %w", g.name, op, net.ErrClosed)
}
