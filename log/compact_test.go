package log

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/skiff-mq/skiff/record"
)

// put is one record of a keyed log: value nil is a tombstone, key "" is a
// keyless record.
type put struct {
	key, value string
	tombstone  bool
	ts         int64
}

// keyedBatch encodes puts as one batch, with the given codec.
func keyedBatch(t tester, codec record.Compression, puts ...put) []byte {
	t.Helper()
	recs := make([]record.Record, len(puts))
	for i, p := range puts {
		recs[i] = record.Record{Timestamp: p.ts, Value: []byte(p.value)}
		if p.key != "" {
			recs[i].Key = []byte(p.key)
		}
		if p.tombstone {
			recs[i].Value = nil
		}
	}
	b, err := record.Encode(record.BatchOptions{Compression: codec}, recs)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

// logRecords reads every record from the log start, as a consumer would.
func logRecords(t tester, l *Log) []record.Record {
	t.Helper()
	var out []record.Record
	for _, b := range readAll(t, l) {
		_, recs, err := record.Decode(b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		out = append(out, recs...)
	}
	return out
}

// workload appends batches of 3 records over keys k0..k{keys-1}, with a
// tombstone every 7th record and a keyless record every 11th; record i has
// timestamp i and value "v<i>". It returns how many records it wrote.
func workload(t tester, l *Log, batches, keys int) int {
	t.Helper()
	n := 0
	for b := 0; b < batches; b++ {
		var ps []put
		for j := 0; j < 3; j++ {
			p := put{key: fmt.Sprintf("k%d", n%keys), value: fmt.Sprintf("v%d", n), ts: int64(n)}
			if n%7 == 6 {
				p.tombstone = true
			}
			if n%11 == 10 {
				p.key = ""
			}
			ps = append(ps, p)
			n++
		}
		codec := []record.Compression{record.CompressionNone, record.CompressionLZ4}[b%2]
		mustAppend(t, l, keyedBatch(t, codec, ps...), uint64(b+1))
	}
	return n
}

// activeBase is the base offset of the log's active segment.
func activeBase(l *Log) int64 { return l.view.Load().active().base }

// checkCompacted checks the compaction rules on the records a log serves
// right after a pass: offsets only increase; below active (the end of what
// the pass cleaned) each key appears once, at its latest offset in the
// whole log, and tombstones older than tombstoneBefore are gone; the latest
// value of every key (per want) is served unchanged.
//
// Tombstones a pass removed stay removed: deletedBelow and tombstoneBefore
// are the bounds of the latest pass (deletedBelow is its active base).
func checkCompacted(t tester, recs []record.Record, active, deletedBelow int64, want map[string]record.Record, tombstoneBefore int64) {
	t.Helper()
	seen := map[string]bool{}
	last := int64(-1)
	for _, r := range recs {
		if r.Offset <= last {
			t.Fatalf("offset %d after %d", r.Offset, last)
		}
		last = r.Offset
		if r.Key == nil || r.Offset >= active {
			continue
		}
		k := string(r.Key)
		if seen[k] {
			t.Fatalf("key %s twice below the active segment (offset %d)", k, r.Offset)
		}
		seen[k] = true
		if w := want[k]; w.Offset != r.Offset {
			t.Fatalf("key %s at %d below the active segment, but its latest is at %d", k, r.Offset, w.Offset)
		}
		if r.Value == nil && r.Timestamp < tombstoneBefore {
			t.Fatalf("expired tombstone of %s kept at %d", k, r.Offset)
		}
	}
	byKey := map[string]record.Record{}
	for _, r := range recs {
		if r.Key != nil {
			byKey[string(r.Key)] = r
		}
	}
	for k, w := range want {
		got, ok := byKey[k]
		if w.Value == nil && w.Offset < deletedBelow && w.Timestamp < tombstoneBefore {
			if ok {
				t.Fatalf("deleted key %s still served at %d", k, got.Offset)
			}
			continue
		}
		if !ok || got.Offset != w.Offset || !bytes.Equal(got.Value, w.Value) || (got.Value == nil) != (w.Value == nil) {
			t.Fatalf("key %s: served %+v (present %v), want %+v", k, got, ok, w)
		}
	}
}

// latestOf returns the latest record of every key among recs.
func latestOf(recs []record.Record) map[string]record.Record {
	m := map[string]record.Record{}
	for _, r := range recs {
		if r.Key != nil {
			m[string(r.Key)] = r
		}
	}
	return m
}

func TestCompactKeepsTheLatestRecordOfEachKeyAtItsOffset(t *testing.T) {
	cfg := smallConfig(nil)
	dir := t.TempDir()
	l := mustOpen(t, dir, cfg)
	defer func() { l.Close() }()
	n := workload(t, l, 200, 10)
	if err := l.Sync(); err != nil { // seals' flushes done: every sealed segment durable
		t.Fatal(err)
	}
	before := logRecords(t, l)
	want := latestOf(before)
	next, size := l.NextOffset(), l.Size()
	d, err := l.Dirty()
	if err != nil || d.Records != int64(n) || d.Ratio() < 0.5 {
		t.Fatalf("dirty %+v (ratio %.2f), %v", d, d.Ratio(), err)
	}
	st, err := l.Compact(CompactOptions{Now: int64(n), DeleteRetention: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if st.Segments == 0 || st.BytesAfter >= st.BytesBefore || st.RecordsRemoved == 0 {
		t.Fatalf("stats %+v", st)
	}
	if l.NextOffset() != next || l.Size() >= size {
		t.Fatalf("after: next %d size %d; before next %d size %d", l.NextOffset(), l.Size(), next, size)
	}
	after := logRecords(t, l)
	checkCompacted(t, after, activeBase(l), activeBase(l), want, int64(n)-100)
	// A second pass finds nothing to do; reopening serves the same.
	if st, err := l.Compact(CompactOptions{Now: int64(n), DeleteRetention: 100 * time.Millisecond}); err != nil || st.Segments != 0 {
		t.Fatalf("second pass %+v, %v", st, err)
	}
	l.Close()
	l = mustOpen(t, dir, cfg)
	if got := logRecords(t, l); len(got) != len(after) {
		t.Fatalf("reopened: %d records, want %d", len(got), len(after))
	}
	// Appends continue at the same offsets.
	if off := mustAppend(t, l, keyedBatch(t, record.CompressionNone, put{key: "k1", value: "new"}), 1000); off != next {
		t.Fatalf("append after compaction at %d, want %d", off, next)
	}
}

func TestCompactRespectsMinLagAndUpTo(t *testing.T) {
	l := mustOpen(t, t.TempDir(), smallConfig(nil))
	defer l.Close()
	n := workload(t, l, 200, 10)
	l.Sync()
	segs := l.Segments()
	// Nothing is old enough: records have timestamps 0..n-1.
	if st, err := l.Compact(CompactOptions{Now: int64(n), MinLag: time.Duration(n+1) * time.Millisecond}); err != nil || st.Segments != 0 {
		t.Fatalf("min lag: %+v, %v", st, err)
	}
	// Only segments below UpTo.
	upTo := segs[2].BaseOffset
	if _, err := l.Compact(CompactOptions{Now: int64(n), UpTo: upTo}); err != nil {
		t.Fatal(err)
	}
	for _, s := range l.Segments() {
		var orig SegmentInfo
		for _, o := range segs {
			if o.BaseOffset == s.BaseOffset {
				orig = o
			}
		}
		if s.BaseOffset >= upTo && s.Size != orig.Size {
			t.Fatalf("segment %d above UpTo changed: %d -> %d bytes", s.BaseOffset, orig.Size, s.Size)
		}
	}
}

func TestCompactedLogsOfThreeReplicasAreIdentical(t *testing.T) {
	var ref []byte
	for i := 0; i < 3; i++ {
		dir := t.TempDir()
		l := mustOpen(t, dir, smallConfig(nil))
		n := workload(t, l, 150, 13)
		l.Sync()
		if _, err := l.Compact(CompactOptions{Now: int64(n), DeleteRetention: 50 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		var got []byte
		for _, b := range readAll(t, l) {
			got = append(got, b...)
		}
		l.Close()
		if ref == nil {
			ref = got
		} else if !bytes.Equal(ref, got) {
			t.Fatalf("replica %d holds %d bytes, differing from replica 0's %d", i, len(got), len(ref))
		}
	}
}

// A compaction stopped at any step (as by a crash: the files as they are
// then) opens as either the log before the pass or the log after it, and
// both serve every key's latest value at its offset.
func TestCompactCrashAtEveryStep(t *testing.T) {
	// Find the steps of a pass.
	var steps []string
	{
		l := mustOpen(t, t.TempDir(), smallConfig(nil))
		n := workload(t, l, 120, 10)
		l.Sync()
		l.compactHook = func(step string) error { steps = append(steps, step); return nil }
		if _, err := l.Compact(CompactOptions{Now: int64(n)}); err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	if len(steps) < 5 {
		t.Fatalf("steps %v", steps)
	}
	for _, stop := range steps {
		t.Run(stop, func(t *testing.T) {
			dir := t.TempDir()
			l := mustOpen(t, dir, smallConfig(nil))
			n := workload(t, l, 120, 10)
			l.Sync()
			before := logRecords(t, l)
			want := latestOf(before)
			l.compactHook = func(step string) error {
				if step == stop {
					return errCompactAborted
				}
				return nil
			}
			_, err := l.Compact(CompactOptions{Now: int64(n)})
			if !errors.Is(err, errCompactAborted) {
				t.Fatalf("compact: %v", err)
			}
			crash := filepath.Join(t.TempDir(), "crash")
			copyDir(t, dir, crash)
			l.Close()
			r := mustOpen(t, crash, smallConfig(nil))
			defer r.Close()
			got := logRecords(t, r)
			if r.NextOffset() != int64(n) {
				t.Fatalf("reopened log ends at %d, want %d", r.NextOffset(), n)
			}
			committed := stop != "cleaned-written"
			if !committed && len(got) != len(before) {
				t.Fatalf("stopped before the commit point: %d records, want the %d of before", len(got), len(before))
			}
			if committed && len(got) >= len(before) {
				t.Fatalf("stopped after the commit point: %d records, want fewer than %d", len(got), len(before))
			}
			if committed {
				checkCompacted(t, got, activeBase(r), activeBase(r), want, int64(n))
			} else {
				checkCompacted(t, got, 0, 0, want, -1) // as before: nothing compacted
			}
			ents, _ := os.ReadDir(crash)
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), cleanedSuffix) || e.Name() == compactMarkerName {
					t.Fatalf("leftover %s after open", e.Name())
				}
			}
			// The recovered log compacts to the same result as an
			// uninterrupted pass.
			if _, err := r.Compact(CompactOptions{Now: int64(n)}); err != nil {
				t.Fatal(err)
			}
			checkCompacted(t, logRecords(t, r), activeBase(r), activeBase(r), want, int64(n))
		})
	}
}

// A checkpoint taken before a compaction keeps the old files: the swap
// writes new inodes under the old names.
func TestCompactLeavesHardLinkedCheckpointsAlone(t *testing.T) {
	l := mustOpen(t, t.TempDir(), smallConfig(nil))
	defer l.Close()
	n := workload(t, l, 120, 10)
	l.Sync()
	cp := filepath.Join(t.TempDir(), "cp")
	if _, err := l.Checkpoint(cp); err != nil {
		t.Fatal(err)
	}
	before := logRecords(t, l)
	if st, err := l.Compact(CompactOptions{Now: int64(n)}); err != nil || st.Segments == 0 {
		t.Fatalf("%+v %v", st, err)
	}
	c := mustOpen(t, cp, smallConfig(nil))
	defer c.Close()
	if got := logRecords(t, c); len(got) != len(before) {
		t.Fatalf("checkpoint serves %d records after the compaction, want %d", len(got), len(before))
	}
}

// The compacted log, read from offset 0, is the map model's latest values
// (at their offsets) plus the uncompacted tail, through random puts,
// deletes, compactions and reopenings.
func TestCompactPropertyAgainstAMapModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		dir, err := os.MkdirTemp("", "compact-prop-")
		if err != nil {
			t.Fatalf("%v", err)
		}
		defer os.RemoveAll(dir)
		cfg := smallConfig(nil)
		l := mustOpen(t, dir, cfg)
		defer func() { l.Close() }()
		model := map[string]record.Record{} // latest record per key
		next, index, now := int64(0), uint64(0), int64(0)
		passEnd, passTombstones := int64(0), int64(-1) // bounds of the latest pass
		retention := rapid.Int64Range(0, 50).Draw(t, "deleteRetentionMs")
		for step := rapid.IntRange(1, 60).Draw(t, "steps"); step > 0; step-- {
			switch rapid.IntRange(0, 9).Draw(t, "op") {
			case 0:
				if err := l.Sync(); err != nil {
					t.Fatalf("sync: %v", err)
				}
				if _, err := l.Compact(CompactOptions{Now: now, DeleteRetention: time.Duration(retention) * time.Millisecond}); err != nil {
					t.Fatalf("compact: %v", err)
				}
				passEnd, passTombstones = activeBase(l), now-retention
				checkCompacted(t, logRecords(t, l), passEnd, passEnd, model, passTombstones)
			case 1:
				l.Close()
				l = mustOpen(t, dir, cfg)
			default:
				var ps []put
				for i := rapid.IntRange(1, 4).Draw(t, "records"); i > 0; i-- {
					now++
					p := put{key: fmt.Sprintf("k%d", rapid.IntRange(0, 7).Draw(t, "key")), value: fmt.Sprintf("v%d", next+int64(len(ps))), ts: now}
					p.tombstone = rapid.IntRange(0, 5).Draw(t, "del") == 0
					ps = append(ps, p)
				}
				index++
				base := mustAppend(t, l, keyedBatch(t, record.CompressionNone, ps...), index)
				if base != next {
					t.Fatalf("batch at %d, want %d", base, next)
				}
				for i, p := range ps {
					r := record.Record{Offset: next + int64(i), Timestamp: p.ts, Key: []byte(p.key), Value: []byte(p.value)}
					if p.tombstone {
						r.Value = nil
					}
					model[p.key] = r
				}
				next += int64(len(ps))
			}
		}
		if l.NextOffset() != next {
			t.Fatalf("log ends at %d, model at %d", l.NextOffset(), next)
		}
		// Between passes only the latest values are promised (records
		// appended since made some cleaned ones obsolete); after a last
		// pass, the rules hold again.
		checkCompacted(t, logRecords(t, l), 0, passEnd, model, passTombstones)
		l.Sync()
		if _, err := l.Compact(CompactOptions{Now: now, DeleteRetention: time.Duration(retention) * time.Millisecond}); err != nil {
			t.Fatalf("compact: %v", err)
		}
		checkCompacted(t, logRecords(t, l), activeBase(l), activeBase(l), model, now-retention)
	})
}
