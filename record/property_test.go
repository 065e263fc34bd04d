package record

import (
	"bytes"
	"testing"

	"pgregory.net/rapid"
)

// nullableBytes draws nil, empty, or up to max random bytes: nil and empty
// must stay apart through a round trip.
func nullableBytes(max int) *rapid.Generator[[]byte] {
	return rapid.OneOf(
		rapid.Just[[]byte](nil),
		rapid.Just([]byte{}),
		rapid.SliceOfN(rapid.Byte(), 1, max),
	)
}

var recordGen = rapid.Custom(func(t *rapid.T) Record {
	r := Record{
		Timestamp: rapid.OneOf(rapid.Int64(), rapid.Int64Range(1_600_000_000_000, 1_600_000_100_000)).Draw(t, "timestamp"),
		Key:       nullableBytes(32).Draw(t, "key"),
		Value:     nullableBytes(300).Draw(t, "value"),
	}
	r.Headers = rapid.SliceOfN(rapid.Custom(func(t *rapid.T) Header {
		return Header{Key: rapid.String().Draw(t, "headerKey"), Value: nullableBytes(16).Draw(t, "headerValue")}
	}), 0, 4).Draw(t, "headers")
	return r
})

var optionsGen = rapid.Custom(func(t *rapid.T) BatchOptions {
	o := BatchOptions{
		Compression:   rapid.SampledFrom(allCodecs).Draw(t, "compression"),
		LogAppendTime: rapid.Bool().Draw(t, "logAppendTime"),
	}
	if rapid.Bool().Draw(t, "idempotent") {
		o.Idempotent = true
		o.ProducerID = rapid.Int64Min(0).Draw(t, "producerID")
		o.ProducerEpoch = rapid.Int16Min(0).Draw(t, "producerEpoch")
		o.BaseSequence = rapid.Int32Min(0).Draw(t, "baseSequence")
	}
	if rapid.Bool().Draw(t, "hasLeaderEpoch") {
		o.HasPartitionLeaderEpoch = true
		o.PartitionLeaderEpoch = rapid.Int32().Draw(t, "leaderEpoch")
	}
	return o
})

// TestPropertyRoundTrip: any records with any options come back from
// Decode as they went in, through one reused Builder as a producer uses it.
func TestPropertyRoundTrip(t *testing.T) {
	b := NewBuilder(BatchOptions{})
	rapid.Check(t, func(t *rapid.T) {
		opts := optionsGen.Draw(t, "options")
		records := rapid.SliceOfN(recordGen, 1, 40).Draw(t, "records")
		b.Reset(opts)
		for _, r := range records {
			b.Add(r)
		}
		out, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		base := rapid.Int64Range(0, 1<<40).Draw(t, "baseOffset")
		SetBaseOffset(out, base)
		h, recs, err := Decode(out)
		if err != nil {
			t.Fatal(err)
		}
		want := expected(opts, records)
		for i := range want {
			want[i].Offset += base
		}
		if d := diffRecords(recs, want); d != "" {
			t.Fatal(d)
		}
		if h.BatchOptions() != normalized(opts) {
			t.Fatalf("header gives options %+v, built with %+v", h.BatchOptions(), opts)
		}
	})
}

// normalized is opts as a header reports it back.
func normalized(o BatchOptions) BatchOptions {
	if !o.Idempotent {
		o.ProducerID, o.ProducerEpoch, o.BaseSequence = 0, 0, 0
	}
	if !o.HasPartitionLeaderEpoch {
		o.PartitionLeaderEpoch = NoPartitionLeaderEpoch
	} else if o.PartitionLeaderEpoch == NoPartitionLeaderEpoch {
		// -1 set explicitly is indistinguishable from unset.
		o.HasPartitionLeaderEpoch = false
	}
	return o
}

// TestPropertyCRCCatchesAnyByteFlip: changing any byte from the CRC field
// to the end of a batch makes Verify (and Decode) fail. CRC-32C detects
// every error burst of up to 32 bits, so this must hold without exception.
func TestPropertyCRCCatchesAnyByteFlip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		opts := optionsGen.Draw(t, "options")
		records := rapid.SliceOfN(recordGen, 1, 10).Draw(t, "records")
		out, err := Encode(opts, records)
		if err != nil {
			t.Fatal(err)
		}
		i := rapid.IntRange(offCRC, len(out)-1).Draw(t, "index")
		flip := rapid.ByteRange(1, 255).Draw(t, "xor")
		bad := bytes.Clone(out)
		bad[i] ^= flip
		if _, err := Verify(bad); err == nil {
			t.Fatalf("Verify accepted the batch with byte %d of %d xored with %#x", i, len(out), flip)
		}
		if _, _, err := Decode(bad); err == nil {
			t.Fatalf("Decode accepted the batch with byte %d xored with %#x", i, flip)
		}
	})
}
