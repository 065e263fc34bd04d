package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The server's garbage collector target follows the node's load.
//
// Why: an idle node's live heap is mostly fixed per-replica state
// (raft-wal keeps a 128 KiB index and a 64 KiB write buffer for the open
// segment of every partition: 19 of the ~26 MB live on a node with 100
// partitions), and Go's GOGC=100 lets the heap grow to twice the live heap
// before collecting, which the runtime then keeps resident. A target of 50
// takes an idle node with 100 partitions from ~74 to ~60 MB RSS
// (scripts/bench-vs-jetstream.sh --idle, README "Idle with 100
// partitions"). Under load the same target costs CPU: collections twice as
// often for the same allocation, ~20% more CPU per produced record in
// the same benchmark. So the lower target applies only while the node
// allocates less than idleAllocRate; above it the node runs at
// --gc-percent (Go's 100 by default).
const (
	// defaultIdleGCPercent is --idle-gc-percent's default.
	defaultIdleGCPercent = 50
	// idleAllocRate is the allocation rate below which a node counts as
	// idle. An idle node with 100 partitions allocates ~6 MB/s (Raft's
	// heartbeats and commit-index updates); one producing allocates
	// hundreds of MB/s. At 32 MiB/s a target of 50 over a ~26 MB live
	// heap means one collection every ~0.4 s at most: a few percent of a
	// core.
	idleAllocRate = 32 << 20
	// gcTuneInterval is how often the rate is sampled: load switches the
	// node to --gc-percent within this. Sampling costs microseconds; at
	// 2 s, a produce run of a few seconds spent a large part of it at the
	// idle target (bench-vs-jetstream: ~2 CPU-s more per million 1 KiB
	// records than with the tuner off).
	gcTuneInterval = 500 * time.Millisecond
	// gcIdleSamples is how many samples in a row must stay under
	// idleAllocRate before the idle target applies again: a loaded node's
	// rate dips under it for a moment now and then (a follower between
	// appends measured 9-31 MB/s in single half-second samples amid
	// 50-400), and an idle node's rate peaks at ~20 MB/s.
	gcIdleSamples = 4
)

// gcSettings is what the server does with its collector.
type gcSettings struct {
	busy, idle int  // GOGC under load and while idle
	tune       bool // switch between them by allocation rate
	set        bool // set busy at start (false: leave the runtime alone)
}

// gcPlan decides the server's collector settings from --gc-percent and
// --idle-gc-percent (set on the command line or as SKIFF_* variables) and
// the GOGC variable. GOGC alone, with neither flag given, leaves the
// runtime as GOGC set it. --idle-gc-percent 0 turns the idle target off;
// so does --gc-percent -1 (no collection at all).
func gcPlan(busySet bool, busy int, idleSet bool, idle int, lookupEnv func(string) (string, bool)) (gcSettings, error) {
	if busy != -1 && busy < 10 {
		return gcSettings{}, fmt.Errorf("--gc-percent %d: want -1 (no collection) or at least 10", busy)
	}
	if idle != 0 && (idle < 10 || (busy != -1 && idle > busy)) {
		return gcSettings{}, fmt.Errorf("--idle-gc-percent %d: want 0 (off) or 10..--gc-percent (%d)", idle, busy)
	}
	if _, env := lookupEnv("GOGC"); env && !busySet && !idleSet {
		return gcSettings{}, nil
	}
	return gcSettings{busy: busy, idle: idle, tune: idle != 0 && busy != -1, set: true}, nil
}

// runGCTuner applies s and, when s.tune, switches between s.idle and
// s.busy by the allocation rate until ctx ends.
func runGCTuner(ctx context.Context, s gcSettings) {
	if !s.set {
		return
	}
	debug.SetGCPercent(s.busy)
	if !s.tune {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	tick := time.NewTicker(gcTuneInterval)
	defer tick.Stop()
	last, lastAt := read(), time.Now()
	current, low := s.busy, 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			total := read()
			var want int
			want, low = gcTarget(s, float64(total-last)/now.Sub(lastAt).Seconds(), low)
			last, lastAt = total, now
			if want != current {
				debug.SetGCPercent(want)
				current = want
			}
		}
	}
}

// gcTarget is the GOGC for an allocation rate in bytes per second, given
// how many samples in a row before it were under idleAllocRate (low); it
// returns the count including this sample. One busy sample applies the
// busy target at once; the idle target waits for gcIdleSamples quiet ones.
func gcTarget(s gcSettings, rate float64, low int) (target, lowAfter int) {
	if rate >= idleAllocRate {
		return s.busy, 0
	}
	low++
	if low >= gcIdleSamples {
		return s.idle, low
	}
	return s.busy, low
}

// startGCTuner runs runGCTuner until the returned stop is called; stop
// waits for it.
func startGCTuner(s gcSettings) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runGCTuner(ctx, s)
	}()
	return func() {
		cancel()
		<-done
	}
}
