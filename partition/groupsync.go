package partition

import "sync"

// SyncGroup is a node's group commit: every replica's Raft log asks it to
// make a file durable, and one goroutine answers all requests that arrived
// since its last durability pass with a single new pass, in which each
// distinct file is fsynced once and all of them in parallel.
//
// Why: with one Raft group per partition, each group fsyncs its own log on
// every append; many partitions on one disk meant as many independent fsync
// streams, each paying its own device flush. A pass issues the flushes of
// every partition that appended since the previous pass together (the block
// layer merges concurrent cache flushes), and a partition that appends again
// while a pass is running joins the next pass instead of starting its own.
// A caller returns only after the pass that covered its file finished, with
// that file's own error: nothing is acknowledged before it is durable.
//
// The zero value is not usable; NewSyncGroup starts the goroutine and Close
// stops it (pending and later requests then fail with ErrClosed).
type SyncGroup struct {
	mu      sync.Mutex
	pending map[syncer][]chan error // guarded by mu; files waiting for the next pass
	wake    chan struct{}           // capacity 1: a pass is wanted
	closed  bool                    // guarded by mu
	stop    chan struct{}
	done    chan struct{}

	passes  uint64 // guarded by mu; completed passes, for tests and metrics
	synced  uint64 // guarded by mu; file syncs done by passes
	waiters uint64 // guarded by mu; requests answered by passes
}

// syncer is what SyncGroup flushes: an open file.
type syncer interface{ Sync() error }

// NewSyncGroup starts a node's group-commit goroutine.
func NewSyncGroup() *SyncGroup {
	g := &SyncGroup{
		pending: make(map[syncer][]chan error),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go g.run()
	return g
}

// Sync makes f durable: it returns after a pass that started after this
// call fsynced f, with that fsync's error.
func (g *SyncGroup) Sync(f syncer) error {
	ch := make(chan error, 1)
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return ErrClosed
	}
	g.pending[f] = append(g.pending[f], ch)
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default: // a pass is already wanted; it will see this request
	}
	return <-ch
}

// Stats returns how many passes ran, how many file syncs they did and how
// many requests they answered; requests/passes above 1 is the batching won.
func (g *SyncGroup) Stats() (passes, fileSyncs, requests uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.passes, g.synced, g.waiters
}

// Close stops the goroutine after answering every request made so far.
func (g *SyncGroup) Close() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		<-g.done
		return
	}
	g.closed = true
	g.mu.Unlock()
	close(g.stop)
	<-g.done
}

func (g *SyncGroup) run() {
	defer close(g.done)
	for {
		select {
		case <-g.wake:
			g.pass()
		case <-g.stop:
			// Answer what arrived before Close; later calls see closed.
			g.pass()
			return
		}
	}
}

// pass takes every pending request and fsyncs each distinct file once.
func (g *SyncGroup) pass() {
	g.mu.Lock()
	batch := g.pending
	if len(batch) == 0 {
		g.mu.Unlock()
		return
	}
	g.pending = make(map[syncer][]chan error, len(batch))
	g.mu.Unlock()

	var wg sync.WaitGroup
	errs := make(map[syncer]error, len(batch))
	var errMu sync.Mutex
	for f := range batch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := f.Sync()
			errMu.Lock()
			errs[f] = err
			errMu.Unlock()
		}()
	}
	wg.Wait()
	n := uint64(0)
	for f, chs := range batch {
		for _, ch := range chs {
			ch <- errs[f]
			n++
		}
	}
	g.mu.Lock()
	g.passes++
	g.synced += uint64(len(batch))
	g.waiters += n
	g.mu.Unlock()
}
