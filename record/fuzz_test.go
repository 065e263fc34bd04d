package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// fuzzSeeds are valid batches of every codec and option, and corrupt ones
// near them, to start FuzzDecode where the interesting code is.
func fuzzSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	records := []Record{
		{Timestamp: 1_700_000_000_000, Key: []byte("key"), Value: []byte("value"), Headers: []Header{{Key: "h", Value: []byte("v")}, {Key: "n"}}},
		{Timestamp: 1_699_999_999_000, Key: nil, Value: []byte{}},
		{Timestamp: 1_700_000_000_500, Key: []byte{}, Value: bytes.Repeat([]byte("abc"), 50)},
	}
	var seeds [][]byte
	for _, codec := range allCodecs {
		for _, opts := range []BatchOptions{
			{Compression: codec},
			{Compression: codec, Idempotent: true, ProducerID: 12, ProducerEpoch: 1, BaseSequence: 7, LogAppendTime: true},
		} {
			b, err := Encode(opts, records)
			if err != nil {
				tb.Fatal(err)
			}
			seeds = append(seeds, b)
		}
	}
	seeds = append(seeds,
		goldenBatch,
		rawBatch{attributes: int16(CompressionSnappy), recordCount: 1, records: xerialFrame(rec(0, zz(0), zz(0), zz(-1), zz(1), "x", zz(0)), 4)}.bytes(),
		section(1, 0, okRecord),
		section(0, 3),
		section(2, 1, okRecord, rec(0, zz(5), zz(1), zz(-1), zz(-1), zz(1), zz(1), "k", zz(-1))),
	)
	// Corrupt neighbours: a flipped CRC byte, a cut batch, trailing bytes.
	flipped := bytes.Clone(goldenBatch)
	flipped[40] ^= 0xff
	seeds = append(seeds, flipped, goldenBatch[:50], append(bytes.Clone(goldenBatch), 0))
	return seeds
}

// FuzzDecode: no input makes the decoder panic or return something other
// than a *FormatError; Decode and Records agree; and a batch that decodes
// re-encodes, with the options its header implies, to the same records.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b)
		// Random bytes almost never carry a valid CRC, which would keep the
		// fuzzer at the door. Also try the input with its batchLength and
		// CRC made consistent, so mutations reach the record decoder.
		if len(b) >= HeaderSize {
			fixed := bytes.Clone(b)
			binary.BigEndian.PutUint32(fixed[offBatchLength:], uint32(len(fixed)-LogOverhead))
			checkDecode(t, recrc(fixed))
		}
	})
}

func checkDecode(t *testing.T, b []byte) {
	t.Helper()
	h, recs, err := Decode(b)

	var walked []Record
	rerr := Records(b, func(r Record) error { walked = append(walked, r); return nil })
	if (err == nil) != (rerr == nil) {
		t.Fatalf("Decode error %v but Records error %v", err, rerr)
	}
	if err != nil {
		var fe *FormatError
		if !errors.As(err, &fe) || !errors.As(rerr, &fe) {
			t.Fatalf("errors %v / %v are not *FormatError", err, rerr)
		}
		return
	}
	if d := diffRecords(walked, recs); d != "" {
		t.Fatalf("Records disagrees with Decode: %s", d)
	}
	if len(recs) == 0 {
		return // the Builder makes no empty batches
	}

	opts := h.BatchOptions()
	if opts.Validate() != nil {
		// A producer id with a negative epoch or sequence decodes but
		// is not something the Builder writes.
		opts.Idempotent = false
	}
	again, err := Encode(opts, recs)
	if err != nil {
		t.Fatalf("re-encoding decoded records: %v", err)
	}
	h2, recs2, err := Decode(again)
	if err != nil {
		t.Fatalf("decoding the re-encoded batch: %v", err)
	}
	// The Builder numbers records from 0 and compacts gaps away; all
	// else must survive.
	want := make([]Record, len(recs))
	for i, r := range recs {
		r.Offset = int64(i)
		want[i] = r
	}
	if d := diffRecords(recs2, want); d != "" {
		t.Fatalf("re-encoded batch decodes differently: %s", d)
	}
	if h2.Compression() != h.Compression() || h2.LogAppendTime() != h.LogAppendTime() || h2.RecordCount != h.RecordCount {
		t.Fatalf("re-encoded header %+v, original %+v", h2, h)
	}
}
