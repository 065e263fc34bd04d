package partition

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/skiff-mq/skiff/record"
)

// producerTestTime is a fixed origin for test clocks, plus d.
func producerTestTime(d time.Duration) time.Time {
	return time.Unix(1_700_000_000, 0).UTC().Add(d)
}

// producerBatch is the header of an idempotent batch of n records.
func producerBatch(pid int64, epoch int16, seq int32, n int32) record.BatchHeader {
	return record.BatchHeader{
		Magic:           record.Magic,
		ProducerID:      pid,
		ProducerEpoch:   epoch,
		BaseSequence:    seq,
		LastOffsetDelta: n - 1,
		RecordCount:     n,
	}
}

// producerStep is one batch offered to a table. Unless seed is set the
// batch is checked: an accepted batch is then recorded at the next offset.
type producerStep struct {
	h     record.BatchHeader
	want  error // ErrOutOfOrderSequence, ErrProducerFenced, or nil
	dupOf int   // when > 0: the batch is a retry of step dupOf (1-based)
	seed  bool  // record without checking, as replaying the log does
}

func TestProducerCheckSequences(t *testing.T) {
	const maxSeq = math.MaxInt32
	b := producerBatch
	tests := []struct {
		name  string
		steps []producerStep
	}{
		{"fresh producer starts at sequence 0", []producerStep{
			{h: b(1, 0, 0, 1)},
		}},
		{"unknown producer not at sequence 0 is out of order", []producerStep{
			{h: b(1, 0, 5, 1), want: ErrOutOfOrderSequence},
		}},
		{"in-order appends pass", []producerStep{
			{h: b(1, 0, 0, 3)}, {h: b(1, 0, 3, 1)}, {h: b(1, 0, 4, 5)}, {h: b(1, 0, 9, 1)},
		}},
		{"a retry of each of the last five batches returns its offsets", []producerStep{
			{h: b(1, 0, 0, 2)}, {h: b(1, 0, 2, 1)}, {h: b(1, 0, 3, 4)}, {h: b(1, 0, 7, 1)},
			{h: b(1, 0, 8, 2)}, {h: b(1, 0, 10, 3)},
			{h: b(1, 0, 7, 1), dupOf: 4}, {h: b(1, 0, 10, 3), dupOf: 6}, {h: b(1, 0, 2, 1), dupOf: 2},
			{h: b(1, 0, 8, 2), dupOf: 5}, {h: b(1, 0, 3, 4), dupOf: 3},
		}},
		{"a retry of the sixth-newest batch is out of order", []producerStep{
			{h: b(1, 0, 0, 2)}, {h: b(1, 0, 2, 1)}, {h: b(1, 0, 3, 4)}, {h: b(1, 0, 7, 1)},
			{h: b(1, 0, 8, 2)}, {h: b(1, 0, 10, 3)},
			{h: b(1, 0, 0, 2), want: ErrOutOfOrderSequence},
		}},
		{"same first sequence with another length is no duplicate", []producerStep{
			{h: b(1, 0, 0, 3)}, {h: b(1, 0, 0, 2), want: ErrOutOfOrderSequence},
		}},
		{"a gap is out of order and leaves the state unchanged", []producerStep{
			{h: b(1, 0, 0, 1)}, {h: b(1, 0, 2, 1), want: ErrOutOfOrderSequence},
			{h: b(1, 0, 1, 1)}, {h: b(1, 0, 0, 1), dupOf: 1},
		}},
		{"an older epoch is fenced", []producerStep{
			{h: b(1, 3, 0, 1)}, {h: b(1, 2, 1, 1), want: ErrProducerFenced},
			{h: b(1, 2, 0, 1), want: ErrProducerFenced},
		}},
		{"a newer epoch at sequence 0 resets the sequence", []producerStep{
			{h: b(1, 0, 0, 1)}, {h: b(1, 0, 1, 1)}, {h: b(1, 1, 0, 2)}, {h: b(1, 1, 2, 1)},
			{h: b(1, 0, 1, 1), want: ErrProducerFenced}, {h: b(1, 1, 0, 2), dupOf: 3},
			{h: b(1, 1, 4, 1), want: ErrOutOfOrderSequence},
		}},
		{"a newer epoch not at sequence 0 is out of order", []producerStep{
			{h: b(1, 0, 0, 1)}, {h: b(1, 1, 3, 1), want: ErrOutOfOrderSequence}, {h: b(1, 0, 1, 1)},
		}},
		{"the sequence wraps from MaxInt32 to 0", []producerStep{
			{h: b(1, 0, maxSeq-2, 3), seed: true}, {h: b(1, 0, 0, 2)}, {h: b(1, 0, 2, 1)},
			{h: b(1, 0, maxSeq-2, 3), dupOf: 1}, {h: b(1, 0, 3, 1)},
		}},
		{"a batch may span the wrap", []producerStep{
			{h: b(1, 0, maxSeq-1, 1), seed: true}, {h: b(1, 0, maxSeq, 3)}, {h: b(1, 0, 2, 1)},
			{h: b(1, 0, maxSeq, 3), dupOf: 2}, {h: b(1, 0, maxSeq-1, 1), dupOf: 1},
			{h: b(1, 0, 1, 1), want: ErrOutOfOrderSequence},
		}},
		{"batches without a producer id always pass", []producerStep{
			{h: b(record.NoProducerID, -1, -1, 1)}, {h: b(record.NoProducerID, -1, -1, 1)},
			{h: b(record.NoProducerID, 0, 7, 1)}, {h: b(-9, 4, 3, 1)},
		}},
		{"an idempotent batch without a sequence is out of order", []producerStep{
			{h: b(1, 0, -1, 1), want: ErrOutOfOrderSequence},
		}},
		{"producers are independent", []producerStep{
			{h: b(1, 0, 0, 1)}, {h: b(2, 5, 0, 1)}, {h: b(1, 0, 1, 1)}, {h: b(2, 4, 1, 1), want: ErrProducerFenced},
			{h: b(2, 5, 1, 1)}, {h: b(1, 0, 0, 1), dupOf: 1}, {h: b(2, 5, 0, 1), dupOf: 2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := newProducerTable(producerConfig{})
			now := producerTestTime(0)
			offsets := make([]appendedBatch, len(tt.steps))
			var next int64 = 100
			for i, s := range tt.steps {
				if s.seed {
					tbl.record(s.h, next, now)
				} else {
					dup, err := tbl.check(s.h, now)
					switch {
					case s.want != nil:
						if !errors.Is(err, s.want) || dup != nil {
							t.Fatalf("step %d: check = (%v, %v), want %v", i+1, dup, err, s.want)
						}
						continue
					case err != nil:
						t.Fatalf("step %d: check: %v", i+1, err)
					case s.dupOf > 0:
						if dup == nil || *dup != offsets[s.dupOf-1] {
							t.Fatalf("step %d: check = %+v, want duplicate of step %d %+v", i+1, dup, s.dupOf, offsets[s.dupOf-1])
						}
						continue
					case dup != nil:
						t.Fatalf("step %d: check = duplicate %+v, want append", i+1, *dup)
					}
					tbl.record(s.h, next, now)
				}
				offsets[i] = appendedBatch{
					firstSeq: s.h.BaseSequence, lastSeq: s.h.LastSequence(),
					baseOffset: next, lastOffset: next + int64(s.h.LastOffsetDelta),
				}
				next += int64(s.h.LastOffsetDelta) + 1
				checkProducerInvariants(t, tbl)
			}
		})
	}
}

func TestProducerErrorsCarryDetail(t *testing.T) {
	tbl := newProducerTable(producerConfig{})
	now := producerTestTime(0)
	tbl.record(producerBatch(7, 2, 0, 4), 0, now)
	_, err := tbl.check(producerBatch(7, 2, 9, 1), now)
	if !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("check: %v, want out of order", err)
	}
	if want := "producer 7 epoch 2: expected sequence 4, got 9..9"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	_, err = tbl.check(producerBatch(7, 1, 4, 1), now)
	if !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("check: %v, want fenced", err)
	}
}

func TestProducerExpiry(t *testing.T) {
	cfg := producerConfig{Expiry: time.Hour}
	at := producerTestTime

	t.Run("a producer is forgotten exactly at the expiry", func(t *testing.T) {
		tbl := newProducerTable(cfg)
		tbl.record(producerBatch(1, 0, 0, 1), 0, at(0))
		if _, err := tbl.check(producerBatch(1, 0, 1, 1), at(time.Hour-time.Nanosecond)); err != nil {
			t.Fatalf("before expiry: %v", err)
		}
		if _, err := tbl.check(producerBatch(1, 0, 1, 1), at(time.Hour)); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("at expiry, continuing the sequence: %v, want out of order", err)
		}
		// Forgotten, the producer's old retry is a fresh batch: the price of
		// bounded memory, which is why the expiry is long.
		if dup, err := tbl.check(producerBatch(1, 0, 0, 1), at(time.Hour)); dup != nil || err != nil {
			t.Fatalf("at expiry, sequence 0: (%v, %v), want accepted as new", dup, err)
		}
	})

	t.Run("record sweeps expired producers and refreshes its own", func(t *testing.T) {
		tbl := newProducerTable(cfg)
		tbl.record(producerBatch(1, 0, 0, 1), 0, at(0))
		tbl.record(producerBatch(2, 0, 0, 1), 1, at(30*time.Minute))
		tbl.record(producerBatch(1, 0, 1, 1), 2, at(50*time.Minute))
		tbl.record(producerBatch(3, 0, 0, 1), 3, at(90*time.Minute)) // 2 expires
		if got, want := producerIDs(tbl), []int64{1, 3}; !reflect.DeepEqual(got, want) {
			t.Fatalf("producers = %v, want %v", got, want)
		}
		tbl.record(producerBatch(3, 0, 1, 1), 4, at(110*time.Minute)) // 1 expires
		if got, want := producerIDs(tbl), []int64{3}; !reflect.DeepEqual(got, want) {
			t.Fatalf("producers = %v, want %v", got, want)
		}
	})

	t.Run("a clock stepping back cannot age a producer", func(t *testing.T) {
		tbl := newProducerTable(cfg)
		tbl.record(producerBatch(1, 0, 0, 1), 0, at(10*time.Hour))
		// A new leader whose clock is behind appends for producer 2.
		tbl.record(producerBatch(2, 0, 0, 1), 1, at(0))
		if _, err := tbl.check(producerBatch(2, 0, 1, 1), at(11*time.Hour-time.Nanosecond)); err != nil {
			t.Fatalf("producer 2 within an hour of the table's clock: %v", err)
		}
		if _, err := tbl.check(producerBatch(2, 0, 1, 1), at(11*time.Hour)); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("producer 2 an hour after the table's clock: %v, want expired", err)
		}
	})

	t.Run("a zero time is not an overflow", func(t *testing.T) {
		tbl := newProducerTable(cfg)
		tbl.record(producerBatch(1, 0, 0, 1), 0, time.Time{})
		tbl.record(producerBatch(1, 0, 1, 1), 1, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
		tbl.record(producerBatch(2, 0, 0, 1), 2, time.Time{})
		if got, want := producerIDs(tbl), []int64{1, 2}; !reflect.DeepEqual(got, want) {
			t.Fatalf("producers = %v, want %v", got, want)
		}
		checkProducerRoundTrip(t, tbl)
	})
}

func TestProducerCapEvictsLeastRecentlyAppended(t *testing.T) {
	tbl := newProducerTable(producerConfig{MaxProducers: 3})
	now := producerTestTime(0)
	for i, pid := range []int64{1, 2, 3, 1, 4} {
		seq := int32(0)
		if i == 3 {
			seq = 1
		}
		tbl.record(producerBatch(pid, 0, seq, 1), int64(i), now)
	}
	if got, want := producerIDs(tbl), []int64{3, 1, 4}; !reflect.DeepEqual(got, want) {
		t.Fatalf("producers = %v, want %v (2 was least recently appended)", got, want)
	}
	if _, err := tbl.check(producerBatch(2, 0, 1, 1), now); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("evicted producer continuing: %v, want out of order", err)
	}
	// The order survives a snapshot: the next eviction is the same after
	// a round trip.
	restored, err := unmarshalProducerTable(tbl.marshalBinary(), producerConfig{MaxProducers: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []*producerTable{tbl, restored} {
		x.record(producerBatch(5, 0, 0, 1), 9, now)
	}
	if got, want := producerIDs(restored), []int64{1, 4, 5}; !reflect.DeepEqual(got, want) {
		t.Fatalf("restored producers = %v, want %v", got, want)
	}
	if !bytes.Equal(tbl.marshalBinary(), restored.marshalBinary()) {
		t.Fatal("original and restored tables diverged")
	}
	// A lower cap at load drops the least recently appended.
	smaller, err := unmarshalProducerTable(tbl.marshalBinary(), producerConfig{MaxProducers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := producerIDs(smaller), []int64{4, 5}; !reflect.DeepEqual(got, want) {
		t.Fatalf("producers under a lower cap = %v, want %v", got, want)
	}
}

// producerClients simulates idempotent producers, seeded: producers come
// and go, bump their epoch now and then, retry, and the leader's clock
// jitters (sometimes backwards) and sometimes pauses for hours. Like real
// clients they reset (bump the epoch) when a batch is rejected.
type producerClients struct {
	rng   *rand.Rand
	now   time.Time
	prods map[int64]*producerClient
}

type producerClient struct {
	epoch int16
	seq   int32
	last  record.BatchHeader // for retries
}

func newProducerClients(seed uint64) *producerClients {
	return &producerClients{rng: rand.New(rand.NewPCG(seed, 0)), now: producerTestTime(0), prods: map[int64]*producerClient{}}
}

// next returns the next batch to produce and its Raft entry's time.
func (c *producerClients) next() (record.BatchHeader, time.Time) {
	step := time.Duration(c.rng.IntN(int(4*time.Minute))) - time.Minute
	if c.rng.IntN(300) == 0 {
		step = 4 * time.Hour // a quiet night: most producers expire
	}
	c.now = c.now.Add(step)
	if c.rng.IntN(10) == 0 {
		return producerBatch(record.NoProducerID, -1, -1, int32(1+c.rng.IntN(5))), c.now
	}
	pid := int64(c.rng.IntN(30))
	p := c.prods[pid]
	switch {
	case p == nil:
		p = &producerClient{}
		c.prods[pid] = p
	case c.rng.IntN(20) == 0:
		p.epoch, p.seq = p.epoch+1, 0
	case p.seq > 0 && c.rng.IntN(8) == 0:
		return p.last, c.now
	}
	h := producerBatch(pid, p.epoch, p.seq, int32(1+c.rng.IntN(5)))
	p.seq, p.last = nextProducerSequence(h.LastSequence()), h
	return h, c.now
}

// rejected tells the client its batch failed: it starts a new epoch.
func (c *producerClients) rejected(h record.BatchHeader) {
	if p := c.prods[h.ProducerID]; p != nil {
		p.epoch, p.seq = p.epoch+1, 0
	}
}

func TestProducerReplicasSnapshotIdentically(t *testing.T) {
	cfg := producerConfig{Expiry: 3 * time.Hour, MaxProducers: 25}
	live1, live2, replayed := newProducerTable(cfg), newProducerTable(cfg), newProducerTable(cfg)
	clients := newProducerClients(42)
	var offset int64
	outcomes := map[string]int{}
	for range 3000 {
		h, at := clients.next()
		// Two live replicas apply the same entry: check, then append and
		// record at the next offset of the log.
		dup, err := live1.check(h, at)
		dup2, err2 := live2.check(h, at)
		outcome := producerOutcome(dup, err)
		if outcome != producerOutcome(dup2, err2) {
			t.Fatalf("replicas disagree on %+v: %v vs %v", h, err, err2)
		}
		outcomes[outcome]++
		if err != nil {
			clients.rejected(h)
		}
		if dup != nil || err != nil {
			continue
		}
		h.BaseOffset = offset
		offset = h.NextOffset()
		live1.record(h, h.BaseOffset, at)
		live2.record(h, h.BaseOffset, at)
		// A restarted replica replays the log.
		replayed.observe(h, at)
	}
	t.Logf("outcomes %v, %d producers tracked", outcomes, live1.len())
	if outcomes["ok"] < 1000 || outcomes["dup"] == 0 || outcomes["out of order"] == 0 || live1.len() == 0 {
		t.Fatal("the workload must exercise appends, duplicates and lost producer state")
	}
	checkProducerInvariants(t, live1)
	b1 := live1.marshalBinary()
	if !bytes.Equal(b1, live2.marshalBinary()) || !bytes.Equal(b1, replayed.marshalBinary()) {
		t.Fatal("replicas fed the same batches encode differently")
	}
	checkProducerRoundTrip(t, live1)
}

func TestProducerMarshalRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		build func(*producerTable)
	}{
		{"empty", func(*producerTable) {}},
		{"one producer", func(tbl *producerTable) { tbl.record(producerBatch(0, 0, 0, 1), 0, producerTestTime(0)) }},
		{"extreme values", func(tbl *producerTable) {
			tbl.record(producerBatch(math.MaxInt64, math.MinInt16, math.MaxInt32, math.MaxInt32), math.MaxInt64, time.Time{})
			tbl.record(producerBatch(math.MaxInt64, math.MaxInt16, 0, 1), math.MinInt64, time.Unix(0, math.MaxInt64))
			tbl.record(producerBatch(1, -1, -5, 1), -1, time.Unix(0, math.MinInt64))
		}},
		{"a random workload", func(tbl *producerTable) {
			clients := newProducerClients(7)
			var offset int64
			for range 500 {
				h, at := clients.next()
				tbl.record(h, offset, at)
				offset += int64(h.LastOffsetDelta) + 1
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := newProducerTable(producerConfig{})
			tt.build(tbl)
			checkProducerRoundTrip(t, tbl)
		})
	}
}

// smallProducerTable has a few producers with a few batches each, small
// enough to corrupt at every byte.
func smallProducerTable() *producerTable {
	tbl := newProducerTable(producerConfig{})
	now := producerTestTime(0)
	var off int64
	for i, h := range []record.BatchHeader{
		producerBatch(1, 0, 0, 2), producerBatch(2, 3, 0, 1), producerBatch(1, 0, 2, 1),
		producerBatch(300, 0, 0, 4), producerBatch(2, 3, 1, 1),
	} {
		tbl.record(h, off, now.Add(time.Duration(i)*time.Second))
		off += int64(h.LastOffsetDelta) + 1
	}
	return tbl
}

func TestProducerUnmarshalDetectsCorruption(t *testing.T) {
	good := smallProducerTable().marshalBinary()
	bad := make([]byte, len(good))
	for i := range good {
		for mask := 1; mask < 256; mask++ {
			copy(bad, good)
			bad[i] ^= byte(mask)
			if _, err := unmarshalProducerTable(bad, producerConfig{}); !errors.Is(err, ErrCorruptProducerState) {
				t.Fatalf("byte %d ^ %#x: err = %v, want corrupt", i, mask, err)
			}
		}
	}
	for n := range len(good) {
		if _, err := unmarshalProducerTable(good[:n], producerConfig{}); !errors.Is(err, ErrCorruptProducerState) {
			t.Fatalf("truncated to %d bytes: err = %v, want corrupt", n, err)
		}
	}
	if _, err := unmarshalProducerTable(append(good[:len(good):len(good)], 0), producerConfig{}); !errors.Is(err, ErrCorruptProducerState) {
		t.Fatalf("trailing byte: err = %v, want corrupt", err)
	}
}

// producerWithCRC appends a valid checksum to body, to reach the checks
// behind the CRC.
func producerWithCRC(body []byte) []byte {
	b := append([]byte(nil), body...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

func TestProducerUnmarshalRejectsInvalidFields(t *testing.T) {
	// One producer: id 1, epoch 0, time 0, one batch 0..0 at offset 0.
	producer := []byte{1, 0, 0, 1, 0, 0, 0, 0}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name  string
		body  []byte
		want  error
		field string
	}{
		{"unknown version", []byte{2, 0}, ErrUnsupportedProducerStateVersion, "version"},
		{"count beyond the bytes", []byte{1, 2, 1, 0, 0, 1, 0, 0, 0, 0}, ErrCorruptProducerState, "count"},
		{"duplicate producer", cat([]byte{1, 2}, producer, producer), ErrCorruptProducerState, "producer[1].producerId"},
		{"no batches", cat([]byte{1, 1}, []byte{1, 0, 0, 0}, []byte{0, 0, 0, 0}), ErrCorruptProducerState, "producer[0].batches"},
		{"six batches", cat([]byte{1, 1, 1, 0, 0, 6}, bytes.Repeat([]byte{0, 0, 0, 0}, 6)), ErrCorruptProducerState, "producer[0].batches"},
		{"epoch beyond int16", cat([]byte{1, 1, 1}, binary.AppendVarint(nil, math.MaxInt16+1), []byte{0, 1, 0, 0, 0, 0}), ErrCorruptProducerState, "producer[0].epoch"},
		{"producer id beyond int64", cat([]byte{1, 1}, binary.AppendUvarint(nil, math.MaxInt64+1), []byte{0, 0, 1, 0, 0, 0, 0}), ErrCorruptProducerState, "producer[0].producerId"},
		{"sequence beyond uint32", cat([]byte{1, 1, 1, 0, 0, 1}, binary.AppendUvarint(nil, math.MaxUint32+1), []byte{0, 0, 0}), ErrCorruptProducerState, "producer[0].batch[0].firstSeq"},
		{"clock overflowing int64", cat([]byte{1, 2, 1, 0}, binary.AppendVarint(nil, math.MaxInt64-5), []byte{1, 0, 0, 0, 0}, []byte{2, 0}, binary.AppendUvarint(nil, 6), []byte{1, 0, 0, 0, 0}), ErrCorruptProducerState, "producer[1].lastAppend"},
		{"overlong varint", cat([]byte{1}, bytes.Repeat([]byte{0xff}, 11)), ErrCorruptProducerState, "count"},
		{"trailing bytes", cat([]byte{1, 1}, producer, []byte{0}), ErrCorruptProducerState, "end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := unmarshalProducerTable(producerWithCRC(tt.body), producerConfig{})
			var pe *ProducerStateError
			if !errors.Is(err, tt.want) || !errors.As(err, &pe) || pe.Field != tt.field {
				t.Fatalf("err = %v, want %v in field %s", err, tt.want, tt.field)
			}
		})
	}
	// The hand-written producer itself is valid.
	if _, err := unmarshalProducerTable(producerWithCRC(cat([]byte{1, 1}, producer)), producerConfig{}); err != nil {
		t.Fatalf("valid body: %v", err)
	}
}

func FuzzProducerTableUnmarshal(f *testing.F) {
	f.Add(newProducerTable(producerConfig{}).marshalBinary())
	f.Add(smallProducerTable().marshalBinary())
	small := smallProducerTable().marshalBinary()
	f.Add(small[:len(small)-producerStateCRCSize]) // a body, checked again below with its CRC
	f.Add([]byte{1, 1, 1, 0, 0, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		// As given (mostly CRC failures), and as a body with a valid CRC
		// (the field checks behind it).
		for _, in := range [][]byte{b, producerWithCRC(b)} {
			tbl, err := unmarshalProducerTable(in, producerConfig{})
			if err != nil {
				var pe *ProducerStateError
				if !errors.As(err, &pe) {
					t.Fatalf("error %v (%T) is not a *ProducerStateError", err, err)
				}
				continue
			}
			checkProducerInvariants(t, tbl)
			checkProducerRoundTrip(t, tbl)
		}
	})
}

// producerModel is the specification: every batch of every producer's
// current epoch, with Kafka's rules applied by brute force.
type producerModel struct {
	cfg       producerConfig
	producers map[int64]*producerModelEntry
	touches   int
}

type producerModelEntry struct {
	epoch   int16
	batches []appendedBatch // all batches of the current epoch, oldest first
	last    int64           // ns of the last append (clamped)
	touch   int             // order of the last append, for the cap
}

// clamp is the model's monotonic clock: never before any tracked append.
func (m *producerModel) clamp(now time.Time) int64 {
	at := producerUnixNanos(now)
	for _, e := range m.producers {
		at = max(at, e.last)
	}
	return at
}

func (m *producerModel) live(id int64, at int64) *producerModelEntry {
	e := m.producers[id]
	if e == nil || time.Duration(at-e.last) >= m.cfg.Expiry {
		return nil
	}
	return e
}

// check returns the outcome: "ok", "dup", "out of order" or "fenced".
func (m *producerModel) check(h record.BatchHeader, now time.Time) (string, *appendedBatch) {
	if h.ProducerID < 0 {
		return "ok", nil
	}
	if h.BaseSequence < 0 {
		return "out of order", nil
	}
	e := m.live(h.ProducerID, m.clamp(now))
	switch {
	case e == nil || h.ProducerEpoch > e.epoch:
		if h.BaseSequence == 0 {
			return "ok", nil
		}
		return "out of order", nil
	case h.ProducerEpoch < e.epoch:
		return "fenced", nil
	}
	retained := e.batches[max(0, len(e.batches)-producerBatchesRetained):]
	for _, b := range retained {
		if b.firstSeq == h.BaseSequence && b.lastSeq == h.LastSequence() {
			return "dup", &b
		}
	}
	newest := e.batches[len(e.batches)-1]
	if int64(h.BaseSequence) == (int64(newest.lastSeq)+1)%(1<<31) {
		return "ok", nil
	}
	return "out of order", nil
}

func (m *producerModel) record(h record.BatchHeader, base int64, now time.Time) {
	if h.ProducerID < 0 {
		return
	}
	at := m.clamp(now)
	for id := range m.producers {
		if m.live(id, at) == nil {
			delete(m.producers, id)
		}
	}
	e := m.producers[h.ProducerID]
	if e == nil {
		e = &producerModelEntry{epoch: h.ProducerEpoch}
		m.producers[h.ProducerID] = e
	}
	if e.epoch != h.ProducerEpoch {
		e.epoch, e.batches = h.ProducerEpoch, nil
	}
	e.batches = append(e.batches, appendedBatch{
		firstSeq: h.BaseSequence, lastSeq: h.LastSequence(),
		baseOffset: base, lastOffset: base + int64(h.LastOffsetDelta),
	})
	m.touches++
	e.last, e.touch = at, m.touches
	if len(m.producers) > m.cfg.MaxProducers {
		victim, oldest := int64(-1), math.MaxInt
		for id, x := range m.producers {
			if x.touch < oldest {
				victim, oldest = id, x.touch
			}
		}
		delete(m.producers, victim)
	}
}

func producerOutcome(dup *appendedBatch, err error) string {
	switch {
	case errors.Is(err, ErrOutOfOrderSequence):
		return "out of order"
	case errors.Is(err, ErrProducerFenced):
		return "fenced"
	case err != nil:
		return "error: " + err.Error()
	case dup != nil:
		return "dup"
	}
	return "ok"
}

func TestProducerTableMatchesModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		cfg := producerConfig{Expiry: time.Hour, MaxProducers: rapid.IntRange(1, 5).Draw(rt, "maxProducers")}
		tbl := newProducerTable(cfg)
		m := &producerModel{cfg: cfg, producers: map[int64]*producerModelEntry{}}
		now := producerTestTime(0)
		var offset int64
		// Mostly small steps, so that producers live long enough to fill
		// their window of five; sometimes the expiry, or a clock stepping
		// back.
		advances := []time.Duration{
			0, 0, 0, 0, 0, 0, time.Second, time.Second, time.Second, 10 * time.Minute, 10 * time.Minute,
			59 * time.Minute, time.Hour, 3 * time.Hour, -time.Minute, -2 * time.Hour,
		}
		for i, steps := 0, rapid.IntRange(20, 300).Draw(rt, "steps"); i < steps; i++ {
			now = now.Add(rapid.SampledFrom(advances).Draw(rt, "advance"))
			pid := rapid.Int64Range(-1, 2).Draw(rt, "pid")
			var epoch int16
			var next int32
			var history []appendedBatch
			if e := m.producers[pid]; e != nil {
				epoch, history = e.epoch, e.batches
				next = int32((int64(e.batches[len(e.batches)-1].lastSeq) + 1) % (1 << 31))
			}
			n := rapid.Int32Range(1, 4).Draw(rt, "records")
			h := producerBatch(pid, epoch, next, n)
			seed := false
			// Weighted towards appends and retries, so that producers fill
			// their window and retries reach beyond it.
			switch rapid.IntRange(0, 15).Draw(rt, "kind") {
			default: // the next batch in sequence
			case 8, 9, 10: // a retry of any batch of this epoch, however old
				if len(history) > 0 {
					b := history[rapid.IntRange(0, len(history)-1).Draw(rt, "retry")]
					h = producerBatch(pid, epoch, b.firstSeq, int32(b.lastOffset-b.baseOffset)+1)
				}
			case 11: // a gap
				h.BaseSequence = int32((int64(next) + int64(rapid.IntRange(1, 3).Draw(rt, "gap"))) % (1 << 31))
			case 12: // an epoch bump, maybe not at sequence 0
				h.ProducerEpoch++
				h.BaseSequence = rapid.SampledFrom([]int32{0, 0, 1, 3}).Draw(rt, "seq")
			case 13: // a zombie from an older epoch
				h.ProducerEpoch--
			case 14: // anything
				h.ProducerEpoch = rapid.Int16Range(-1, 3).Draw(rt, "epoch")
				h.BaseSequence = rapid.Int32Range(-1, 8).Draw(rt, "seq")
			case 15: // a batch replayed from the log near the sequence wrap
				seed = true
				h.BaseSequence = math.MaxInt32 - rapid.Int32Range(0, 4).Draw(rt, "belowWrap")
			case 7: // a snapshot round trip
				restored, err := unmarshalProducerTable(tbl.marshalBinary(), cfg)
				if err != nil {
					rt.Fatalf("round trip: %v", err)
				}
				tbl = restored
				continue
			}
			if !seed {
				wantKind, wantDup := m.check(h, now)
				dup, err := tbl.check(h, now)
				if got := producerOutcome(dup, err); got != wantKind || (wantDup != nil && *dup != *wantDup) {
					rt.Fatalf("step %d: check(%+v) = %s %v (%v), model says %s %v", i, h, got, dup, err, wantKind, wantDup)
				}
				if wantKind != "ok" {
					continue
				}
			}
			tbl.record(h, offset, now)
			m.record(h, offset, now)
			offset += int64(h.LastOffsetDelta) + 1
			checkProducerInvariants(rt, tbl)
			if tbl.len() != len(m.producers) {
				rt.Fatalf("step %d: table tracks %d producers, model %d", i, tbl.len(), len(m.producers))
			}
		}
	})
}

// producerIDs lists the tracked producers, least recently appended first.
func producerIDs(tbl *producerTable) []int64 {
	var ids []int64
	for p := tbl.oldest; p != nil; p = p.next {
		ids = append(ids, p.id)
	}
	return ids
}

// producerDump is a table's whole state, in recency order, for comparisons
// that do not trust the codec.
type producerDump struct {
	ID         int64
	Epoch      int16
	LastAppend int64
	Batches    []appendedBatch
}

func dumpProducers(tbl *producerTable) []producerDump {
	var d []producerDump
	for p := tbl.oldest; p != nil; p = p.next {
		x := producerDump{ID: p.id, Epoch: p.epoch, LastAppend: p.lastAppend}
		for i := range int(p.n) {
			x.Batches = append(x.Batches, p.batch(i))
		}
		d = append(d, x)
	}
	return d
}

// checkProducerInvariants checks what check and the codec rely on: the
// recency list and the map hold the same producers, each with 1..5 batches,
// and times never decrease along the list.
func checkProducerInvariants(t interface{ Fatalf(string, ...any) }, tbl *producerTable) {
	n := 0
	var prev *producerState
	for p := tbl.oldest; p != nil; prev, p = p, p.next {
		n++
		switch {
		case p.prev != prev:
			t.Fatalf("producer %d: broken back link", p.id)
		case tbl.byID[p.id] != p:
			t.Fatalf("producer %d: listed but not mapped", p.id)
		case p.n < 1 || p.n > producerBatchesRetained:
			t.Fatalf("producer %d: %d batches", p.id, p.n)
		case prev != nil && prev.lastAppend > p.lastAppend:
			t.Fatalf("producer %d: appended at %d before its predecessor's %d", p.id, p.lastAppend, prev.lastAppend)
		}
	}
	if prev != tbl.newest || n != len(tbl.byID) || n > tbl.cfg.MaxProducers {
		t.Fatalf("list of %d producers, map of %d, cap %d", n, len(tbl.byID), tbl.cfg.MaxProducers)
	}
}

// checkProducerRoundTrip checks that tbl decodes from its encoding to an
// equal table that encodes to the same bytes.
func checkProducerRoundTrip(t interface {
	Fatalf(string, ...any)
	Helper()
}, tbl *producerTable) {
	t.Helper()
	b := tbl.marshalBinary()
	got, err := unmarshalProducerTable(b, tbl.cfg)
	if err != nil {
		t.Fatalf("unmarshal own encoding: %v", err)
	}
	if want, have := dumpProducers(tbl), dumpProducers(got); !reflect.DeepEqual(want, have) {
		t.Fatalf("round trip changed the table:\nwant %s\ngot  %s", fmt.Sprint(want), fmt.Sprint(have))
	}
	if !bytes.Equal(b, got.marshalBinary()) {
		t.Fatalf("round trip changed the encoding")
	}
}
