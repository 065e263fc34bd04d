package raftnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// FaultNetwork is the fault-injecting twin of the network between
// in-process nodes. Build each node's Mux through it (NewMux, or Listen plus
// Configure); it then filters that Mux's dial path (by the address dialed)
// and accept path (by the node id in the header), so a test can cut and
// slow links between nodes while hashicorp/raft runs over real loopback
// TCP, and heal them again.
//
// # Cut links stall, they do not reset
//
// Partition and Isolate black-hole a link, as a pulled cable or a dropped
// route does: nothing is closed or reset. On connections already open
// between the two nodes, Reads and Writes block (bytes, including a FIN,
// that reach a socket while its link is cut are held back until the link
// heals); they return a timeout error when the connection's deadline
// passes, and resume if the link heals first, as TCP retransmission would.
// New dials hang until the dial timeout, or proceed if the link heals
// first (a retransmitted SYN).
//
// This is the more realistic and the more demanding choice for
// hashicorp/raft: every outbound RPC of raft.NetworkTransport sets a
// deadline (its Timeout) and a dial is bounded by the same Timeout, so a
// cut shows up as timeouts, exactly as it does in production. Closing
// connections instead would make every RPC fail fast with EOF, a luxury a
// real partition does not grant, and would hide code that waits without a
// deadline (hashicorp/raft issue #498). The cost: a test's transport
// Timeout bounds how long a stalled RPC holds a replication goroutine, so
// tests set it to about a second.
//
// # Delays
//
// SetDelay adds one-way latency to the bytes one node sends another. Writes
// are queued with the time they may leave and a per-connection goroutine
// sends them in order when due, so a delayed link keeps its throughput
// (many writes are in flight within one delay) and Write returns at once,
// as it does on a socket with buffer space. At most 4 MiB wait per
// connection; beyond that Write blocks, like a full send buffer.
// Closing a connection discards what is still queued.
//
// All methods are safe for concurrent use. The state is a plain set of cut
// pairs and delays that every operation consults when it runs, so a test's
// result depends on the order of its calls, not on timing.
type FaultNetwork struct {
	mu     sync.Mutex             // guards the fields below
	nodes  map[string]struct{}    // nodes known through Listen or Configure
	addrs  map[string]string      // listen address -> node id, to name a dial's destination
	cuts   map[nodePair]struct{}  // black-holed links, unordered
	delays map[link]time.Duration // one-way latency, directed
	// changed is closed and replaced whenever cuts or delays change: stalled
	// operations wait on it instead of polling, so a heal wakes them at once.
	changed chan struct{}
}

// nodePair is an unordered pair of node ids, a <= b.
type nodePair struct{ a, b string }

func pairOf(x, y string) nodePair {
	if y < x {
		x, y = y, x
	}
	return nodePair{x, y}
}

// link is a direction: bytes sent by from to to.
type link struct{ from, to string }

// NewFaultNetwork returns a network with every link up and no delay.
func NewFaultNetwork() *FaultNetwork {
	return &FaultNetwork{
		nodes:   make(map[string]struct{}),
		addrs:   make(map[string]string),
		cuts:    make(map[nodePair]struct{}),
		delays:  make(map[link]time.Duration),
		changed: make(chan struct{}),
	}
}

// Listen listens on addr for node (default "127.0.0.1:0", a fresh loopback
// port; pass a node's old address to restart it in place) and records the
// address, so dials to it are known to reach node.
func (f *FaultNetwork) Listen(node, addr string) (net.Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("raftnet: fault network: listen %s for %q: %w", addr, node, err)
	}
	f.mu.Lock()
	f.nodes[node] = struct{}{}
	f.addrs[ln.Addr().String()] = node
	f.mu.Unlock()
	return ln, nil
}

// Configure returns cfg with NodeID set to node and its Dialer and
// AcceptHook replaced by ones that apply this network's faults. An
// address the network does not know (not from Listen) is dialed unfiltered.
func (f *FaultNetwork) Configure(node string, cfg MuxConfig) MuxConfig {
	f.mu.Lock()
	f.nodes[node] = struct{}{}
	f.mu.Unlock()

	cfg.NodeID = node
	cfg.Dialer = f.dialer(node)
	cfg.AcceptHook = func(peer string, conn net.Conn) (net.Conn, error) {
		return newFaultConn(conn, f, node, peer), nil
	}
	return cfg
}

// NewMux is Listen(node, "") plus Configure plus NewMux: a Mux on a fresh
// loopback port whose traffic this network filters.
func (f *FaultNetwork) NewMux(node string, cfg MuxConfig) (*Mux, error) {
	ln, err := f.Listen(node, "")
	if err != nil {
		return nil, err
	}
	m, err := NewMux(ln, f.Configure(node, cfg))
	if err != nil {
		ln.Close()
		return nil, err
	}
	return m, nil
}

// Partition cuts the link between a and b in both directions.
func (f *FaultNetwork) Partition(a, b string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a != b {
		f.cuts[pairOf(a, b)] = struct{}{}
	}
	f.notifyLocked()
}

// Isolate cuts node from every other node the network knows now (through
// Listen or Configure); nodes introduced later are not cut from it.
// HealPair(node, x) restores one of its links, Heal all of them.
func (f *FaultNetwork) Isolate(node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for other := range f.nodes {
		if other != node {
			f.cuts[pairOf(node, other)] = struct{}{}
		}
	}
	f.notifyLocked()
}

// SetDelay makes bytes sent by from to to arrive d later; the reverse
// direction is unaffected. d <= 0 removes the delay. Connections already
// open are affected from their next Write.
func (f *FaultNetwork) SetDelay(from, to string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d > 0 {
		f.delays[link{from, to}] = d
	} else {
		delete(f.delays, link{from, to})
	}
	f.notifyLocked()
}

// HealPair restores the link between a and b: no cut, no delay either way.
func (f *FaultNetwork) HealPair(a, b string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.cuts, pairOf(a, b))
	delete(f.delays, link{a, b})
	delete(f.delays, link{b, a})
	f.notifyLocked()
}

// Heal restores every link: no cuts, no delays.
func (f *FaultNetwork) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.cuts)
	clear(f.delays)
	f.notifyLocked()
}

// Connected reports whether the link between a and b is up (not cut).
func (f *FaultNetwork) Connected(a, b string) bool {
	up, _ := f.linkUp(a, b)
	return up
}

// notifyLocked wakes every operation waiting for a change. f.mu is held.
func (f *FaultNetwork) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// linkUp reports whether a and b can talk, and a channel closed at the
// next change of the network. An unknown party ("") is never cut.
func (f *FaultNetwork) linkUp(a, b string) (bool, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a == "" || b == "" || a == b {
		return true, f.changed
	}
	_, cut := f.cuts[pairOf(a, b)]
	return !cut, f.changed
}

// delay is the current one-way latency from -> to.
func (f *FaultNetwork) delay(from, to string) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.delays[link{from, to}]
}

// nodeAt names the node listening on addr, or "" if unknown.
func (f *FaultNetwork) nodeAt(addr string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addrs[addr]
}

// dialer is node's Dialer: a dial across a cut link hangs until ctx ends or
// the link heals; the connection it returns carries the link's faults.
func (f *FaultNetwork) dialer(node string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		peer := f.nodeAt(addr)
		for {
			up, changed := f.linkUp(node, peer)
			if up {
				break
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return nil, &net.OpError{Op: "dial", Net: network, Addr: tcpAddrString(addr),
					Err: &cutLinkError{a: node, b: peer, err: ctx.Err()}}
			}
		}
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return newFaultConn(conn, f, node, peer), nil
	}
}

// cutLinkError is why an operation held by a cut link gave up: its deadline
// passed (a timeout, as TCP would report) or it was closed.
type cutLinkError struct {
	a, b string
	err  error // context.DeadlineExceeded, os.ErrDeadlineExceeded, context.Canceled or net.ErrClosed
}

func (e *cutLinkError) Error() string {
	return fmt.Sprintf("link %s-%s cut by fault network: %v", e.a, e.b, e.err)
}

func (e *cutLinkError) Unwrap() error { return e.err }

// Timeout makes the error a net.Error timeout when a deadline ended the
// wait, so callers see what a real partition would show them.
func (e *cutLinkError) Timeout() bool {
	return errors.Is(e.err, context.DeadlineExceeded) || errors.Is(e.err, os.ErrDeadlineExceeded)
}
