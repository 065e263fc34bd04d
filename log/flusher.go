package log

import "sync"

// flusher makes segments durable in the background as the log rolls past
// them, in roll order, so that a roll does not stall the writer for the
// fsync of the segment it has just filled (up to SegmentBytes of dirty
// pages). Kafka flushes rolled segments asynchronously for the same reason.
// Until a segment is flushed, Sync flushes it itself and recovery scans it.
type flusher struct {
	dir     string
	onError func(error)

	mu    sync.Mutex
	queue []*segment // guarded by mu; each holds a reference

	wake  chan struct{} // capacity 1: a pending wake-up
	stopc chan struct{}
	done  chan struct{}
}

func startFlusher(dir string, onError func(error)) *flusher {
	f := &flusher{dir: dir, onError: onError,
		wake: make(chan struct{}, 1), stopc: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	return f
}

// add queues a frozen segment; the caller holds a reference for the flusher.
func (f *flusher) add(s *segment) {
	f.mu.Lock()
	f.queue = append(f.queue, s)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *flusher) run() {
	defer close(f.done)
	for {
		select {
		case <-f.wake:
			f.drain()
		case <-f.stopc:
			f.drain()
			return
		}
	}
}

func (f *flusher) drain() {
	for {
		f.mu.Lock()
		if len(f.queue) == 0 {
			f.mu.Unlock()
			return
		}
		s := f.queue[0]
		f.queue = f.queue[1:]
		f.mu.Unlock()

		did, err := s.flush()
		if err == nil && did {
			err = syncDir(f.dir)
		}
		if err != nil {
			f.onError(err)
		}
		s.release()
	}
}

// stop flushes what is queued and ends the goroutine.
func (f *flusher) stop() {
	close(f.stopc)
	<-f.done
}
