package log

import "time"

// syncer runs fn every interval on a goroutine it owns, until stop. The log
// starts one under SyncInterval and stops it in Close and SetConfig, always
// without holding the log's writer lock, because fn (Log.Sync) may need it.
type syncer struct {
	stopc chan struct{}
	done  chan struct{}
}

func startSyncer(interval time.Duration, fn func()) *syncer {
	s := &syncer{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stopc:
				return
			case <-t.C:
				fn()
			}
		}
	}()
	return s
}

// stop ends the goroutine and waits for it.
func (s *syncer) stop() {
	close(s.stopc)
	<-s.done
}
