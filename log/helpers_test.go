package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// testBatch builds a valid v2 batch of records records whose records region
// is payload opaque bytes derived from seed (the log never decodes records).
// The base offset is 0; Append stamps it.
func testBatch(records, payload int, baseTs, maxTs int64, seed byte) []byte {
	b := make([]byte, record.HeaderSize+payload)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-record.LogOverhead))
	b[16] = record.Magic
	binary.BigEndian.PutUint32(b[23:], uint32(records-1))
	binary.BigEndian.PutUint64(b[27:], uint64(baseTs))
	binary.BigEndian.PutUint64(b[35:], uint64(maxTs))
	binary.BigEndian.PutUint64(b[43:], ^uint64(0)) // producerId -1
	binary.BigEndian.PutUint16(b[51:], 0xffff)     // producerEpoch -1
	binary.BigEndian.PutUint32(b[53:], 0xffffffff) // baseSequence -1
	binary.BigEndian.PutUint32(b[57:], uint32(records))
	for i := 0; i < payload; i++ {
		b[record.HeaderSize+i] = seed + byte(i*7)
	}
	binary.BigEndian.PutUint32(b[17:], record.Checksum(b))
	return b
}

// stamped returns a copy of batch with its base offset set, as the log
// stores it.
func stamped(batch []byte, base int64) []byte {
	c := bytes.Clone(batch)
	record.SetBaseOffset(c, base)
	return c
}

// tester is what the helpers need from *testing.T and *rapid.T alike.
type tester interface {
	Helper()
	Fatalf(format string, args ...any)
}

// fakeClock is an injectable Config.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// smallConfig rolls and indexes often so tests cross segment and index
// boundaries with little data.
func smallConfig(clock *fakeClock) Config {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 1024
	cfg.IndexIntervalBytes = 200
	cfg.SegmentMaxAge = 0
	cfg.RetentionAge = 0
	if clock != nil {
		cfg.Now = clock.Now
	}
	return cfg
}

func mustOpen(t tester, dir string, cfg Config) *Log {
	t.Helper()
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func mustAppend(t tester, l *Log, batch []byte, index uint64) int64 {
	t.Helper()
	off, err := l.Append(batch, index)
	if err != nil {
		t.Fatalf("Append(index %d): %v", index, err)
	}
	return off
}

// splitBatches cuts concatenated batches apart, checking each CRC.
func splitBatches(t tester, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		h, err := record.Verify(b)
		if err != nil {
			t.Fatalf("batch %d of read: %v", len(out), err)
		}
		out = append(out, b[:h.Size()])
		b = b[h.Size():]
	}
	return out
}

// readAll reads every batch from LogStartOffset to NextOffset.
func readAll(t tester, l *Log) [][]byte {
	t.Helper()
	var out [][]byte
	for off := l.LogStartOffset(); off < l.NextOffset(); {
		b, err := l.Read(off, 4096)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		bs := splitBatches(t, b)
		if len(bs) == 0 {
			t.Fatalf("Read(%d) returned nothing below NextOffset %d", off, l.NextOffset())
		}
		out = append(out, bs...)
		h, _ := record.ParseHeader(bs[len(bs)-1])
		off = h.NextOffset()
	}
	return out
}

// copyDir copies the regular files of src into a new directory dst, as they
// are on disk right now (a crash image for a process crash). The log's
// background flusher may be writing index files meanwhile, which yields one
// of the states a crash at that moment could leave.
func copyDir(t tester, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatalf("%v", err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // renamed or deleted by the log's flusher meanwhile
		}
		if err != nil {
			t.Fatalf("%v", err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err != nil {
			t.Fatalf("%v", err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatalf("%v", err)
		}
		in.Close()
		out.Close()
	}
}

func wantOutOfRange(t tester, err error, offset, start, end int64) {
	t.Helper()
	var oor *OffsetOutOfRangeError
	if !errors.As(err, &oor) || !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("err = %v, want *OffsetOutOfRangeError", err)
	}
	if *oor != (OffsetOutOfRangeError{Offset: offset, Start: start, End: end}) {
		t.Fatalf("err = %+v, want offset %d range [%d, %d]", *oor, offset, start, end)
	}
}
