package record

import (
	"bytes"
	"errors"
	"testing"
)

func TestBuildEmptyBatchFails(t *testing.T) {
	if _, err := NewBuilder(BatchOptions{}).Build(); !errors.Is(err, ErrEmptyBatch) {
		t.Fatalf("Build of no records: %v, want ErrEmptyBatch", err)
	}
	if _, err := Encode(BatchOptions{}, nil); !errors.Is(err, ErrEmptyBatch) {
		t.Fatalf("Encode of no records: %v, want ErrEmptyBatch", err)
	}
}

func TestZeroOptionsMakeAPlainBatch(t *testing.T) {
	b, err := Encode(BatchOptions{}, []Record{{Value: []byte("v")}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := Verify(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.ProducerID != NoProducerID || h.ProducerEpoch != -1 || h.BaseSequence != -1 ||
		h.PartitionLeaderEpoch != -1 || h.Attributes != 0 {
		t.Fatalf("zero BatchOptions gave header %+v", h)
	}
}

func TestInvalidOptions(t *testing.T) {
	tests := []struct {
		name string
		opts BatchOptions
		is   error
	}{
		{"codec 5", BatchOptions{Compression: 5}, ErrUnknownCompression},
		{"negative codec", BatchOptions{Compression: -1}, ErrUnknownCompression},
		{"idempotent without producer id", BatchOptions{Idempotent: true, ProducerID: -1}, nil},
		{"idempotent with negative epoch", BatchOptions{Idempotent: true, ProducerEpoch: -1}, nil},
		{"idempotent with negative sequence", BatchOptions{Idempotent: true, BaseSequence: -1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.opts.Validate(); err == nil {
				t.Fatal("Validate accepted the options")
			}
			_, err := Encode(tt.opts, []Record{{}})
			if err == nil {
				t.Fatal("Encode accepted the options")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("error %v does not match %v", err, tt.is)
			}
		})
	}
}

func TestEstimatedSizeIsExactUncompressedSize(t *testing.T) {
	b := NewBuilder(BatchOptions{})
	if b.EstimatedSize() != HeaderSize {
		t.Fatalf("empty builder estimates %d, want %d", b.EstimatedSize(), HeaderSize)
	}
	for i, r := range roundTripCases()[1].records {
		predicted := b.EstimatedSizeWith(r)
		b.Add(r)
		if b.EstimatedSize() != predicted {
			t.Fatalf("after record %d: EstimatedSize %d, EstimatedSizeWith predicted %d", i, b.EstimatedSize(), predicted)
		}
		if b.Len() != i+1 {
			t.Fatalf("Len = %d after %d records", b.Len(), i+1)
		}
	}
	out, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != b.EstimatedSize() {
		t.Fatalf("uncompressed batch is %d bytes, EstimatedSize said %d", len(out), b.EstimatedSize())
	}
}

func TestBuilderResetReuses(t *testing.T) {
	b := NewBuilder(BatchOptions{Compression: CompressionGzip})
	b.Add(Record{Key: []byte("first"), Value: payload(1000, 1)})
	first, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	keep := bytes.Clone(first)

	// A second batch with other options must not inherit anything.
	b.Reset(BatchOptions{Compression: CompressionLZ4, LogAppendTime: true})
	second := []Record{{Timestamp: 5, Value: []byte("x")}, {Timestamp: 9, Value: []byte("y")}}
	for _, r := range second {
		b.Add(r)
	}
	out, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	h, recs, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if h.Compression() != CompressionLZ4 || !h.LogAppendTime() || h.RecordCount != 2 || h.BaseTimestamp != 5 {
		t.Fatalf("second batch header %+v", h)
	}
	if d := diffRecords(recs, expected(BatchOptions{LogAppendTime: true}, second)); d != "" {
		t.Fatal(d)
	}
	// Build hands out its own slice: the first batch is untouched.
	if !bytes.Equal(first, keep) {
		t.Fatal("building the second batch changed the first")
	}

	// Build twice without Reset gives the same batch.
	again, err := b.Build()
	if err != nil || !bytes.Equal(again, out) {
		t.Fatalf("second Build differs (err %v)", err)
	}
	// AppendTo appends the same bytes after what dst holds.
	app, err := b.AppendTo([]byte("prefix"))
	if err != nil || !bytes.Equal(app, append([]byte("prefix"), out...)) {
		t.Fatalf("AppendTo differs (err %v)", err)
	}
}

// TestAddDoesNotAllocate holds the Builder to its promise: once its buffer
// has grown, adding records allocates nothing.
func TestAddDoesNotAllocate(t *testing.T) {
	b := NewBuilder(BatchOptions{Compression: CompressionLZ4})
	r := Record{Timestamp: 1, Key: []byte("key"), Value: payload(100, 1), Headers: []Header{{Key: "h", Value: []byte("v")}}}
	fill := func() {
		b.Reset(BatchOptions{Compression: CompressionLZ4})
		for range 100 {
			b.Add(r)
		}
	}
	fill()
	if n := testing.AllocsPerRun(20, fill); n != 0 {
		t.Fatalf("Reset+Add allocates %.1f times per batch, want 0", n)
	}
	if raceEnabled {
		return // the lz4 writer's block buffer comes from a sync.Pool
	}
	dst := make([]byte, 0, 64<<10)
	if _, err := b.AppendTo(dst); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() { _, _ = b.AppendTo(dst[:0]) }); n != 0 {
		t.Fatalf("AppendTo with lz4 allocates %.1f times, want 0", n)
	}
}
