package raftnet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Mux shares one listener among the Raft groups of a node. It reads the
// header of every inbound connection and hands the connection to the
// group it names; see the package doc for the wire format.
//
// A Mux owns its listener and every goroutine it starts: Close stops them
// and waits for them.
type Mux struct {
	cfg  MuxConfig    // with defaults filled in
	ln   net.Listener // owned: closed by Close
	addr net.Addr     // advertised to peers through StreamLayer.Addr
	log  *slog.Logger

	// ctx is cancelled by Close; every group's context derives from it, so
	// Close also aborts blocked Accepts and in-flight Dials.
	ctx    context.Context
	cancel context.CancelFunc

	// slots is a semaphore of MaxPendingHandshakes tokens, one per inbound
	// connection being routed.
	slots chan struct{}

	wg sync.WaitGroup // the accept loop and every routing goroutine

	mu       sync.Mutex              // guards the fields below
	closed   bool                    // set by Close
	groups   map[string]*streamLayer // registered groups by name
	pending  map[net.Conn]struct{}   // inbound conns whose header is being read
	closeErr error                   // result of the first Close
}

// Listen listens on addr ("host:port", TCP) and serves a Mux on it.
func Listen(addr string, cfg MuxConfig) (*Mux, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("raftnet: listen %s: %w", addr, err)
	}
	m, err := NewMux(ln, cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return m, nil
}

// NewMux serves a Mux on ln. On success the Mux owns ln and closes it in
// Close; on error ln is left open for the caller.
func NewMux(ln net.Listener, cfg MuxConfig) (*Mux, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()

	addr, err := advertisedAddr(ln.Addr(), cfg.Advertise)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	m := &Mux{
		cfg:     cfg,
		ln:      ln,
		addr:    addr,
		log:     cfg.Logger.With("component", "raftnet", "node", cfg.NodeID),
		ctx:     ctx,
		cancel:  cancel,
		slots:   make(chan struct{}, cfg.MaxPendingHandshakes),
		groups:  make(map[string]*streamLayer),
		pending: make(map[net.Conn]struct{}),
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m, nil
}

// advertisedAddr is the address peers should dial. Like raft.NewTCPTransport
// it refuses an unspecified IP: written into a Raft configuration, 0.0.0.0
// would make every peer dial itself.
func advertisedAddr(listen net.Addr, advertise string) (net.Addr, error) {
	if advertise != "" {
		return tcpAddrString(advertise), nil
	}
	if ta, ok := listen.(*net.TCPAddr); ok && (ta.IP == nil || ta.IP.IsUnspecified()) {
		return nil, fmt.Errorf("%w: listening on %s; set MuxConfig.Advertise", ErrNotAdvertisable, listen)
	}
	return listen, nil
}

// tcpAddrString is an advertised address kept as configured: a host name
// stays a host name, resolved by each peer when it dials.
type tcpAddrString string

func (a tcpAddrString) Network() string { return "tcp" }
func (a tcpAddrString) String() string  { return string(a) }

// Addr is the address peers dial to reach this Mux (MuxConfig.Advertise, or
// the listener's address).
func (m *Mux) Addr() net.Addr { return m.addr }

// NodeID is the id this Mux sends to its peers.
func (m *Mux) NodeID() string { return m.cfg.NodeID }

// StreamLayer registers group and returns the raft.StreamLayer to build its
// raft.NetworkTransport on. Accept yields the connections peers dialed to
// this group; Dial(addr) reaches the same group on the Mux at addr; Addr
// is the Mux's advertised address; Close unregisters the group (the name
// can then be registered again) and closes every connection it handed out.
//
// It fails with ErrInvalidName, ErrGroupExists, or an error wrapping
// net.ErrClosed after Close.
func (m *Mux) StreamLayer(group string) (raft.StreamLayer, error) {
	if err := validateName(group); err != nil {
		return nil, fmt.Errorf("raftnet: register group: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("raftnet: register group %q: %w", group, net.ErrClosed)
	}
	if _, ok := m.groups[group]; ok {
		return nil, fmt.Errorf("%w: %q", ErrGroupExists, group)
	}
	g := newStreamLayer(m, group)
	m.groups[group] = g
	return g, nil
}

// unregister forgets g if it is still the registered layer for its name (a
// newer registration of the same name is left alone).
func (m *Mux) unregister(g *streamLayer) {
	m.mu.Lock()
	if m.groups[g.name] == g {
		delete(m.groups, g.name)
	}
	m.mu.Unlock()
}

// Close closes the listener and every group (their Accepts return an error
// wrapping net.ErrClosed and the connections they handed out are closed),
// then waits for the Mux's goroutines to exit. It is safe to call more
// than once.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.wg.Wait()
		return m.closeErr
	}
	m.closed = true
	groups := m.groups
	m.groups = nil
	pending := m.pending
	m.pending = nil
	if err := m.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		m.closeErr = fmt.Errorf("raftnet: close listener: %w", err)
	}
	m.mu.Unlock()

	m.cancel()
	// A routing goroutine blocked reading a header only wakes when its
	// connection closes.
	for c := range pending {
		c.Close()
	}
	for _, g := range groups {
		g.shutdown()
	}
	m.wg.Wait()
	return m.closeErr
}

// acceptLoop accepts until the listener is closed and starts one routing
// goroutine per connection, so that a slow header delays nobody else.
func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	var delay time.Duration
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			if m.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (EMFILE, ECONNABORTED): back off as net/http does
			// rather than spin or give up on the port.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			m.log.Warn("accept failed; retrying", "error", err, "delay", delay)
			select {
			case <-time.After(delay):
			case <-m.ctx.Done():
				return
			}
			continue
		}
		delay = 0

		select {
		case m.slots <- struct{}{}:
		default:
			m.log.Debug("dropping connection: too many pending handshakes",
				"remote", conn.RemoteAddr(), "limit", m.cfg.MaxPendingHandshakes)
			conn.Close()
			continue
		}
		if !m.addPending(conn) {
			conn.Close()
			<-m.slots
			return
		}
		m.wg.Add(1)
		go m.route(conn)
	}
}

func (m *Mux) addPending(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.pending[c] = struct{}{}
	return true
}

func (m *Mux) removePending(c net.Conn) {
	m.mu.Lock()
	delete(m.pending, c)
	m.mu.Unlock()
}

// route reads the header of conn and hands conn to its group, or closes it.
func (m *Mux) route(raw net.Conn) {
	defer m.wg.Done()
	defer func() { <-m.slots }()

	conn, verified, err := m.handshake(raw)
	var h header
	if err == nil {
		h, err = m.readHeader(conn)
	}
	m.removePending(raw)
	if err != nil {
		m.log.Debug("dropping connection: bad handshake or header", "remote", raw.RemoteAddr(), "error", err)
		m.refused(RefusedHandshake)
		raw.Close()
		return
	}
	if verified != "" && h.node != verified {
		m.log.Warn("dropping connection: node id does not match its certificate",
			"remote", raw.RemoteAddr(), "claims", h.node, "certificate", verified, "group", h.group)
		m.refused(RefusedIdentity)
		conn.Close()
		return
	}
	if m.cfg.Authorize != nil {
		if err := m.cfg.Authorize(h.node, h.group); err != nil {
			m.log.Debug("dropping connection: not authorized",
				"remote", raw.RemoteAddr(), "peer", h.node, "group", h.group, "error", err)
			m.refused(RefusedUnauthorized)
			conn.Close()
			return
		}
	}

	m.mu.Lock()
	g := m.groups[h.group]
	m.mu.Unlock()
	if g == nil {
		m.log.Debug("dropping connection: unknown group",
			"remote", conn.RemoteAddr(), "peer", h.node, "group", h.group)
		m.refused(RefusedUnknownGroup)
		conn.Close()
		return
	}

	if hook := m.cfg.AcceptHook; hook != nil {
		wrapped, err := hook(h.node, conn)
		if err != nil {
			m.log.Debug("dropping connection: refused by accept hook",
				"remote", conn.RemoteAddr(), "peer", h.node, "group", h.group, "error", err)
			conn.Close()
			return
		}
		conn = wrapped
	}

	conn = &peerConn{Conn: conn, peer: h.node, verified: verified != ""}
	if err := g.deliver(conn, m.cfg.HeaderTimeout); err != nil {
		m.log.Debug("dropping connection: group did not accept it",
			"remote", conn.RemoteAddr(), "peer", h.node, "group", h.group, "error", err)
		conn.Close()
	}
}

func (m *Mux) refused(reason string) {
	if m.cfg.OnRefused != nil {
		m.cfg.OnRefused(reason)
	}
}

// handshake runs the TLS server handshake on raw when the Mux has TLS,
// bounded by HeaderTimeout, and returns the connection to read the header
// from and the node id the peer's certificate names ("" in plaintext).
func (m *Mux) handshake(raw net.Conn) (net.Conn, string, error) {
	if m.cfg.TLS == nil {
		return raw, "", nil
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.HeaderTimeout)
	defer cancel()
	tc := tls.Server(raw, m.cfg.TLS.Server)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, "", fmt.Errorf("tls handshake: %w", err)
	}
	id, err := m.cfg.TLS.PeerID(tc.ConnectionState())
	if err != nil {
		return nil, "", err
	}
	return tc, id, nil
}

// peerConn is an accepted connection with the node id its header named.
type peerConn struct {
	net.Conn
	peer     string
	verified bool
}

// Peer returns the node id the dialing side named in its header, and
// whether a verified certificate vouches for it (TLS). Without TLS the id
// is only a claim. c is a connection a StreamLayer's Accept returned.
func Peer(c net.Conn) (id string, verified bool) {
	for {
		switch v := c.(type) {
		case *peerConn:
			return v.peer, v.verified
		case *trackedConn:
			c = v.Conn
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return "", false
		}
	}
}

// readHeader reads the header under HeaderTimeout and clears the deadline
// again: from then on deadlines are the Raft transport's business.
func (m *Mux) readHeader(conn net.Conn) (header, error) {
	if err := conn.SetReadDeadline(time.Now().Add(m.cfg.HeaderTimeout)); err != nil {
		return header{}, fmt.Errorf("set header deadline: %w", err)
	}
	h, err := readHeader(conn)
	if err != nil {
		return header{}, err
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return header{}, fmt.Errorf("clear header deadline: %w", err)
	}
	return h, nil
}
