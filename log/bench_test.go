package log

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Benchmarks compare appends with a baseline of plain os.File writes of the
// same chunk sizes to the same kind of directory (b.TempDir), in one run, so
// the ratio append/raw is measured under the same conditions.

// benchRecordOverhead approximates the bytes a v2 record adds around its
// value (length, attributes, timestamp and offset deltas, key and value
// lengths, header count as varints).
const benchRecordOverhead = 10

// rotateBytes bounds the disk space a benchmark uses: after this much data
// the log (or file) is deleted and started afresh, outside the timer.
const rotateBytes = 512 << 20

type appendCase struct {
	recordBytes, records int
}

var appendCases = []appendCase{
	{100, 1}, {100, 100}, {100, 1000},
	{1024, 1}, {1024, 100}, {1024, 1000},
}

func (c appendCase) batchBytes() int {
	return 61 + c.records*(c.recordBytes+benchRecordOverhead)
}

func syncName(p SyncPolicy) string {
	if p == SyncEveryAppend {
		return "fsync"
	}
	return "nosync"
}

func BenchmarkAppend(b *testing.B) {
	for _, policy := range []SyncPolicy{SyncNever, SyncEveryAppend} {
		for _, c := range appendCases {
			name := fmt.Sprintf("%s/record=%dB/batch=%d", syncName(policy), c.recordBytes, c.records)
			b.Run(name, func(b *testing.B) {
				cfg := DefaultConfig()
				cfg.Sync = policy
				batch := testBatch(c.records, c.batchBytes()-61, 1, 1, 0)
				dir := b.TempDir()
				n := 0
				open := func() *Log {
					n++
					return mustOpen(b, filepath.Join(dir, fmt.Sprint(n)), cfg)
				}
				l := open()
				var written int64
				b.SetBytes(int64(len(batch)))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if written >= rotateBytes {
						b.StopTimer()
						l.Delete()
						l = open()
						written = 0
						b.StartTimer()
					}
					if _, err := l.Append(batch, uint64(i)); err != nil {
						b.Fatal(err)
					}
					written += int64(len(batch))
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N*c.records)/b.Elapsed().Seconds(), "records/s")
				l.Delete()
			})
		}
	}
}

// rawMode is how BenchmarkRawFileWrite makes its writes durable.
type rawMode struct {
	name string
	// fsyncEach fsyncs after every write (the counterpart of SyncEveryAppend).
	fsyncEach bool
	// rollBytes, if set, moves to a new file every rollBytes and fsyncs the
	// full one on another goroutine: what the log's background flusher does
	// for sealed segments under SyncNever.
	rollBytes int64
}

var rawModes = []rawMode{
	{name: "nosync"},
	{name: "fsync", fsyncEach: true},
	{name: "nosync-rollfsync", rollBytes: DefaultSegmentBytes},
}

func BenchmarkRawFileWrite(b *testing.B) {
	for _, mode := range rawModes {
		for _, c := range appendCases {
			name := fmt.Sprintf("%s/record=%dB/batch=%d", mode.name, c.recordBytes, c.records)
			b.Run(name, func(b *testing.B) {
				chunk := testBatch(c.records, c.batchBytes()-61, 1, 1, 0)
				dir := b.TempDir()
				var flushes sync.WaitGroup
				n := 0
				open := func() *os.File {
					n++
					f, err := os.Create(filepath.Join(dir, fmt.Sprint(n)))
					if err != nil {
						b.Fatal(err)
					}
					return f
				}
				clean := func() {
					flushes.Wait()
					ents, _ := os.ReadDir(dir)
					for _, e := range ents {
						os.Remove(filepath.Join(dir, e.Name()))
					}
				}
				f := open()
				var written, inFile int64
				b.SetBytes(int64(len(chunk)))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if written >= rotateBytes {
						b.StopTimer()
						f.Close()
						clean()
						f = open()
						written, inFile = 0, 0
						b.StartTimer()
					}
					if mode.rollBytes > 0 && inFile+int64(len(chunk)) > mode.rollBytes {
						full := f
						flushes.Add(1)
						go func() {
							defer flushes.Done()
							full.Sync()
							full.Close()
						}()
						f = open()
						inFile = 0
					}
					if _, err := f.Write(chunk); err != nil {
						b.Fatal(err)
					}
					if mode.fsyncEach {
						if err := f.Sync(); err != nil {
							b.Fatal(err)
						}
					}
					written += int64(len(chunk))
					inFile += int64(len(chunk))
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N*c.records)/b.Elapsed().Seconds(), "records/s")
				f.Close()
				clean()
			})
		}
	}
}

// BenchmarkRead reads a 256 MiB log of 1000-record batches (two 128 MiB
// segments) from the page cache, start to end, 1 MiB per Read.
func BenchmarkRead(b *testing.B) {
	l := mustOpen(b, b.TempDir(), DefaultConfig())
	defer l.Delete()
	batch := testBatch(1000, 1000*(100+benchRecordOverhead), 1, 1, 0)
	for l.Size() < 256<<20 {
		mustAppend(b, l, batch, 0)
	}
	b.SetBytes(l.Size())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var n int64
		for off := l.LogStartOffset(); off < l.NextOffset(); {
			data, err := l.Read(off, 1<<20)
			if err != nil {
				b.Fatal(err)
			}
			n += int64(len(data))
			// Kafka consumers find the next offset from the last batch
			// header; here every batch holds 1000 records.
			off += int64(len(data)/len(batch)) * 1000
		}
		if n != l.Size() {
			b.Fatalf("read %d bytes of %d", n, l.Size())
		}
	}
}

// BenchmarkFindOffsetByTimestamp looks up random timestamps in a log of
// 200k small batches with rising timestamps, across 12 segments.
func BenchmarkFindOffsetByTimestamp(b *testing.B) {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 4 << 20
	l := mustOpen(b, b.TempDir(), cfg)
	defer l.Delete()
	const batches = 200_000
	for i := 0; i < batches; i++ {
		mustAppend(b, l, testBatch(1, 200, int64(i), int64(i), 0), 0)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ts := rng.Int64N(batches)
		off, err := l.FindOffsetByTimestamp(ts)
		if err != nil || off != ts {
			b.Fatalf("FindOffsetByTimestamp(%d) = %d, %v", ts, off, err)
		}
	}
}
