package raftnet

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// TransportConfig configures one group's Transport.
type TransportConfig struct {
	// RPCTimeout bounds one RPC from the call to its response: waiting for
	// the lane, dialing, writing, and the peer's answer. InstallSnapshot
	// gets RPCTimeout per 256 KiB of snapshot (as raft.NetworkTransport
	// scales it), at least RPCTimeout. On the answering side it bounds how
	// long a snapshot stream may stall. Default 10s.
	RPCTimeout time.Duration
}

// DefaultRPCTimeout is TransportConfig.RPCTimeout's default.
const DefaultRPCTimeout = 10 * time.Second

// snapshotTimeoutScale is the snapshot bytes that earn one more RPCTimeout,
// raft.NetworkTransport's DefaultTimeoutScale.
const snapshotTimeoutScale = 256 << 10

// Transport is one Raft group's raft.Transport on a Hub. It implements
// raft.WithClose and raft.WithPreVote; it has no AppendEntries pipeline
// (replication is synchronous, one AppendEntries in flight per follower).
type Transport struct {
	hub     *Hub
	group   string
	timeout time.Duration

	consumeCh chan raft.RPC
	shutdown  chan struct{} // closed by Close
	closeOnce sync.Once

	hbMu sync.Mutex
	hbFn func(raft.RPC) // the heartbeat fast path, set by Raft
}

var (
	_ raft.Transport   = (*Transport)(nil)
	_ raft.WithClose   = (*Transport)(nil)
	_ raft.WithPreVote = (*Transport)(nil)
)

// Transport registers group and returns its raft.Transport. It fails with
// ErrInvalidName, ErrGroupExists (Close the old Transport first), or an
// error wrapping net.ErrClosed after the Hub's Close.
func (h *Hub) Transport(group string, cfg TransportConfig) (*Transport, error) {
	if err := validateName(group); err != nil {
		return nil, fmt.Errorf("raftnet: register group: %w", err)
	}
	if cfg.RPCTimeout < 0 {
		return nil, fmt.Errorf("raftnet: group %q: RPCTimeout %v is negative", group, cfg.RPCTimeout)
	}
	if cfg.RPCTimeout == 0 {
		cfg.RPCTimeout = DefaultRPCTimeout
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("raftnet: register group %q: %w", group, net.ErrClosed)
	}
	if _, ok := h.groups[group]; ok {
		return nil, fmt.Errorf("%w: %q", ErrGroupExists, group)
	}
	t := &Transport{
		hub:       h,
		group:     group,
		timeout:   cfg.RPCTimeout,
		consumeCh: make(chan raft.RPC),
		shutdown:  make(chan struct{}),
	}
	h.groups[group] = t
	return t, nil
}

// Close unregisters the group: requests for it are answered with an
// error, RPCs it has in flight return ErrTransportShutdown. The Hub's
// shared connections stay up for the other groups.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.hub.mu.Lock()
		if t.hub.groups[t.group] == t {
			delete(t.hub.groups, t.group)
		}
		t.hub.mu.Unlock()
		close(t.shutdown)
	})
	return nil
}

func (t *Transport) isClosed() bool {
	select {
	case <-t.shutdown:
		return true
	default:
		return false
	}
}

// Consumer is where Raft takes the requests peers send this group.
func (t *Transport) Consumer() <-chan raft.RPC { return t.consumeCh }

// LocalAddr is the Mux's advertised address.
func (t *Transport) LocalAddr() raft.ServerAddress { return raft.ServerAddress(t.hub.Addr().String()) }

// SetHeartbeatHandler sets the fast path for heartbeats, which then skip
// the Raft main loop (a busy loop must not make followers start elections).
func (t *Transport) SetHeartbeatHandler(cb func(raft.RPC)) {
	t.hbMu.Lock()
	t.hbFn = cb
	t.hbMu.Unlock()
}

// EncodePeer is the address itself, as raft.NetworkTransport encodes it.
func (t *Transport) EncodePeer(_ raft.ServerID, addr raft.ServerAddress) []byte {
	return []byte(addr)
}

// DecodePeer reverses EncodePeer.
func (t *Transport) DecodePeer(buf []byte) raft.ServerAddress { return raft.ServerAddress(buf) }

// AppendEntriesPipeline is not supported: raft then replicates with one
// synchronous AppendEntries per follower (see internal/raftutil.NoPipeline
// for why Skiff wants that anyway).
func (t *Transport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

// AppendEntries sends args; one without entries (a heartbeat, or a commit
// index update) takes the control lane, so it never queues behind another
// group's large append.
func (t *Transport) AppendEntries(_ raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	lane := laneData
	if len(args.Entries) == 0 {
		lane = laneControl
	}
	return t.call(target, lane, rpcAppendEntries, args, resp)
}

// RequestVote sends a vote request on the control lane.
func (t *Transport) RequestVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return t.call(target, laneControl, rpcRequestVote, args, resp)
}

// RequestPreVote sends a pre-vote request on the control lane.
func (t *Transport) RequestPreVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.call(target, laneControl, rpcRequestPreVote, args, resp)
}

// TimeoutNow sends a leadership transfer on the control lane.
func (t *Transport) TimeoutNow(_ raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return t.call(target, laneControl, rpcTimeoutNow, args, resp)
}

// call sends one request on a shared lane to target and decodes the
// answer into resp.
func (t *Transport) call(target raft.ServerAddress, lane byte, kind byte, args, resp any) error {
	if t.isClosed() {
		// A closed transport sends nothing: a fenced leader's heartbeats
		// must stop (partition's watchdog relies on it).
		return t.err(target, raft.ErrTransportShutdown)
	}
	deadline := time.Now().Add(t.timeout)
	p, err := t.hub.peer(string(target))
	if err != nil {
		return t.err(target, err)
	}
	f, err := p.lanes[lane].call(t, kind, args, deadline)
	if err != nil {
		return t.err(target, err)
	}
	defer f.release()
	if f.kind == kindError {
		return t.err(target, errors.New(string(f.body)))
	}
	if f.kind != kindResponse|kind {
		return t.err(target, fmt.Errorf("%w: response kind %#x to request kind %#x", ErrBadFrame, f.kind, kind))
	}
	if err := t.hub.codec.decode(f.body, resp); err != nil {
		return t.err(target, err)
	}
	return nil
}

func (t *Transport) err(target raft.ServerAddress, err error) error {
	return fmt.Errorf("raftnet: group %q: rpc to %s: %w", t.group, target, err)
}

// InstallSnapshot streams data to target on a connection of its own,
// through a small buffer: a snapshot of any size costs the same memory
// and holds up no other RPC.
func (t *Transport) InstallSnapshot(_ raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	if t.isClosed() {
		return t.err(target, raft.ErrTransportShutdown)
	}
	timeout := t.timeout
	if scale := time.Duration(args.Size / snapshotTimeoutScale); scale > 1 {
		timeout *= scale
	}
	deadline := time.Now().Add(timeout)
	err := t.installSnapshot(target, args, resp, data, deadline)
	if err != nil {
		return t.err(target, err)
	}
	return nil
}

func (t *Transport) installSnapshot(target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader, deadline time.Time) error {
	h := t.hub
	req, release, err := h.codec.requestFrame(rpcInstallSnapshot, 1, t.group, args)
	if err != nil {
		return err
	}
	defer release()
	if len(req)-frameLenSize > h.cfg.MaxFrameBytes {
		return fmt.Errorf("%w: snapshot request of %d bytes, limit %d", ErrBadFrame, len(req)-frameLenSize, h.cfg.MaxFrameBytes)
	}
	conn, err := h.dial(string(target), laneSnapshot, deadline, t.shutdown)
	if err != nil {
		return err
	}
	defer conn.Close()
	// The connection is this RPC's alone: Close of the transport or the
	// Hub cuts it.
	stop := h.onStop(t.shutdown, func() { conn.Close() })
	defer stop()
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	if _, err := conn.Write(req); err != nil {
		return fmt.Errorf("write snapshot request: %w", err)
	}
	buf := make([]byte, 32<<10)
	n, err := io.CopyBuffer(conn, io.LimitReader(data, args.Size), buf)
	if err != nil {
		return fmt.Errorf("stream snapshot: %w", err)
	}
	if n != args.Size {
		return fmt.Errorf("stream snapshot: sent %d of %d bytes: %w", n, args.Size, io.ErrUnexpectedEOF)
	}
	f, err := readFrame(newSmallReader(conn), h.cfg.MaxFrameBytes, h.codec.bufs)
	if err != nil {
		return fmt.Errorf("read snapshot response: %w", err)
	}
	defer f.release()
	if f.id != 1 {
		return fmt.Errorf("%w: snapshot response to request %d", ErrBadFrame, f.id)
	}
	if f.kind == kindError {
		return errors.New(string(f.body))
	}
	if f.kind != kindResponse|rpcInstallSnapshot {
		return fmt.Errorf("%w: response kind %#x to a snapshot", ErrBadFrame, f.kind)
	}
	return h.codec.decode(f.body, resp)
}

// dispatch hands a request to Raft (the heartbeat fast path, or the
// consumer) and waits for its answer; reader is the snapshot stream of an
// InstallSnapshot.
func (t *Transport) dispatch(req any, reader io.Reader) (any, error) {
	respCh := make(chan raft.RPCResponse, 1)
	rpc := raft.RPC{Command: req, Reader: reader, RespChan: respCh}
	if ae, ok := req.(*raft.AppendEntriesRequest); ok && isHeartbeat(ae) {
		t.hbMu.Lock()
		fn := t.hbFn
		t.hbMu.Unlock()
		if fn != nil {
			fn(rpc)
			goto wait
		}
	}
	select {
	case t.consumeCh <- rpc:
	case <-t.shutdown:
		return nil, raft.ErrTransportShutdown
	case <-t.hub.ctx.Done():
		return nil, raft.ErrTransportShutdown
	}
wait:
	select {
	case r := <-respCh:
		return r.Response, r.Error
	case <-t.shutdown:
		return nil, raft.ErrTransportShutdown
	case <-t.hub.ctx.Done():
		return nil, raft.ErrTransportShutdown
	}
}
