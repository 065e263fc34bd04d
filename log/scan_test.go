package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// scanAll runs a scanner to its end and reports what it accepted and why it
// stopped (nil at a clean end).
func scanAll(data []byte, base int64, maxBatch int) (n int, end int64, stop error) {
	sc := newBatchScanner(bytes.NewReader(data), base, int64(len(data)), maxBatch)
	for {
		b, _, pos, err := sc.scan()
		if errors.Is(err, io.EOF) {
			return n, pos, nil
		}
		if err != nil {
			return n, pos, err
		}
		n++
		end = pos + int64(len(b))
	}
}

func TestBatchScannerStopsAtFirstBadBatch(t *testing.T) {
	b0 := stamped(testBatch(2, 30, 0, 0, 1), 10)
	b1 := stamped(testBatch(1, 40, 0, 0, 2), 12)
	b2 := stamped(testBatch(5, 50, 0, 0, 3), 13)
	good := bytes.Join([][]byte{b0, b1, b2}, nil)
	at1 := int64(len(b0))
	at2 := at1 + int64(len(b1))

	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name     string
		data     []byte
		maxBatch int
		wantN    int
		wantStop bool
	}{
		{"intact", good, 1 << 20, 3, false},
		{"empty", nil, 1 << 20, 0, false},
		{"torn length field", good[:at2+5], 1 << 20, 2, true},
		{"torn batch body", good[:at2+70], 1 << 20, 2, true},
		{"crc mismatch", mutate(func(b []byte) []byte { b[at1+70] ^= 1; return b }), 1 << 20, 1, true},
		{"bad magic", mutate(func(b []byte) []byte { b[at1+16] = 1; return b }), 1 << 20, 1, true},
		{"base offset gap", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[at1:], 99)
			return b
		}), 1 << 20, 1, true},
		{"length too short", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[at1+8:], 10)
			return b
		}), 1 << 20, 1, true},
		{"negative length", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[at1+8:], 0xffffff00)
			return b
		}), 1 << 20, 1, true},
		{"batch above MaxBatchBytes", good, len(b1), 2, true},
		{"zeroed tail (preallocated or lost pages)", append(bytes.Clone(good[:at2]), make([]byte, 200)...), 1 << 20, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, _, stop := scanAll(tt.data, 10, tt.maxBatch)
			if n != tt.wantN {
				t.Errorf("accepted %d batches, want %d", n, tt.wantN)
			}
			var s *scanStop
			if got := errors.As(stop, &s); got != tt.wantStop {
				t.Errorf("stop = %v, want stop %v", stop, tt.wantStop)
			}
		})
	}
}

func TestBatchScannerHandlesBatchesLargerThanItsChunk(t *testing.T) {
	var data []byte
	var next int64
	for i := 0; i < 5; i++ {
		b := stamped(testBatch(1, scanChunk+1000*i, 0, 0, byte(i)), next)
		data = append(data, b...)
		next++
	}
	n, end, stop := scanAll(data, 0, 4<<20)
	if n != 5 || stop != nil || end != int64(len(data)) {
		t.Fatalf("scan = %d batches to %d, stop %v; want 5 to %d", n, end, stop, len(data))
	}
}

func TestPeekFrame(t *testing.T) {
	b := stamped(testBatch(4, 10, 5, 9, 0), 77)
	f, ok := peekFrame(b)
	if !ok || f != (frame{base: 77, size: int64(len(b)), lastDelta: 3, maxTs: 9}) || f.next() != 81 {
		t.Fatalf("peekFrame = %+v, %v", f, ok)
	}
	binary.BigEndian.PutUint32(b[8:], 3)
	if _, ok := peekFrame(b); ok {
		t.Fatal("peekFrame accepted a length shorter than a header")
	}
}
