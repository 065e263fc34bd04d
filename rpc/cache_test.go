package rpc

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCacheSharesOneLoadAndNeverKeepsErrors(t *testing.T) {
	c := newTTLCache[int]()
	ctx := ctxFor(t, 10*time.Second)
	var loads atomic.Int32
	release := make(chan struct{})
	load := func(context.Context) (int, time.Duration, error) {
		loads.Add(1)
		<-release
		return 7, time.Hour, nil
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, err := c.get(ctx, "k", time.Second, load); v != 7 || err != nil {
				t.Errorf("get = %d, %v", v, err)
			}
		}()
	}
	waitFor(t, 5*time.Second, "the first load", func() bool { return loads.Load() == 1 })
	close(release)
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Errorf("%d loads for concurrent gets, want 1", n)
	}

	boom := errors.New("boom")
	fail := func(context.Context) (int, time.Duration, error) { return 0, time.Hour, boom }
	if _, err := c.get(ctx, "e", time.Second, fail); !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	if v, err := c.get(ctx, "e", time.Second, func(context.Context) (int, time.Duration, error) { return 3, time.Hour, nil }); v != 3 || err != nil {
		t.Errorf("after an error: %d, %v; want a fresh load", v, err)
	}

	func() {
		defer func() { _ = recover() }()
		c.get(ctx, "p", time.Second, func(context.Context) (int, time.Duration, error) { panic("load panics") })
	}()
	if v, err := c.get(ctx, "p", time.Second, func(context.Context) (int, time.Duration, error) { return 4, time.Hour, nil }); v != 4 || err != nil {
		t.Errorf("after a panicking load: %d, %v; want a fresh load", v, err)
	}
}

func TestPartitionFIFORunsTasksOfAKeyInOrder(t *testing.T) {
	var wg sync.WaitGroup
	f := newPartitionFIFO(&wg)
	var mu sync.Mutex
	got := map[int32][]int{}
	for i := range 300 {
		k := partKey{"t", int32(i % 3)}
		f.submit(k, func() {
			mu.Lock()
			got[k.partition] = append(got[k.partition], i)
			mu.Unlock()
		})
	}
	wg.Wait()
	for p, seq := range got {
		for j := 1; j < len(seq); j++ {
			if seq[j] < seq[j-1] {
				t.Fatalf("partition %d ran %d after %d", p, seq[j], seq[j-1])
			}
		}
		if len(seq) != 100 {
			t.Errorf("partition %d ran %d tasks, want 100", p, len(seq))
		}
	}
}
