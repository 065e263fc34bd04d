package record

import (
	"fmt"
	"testing"
)

// benchRecords is a typical producer batch: 1000 records of 100-byte
// values (semi-compressible text) with short keys.
func benchRecords() []Record {
	recs := make([]Record, 1000)
	for i := range recs {
		recs[i] = Record{
			Timestamp: 1_700_000_000_000 + int64(i),
			Key:       fmt.Appendf(nil, "user-%d", i%64),
			Value:     payload(100, uint32(i)),
		}
	}
	return recs
}

// BenchmarkEncode measures a producer reusing one Builder; MB/s counts the
// uncompressed batch.
func BenchmarkEncode(b *testing.B) {
	recs := benchRecords()
	for _, codec := range allCodecs {
		b.Run(codec.String(), func(b *testing.B) {
			opts := BatchOptions{Compression: codec}
			bld := NewBuilder(opts)
			for _, r := range recs {
				bld.Add(r)
			}
			b.SetBytes(int64(bld.EstimatedSize()))
			var dst []byte
			b.ReportAllocs()
			for b.Loop() {
				bld.Reset(opts)
				for _, r := range recs {
					bld.Add(r)
				}
				var err error
				if dst, err = bld.AppendTo(dst[:0]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(dst))/float64(bld.EstimatedSize()), "ratio")
		})
	}
}

// BenchmarkDecode measures Decode of the same batch; MB/s counts the
// uncompressed batch.
func BenchmarkDecode(b *testing.B) {
	recs := benchRecords()
	for _, codec := range allCodecs {
		b.Run(codec.String(), func(b *testing.B) {
			batch, err := Encode(BatchOptions{Compression: codec}, recs)
			if err != nil {
				b.Fatal(err)
			}
			plain, _ := Encode(BatchOptions{}, recs)
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Decode(batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRecords measures walking the batch without collecting it.
func BenchmarkRecords(b *testing.B) {
	recs := benchRecords()
	for _, codec := range []Compression{CompressionNone, CompressionZstd} {
		b.Run(codec.String(), func(b *testing.B) {
			batch, err := Encode(BatchOptions{Compression: codec}, recs)
			if err != nil {
				b.Fatal(err)
			}
			plain, _ := Encode(BatchOptions{}, recs)
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if err := Records(batch, func(r Record) error { n += len(r.Value); return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
