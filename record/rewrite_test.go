package record

import (
	"bytes"
	"fmt"
	"testing"
)

func TestRewriteKeepsOffsetsTimestampsAndCodec(t *testing.T) {
	for _, codec := range []Compression{CompressionNone, CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd} {
		t.Run(codec.String(), func(t *testing.T) {
			var recs []Record
			for i := 0; i < 10; i++ {
				recs = append(recs, Record{Timestamp: 1000 + int64(i), Key: []byte(fmt.Sprintf("k%d", i%3)), Value: []byte(fmt.Sprintf("v%d", i))})
			}
			recs[4].Value = nil // a tombstone survives as one
			b, err := Encode(BatchOptions{Compression: codec, Idempotent: true, ProducerID: 7, ProducerEpoch: 1, BaseSequence: 40}, recs)
			if err != nil {
				t.Fatal(err)
			}
			SetBaseOffset(b, 500)
			SetPartitionLeaderEpoch(b, 3)
			out, err := Rewrite(b, func(r Record) bool { return r.Offset%3 == 1 })
			if err != nil {
				t.Fatal(err)
			}
			h0, _ := ParseHeader(b)
			h, got, err := Decode(out)
			if err != nil {
				t.Fatal(err)
			}
			if h.BaseOffset != 500 || h.LastOffsetDelta != 9 || h.RecordCount != 3 || h.Compression() != codec ||
				h.BaseTimestamp != h0.BaseTimestamp || h.MaxTimestamp != h0.MaxTimestamp ||
				h.ProducerID != 7 || h.BaseSequence != 40 || h.PartitionLeaderEpoch != 3 {
				t.Fatalf("header %+v", h)
			}
			want := []int64{502, 505, 508}
			for i, r := range got {
				src := recs[r.Offset-500]
				if r.Offset != want[i] || r.Timestamp != src.Timestamp || !bytes.Equal(r.Key, src.Key) || !bytes.Equal(r.Value, src.Value) || (r.Value == nil) != (src.Value == nil) {
					t.Fatalf("record %d = %+v, want offset %d of %+v", i, r, want[i], src)
				}
			}
			if same, _ := Rewrite(b, func(Record) bool { return true }); !bytes.Equal(same, b) {
				t.Fatal("keeping every record changed the batch")
			}
			if none, err := Rewrite(b, func(Record) bool { return false }); none != nil || err != nil {
				t.Fatalf("keeping nothing: %d bytes, %v", len(none), err)
			}
		})
	}
}

func TestEmptyBatchSpansItsOffsets(t *testing.T) {
	b := EmptyBatch(100, 49, 5, 9)
	h, recs, err := Decode(b)
	if err != nil || len(recs) != 0 || h.BaseOffset != 100 || h.NextOffset() != 150 || h.MaxTimestamp != 9 || h.ProducerID != NoProducerID {
		t.Fatalf("%+v %d %v", h, len(recs), err)
	}
}

func TestRewriteRefusesCorruptBatches(t *testing.T) {
	b, _ := Encode(BatchOptions{}, []Record{{Value: []byte("x")}})
	b[len(b)-1] ^= 1
	if _, err := Rewrite(b, func(Record) bool { return true }); err == nil {
		t.Fatal("corrupt batch rewritten")
	}
}
