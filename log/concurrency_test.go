package log

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/skiff-mq/skiff/record"
)

// checkRead verifies what Read(offset) returned: intact batches (CRC), the
// first containing offset, the rest following on.
func checkRead(b []byte, offset int64) error {
	next := int64(-1)
	for len(b) > 0 {
		h, err := record.Verify(b)
		if err != nil {
			return err
		}
		if next < 0 && (h.BaseOffset > offset || h.LastOffset() < offset) {
			return errors.New("first batch does not contain the offset")
		}
		if next >= 0 && h.BaseOffset != next {
			return errors.New("batches do not follow on")
		}
		next = h.NextOffset()
		b = b[h.Size():]
	}
	return nil
}

func TestConcurrentWriterReadersRetentionAndSync(t *testing.T) {
	clock := newFakeClock()
	cfg := smallConfig(clock)
	cfg.SegmentBytes = 4096
	cfg.IndexIntervalBytes = 512
	cfg.RetentionBytes = 16 << 10
	l := mustOpen(t, t.TempDir(), cfg)
	defer l.Close()

	const batches = 2000
	var done atomic.Bool
	stopped := make(chan struct{}) // closed with done, for goroutines that block
	var stopOnce sync.Once
	stop := func() {
		done.Store(true)
		stopOnce.Do(func() { close(stopped) })
	}
	var wg sync.WaitGroup
	fail := func(format string, args ...any) {
		t.Errorf(format, args...)
		stop()
	}

	wg.Add(1)
	go func() { // the single writer
		defer wg.Done()
		defer stop()
		for i := 0; i < batches && !done.Load(); i++ {
			b := testBatch(1+i%7, 20+(i*29)%400, int64(i), int64(i), byte(i))
			if _, err := l.Append(b, uint64(i)); err != nil {
				fail("Append %d: %v", i, err)
				return
			}
		}
	}()
	for r := 0; r < 3; r++ { // random readers
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 1))
			for !done.Load() {
				start, next := l.LogStartOffset(), l.NextOffset()
				off := start + rng.Int64N(next-start+1)
				b, err := l.Read(off, rng.IntN(3000))
				var oor *OffsetOutOfRangeError
				switch {
				case errors.As(err, &oor):
					if off >= oor.Start && off <= oor.End {
						fail("Read(%d): out of range error %v names a range that holds it", off, err)
					}
				case err != nil:
					fail("Read(%d): %v", off, err)
				case off < next && b == nil:
					fail("Read(%d) below NextOffset %d returned nothing", off, next)
				default:
					if err := checkRead(b, off); err != nil {
						fail("Read(%d): %v", off, err)
					}
				}
				if _, err := l.FindOffsetByTimestamp(rng.Int64N(batches)); err != nil {
					fail("FindOffsetByTimestamp: %v", err)
				}
			}
		}(uint64(r))
	}
	wg.Add(1)
	go func() { // a consumer following the log with long polls
		defer wg.Done()
		off := int64(0)
		for {
			ch := l.Changed()
			b, err := l.Read(off, 2000)
			var oor *OffsetOutOfRangeError
			switch {
			case errors.As(err, &oor):
				off = oor.Start // fell behind retention: skip ahead, like auto.offset.reset
				continue
			case err != nil:
				fail("consumer Read(%d): %v", off, err)
				return
			case b == nil:
				if done.Load() && off == l.NextOffset() {
					return
				}
				select {
				case <-ch:
				case <-stopped:
				}
				continue
			}
			if err := checkRead(b, off); err != nil {
				fail("consumer Read(%d): %v", off, err)
				return
			}
			for len(b) > 0 {
				h, _ := record.ParseHeader(b)
				off, b = h.NextOffset(), b[h.Size():]
			}
		}
	}()
	wg.Add(1)
	go func() { // retention and sync, as the partition layer's housekeeping would
		defer wg.Done()
		for !done.Load() {
			if _, err := l.ApplyRetention(); err != nil {
				fail("ApplyRetention: %v", err)
			}
			if err := l.Sync(); err != nil {
				fail("Sync: %v", err)
			}
			l.Segments()
			l.Size()
		}
	}()
	wg.Wait()
	if l.LastIndex() != batches-1 {
		t.Fatalf("LastIndex = %d", l.LastIndex())
	}
}
