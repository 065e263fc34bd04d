package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"
)

var allCodecs = []Compression{CompressionNone, CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd}

// rawBatch assembles a batch from its parts with nothing but the spec:
// it shares no code with the encoder, so tests built on it check the
// decoder against the format rather than against the Builder.
type rawBatch struct {
	baseOffset      int64
	leaderEpoch     int32
	attributes      int16
	lastOffsetDelta int32
	baseTimestamp   int64
	maxTimestamp    int64
	producerID      int64
	producerEpoch   int16
	baseSequence    int32
	recordCount     int32
	records         []byte // the records section, already compressed if attributes say so
}

func (r rawBatch) bytes() []byte {
	be := binary.BigEndian
	b := be.AppendUint64(nil, uint64(r.baseOffset))
	b = be.AppendUint32(b, uint32(49+len(r.records)))
	b = be.AppendUint32(b, uint32(r.leaderEpoch))
	b = append(b, 2)
	b = be.AppendUint32(b, 0) // crc, below
	b = be.AppendUint16(b, uint16(r.attributes))
	b = be.AppendUint32(b, uint32(r.lastOffsetDelta))
	b = be.AppendUint64(b, uint64(r.baseTimestamp))
	b = be.AppendUint64(b, uint64(r.maxTimestamp))
	b = be.AppendUint64(b, uint64(r.producerID))
	b = be.AppendUint16(b, uint16(r.producerEpoch))
	b = be.AppendUint32(b, uint32(r.baseSequence))
	b = be.AppendUint32(b, uint32(r.recordCount))
	b = append(b, r.records...)
	be.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// recrc rewrites the CRC of a batch after a test has edited it, so the
// edit reaches the checks behind the CRC.
func recrc(b []byte) []byte {
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// zz encodes a zigzag varint the slow, obvious way, for hand-built records.
func zz(v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	var out []byte
	for {
		c := byte(u & 0x7f)
		u >>= 7
		if u == 0 {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}

// cat concatenates byte strings and single bytes (ints), to spell records.
func cat(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case []byte:
			b = append(b, p...)
		case string:
			b = append(b, p...)
		case int:
			b = append(b, byte(p))
		default:
			panic(fmt.Sprintf("cat: %T", p))
		}
	}
	return b
}

// rec spells one record: body parts, prefixed by their length.
func rec(body ...any) []byte {
	bb := cat(body...)
	return cat(zz(int64(len(bb))), bb)
}

// expected is what Decode should return for records built with opts at
// base offset 0: offsets numbered, empty header lists as nil, and with
// log-append time every timestamp equal to the batch's maximum.
func expected(opts BatchOptions, in []Record) []Record {
	out := make([]Record, len(in))
	maxTS := in[0].Timestamp
	for _, r := range in {
		maxTS = max(maxTS, r.Timestamp)
	}
	for i, r := range in {
		r.Offset = int64(i)
		if len(r.Headers) == 0 {
			r.Headers = nil
		}
		if opts.LogAppendTime {
			r.Timestamp = maxTS
		}
		out[i] = r
	}
	return out
}

// diffRecords describes the first difference between two record lists,
// telling nil from empty apart, or returns "".
func diffRecords(got, want []Record) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d records, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		switch {
		case g.Offset != w.Offset:
			return fmt.Sprintf("records[%d].Offset = %d, want %d", i, g.Offset, w.Offset)
		case g.Timestamp != w.Timestamp:
			return fmt.Sprintf("records[%d].Timestamp = %d, want %d", i, g.Timestamp, w.Timestamp)
		case !sameBytes(g.Key, w.Key):
			return fmt.Sprintf("records[%d].Key = %s, want %s", i, show(g.Key), show(w.Key))
		case !sameBytes(g.Value, w.Value):
			return fmt.Sprintf("records[%d].Value = %s, want %s", i, show(g.Value), show(w.Value))
		case len(g.Headers) != len(w.Headers) || (g.Headers == nil) != (w.Headers == nil):
			return fmt.Sprintf("records[%d] has %d headers (nil %v), want %d (nil %v)", i,
				len(g.Headers), g.Headers == nil, len(w.Headers), w.Headers == nil)
		}
		for j := range g.Headers {
			gh, wh := g.Headers[j], w.Headers[j]
			if gh.Key != wh.Key || !sameBytes(gh.Value, wh.Value) {
				return fmt.Sprintf("records[%d].Headers[%d] = %q:%s, want %q:%s", i, j,
					gh.Key, show(gh.Value), wh.Key, show(wh.Value))
			}
		}
	}
	return ""
}

func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func show(b []byte) string {
	switch {
	case b == nil:
		return "null"
	case len(b) > 40:
		return fmt.Sprintf("%q...(%d bytes)", b[:40], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// wantFormatError checks that err is a *FormatError with the given cause
// and field.
func wantFormatError(t *testing.T, err error, cause error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v at %s", cause, field)
	}
	if !errors.Is(err, cause) {
		t.Fatalf("error %q does not match %v", err, cause)
	}
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("error %q (%T) is not a *FormatError", err, err)
	}
	if fe.Field != field {
		t.Fatalf("error %q names field %q, want %q", err, fe.Field, field)
	}
}

// payload returns n bytes that compress somewhat, like real messages:
// words from a small vocabulary with varying numbers.
func payload(n int, seed uint32) []byte {
	words := []string{"order", "id", "customer", "amount", "EUR", "status", "shipped", "{", "}", ":", ",", " "}
	b := make([]byte, 0, n+16)
	x := seed*2654435761 + 1
	for len(b) < n {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		if x%3 == 0 {
			b = fmt.Appendf(b, "%d", x%100000)
		} else {
			b = append(b, words[x%uint32(len(words))]...)
		}
	}
	return b[:n]
}
