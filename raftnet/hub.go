package raftnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// HubConfig configures a Hub. Zero values of optional fields mean their
// documented default.
type HubConfig struct {
	// MuxGroup is the name the Hub registers on its Mux: every Hub
	// connection is a Mux connection to this group, so TLS, the peer's
	// verified identity, Authorize and fault injection apply to it as to
	// any other. It must not collide with another name registered on the
	// Mux (Raft group names are the Hub's own, not the Mux's). Default
	// DefaultHubMuxGroup.
	MuxGroup string

	// MaxFrameBytes bounds one frame after its length prefix, in both
	// directions: a peer announcing more is disconnected before anything is
	// allocated. It must hold the largest AppendEntries a group sends: one
	// batch of up to 64 MiB (a partition's largest Raft entry) or
	// MaxAppendBytes of smaller ones, plus headers. Default
	// DefaultMaxFrameBytes.
	MaxFrameBytes int

	// MaxInflight bounds the requests of one inbound connection being
	// handled at once; the Hub stops reading the connection at the bound,
	// which pushes back on the peer through TCP. Default 256.
	MaxInflight int

	// IdleTimeout closes an outbound connection that carried no RPC for
	// this long (a peer that left the cluster, a data lane after a burst).
	// Default 2m.
	IdleTimeout time.Duration

	// HandshakeTimeout bounds reading an inbound connection's preamble
	// (and a snapshot lane's request frame), and writing one response: a
	// peer that stops reading its answers is disconnected after it.
	// Default 5s.
	HandshakeTimeout time.Duration

	// Logger receives debug records about dropped connections. Default:
	// discard.
	Logger *slog.Logger
}

// Defaults of HubConfig.
const (
	DefaultHubMuxGroup         = "raftnet:rpc"
	DefaultMaxFrameBytes       = 72 << 20
	DefaultMaxInflight         = 256
	DefaultHubIdleTimeout      = 2 * time.Minute
	DefaultHubHandshakeTimeout = 5 * time.Second
)

// Validate reports every invalid field of c at once.
func (c HubConfig) Validate() error {
	var errs []error
	if c.MuxGroup != "" {
		if err := validateName(c.MuxGroup); err != nil {
			errs = append(errs, fmt.Errorf("MuxGroup: %w", err))
		}
	}
	if c.MaxFrameBytes != 0 && c.MaxFrameBytes < minFrameMax+MaxNameLen {
		errs = append(errs, fmt.Errorf("MaxFrameBytes: %d is below %d", c.MaxFrameBytes, minFrameMax+MaxNameLen))
	}
	if c.MaxFrameBytes > 1<<31-1 {
		errs = append(errs, fmt.Errorf("MaxFrameBytes: %d does not fit the 32-bit length prefix", c.MaxFrameBytes))
	}
	if c.MaxInflight < 0 {
		errs = append(errs, fmt.Errorf("MaxInflight: %d is negative", c.MaxInflight))
	}
	if c.IdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("IdleTimeout: %v is negative", c.IdleTimeout))
	}
	if c.HandshakeTimeout < 0 {
		errs = append(errs, fmt.Errorf("HandshakeTimeout: %v is negative", c.HandshakeTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("raftnet: invalid HubConfig: %w", err)
	}
	return nil
}

func (c HubConfig) withDefaults() HubConfig {
	if c.MuxGroup == "" {
		c.MuxGroup = DefaultHubMuxGroup
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultHubIdleTimeout
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHubHandshakeTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Hub carries the Raft RPCs of every group of a node over a few shared
// connections per peer node, instead of each group's raft.NetworkTransport
// keeping its own pool of connections (each with 512 KiB of buffers) to
// each peer. See the package doc for the wire format and the lanes.
//
// A Hub owns the connections it dials and accepts and every goroutine it
// starts; Close stops them and waits for them. It does not own its Mux.
type Hub struct {
	cfg   HubConfig
	mux   *Mux
	layer raft.StreamLayer // the Hub's group on mux
	codec *rpcCodec
	log   *slog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loop, janitor, every connection's goroutines

	mu     sync.Mutex
	closed bool
	groups map[string]*Transport // registered transports by group name
	peers  map[string]*peer      // outbound lanes by peer address
}

// NewHub registers cfg.MuxGroup on m and serves the Raft RPCs peers send
// there. Close the Hub before the Mux.
func NewHub(m *Mux, cfg HubConfig) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	layer, err := m.StreamLayer(cfg.MuxGroup)
	if err != nil {
		return nil, fmt.Errorf("raftnet: hub: %w", err)
	}
	ctx, cancel := context.WithCancel(m.ctx)
	h := &Hub{
		cfg:    cfg,
		mux:    m,
		layer:  layer,
		codec:  newRPCCodec(),
		log:    cfg.Logger.With("component", "raftnet.hub", "node", m.NodeID()),
		ctx:    ctx,
		cancel: cancel,
		groups: make(map[string]*Transport),
		peers:  make(map[string]*peer),
	}
	h.wg.Add(2)
	go h.acceptLoop()
	go h.janitor()
	return h, nil
}

// Close closes every connection of the Hub and unregisters its group from
// the Mux; RPCs in flight fail. Transports still registered stop working
// (their RPCs fail, nothing reaches their consumers). Safe to call more
// than once.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.wg.Wait()
		return nil
	}
	h.closed = true
	peers := h.peers
	h.peers = map[string]*peer{}
	h.mu.Unlock()

	h.cancel()
	err := h.layer.Close() // closes every accepted connection
	for _, p := range peers {
		p.close(net.ErrClosed)
	}
	h.wg.Wait()
	return err
}

// Addr is the address peers reach this node's groups at.
func (h *Hub) Addr() net.Addr { return h.mux.Addr() }

// transport returns the registered transport of group, or nil.
func (h *Hub) transport(group string) *Transport {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.groups[group]
}

// acceptLoop serves every connection peers dial to the Hub's group.
func (h *Hub) acceptLoop() {
	defer h.wg.Done()
	for {
		conn, err := h.layer.Accept()
		if err != nil {
			return // the layer is closed: by Close, or with the Mux
		}
		h.wg.Add(1)
		go h.serveConn(conn)
	}
}

// janitor closes outbound connections idle longer than IdleTimeout.
func (h *Hub) janitor() {
	defer h.wg.Done()
	t := time.NewTicker(h.cfg.IdleTimeout / 2)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case now := <-t.C:
			h.mu.Lock()
			peers := make([]*peer, 0, len(h.peers))
			for _, p := range h.peers {
				peers = append(peers, p)
			}
			h.mu.Unlock()
			for _, p := range peers {
				p.closeIdle(now.Add(-h.cfg.IdleTimeout))
			}
		}
	}
}

// serveConn reads an inbound connection's preamble and serves its lane.
func (h *Hub) serveConn(conn net.Conn) {
	defer h.wg.Done()
	defer conn.Close()
	peerID, _ := Peer(conn)
	lane, err := h.readPreamble(conn)
	if err != nil {
		h.log.Debug("dropping connection: bad preamble", "peer", peerID, "error", err)
		return
	}
	if lane == laneSnapshot {
		err = h.serveSnapshot(conn)
	} else {
		err = h.serveRPCs(conn, lane)
	}
	if err != nil && !errors.Is(err, io.EOF) && h.ctx.Err() == nil {
		h.log.Debug("closing connection", "peer", peerID, "lane", lane, "error", err)
	}
}

func (h *Hub) readPreamble(conn net.Conn) (byte, error) {
	if err := conn.SetReadDeadline(time.Now().Add(h.cfg.HandshakeTimeout)); err != nil {
		return 0, err
	}
	var p [preambleSize]byte
	if _, err := io.ReadFull(conn, p[:]); err != nil {
		return 0, fmt.Errorf("read preamble: %w", err)
	}
	if p[0] != RPCVersion {
		return 0, fmt.Errorf("%w: version %d, want %d", ErrBadFrame, p[0], RPCVersion)
	}
	if p[1] >= numLanes {
		return 0, fmt.Errorf("%w: lane %d", ErrBadFrame, p[1])
	}
	return p[1], conn.SetReadDeadline(time.Time{})
}

// serverConn is the answering side of a control or data lane: one reader
// (serveRPCs), a worker goroutine per request in flight (reused while
// requests keep coming), responses written whole under wmu.
type serverConn struct {
	h    *Hub
	conn net.Conn
	wmu  sync.Mutex
	wg   sync.WaitGroup // workers
}

// serveRPCs reads requests until the connection fails or carries a
// malformed frame, and answers each on a worker goroutine of its own
// while it is handled: one group whose Raft loop is busy must not hold up
// the others sharing the connection.
func (h *Hub) serveRPCs(conn net.Conn, lane byte) error {
	size := 4 << 10
	if lane == laneData {
		size = 32 << 10
	}
	r := bufio.NewReaderSize(conn, size)
	sc := &serverConn{h: h, conn: conn}
	defer sc.wg.Wait()
	// Close the connection on the way out, before waiting for the request
	// goroutines: their responses then fail at once instead of waiting
	// for a write deadline.
	defer conn.Close()
	slots := make(chan struct{}, h.cfg.MaxInflight)
	work := make(chan frame)
	// Closed first on the way out: idle workers exit, busy ones after
	// their request.
	defer close(work)
	for {
		f, err := readFrame(r, h.cfg.MaxFrameBytes, h.codec.bufs)
		if err != nil {
			return err
		}
		if !f.isRequest() || f.kind == rpcInstallSnapshot {
			f.release()
			return fmt.Errorf("%w: kind %#x on lane %d", ErrBadFrame, f.kind, lane)
		}
		select {
		case slots <- struct{}{}:
		case <-h.ctx.Done():
			return h.ctx.Err()
		}
		// An idle worker takes the request, or a new one starts.
		select {
		case work <- f:
		default:
			sc.wg.Add(1)
			go sc.worker(f, work, slots)
		}
	}
}

// workerIdle is how long a request goroutine waits for another request
// before it exits. Reusing goroutines keeps their grown stacks (decoding
// and Raft's handlers run deep); a goroutine per request paid for growing
// one on every request.
const workerIdle = time.Second

// worker answers f, then further requests from work until work closes or
// stays empty for workerIdle. Each request holds a slot while it is
// handled.
func (sc *serverConn) worker(f frame, work <-chan frame, slots <-chan struct{}) {
	defer sc.wg.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		sc.handle(f)
		<-slots
		idle.Reset(workerIdle)
		var ok bool
		select {
		case f, ok = <-work:
			if !ok {
				return
			}
		case <-idle.C:
			return
		}
	}
}

// handle answers one request; a body that does not decode closes the
// connection.
func (sc *serverConn) handle(f frame) {
	t := sc.h.transport(f.group)
	if t == nil {
		f.release()
		sc.write(errorFrame(f.id, fmt.Sprintf("raftnet: unknown group %q", truncate(f.group))))
		return
	}
	req, err := sc.h.codec.decodeRequest(f.kind, f.body)
	f.release()
	if err != nil {
		sc.h.log.Debug("closing connection: bad request", "group", f.group, "error", err)
		sc.conn.Close()
		return
	}
	resp, err := t.dispatch(req, nil)
	out, release := sc.h.answer(f, resp, err)
	sc.write(out)
	release()
}

// answer is the response frame to request f: raft's response, or its
// error. Call release once it is written.
func (h *Hub) answer(f frame, resp any, err error) (out []byte, release func()) {
	if err == nil {
		if out, release, err = h.codec.responseFrame(f.kind, f.id, resp); err == nil {
			return out, release
		}
	}
	return errorFrame(f.id, err.Error()), func() {}
}

// write sends one response; a failed write closes the connection (the peer
// fails its pending RPCs and redials).
func (sc *serverConn) write(b []byte) {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	sc.conn.SetWriteDeadline(time.Now().Add(sc.h.cfg.HandshakeTimeout))
	if _, err := sc.conn.Write(b); err != nil {
		sc.conn.Close()
	}
}

// serveSnapshot answers the one InstallSnapshot of a snapshot lane: the
// request frame, then the snapshot's bytes streamed to Raft through a
// small buffer, then one response.
func (h *Hub) serveSnapshot(conn net.Conn) error {
	r := bufio.NewReaderSize(conn, 32<<10)
	if err := conn.SetReadDeadline(time.Now().Add(h.cfg.HandshakeTimeout)); err != nil {
		return err
	}
	f, err := readFrame(r, h.cfg.MaxFrameBytes, h.codec.bufs)
	if err != nil {
		return err
	}
	defer f.release()
	if f.kind != rpcInstallSnapshot {
		return fmt.Errorf("%w: kind %#x on the snapshot lane", ErrBadFrame, f.kind)
	}
	t := h.transport(f.group)
	if t == nil {
		_, err := conn.Write(errorFrame(f.id, fmt.Sprintf("raftnet: unknown group %q", truncate(f.group))))
		return err
	}
	req, err := h.codec.decodeRequest(f.kind, f.body)
	if err != nil {
		return err
	}
	snap := req.(*raft.InstallSnapshotRequest)
	if snap.Size < 0 {
		return fmt.Errorf("%w: snapshot size %d", ErrBadFrame, snap.Size)
	}
	// The sender bounds the whole transfer; here a stalled sender must
	// not pin the connection for ever, so every read gets its own window.
	src := &idleDeadlineReader{conn: conn, r: r, idle: t.timeout}
	resp, err := t.dispatch(req, io.LimitReader(src, snap.Size))
	out, release := h.answer(f, resp, err)
	defer release()
	conn.SetWriteDeadline(time.Now().Add(h.cfg.HandshakeTimeout))
	_, err = conn.Write(out)
	return err
}

// idleDeadlineReader reads from r (buffering conn), giving each read idle
// time before the connection counts as stalled.
type idleDeadlineReader struct {
	conn net.Conn
	r    io.Reader
	idle time.Duration
}

func (d *idleDeadlineReader) Read(p []byte) (int, error) {
	if err := d.conn.SetReadDeadline(time.Now().Add(d.idle)); err != nil {
		return 0, err
	}
	return d.r.Read(p)
}
