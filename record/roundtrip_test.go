package record

import (
	"fmt"
	"math"
	"testing"
)

// roundTripCases are record sets every codec must carry unchanged.
func roundTripCases() []struct {
	name    string
	opts    BatchOptions
	records []Record
} {
	const t0 = 1_700_000_000_000
	hundred := make([]Record, 100)
	for i := range hundred {
		hundred[i] = Record{
			// Not monotonic: producers may send older timestamps later.
			Timestamp: t0 + int64((i*37)%50) - 10,
			Key:       fmt.Appendf(nil, "key-%d", i%7),
			Value:     payload(50+i, uint32(i)),
		}
		if i%10 == 0 {
			hundred[i].Headers = []Header{{Key: "trace", Value: fmt.Appendf(nil, "%d", i)}}
		}
	}
	manyHeaders := make([]Header, 300)
	for i := range manyHeaders {
		manyHeaders[i] = Header{Key: fmt.Sprintf("h%d", i), Value: payload(i%20, uint32(i))}
	}
	manyHeaders[3].Value = nil      // null header value
	manyHeaders[4].Value = []byte{} // empty, not null
	manyHeaders[5].Key = ""         // empty key is allowed, null is not

	return []struct {
		name    string
		opts    BatchOptions
		records []Record
	}{
		{"one record", BatchOptions{}, []Record{{Timestamp: t0, Key: []byte("k"), Value: []byte("v")}}},
		{"100 records idempotent", BatchOptions{Idempotent: true, ProducerID: 1 << 40, ProducerEpoch: 3, BaseSequence: 1000}, hundred},
		{"null key", BatchOptions{}, []Record{{Timestamp: t0, Key: nil, Value: []byte("v")}}},
		{"null value (tombstone)", BatchOptions{}, []Record{{Timestamp: t0, Key: []byte("k"), Value: nil}}},
		{"empty key and value", BatchOptions{}, []Record{{Timestamp: t0, Key: []byte{}, Value: []byte{}}}},
		{"all null", BatchOptions{}, []Record{{}, {}, {}}},
		{"many headers", BatchOptions{}, []Record{{Timestamp: t0, Value: []byte("v"), Headers: manyHeaders}}},
		{"1 MiB value", BatchOptions{}, []Record{
			{Timestamp: t0, Key: []byte("big"), Value: payload(1<<20, 7)},
			{Timestamp: t0 + 1, Value: []byte("small after big")},
		}},
		{"extreme timestamps", BatchOptions{}, []Record{
			{Timestamp: -1}, // Kafka's NO_TIMESTAMP
			{Timestamp: math.MaxInt64},
			{Timestamp: math.MinInt64},
			{Timestamp: 0},
		}},
		{"log append time", BatchOptions{LogAppendTime: true}, []Record{
			{Timestamp: t0 + 9, Value: []byte("a")},
			{Timestamp: t0, Value: []byte("b")},
		}},
		{"leader epoch set", BatchOptions{HasPartitionLeaderEpoch: true, PartitionLeaderEpoch: 0}, []Record{{Timestamp: t0}}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, codec := range allCodecs {
		for _, tc := range roundTripCases() {
			t.Run(codec.String()+"/"+tc.name, func(t *testing.T) {
				opts := tc.opts
				opts.Compression = codec
				b, err := Encode(opts, tc.records)
				if err != nil {
					t.Fatal(err)
				}
				vh, err := Verify(b)
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				h, recs, err := Decode(b)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if vh != h {
					t.Fatalf("Verify header %+v differs from Decode's %+v", vh, h)
				}
				want := expected(opts, tc.records)
				if d := diffRecords(recs, want); d != "" {
					t.Fatal(d)
				}
				checkHeader(t, h, opts, tc.records, len(b))

				// Records walks the same records as Decode returns.
				var walked []Record
				if err := Records(b, func(r Record) error { walked = append(walked, r); return nil }); err != nil {
					t.Fatalf("Records: %v", err)
				}
				if d := diffRecords(walked, want); d != "" {
					t.Fatalf("Records: %s", d)
				}
			})
		}
	}
}

// checkHeader checks every header field Build derives from opts and records.
func checkHeader(t *testing.T, h BatchHeader, opts BatchOptions, in []Record, size int) {
	t.Helper()
	minTS, maxTS := in[0].Timestamp, in[0].Timestamp
	for _, r := range in {
		minTS, maxTS = min(minTS, r.Timestamp), max(maxTS, r.Timestamp)
	}
	wantPID, wantEpoch, wantSeq := int64(-1), int16(-1), int32(-1)
	if opts.Idempotent {
		wantPID, wantEpoch, wantSeq = opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence
	}
	wantLeaderEpoch := int32(-1)
	if opts.HasPartitionLeaderEpoch {
		wantLeaderEpoch = opts.PartitionLeaderEpoch
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"BaseOffset", h.BaseOffset, int64(0)},
		{"Size", h.Size(), size},
		{"PartitionLeaderEpoch", h.PartitionLeaderEpoch, wantLeaderEpoch},
		{"Magic", h.Magic, int8(2)},
		{"Compression", h.Compression(), opts.Compression},
		{"LogAppendTime", h.LogAppendTime(), opts.LogAppendTime},
		{"Transactional", h.Transactional(), false},
		{"Control", h.Control(), false},
		{"RecordCount", h.RecordCount, int32(len(in))},
		{"LastOffsetDelta", h.LastOffsetDelta, int32(len(in) - 1)},
		{"BaseTimestamp", h.BaseTimestamp, in[0].Timestamp},
		{"MaxTimestamp", h.MaxTimestamp, maxTS},
		{"ProducerID", h.ProducerID, wantPID},
		{"ProducerEpoch", h.ProducerEpoch, wantEpoch},
		{"BaseSequence", h.BaseSequence, wantSeq},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("header %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if got := h.BatchOptions(); got.Idempotent != opts.Idempotent || got.Compression != opts.Compression ||
		got.LogAppendTime != opts.LogAppendTime || got.HasPartitionLeaderEpoch != opts.HasPartitionLeaderEpoch {
		t.Errorf("header.BatchOptions() = %+v, built with %+v", got, opts)
	}
}

// TestConcurrentEncodeDecode exercises the shared zstd codec and the pooled
// stream codecs from many goroutines (run with -race).
func TestConcurrentEncodeDecode(t *testing.T) {
	records := roundTripCases()[1].records
	done := make(chan error)
	const workers = 8
	for w := range workers {
		go func() {
			for i := range 10 {
				opts := BatchOptions{Compression: allCodecs[(w+i)%len(allCodecs)]}
				b, err := Encode(opts, records)
				if err != nil {
					done <- err
					return
				}
				_, recs, err := Decode(b)
				if err != nil {
					done <- err
					return
				}
				if d := diffRecords(recs, expected(opts, records)); d != "" {
					done <- fmt.Errorf("%s: %s", opts.Compression, d)
					return
				}
			}
			done <- nil
		}()
	}
	for range workers {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
