package partition

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeFile counts syncs and can fail them or hold them up.
type fakeFile struct {
	syncs   atomic.Int64
	err     error
	gate    chan struct{} // when non-nil, Sync waits for it to close
	entered chan struct{} // when non-nil, closed as Sync starts waiting
}

func (f *fakeFile) Sync() error {
	if f.gate != nil {
		close(f.entered)
		<-f.gate
	}
	f.syncs.Add(1)
	return f.err
}

func TestSyncGroupCoversEveryRequestWithAFreshSync(t *testing.T) {
	tests := []struct {
		name    string
		files   int
		callers int // concurrent callers per file
		calls   int // calls per caller
	}{
		{"one file, one caller", 1, 1, 20},
		{"many partitions", 32, 1, 20},
		{"many callers per file", 4, 8, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewSyncGroup()
			defer g.Close()
			files := make([]*fakeFile, tt.files)
			for i := range files {
				files[i] = &fakeFile{}
			}
			var wg sync.WaitGroup
			errs := make(chan error, tt.files*tt.callers)
			for _, f := range files {
				for c := 0; c < tt.callers; c++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; i < tt.calls; i++ {
							before := f.syncs.Load()
							if err := g.Sync(f); err != nil {
								errs <- err
								return
							}
							// The pass that answered started after the call:
							// the file was synced at least once since.
							if f.syncs.Load() <= before {
								errs <- fmt.Errorf("Sync returned without a sync of the file after the call")
								return
							}
						}
					}()
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			passes, fileSyncs, requests := g.Stats()
			if want := uint64(tt.files * tt.callers * tt.calls); requests != want {
				t.Fatalf("requests answered = %d, want %d", requests, want)
			}
			if fileSyncs > requests || passes > requests {
				t.Fatalf("passes %d, file syncs %d for %d requests: more syncs than requests", passes, fileSyncs, requests)
			}
		})
	}
}

func TestSyncGroupBatchesPartitionsIntoOnePass(t *testing.T) {
	g := NewSyncGroup()
	defer g.Close()
	// Hold the first pass so that every other partition's request queues
	// behind it: all of them must then be answered by one more pass.
	blocker := &fakeFile{gate: make(chan struct{}), entered: make(chan struct{})}
	var release sync.Once
	defer release.Do(func() { close(blocker.gate) }) // a failed test must not wedge Close
	done := make(chan error, 1)
	go func() { done <- g.Sync(blocker) }()
	select {
	case <-blocker.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the first pass never started")
	}
	const parts = 50
	files := make([]*fakeFile, parts)
	var wg sync.WaitGroup
	for i := range files {
		files[i] = &fakeFile{}
		wg.Add(1)
		go func() { defer wg.Done(); _ = g.Sync(files[i]) }()
	}
	waitFor(t, 5*time.Second, "all partitions queued", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.pending) == parts
	})
	release.Do(func() { close(blocker.gate) })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	passes, fileSyncs, requests := g.Stats()
	if passes != 2 || fileSyncs != parts+1 || requests != parts+1 {
		t.Fatalf("passes %d, file syncs %d, requests %d; want 2 passes covering %d files", passes, fileSyncs, requests, parts+1)
	}
}

func TestSyncGroupReturnsEachFilesOwnError(t *testing.T) {
	g := NewSyncGroup()
	defer g.Close()
	bad := &fakeFile{err: errors.New("EIO")}
	good := &fakeFile{}
	var wg sync.WaitGroup
	var badErr, goodErr error
	wg.Add(2)
	go func() { defer wg.Done(); badErr = g.Sync(bad) }()
	go func() { defer wg.Done(); goodErr = g.Sync(good) }()
	wg.Wait()
	if badErr == nil || badErr.Error() != "EIO" {
		t.Fatalf("failing file: got %v, want EIO", badErr)
	}
	if goodErr != nil {
		t.Fatalf("healthy file: got %v", goodErr)
	}
}

func TestSyncGroupAfterCloseRefuses(t *testing.T) {
	g := NewSyncGroup()
	g.Close()
	if err := g.Sync(&fakeFile{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sync after Close = %v, want ErrClosed", err)
	}
	g.Close() // idempotent
}

func TestNodeMetricsCountGroupCommit(t *testing.T) {
	n, err := NewNode(DefaultMemoryConfig())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := n.Register(reg); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := n.syncs.Sync(&fakeFile{}); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			got[mf.GetName()] = c.GetValue()
		} else {
			got[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"skiff_raftlog_sync_requests_total":      3,
		"skiff_raftlog_sync_files_total":         3,
		"skiff_raftlog_sync_passes_total":        3,
		"skiff_raftlog_entry_cache_bytes":        0,
		"skiff_partition_produce_inflight_bytes": 0,
		"skiff_partition_fetch_reading_bytes":    0,
	}
	for name, v := range want {
		if g, ok := got[name]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", name, g, ok, v)
		}
	}
	n.Close()
	// Closing unregisters, so a node restarted in the same process can
	// register again.
	n2, err := NewNode(DefaultMemoryConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	if err := n2.Register(reg); err != nil {
		t.Fatalf("register after close: %v", err)
	}
}
