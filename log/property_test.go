package log

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// logModel is the specification of a Log in memory: the live batches, in
// order, and the three numbers that describe the log.
type logModel struct {
	batches   []modelBatch
	start     int64
	next      int64
	lastIndex uint64
}

type modelBatch struct {
	base, next int64
	maxTs      int64
	data       []byte // as stored: base offset stamped
}

func (m *logModel) size() (n int64) {
	for _, b := range m.batches {
		n += int64(len(b.data))
	}
	return n
}

// read is what Read(offset, max) must return.
func (m *logModel) read(offset int64, max int) ([]byte, *OffsetOutOfRangeError) {
	if offset < m.start || offset > m.next {
		return nil, &OffsetOutOfRangeError{Offset: offset, Start: m.start, End: m.next}
	}
	var out []byte
	for _, b := range m.batches {
		if b.next <= offset {
			continue
		}
		if len(out) > 0 && len(out)+len(b.data) > max {
			break
		}
		out = append(out, b.data...)
	}
	return out, nil
}

func (m *logModel) find(ts int64) int64 {
	for _, b := range m.batches {
		if b.maxTs >= ts {
			return b.base
		}
	}
	return m.next
}

func (m *logModel) dropBelow(start int64) {
	for len(m.batches) > 0 && m.batches[0].base < start {
		m.batches = m.batches[1:]
	}
	m.start = start
}

// TestLogMatchesModel runs random sequences of every operation against a Log
// with tiny segments and index intervals and checks it against logModel
// after each step.
func TestLogMatchesModel(t *testing.T) {
	root := t.TempDir()
	rapid.Check(t, func(rt *rapid.T) {
		clock := newFakeClock()
		cfg := DefaultConfig()
		cfg.SegmentBytes = rapid.Int64Range(150, 2500).Draw(rt, "SegmentBytes")
		cfg.IndexIntervalBytes = rapid.IntRange(1, 700).Draw(rt, "IndexIntervalBytes")
		cfg.SegmentMaxAge = time.Duration(rapid.IntRange(0, 120).Draw(rt, "SegmentMaxAge minutes")) * time.Minute
		cfg.RetentionBytes = rapid.Int64Range(-1, 5000).Draw(rt, "RetentionBytes")
		cfg.RetentionAge = time.Duration(rapid.IntRange(0, 240).Draw(rt, "RetentionAge minutes")) * time.Minute
		cfg.MaxBatchBytes = 1000
		cfg.Now = clock.Now

		dir, err := os.MkdirTemp(root, "log")
		if err != nil {
			rt.Fatalf("%v", err)
		}
		defer os.RemoveAll(dir)
		l := mustOpen(rt, dir, cfg)
		defer func() { l.Close() }()
		m := &logModel{}
		nowMs := func() int64 { return clock.Now().UnixMilli() }

		rt.Repeat(map[string]func(*rapid.T){
			"Append": func(rt *rapid.T) {
				// Several per step, so that tests build logs of many segments.
				for n := rapid.IntRange(1, 12).Draw(rt, "batches"); n > 0; n-- {
					records := rapid.IntRange(1, 30).Draw(rt, "records")
					payload := rapid.IntRange(0, 1000).Draw(rt, "payload")
					ts := nowMs() + rapid.Int64Range(-4*3600_000, 3600_000).Draw(rt, "ts offset")
					index := m.lastIndex + rapid.Uint64Range(0, 2).Draw(rt, "index step")
					b := testBatch(records, payload, ts-10, ts, byte(len(m.batches)))
					off, err := l.Append(b, index)
					if len(b) > cfg.MaxBatchBytes {
						if !errors.Is(err, ErrBatchTooLarge) {
							rt.Fatalf("Append of %d bytes = %v, want ErrBatchTooLarge", len(b), err)
						}
						continue
					}
					if err != nil || off != m.next {
						rt.Fatalf("Append = %d, %v; want %d", off, err, m.next)
					}
					m.batches = append(m.batches, modelBatch{base: off, next: off + int64(records), maxTs: ts, data: stamped(b, off)})
					m.next += int64(records)
					m.lastIndex = index
				}
			},
			"AppendWithLowerIndex": func(rt *rapid.T) {
				if m.lastIndex == 0 {
					rt.Skip("no lower index")
				}
				if _, err := l.Append(testBatch(1, 1, 0, 0, 0), m.lastIndex-1); !errors.Is(err, ErrIndexDecreased) {
					rt.Fatalf("Append with a lower index = %v", err)
				}
			},
			"Read": func(rt *rapid.T) {
				off := rapid.Int64Range(m.start-3, m.next+3).Draw(rt, "offset")
				max := rapid.IntRange(-1, 4000).Draw(rt, "maxBytes")
				got, err := l.Read(off, max)
				want, wantErr := m.read(off, max)
				if wantErr != nil {
					var oor *OffsetOutOfRangeError
					if !errors.As(err, &oor) || *oor != *wantErr {
						rt.Fatalf("Read(%d) = %v, want %v", off, err, wantErr)
					}
					return
				}
				if err != nil || !bytes.Equal(got, want) {
					rt.Fatalf("Read(%d, %d) = %d bytes, %v; want %d bytes", off, max, len(got), err, len(want))
				}
			},
			"FindOffsetByTimestamp": func(rt *rapid.T) {
				ts := nowMs() + rapid.Int64Range(-5*3600_000, 2*3600_000).Draw(rt, "ts offset")
				if rapid.IntRange(0, 9).Draw(rt, "extreme") == 0 {
					ts = rapid.SampledFrom([]int64{math.MinInt64, math.MaxInt64}).Draw(rt, "ts")
				}
				got, err := l.FindOffsetByTimestamp(ts)
				if want := m.find(ts); err != nil || got != want {
					rt.Fatalf("FindOffsetByTimestamp(%d) = %d, %v; want %d", ts, got, err, want)
				}
			},
			"Reopen": func(rt *rapid.T) {
				if err := l.Close(); err != nil {
					rt.Fatalf("Close: %v", err)
				}
				l = mustOpen(rt, dir, cfg)
			},
			"CrashAndReopen": func(rt *rapid.T) {
				img, err := os.MkdirTemp(root, "crash")
				if err != nil {
					rt.Fatalf("%v", err)
				}
				copyDir(rt, dir, img) // the files as a killed process leaves them
				old := l
				l = mustOpen(rt, img, cfg)
				old.Close()
				os.RemoveAll(dir)
				dir = img
			},
			"CheckpointAndSwitch": func(rt *rapid.T) {
				img := filepath.Join(root, filepath.Base(dir)+"-cp")
				if _, err := l.Checkpoint(img); err != nil {
					rt.Fatalf("Checkpoint: %v", err)
				}
				old := l
				l = mustOpen(rt, img, cfg)
				old.Close()
				os.RemoveAll(dir)
				dir = img
			},
			"AdvanceClock": func(rt *rapid.T) {
				clock.Advance(time.Duration(rapid.IntRange(0, 90).Draw(rt, "minutes")) * time.Minute)
			},
			"ApplyRetention": func(rt *rapid.T) {
				pre := l.Segments()
				total, want := m.size(), 0
				for ; want < len(pre)-1; want++ {
					s := pre[want]
					byAge := cfg.RetentionAge > 0 && s.MaxTimestamp < nowMs()-cfg.RetentionAge.Milliseconds()
					bySize := cfg.RetentionBytes >= 0 && total-s.Size >= cfg.RetentionBytes
					if !byAge && !bySize {
						break
					}
					total -= s.Size
				}
				n, err := l.ApplyRetention()
				if err != nil || n != want {
					rt.Fatalf("ApplyRetention = %d, %v; want %d", n, err, want)
				}
				if l.LogStartOffset() != pre[n].BaseOffset {
					rt.Fatalf("start %d after deleting %d segments, want %d", l.LogStartOffset(), n, pre[n].BaseOffset)
				}
				m.dropBelow(pre[n].BaseOffset)
			},
			"Sync": func(rt *rapid.T) {
				if err := l.Sync(); err != nil {
					rt.Fatalf("Sync: %v", err)
				}
			},
			"SetConfig": func(rt *rapid.T) {
				cfg.SegmentBytes = rapid.Int64Range(150, 2500).Draw(rt, "SegmentBytes")
				cfg.RetentionBytes = rapid.Int64Range(-1, 5000).Draw(rt, "RetentionBytes")
				cfg.RetentionAge = time.Duration(rapid.IntRange(0, 240).Draw(rt, "RetentionAge minutes")) * time.Minute
				if err := l.SetConfig(cfg); err != nil {
					rt.Fatalf("SetConfig: %v", err)
				}
			},
			"Reset": func(rt *rapid.T) {
				start := rapid.Int64Range(0, m.next+100).Draw(rt, "start")
				index := rapid.Uint64Range(0, m.lastIndex+100).Draw(rt, "index")
				if err := l.Reset(start, index); err != nil {
					rt.Fatalf("Reset: %v", err)
				}
				*m = logModel{start: start, next: start, lastIndex: index}
			},
			"": func(rt *rapid.T) {
				if l.NextOffset() != m.next || l.LogStartOffset() != m.start || l.LastIndex() != m.lastIndex || l.Size() != m.size() {
					rt.Fatalf("log next %d start %d last index %d size %d; model %d %d %d %d",
						l.NextOffset(), l.LogStartOffset(), l.LastIndex(), l.Size(), m.next, m.start, m.lastIndex, m.size())
				}
				// Each segment holds a contiguous run of the model's batches.
				segs := l.Segments()
				i := 0
				for k, s := range segs {
					var size int64
					maxTs := int64(math.MinInt64)
					for ; i < len(m.batches) && m.batches[i].base < s.NextOffset; i++ {
						size += int64(len(m.batches[i].data))
						maxTs = max(maxTs, m.batches[i].maxTs)
					}
					if s.Size != size || s.MaxTimestamp != maxTs || s.Sealed != (k < len(segs)-1) {
						rt.Fatalf("segment %d %+v; model: %d bytes, max timestamp %d", k, s, size, maxTs)
					}
					if k > 0 && s.BaseOffset != segs[k-1].NextOffset {
						rt.Fatalf("segment %d starts at %d, previous ends at %d", k, s.BaseOffset, segs[k-1].NextOffset)
					}
				}
				if segs[0].BaseOffset != m.start || segs[len(segs)-1].NextOffset != m.next || i != len(m.batches) {
					rt.Fatalf("segments %+v do not cover the model [%d, %d)", segs, m.start, m.next)
				}
			},
		})
	})
}
