package log

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// keyedLog fills a log in dir with records batches of 100 records over
// keys keys, 100-byte values, in 1 MiB segments, and syncs it.
func keyedLog(b *testing.B, dir string, records, keys int) *Log {
	b.Helper()
	cfg := DefaultConfig()
	cfg.SegmentBytes = 1 << 20
	l := mustOpen(b, dir, cfg)
	value := make([]byte, 100)
	for i := 0; i < records; i += 100 {
		recs := make([]record.Record, 100)
		for j := range recs {
			recs[j] = record.Record{Timestamp: int64(i + j), Key: []byte(fmt.Sprintf("key-%d", (i+j)%keys)), Value: value}
		}
		batch, err := record.Encode(record.BatchOptions{}, recs)
		if err != nil {
			b.Fatal(err)
		}
		mustAppend(b, l, batch, uint64(i/100+1))
	}
	if err := l.Sync(); err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkCompact measures a compaction pass over 100,000 records of
// 1,000 keys (MB/s is of the log's size before the pass).
func BenchmarkCompact(b *testing.B) {
	var before, after int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		l := keyedLog(b, b.TempDir(), 100_000, 1000)
		before = l.Size()
		b.SetBytes(before)
		b.StartTimer()
		st, err := l.Compact(CompactOptions{Now: 1 << 40})
		if err != nil || st.Segments == 0 {
			b.Fatalf("%+v %v", st, err)
		}
		b.StopTimer()
		after = l.Size()
		l.Close()
	}
	b.ReportMetric(float64(before), "bytes-before")
	b.ReportMetric(float64(after), "bytes-after")
}

// BenchmarkAppendWhileCompacting measures appends of 100-record batches
// with no compaction, with compaction passes running in a loop beside them
// unthrottled, and throttled to the node default (32 MiB/s): the cost the
// cleaner puts on produce.
func BenchmarkAppendWhileCompacting(b *testing.B) {
	throttled := func(n int64) { time.Sleep(time.Duration(float64(n) / float64(32<<20) * float64(time.Second))) }
	for _, mode := range []string{"none", "unthrottled", "32MiBps"} {
		compacting := mode != "none"
		b.Run("compacting="+mode, func(b *testing.B) {
			l := keyedLog(b, b.TempDir(), 50_000, 1000)
			defer l.Close()
			value := make([]byte, 100)
			recs := make([]record.Record, 100)
			for j := range recs {
				recs[j] = record.Record{Timestamp: 1, Key: []byte(fmt.Sprintf("key-%d", j)), Value: value}
			}
			batch, _ := record.Encode(record.BatchOptions{}, recs)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var passes atomic.Int64
			if compacting {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						opts := CompactOptions{Now: time.Now().UnixMilli()}
						if mode == "32MiBps" {
							opts.Throttle = throttled
						}
						if _, err := l.Compact(opts); err != nil {
							b.Error(err)
							return
						}
						passes.Add(1)
					}
				}()
			}
			b.SetBytes(int64(len(batch)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := append([]byte(nil), batch...)
				mustAppend(b, l, c, uint64(1_000_000+i))
			}
			b.StopTimer()
			close(stop)
			wg.Wait()
			b.ReportMetric(float64(passes.Load()), "passes")
		})
	}
}
