package record

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// TestCRCIsCastagnoli pins the checksum to CRC-32C: "123456789" is the
// standard check input, 0xE3069283 its published CRC-32C (the IEEE CRC-32
// of it is 0xCBF43926, which this would catch).
func TestCRCIsCastagnoli(t *testing.T) {
	if got := crc32.Checksum([]byte("123456789"), castagnoli); got != 0xE3069283 {
		t.Fatalf("package CRC table gives %#x for \"123456789\", want 0xE3069283 (CRC-32C)", got)
	}
	// Checksum covers the batch from offset 21 (attributes) to the end.
	b := append(make([]byte, offAttributes), "123456789"...)
	if got := Checksum(b); got != 0xE3069283 {
		t.Fatalf("Checksum = %#x, want 0xE3069283", got)
	}
}

// goldenBatch is one uncompressed batch written out byte by byte from the
// Kafka RecordBatch v2 spec: two records from an idempotent producer.
//
//	record 0: timestamp T, key "k", value "v1", header h="x"
//	record 1: timestamp T+5, null key, value "hello", no headers
var goldenBatch = cat(
	// baseOffset int64
	0, 0, 0, 0, 0, 0, 0, 0,
	// batchLength int32: 49 header bytes after this field + 26 of records
	0, 0, 0, 75,
	// partitionLeaderEpoch int32: -1, not stamped yet
	0xff, 0xff, 0xff, 0xff,
	// magic int8
	2,
	// crc uint32 (CRC-32C of everything below)
	0x91, 0xfc, 0x24, 0xbe,
	// attributes int16: no compression, create time
	0, 0,
	// lastOffsetDelta int32
	0, 0, 0, 1,
	// baseTimestamp int64: 1_700_000_000_000 = 0x18BCFE56800
	0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00,
	// maxTimestamp int64: +5
	0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x05,
	// producerId int64: 7
	0, 0, 0, 0, 0, 0, 0, 7,
	// producerEpoch int16: 1
	0, 1,
	// baseSequence int32: 42
	0, 0, 0, 42,
	// recordCount int32
	0, 0, 0, 2,

	// record 0: length 13 (zigzag 26 = 0x1a)
	0x1a,
	0x00,      // attributes
	0x00,      // timestampDelta 0
	0x00,      // offsetDelta 0
	0x02, "k", // keyLength 1, key
	0x04, "v1", // valueLength 2, value
	0x02,      // 1 header
	0x02, "h", // header key length 1, key
	0x02, "x", // header value length 1, value
	// record 1: length 11 (zigzag 22 = 0x16)
	0x16,
	0x00,          // attributes
	0x0a,          // timestampDelta 5
	0x02,          // offsetDelta 1
	0x01,          // keyLength -1: null
	0x0a, "hello", // valueLength 5, value
	0x00, // no headers
)

var goldenOptions = BatchOptions{Idempotent: true, ProducerID: 7, ProducerEpoch: 1, BaseSequence: 42}

var goldenRecords = []Record{
	{Timestamp: 1_700_000_000_000, Key: []byte("k"), Value: []byte("v1"), Headers: []Header{{Key: "h", Value: []byte("x")}}},
	{Timestamp: 1_700_000_000_005, Value: []byte("hello")},
}

func TestGoldenBatchCRCMatchesItsBytes(t *testing.T) {
	// The CRC literal above was not produced by this package's encoder:
	// check it against the stdlib's CRC-32C of the hand-written bytes.
	want := crc32.Checksum(goldenBatch[21:], crc32.MakeTable(crc32.Castagnoli))
	if got := binary.BigEndian.Uint32(goldenBatch[17:]); got != want {
		t.Fatalf("golden crc literal %#x, CRC-32C of the bytes is %#x", got, want)
	}
	if len(goldenBatch) != 12+75 {
		t.Fatalf("golden batch is %d bytes, its batchLength says %d", len(goldenBatch), 12+75)
	}
}

func TestEncodeProducesGoldenBytes(t *testing.T) {
	got, err := Encode(goldenOptions, goldenRecords)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, goldenBatch) {
		t.Fatalf("Encode differs from the spec's bytes:\n got %x\nwant %x", got, goldenBatch)
	}
}

func TestDecodeReadsGoldenBytes(t *testing.T) {
	h, recs, err := Decode(goldenBatch)
	if err != nil {
		t.Fatal(err)
	}
	wantHeader := BatchHeader{
		BaseOffset: 0, BatchLength: 75, PartitionLeaderEpoch: -1, Magic: 2, CRC: 0x91fc24be,
		Attributes: 0, LastOffsetDelta: 1, BaseTimestamp: 1_700_000_000_000, MaxTimestamp: 1_700_000_000_005,
		ProducerID: 7, ProducerEpoch: 1, BaseSequence: 42, RecordCount: 2,
	}
	if h != wantHeader {
		t.Fatalf("header\n got %+v\nwant %+v", h, wantHeader)
	}
	if d := diffRecords(recs, expected(goldenOptions, goldenRecords)); d != "" {
		t.Fatal(d)
	}
	if h.LastSequence() != 43 {
		t.Fatalf("LastSequence = %d, want 43", h.LastSequence())
	}
}

// TestBrokerStampsOutsideCRC checks the property the design rests on: the
// broker sets baseOffset and leader epoch without touching the CRC.
func TestBrokerStampsOutsideCRC(t *testing.T) {
	b := bytes.Clone(goldenBatch)
	SetBaseOffset(b, 1000)
	SetPartitionLeaderEpoch(b, 9)
	h, recs, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.BaseOffset != 1000 || h.PartitionLeaderEpoch != 9 || h.CRC != 0x91fc24be {
		t.Fatalf("header after stamping: %+v", h)
	}
	if recs[0].Offset != 1000 || recs[1].Offset != 1001 || h.NextOffset() != 1002 {
		t.Fatalf("offsets %d, %d, next %d; want 1000, 1001, 1002", recs[0].Offset, recs[1].Offset, h.NextOffset())
	}
}

func TestSetLogAppendTime(t *testing.T) {
	b := bytes.Clone(goldenBatch)
	const appendTime int64 = 1_800_000_000_000
	if err := SetLogAppendTime(b, appendTime); err != nil {
		t.Fatal(err)
	}
	h, recs, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !h.LogAppendTime() || h.MaxTimestamp != appendTime {
		t.Fatalf("header after SetLogAppendTime: %+v", h)
	}
	for i, r := range recs {
		if r.Timestamp != appendTime {
			t.Fatalf("records[%d].Timestamp = %d, want the append time %d", i, r.Timestamp, appendTime)
		}
	}

	// A corrupt batch must not be given a fresh CRC.
	c := bytes.Clone(goldenBatch)
	c[len(c)-1] ^= 1
	wantFormatError(t, SetLogAppendTime(c, appendTime), ErrCRCMismatch, "crc")
	if _, err := Verify(c); err == nil {
		t.Fatal("SetLogAppendTime laundered a corrupt batch")
	}
}
