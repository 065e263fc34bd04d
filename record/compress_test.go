package record

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
)

// plainSection returns the uncompressed records section of a batch built
// from records, and the records Decode should give back.
func plainSection(t *testing.T, records []Record) []byte {
	t.Helper()
	b, err := Encode(BatchOptions{}, records)
	if err != nil {
		t.Fatal(err)
	}
	return b[HeaderSize:]
}

func sampleRecords(n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{Timestamp: int64(1000 + i), Key: []byte{byte(i)}, Value: payload(200, uint32(i))}
	}
	return recs
}

// xerialFrame writes data the way snappy-java's SnappyOutputStream does,
// in chunks of at most chunk bytes.
func xerialFrame(data []byte, chunk int) []byte {
	out := append([]byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}, 0, 0, 0, 1, 0, 0, 0, 1)
	for len(data) > 0 {
		n := min(chunk, len(data))
		block := snappy.Encode(nil, data[:n])
		out = binary.BigEndian.AppendUint32(out, uint32(len(block)))
		out = append(out, block...)
		data = data[n:]
	}
	return out
}

// TestDecodeXerialSnappy reads a batch framed as Java producers write it.
func TestDecodeXerialSnappy(t *testing.T) {
	records := sampleRecords(50)
	plain := plainSection(t, records)
	b := rawBatch{
		attributes: int16(CompressionSnappy), lastOffsetDelta: 49, recordCount: 50,
		baseTimestamp: 1000, maxTimestamp: 1049, producerID: -1, producerEpoch: -1, baseSequence: -1,
		records: xerialFrame(plain, 1000), // several chunks
	}.bytes()
	_, recs, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffRecords(recs, expected(BatchOptions{}, records)); d != "" {
		t.Fatal(d)
	}
}

func TestXerialSnappyRejects(t *testing.T) {
	plain := bytes.Repeat([]byte("abc"), 1000)
	good := xerialFrame(plain, 1000)
	if out, err := decompress(CompressionSnappy, good, MaxDecompressedSize); err != nil || !bytes.Equal(out, plain) {
		t.Fatalf("good xerial frame: %v", err)
	}
	tests := map[string][]byte{
		"truncated header":        good[:12],
		"truncated chunk length":  good[:18],
		"chunk past the end":      good[:len(good)-1],
		"corrupt chunk":           append(bytes.Clone(good[:20]), bytes.Repeat([]byte{0xff}, len(good)-20)...),
		"chunk length 0xffffffff": append(bytes.Clone(good[:16]), 0xff, 0xff, 0xff, 0xff, 1),
	}
	for name, in := range tests {
		if _, err := decompress(CompressionSnappy, in, MaxDecompressedSize); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestDecompressionIsCapped feeds every codec a small input that expands
// past the limit.
func TestDecompressionIsCapped(t *testing.T) {
	const limit = 10_000
	zeros := make([]byte, limit+1)
	var c compressor
	for _, codec := range allCodecs[1:] {
		t.Run(codec.String(), func(t *testing.T) {
			bomb, err := c.compress(codec, zeros)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := decompress(codec, bomb, limit); !errors.Is(err, errDecompressedTooLarge) {
				t.Fatalf("%d bytes of %s expanding to %d: %v, want errDecompressedTooLarge", len(bomb), codec, len(zeros), err)
			}
			if out, err := decompress(codec, bomb, limit+1); err != nil || len(out) != limit+1 {
				t.Fatalf("at exactly the limit: %d bytes, %v", len(out), err)
			}
		})
	}
	t.Run("xerial chunks", func(t *testing.T) {
		if _, err := decompress(CompressionSnappy, xerialFrame(zeros, 4000), limit); !errors.Is(err, errDecompressedTooLarge) {
			t.Fatalf("got %v, want errDecompressedTooLarge", err)
		}
	})
	t.Run("snappy length lie", func(t *testing.T) {
		// A 7-byte block claiming 1 GiB must fail before allocating it.
		lie := append(binary.AppendUvarint(nil, 1<<30), 0, 'x')
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := decompress(CompressionSnappy, lie, MaxDecompressedSize)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Fatal("accepted")
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Fatalf("allocated %d bytes for a %d-byte block", n, len(lie))
		}
	})
}

// TestDecodeRejectsZipBomb goes through the public API with the real limit.
func TestDecodeRejectsZipBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("compresses 64 MiB")
	}
	huge := make([]byte, MaxDecompressedSize+1)
	var c compressor
	for _, codec := range []Compression{CompressionZstd, CompressionGzip} {
		bomb, err := c.compress(codec, huge)
		if err != nil {
			t.Fatal(err)
		}
		b := rawBatch{attributes: int16(codec), recordCount: 1, records: bomb}.bytes()
		_, _, err = Decode(b)
		wantFormatError(t, err, ErrCorrupt, "records")
	}

	// A zstd frame written by a streaming encoder carries no content size,
	// so the decoder cannot refuse it up front: it must stop at the limit.
	var stream bytes.Buffer
	zw, err := zstd.NewWriter(&stream, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(huge); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	b := rawBatch{attributes: int16(CompressionZstd), recordCount: 1, records: stream.Bytes()}.bytes()
	_, _, err = Decode(b)
	wantFormatError(t, err, ErrCorrupt, "records")

	// And the Builder will not produce such a batch.
	_, err = Encode(BatchOptions{Compression: CompressionZstd}, []Record{{Value: huge}})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Encode of a record over MaxDecompressedSize: %v, want ErrTooLarge", err)
	}
}

// TestCompressedFormsInteroperate checks that each codec writes the format
// other Kafka clients expect, as read by an independent decoder or by the
// format's magic bytes.
func TestCompressedFormsInteroperate(t *testing.T) {
	records := sampleRecords(20)
	plain := plainSection(t, records)
	sectionOf := func(codec Compression) []byte {
		b, err := Encode(BatchOptions{Compression: codec}, records)
		if err != nil {
			t.Fatal(err)
		}
		return b[HeaderSize:]
	}

	t.Run("gzip reads with the standard library", func(t *testing.T) {
		r, err := stdgzip.NewReader(bytes.NewReader(sectionOf(CompressionGzip)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("stdlib gunzip: %v, equal %v", err, bytes.Equal(got, plain))
		}
	})
	t.Run("snappy is one raw block", func(t *testing.T) {
		s := sectionOf(CompressionSnappy)
		if bytes.HasPrefix(s, xerialMagic) {
			t.Fatal("snappy section is xerial-framed, want a raw block")
		}
		got, err := snappy.DecodeStrict(nil, s)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("snappy block: %v", err)
		}
	})
	t.Run("lz4 is a frame like Java's", func(t *testing.T) {
		s := sectionOf(CompressionLZ4)
		// Magic, then FLG 0x60 (version 01, independent blocks, no
		// checksums, no content size) and BD 0x40 (64 KiB blocks).
		if !bytes.HasPrefix(s, []byte{0x04, 0x22, 0x4d, 0x18, 0x60, 0x40}) {
			t.Fatalf("lz4 frame starts %x", s[:min(len(s), 7)])
		}
	})
	t.Run("zstd is a frame", func(t *testing.T) {
		if s := sectionOf(CompressionZstd); !bytes.HasPrefix(s, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
			t.Fatalf("zstd frame starts %x", s[:4])
		}
	})
}

// TestEmptyBatchDecodes: compaction can leave a batch with no records
// (Kafka keeps it for its producer state); consumers must read it.
func TestEmptyBatchDecodes(t *testing.T) {
	b := rawBatch{lastOffsetDelta: 4, producerID: 9, recordCount: 0}.bytes()
	h, recs, err := Decode(b)
	if err != nil || len(recs) != 0 || h.NextOffset() != 5 {
		t.Fatalf("empty batch: %v, %d records, next offset %d", err, len(recs), h.NextOffset())
	}
}

// TestDecodeToleratesOffsetGaps: compaction removes records from inside
// a batch, leaving holes in the offset deltas.
func TestDecodeToleratesOffsetGaps(t *testing.T) {
	b := section(2, 9,
		rec(0, zz(0), zz(3), zz(-1), zz(1), "a", zz(0)),
		rec(0, zz(0), zz(7), zz(-1), zz(1), "b", zz(0)),
	)
	SetBaseOffset(b, 100)
	_, recs, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].Offset != 103 || recs[1].Offset != 107 {
		t.Fatalf("offsets %d, %d; want 103, 107", recs[0].Offset, recs[1].Offset)
	}
}
