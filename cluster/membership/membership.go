package membership

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// defaultBroadcastWait bounds UpdateMeta and Leave when the caller's context
// has no deadline: memberlist's waits cannot be cancelled, only timed out.
const defaultBroadcastWait = 5 * time.Second

// Membership is this node's view of the cluster. All methods are safe for
// concurrent use.
//
// Lock order: lifeMu, then updateMu, then memberlist's internal lock, then mu.
// memberlist calls the delegates with its own lock held, and they take mu, so
// nothing may call into memberlist while holding mu.
type Membership struct {
	cfg  Config // defaults applied; read-only after Start
	log  *slog.Logger
	list *memberlist.Memberlist // set once in Start
	addr string                 // advertised gossip address, fixed at Start

	// advertised is the encoded meta memberlist gossips. memberlist reads it
	// through NodeMeta, sometimes under its own lock, hence an atomic rather
	// than a mutex.
	advertised atomic.Pointer[[]byte]

	stop context.CancelFunc // stops the join and reclaim loops
	wg   sync.WaitGroup     // those loops

	// lifeMu orders Leave against Shutdown: memberlist panics on Leave after
	// Shutdown.
	lifeMu sync.Mutex
	life   lifecycle // guarded by lifeMu

	// updateMu serializes re-advertising. memberlist takes the incarnation
	// number after reading the meta, so two concurrent UpdateNode calls could
	// let the older meta win.
	updateMu sync.Mutex
	meta     Meta // guarded by updateMu
	leaving  bool // guarded by updateMu

	// keyring is memberlist's (nil when gossip is plain), fixed at Start;
	// memberlist reads it concurrently under its own lock. keyMu serializes
	// the rotation operations so the persisted file follows the same order
	// as the live keyring.
	keyring *memberlist.Keyring
	keyMu   sync.Mutex

	mu       sync.Mutex
	members  map[string]*entry        // by ID, including this node; guarded by mu
	subs     map[*subscriber]struct{} // guarded by mu
	changed  chan struct{}            // closed and replaced on every change; guarded by mu
	closed   bool                     // set by Leave/Shutdown; guarded by mu
	reclaims map[string]*reclaim      // pending name reclaims by ID; guarded by mu
	wakeup   chan struct{}            // pokes the reclaim loop; buffered 1, not guarded
}

type lifecycle int

const (
	running lifecycle = iota
	left
	shutDown
)

// entry is the local record of one member.
type entry struct {
	member Member
	// leaving is the member's "about to leave" mark from its meta; it turns
	// the following memberlist leave notification into Left instead of Dead.
	leaving bool
}

// Start creates the gossip listener and returns at once; if cfg.Join is set,
// a background loop keeps trying the seeds until it reaches another node.
// ctx bounds only start-up (resolving AdvertiseAddr); the Membership runs
// until Leave or Shutdown.
func Start(ctx context.Context, cfg Config) (*Membership, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Meta.Version = MetaVersion
	mc, err := cfg.memberlistConfig(ctx)
	if err != nil {
		return nil, err
	}
	m := &Membership{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "membership", "node", cfg.Meta.ID),
		meta:     cfg.Meta,
		members:  make(map[string]*entry),
		subs:     make(map[*subscriber]struct{}),
		changed:  make(chan struct{}),
		reclaims: make(map[string]*reclaim),
		wakeup:   make(chan struct{}, 1),
	}
	if err := m.setAdvertised(cfg.Meta, false); err != nil {
		return nil, err
	}
	m.keyring = mc.Keyring
	d := &delegate{m: m}
	mc.Delegate, mc.Events, mc.Alive, mc.Conflict = d, d, d, d

	// memberlist reports this node to the event delegate inside Create, so m
	// must be complete before this call.
	list, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("membership: start gossip on %s: %w", cfg.BindAddr, err)
	}
	m.list = list
	m.addr = list.LocalNode().Address()

	loopCtx, stop := context.WithCancel(context.Background())
	m.stop = stop
	if len(cfg.Join) > 0 {
		m.wg.Go(func() { m.runJoin(loopCtx) })
	}
	if cfg.DeadNodeReclaimTime > 0 {
		m.wg.Go(func() { m.runReclaim(loopCtx) })
	}
	if cfg.ReconnectInterval > 0 {
		m.wg.Go(func() { m.runReconnect(loopCtx) })
	}
	m.log.Info("gossip started", "addr", m.addr, "profile", cfg.Profile, "seeds", cfg.Join,
		"encrypted", m.keyring != nil, "cluster_name", cfg.ClusterName)
	return m, nil
}

func (m *Membership) setAdvertised(meta Meta, leaving bool) error {
	b, err := encodeMeta(meta, leaving)
	if err != nil {
		return err
	}
	m.advertised.Store(&b)
	return nil
}

// Addr is the gossip address peers reach this node at (with the real port
// when BindAddr asked for port 0). Give it to other nodes as a seed.
func (m *Membership) Addr() string { return m.addr }

// Members returns every member this node has seen, sorted by ID, including
// itself and dead or left members. Dead and left members stay listed (with
// Since) until they come back; memberlist's own list forgets them sooner.
func (m *Membership) Members() []Member {
	return m.snapshot(func(Member) bool { return true })
}

// Alive returns the alive members (including this node), sorted by ID.
func (m *Membership) Alive() []Member {
	return m.snapshot(func(mb Member) bool { return mb.State == StateAlive })
}

func (m *Membership) snapshot(keep func(Member) bool) []Member {
	m.mu.Lock()
	out := make([]Member, 0, len(m.members))
	for _, e := range m.members {
		if keep(e.member) {
			out = append(out, e.member)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Meta.ID, b.Meta.ID) })
	return out
}

// Local returns this node as the cluster sees it.
func (m *Membership) Local() Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.members[m.cfg.Meta.ID]; ok {
		return e.member
	}
	// Unreachable: memberlist reports the local node during Create.
	return Member{Meta: m.cfg.Meta, Addr: m.addr, State: StateAlive}
}

// UpdateMeta re-advertises this node's meta, for example after an address
// changed. meta.ID must stay the same. It waits until the update has been
// gossiped (or there is nobody to tell), bounded by ctx's deadline, or 5s
// if ctx has none; on timeout the update still spreads in the background.
func (m *Membership) UpdateMeta(ctx context.Context, meta Meta) error {
	if err := meta.Validate(); err != nil {
		return err
	}
	if meta.ID != m.cfg.Meta.ID {
		return fieldErr("Meta.ID", fmt.Errorf("cannot change from %q to %q", m.cfg.Meta.ID, meta.ID))
	}
	meta.Version = MetaVersion
	if err := ctx.Err(); err != nil {
		return err
	}

	m.updateMu.Lock()
	defer m.updateMu.Unlock()
	if m.isClosed() || m.leaving {
		return ErrClosed
	}
	if err := m.setAdvertised(meta, false); err != nil {
		return err
	}
	m.meta = meta
	if err := m.list.UpdateNode(broadcastWait(ctx)); err != nil {
		return fmt.Errorf("membership: update meta: %w", err)
	}
	return nil
}

// WaitForMembers blocks until at least n members (this node included) are
// alive, ctx is done, or the Membership is closed.
func (m *Membership) WaitForMembers(ctx context.Context, n int) error {
	for {
		m.mu.Lock()
		alive := 0
		for _, e := range m.members {
			if e.member.State == StateAlive {
				alive++
			}
		}
		changed, closed := m.changed, m.closed
		m.mu.Unlock()
		switch {
		case alive >= n:
			return nil
		case closed:
			return ErrClosed
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("membership: waiting for %d alive members (have %d): %w", n, alive, ctx.Err())
		case <-changed:
		}
	}
}

// Leave leaves the cluster gracefully, then shuts down: peers see this node
// as Left rather than Failed. It waits for the leave to be gossiped, bounded
// by ctx's deadline, or 5s per step if ctx has none; it shuts down even when
// that wait fails. Leave after Leave returns nil; after Shutdown, ErrClosed.
func (m *Membership) Leave(ctx context.Context) error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	switch m.life {
	case left:
		return nil
	case shutDown:
		return ErrClosed
	}
	m.life = left
	m.stopLoops()

	var errs []error
	// Mark the meta first and wait for it to spread, so that peers already
	// know when memberlist's leave (indistinguishable from a death) arrives.
	m.updateMu.Lock()
	m.leaving = true
	if err := m.setAdvertised(m.meta, true); err != nil {
		errs = append(errs, err)
	} else if err := m.list.UpdateNode(broadcastWait(ctx)); err != nil {
		errs = append(errs, fmt.Errorf("announce leave: %w", err))
	} else {
		m.pushLeaving()
	}
	m.updateMu.Unlock()
	if err := m.list.Leave(broadcastWait(ctx)); err != nil {
		errs = append(errs, fmt.Errorf("broadcast leave: %w", err))
	}
	if err := m.list.Shutdown(); err != nil {
		errs = append(errs, fmt.Errorf("shutdown: %w", err))
	}
	m.close()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	m.log.Info("left cluster")
	return nil
}

// pushLeaving hands the leaving mark to a few alive peers over TCP
// (memberlist's push-pull, which Join performs with known nodes too). The
// mark and memberlist's leave both travel as UDP gossip, and if every
// packet is lost the peers see only a node that stopped answering, a
// crash; with the mark delivered, its death is taken for the leave it is.
// Each exchange is bounded by memberlist's TCP timeout.
func (m *Membership) pushLeaving() {
	var addrs []string
	for _, mb := range m.Alive() {
		if mb.Meta.ID != m.cfg.Meta.ID && len(addrs) < leavePushPeers {
			addrs = append(addrs, mb.Addr)
		}
	}
	if len(addrs) == 0 {
		return
	}
	if _, err := m.list.Join(addrs); err != nil {
		m.log.Debug("push the leaving mark", "addrs", addrs, "error", err)
	}
}

// leavePushPeers bounds the TCP exchanges of a leave; gossip carries the
// mark on from them.
const leavePushPeers = 3

// Shutdown stops gossip without telling anyone, as a crash would: peers
// declare this node dead after their failure-detection time. It waits for
// every goroutine this package started (a join attempt in flight may take up
// to memberlist's TCP timeout: 10s lan, 1s local). Safe to call more than
// once and after Leave; subscriber channels are closed.
func (m *Membership) Shutdown() error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.life != running {
		return nil
	}
	m.life = shutDown
	m.stopLoops()
	err := m.list.Shutdown()
	m.close()
	if err != nil {
		return fmt.Errorf("membership: shutdown: %w", err)
	}
	return nil
}

// stopLoops stops the join and reclaim loops and waits for them, before
// memberlist goes away under them.
func (m *Membership) stopLoops() {
	m.stop()
	m.wg.Wait()
}

func (m *Membership) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// broadcastWait turns ctx into the timeout memberlist's blocking calls take
// (0 would mean "wait for ever").
func broadcastWait(ctx context.Context) time.Duration {
	deadline, ok := ctx.Deadline()
	if !ok {
		return defaultBroadcastWait
	}
	if d := time.Until(deadline); d > 0 {
		return d
	}
	return time.Nanosecond
}
