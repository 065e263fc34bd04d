package record

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"testing"
)

// one well-formed record: offsetDelta 0, key "k", value "v", no headers.
var okRecord = rec(0, zz(0), zz(0), zz(1), "k", zz(1), "v", zz(0))

// section wraps a records section (uncompressed) in a batch whose header
// claims count records and the given lastOffsetDelta.
func section(count, lastOffsetDelta int32, records ...[]byte) []byte {
	return rawBatch{
		leaderEpoch: -1, producerID: -1, producerEpoch: -1, baseSequence: -1,
		lastOffsetDelta: lastOffsetDelta, recordCount: count, records: bytes.Join(records, nil),
	}.bytes()
}

func TestDecodeRejectsCorruptBatches(t *testing.T) {
	valid := section(1, 0, okRecord)
	if _, _, err := Decode(valid); err != nil {
		t.Fatalf("the valid base batch does not decode: %v", err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(valid)) }
	withAttributes := func(a uint16) []byte {
		return edit(func(b []byte) []byte { binary.BigEndian.PutUint16(b[21:], a); return recrc(b) })
	}

	tests := []struct {
		name  string
		batch []byte
		cause error
		field string
	}{
		// Framing.
		{"fewer than 12 bytes", valid[:11], ErrShortBuffer, "batchLength"},
		{"header cut short", valid[:40], ErrShortBuffer, "header"},
		{"batch cut short", valid[:len(valid)-1], ErrShortBuffer, "batchLength"},
		{"batchLength below the header", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 48); return b }), ErrCorrupt, "batchLength"},
		{"bytes after the batch", append(bytes.Clone(valid), 0), ErrCorrupt, "batchLength"},
		{"magic 1", edit(func(b []byte) []byte { b[16] = 1; return b }), ErrUnsupportedMagic, "magic"},

		// Checksum.
		{"flipped bit in a value", edit(func(b []byte) []byte { b[len(b)-2] ^= 0x20; return b }), ErrCRCMismatch, "crc"},
		{"flipped bit in the crc", edit(func(b []byte) []byte { b[17] ^= 1; return b }), ErrCRCMismatch, "crc"},
		{"flipped bit in a header field", edit(func(b []byte) []byte { b[30] ^= 4; return b }), ErrCRCMismatch, "crc"},

		// Attributes.
		{"codec 5", withAttributes(5), ErrUnknownCompression, "attributes"},
		{"codec 6", withAttributes(6), ErrUnknownCompression, "attributes"},
		{"codec 7 with other bits", withAttributes(0x1f), ErrUnknownCompression, "attributes"},
		{"gzip flag on plain records", withAttributes(uint16(CompressionGzip)), ErrCorrupt, "records"},
		{"snappy flag on plain records", withAttributes(uint16(CompressionSnappy)), ErrCorrupt, "records"},
		{"lz4 flag on plain records", withAttributes(uint16(CompressionLZ4)), ErrCorrupt, "records"},
		{"zstd flag on plain records", withAttributes(uint16(CompressionZstd)), ErrCorrupt, "records"},

		// Counts.
		{"negative recordCount", section(-1, 0, okRecord), ErrCorrupt, "recordCount"},
		{"negative lastOffsetDelta", section(1, -1, okRecord), ErrCorrupt, "lastOffsetDelta"},
		{"recordCount 2^31-1", section(1<<31-1, 0, okRecord), ErrCorrupt, "recordCount"},
		{"recordCount two, one present", section(2, 1, okRecord), ErrCorrupt, "recordCount"},
		{"recordCount two, one long record present", section(2, 1, rec(0, zz(0), zz(0), zz(-1), zz(10), "0123456789", zz(0))), ErrCorrupt, "recordCount"},
		{"recordCount one, two present", section(1, 1, okRecord, rec(0, zz(0), zz(1), zz(-1), zz(-1), zz(0))), ErrCorrupt, "records"},
		{"garbage after the last record", section(1, 0, okRecord, []byte{0, 0, 0}), ErrCorrupt, "records"},

		// Record framing.
		{"record length past the section", section(1, 0, cat(zz(40), 0, zz(0), zz(0), zz(-1), zz(-1), zz(0))), ErrCorrupt, "records[0].length"},
		{"negative record length", section(1, 0, cat(zz(-3), 0, zz(0), zz(0), zz(-1), zz(-1), zz(0))), ErrCorrupt, "records[0].length"},
		{"empty record", section(1, 0, cat(zz(0), 0, 0, 0, 0, 0, 0)), ErrCorrupt, "records[0].attributes"},
		{"bytes after the headers", section(1, 0, rec(0, zz(0), zz(0), zz(-1), zz(-1), zz(0), 0xEE)), ErrCorrupt, "records[0].length"},
		{"record ends inside the value", section(1, 0, cat(zz(5), 0, zz(0), zz(0), zz(-1), zz(3), "abc", zz(0))), ErrCorrupt, "records[0].value"},

		// Deltas.
		{"offsetDelta past lastOffsetDelta", section(1, 0, rec(0, zz(0), zz(1), zz(-1), zz(-1), zz(0))), ErrCorrupt, "records[0].offsetDelta"},
		{"negative offsetDelta", section(1, 0, rec(0, zz(0), zz(-1), zz(-1), zz(-1), zz(0))), ErrCorrupt, "records[0].offsetDelta"},
		{"repeated offsetDelta", section(2, 1, okRecord, okRecord), ErrCorrupt, "records[1].offsetDelta"},
		{"overflowing offsetDelta", section(1, 0, rec(0, zz(0), 0xff, 0xff, 0xff, 0xff, 0x7f, zz(-1), zz(-1), zz(0))), ErrCorrupt, "records[0].offsetDelta"},
		{"eleven-byte timestampDelta", section(1, 0, rec(0, bytes.Repeat([]byte{0x80}, 10), 1, zz(0), zz(-1), zz(-1), zz(0))), ErrCorrupt, "records[0].timestampDelta"},

		// Keys and values.
		{"key length -2", section(1, 0, rec(0, zz(0), zz(0), zz(-2), zz(-1), zz(0))), ErrCorrupt, "records[0].key"},
		{"key length past the record", section(1, 0, rec(0, zz(0), zz(0), zz(100), "k", zz(-1), zz(0))), ErrCorrupt, "records[0].key"},
		{"key length 2^31-1", section(1, 0, rec(0, zz(0), zz(0), zz(1<<31-1), zz(-1), zz(0))), ErrCorrupt, "records[0].key"},
		{"overlong key length", section(1, 0, rec(0, zz(0), zz(0), 0x82, 0x00, "k", zz(-1), zz(0))), ErrCorrupt, "records[0].key"},
		{"value length past the record", section(1, 0, rec(0, zz(0), zz(0), zz(-1), zz(9), "v", zz(0))), ErrCorrupt, "records[0].value"},
		{"truncated value length", section(1, 0, rec(0, zz(0), zz(0), zz(3), "abc", 0x80)), ErrCorrupt, "records[0].value"},

		// Headers.
		{"negative header count", section(1, 0, rec(0, zz(0), zz(0), zz(-1), zz(-1), zz(-1))), ErrCorrupt, "records[0].headers"},
		{"header count 2^31-1", section(1, 0, rec(0, zz(0), zz(0), zz(-1), zz(-1), zz(1<<31-1), zz(0), zz(-1))), ErrCorrupt, "records[0].headers"},
		{"null header key", section(1, 0, rec(0, zz(0), zz(0), zz(-1), zz(-1), zz(1), zz(-1), zz(-1))), ErrCorrupt, "records[0].headers[0].key"},
		{"header value past the record", section(1, 0, rec(0, zz(0), zz(0), zz(-1), zz(-1), zz(2), zz(1), "a", zz(-1), zz(1), "b", zz(5), "x")), ErrCorrupt, "records[0].headers[1].value"},
		{"header value length -2", section(1, 0, rec(0, zz(0), zz(0), zz(-1), zz(-1), zz(1), zz(1), "a", zz(-2))), ErrCorrupt, "records[0].headers[0].value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, recs, err := Decode(tt.batch)
			wantFormatError(t, err, tt.cause, tt.field)
			if recs != nil || h != (BatchHeader{}) {
				t.Fatalf("Decode returned data with its error: %+v, %d records", h, len(recs))
			}
			wantFormatError(t, Records(tt.batch, func(Record) error { return nil }), tt.cause, tt.field)
		})
	}
}

// TestRecordsStopsOnCallbackError checks that fn's error comes back as is.
func TestRecordsStopsOnCallbackError(t *testing.T) {
	b, err := Encode(BatchOptions{}, []Record{{Value: []byte("a")}, {Value: []byte("b")}, {Value: []byte("c")}})
	if err != nil {
		t.Fatal(err)
	}
	stop := errStop{}
	seen := 0
	err = Records(b, func(Record) error {
		seen++
		if seen == 2 {
			return stop
		}
		return nil
	})
	if err != stop || seen != 2 {
		t.Fatalf("Records returned %v after %d records, want errStop after 2", err, seen)
	}
}

type errStop struct{}

func (errStop) Error() string { return "stop" }

// TestDecodedSlicesAreCapped: appending to a decoded key must not
// overwrite the value that follows it in the batch.
func TestDecodedSlicesAreCapped(t *testing.T) {
	b, err := Encode(BatchOptions{}, []Record{{Key: []byte("k"), Value: []byte("value")}})
	if err != nil {
		t.Fatal(err)
	}
	_, recs, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(recs[0].Key, "XXXXX"...)
	if string(recs[0].Value) != "value" {
		t.Fatalf("appending to Key clobbered Value: %q", recs[0].Value)
	}
	if _, err := Verify(b); err != nil {
		t.Fatalf("appending to Key changed the batch: %v", err)
	}
}

// TestDecodeDoesNotTrustCounts: counts that the bytes could hold but that
// turn out to be lies must fail before costing memory in proportion to
// the claim (an uncompressed 7 MB of zeros "fits" a million records; a
// record of 2 MB "fits" a million headers).
func TestDecodeDoesNotTrustCounts(t *testing.T) {
	zeros := make([]byte, 7_000_000)
	manyRecords := section(1_000_000, 999_999, zeros)
	manyHeaders := section(1, 0, rec(0, zz(0), zz(0), zz(-1), zz(-1), zz(1_000_000), zz(-1), zeros[:2_000_000]))
	for name, b := range map[string][]byte{"records": manyRecords, "headers": manyHeaders} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := Decode(b)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Fatalf("%s: Decode allocated %d bytes before failing (%v)", name, n, err)
		}
	}
}
