package record

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func TestVarintKnownEncodings(t *testing.T) {
	tests := []struct {
		v    int32
		want []byte
	}{
		{0, []byte{0x00}},
		{-1, []byte{0x01}},
		{1, []byte{0x02}},
		{-2, []byte{0x03}},
		{63, []byte{0x7e}},
		{-64, []byte{0x7f}},
		{64, []byte{0x80, 0x01}},
		{300, []byte{0xd8, 0x04}},
		{math.MaxInt32, []byte{0xfe, 0xff, 0xff, 0xff, 0x0f}},
		{math.MinInt32, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}},
	}
	for _, tt := range tests {
		got := appendVarint(nil, tt.v)
		if !bytes.Equal(got, tt.want) {
			t.Errorf("appendVarint(%d) = %x, want %x", tt.v, got, tt.want)
		}
		if n := varintSize(tt.v); n != len(tt.want) {
			t.Errorf("varintSize(%d) = %d, want %d", tt.v, n, len(tt.want))
		}
		v, n, err := readVarint(append(bytes.Clone(tt.want), 0xAA))
		if err != nil || v != tt.v || n != len(tt.want) {
			t.Errorf("readVarint(%x) = %d, %d, %v; want %d, %d", tt.want, v, n, err, tt.v, len(tt.want))
		}
	}
}

func TestVarlongExtremes(t *testing.T) {
	for _, v := range []int64{0, -1, 1, math.MaxInt32 + 1, math.MinInt32 - 1, math.MaxInt64, math.MinInt64} {
		enc := appendVarlong(nil, v)
		if len(enc) != varlongSize(v) {
			t.Errorf("varlongSize(%d) = %d, encoded %d bytes", v, varlongSize(v), len(enc))
		}
		got, n, err := readVarlong(enc)
		if err != nil || got != v || n != len(enc) {
			t.Errorf("readVarlong(%x) = %d, %d, %v; want %d", enc, got, n, err, v)
		}
	}
	if got := appendVarlong(nil, math.MinInt64); !bytes.Equal(got, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}) {
		t.Errorf("MinInt64 encodes as %x", got)
	}
}

func TestReadVarintRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		long bool // read as varlong
		want error
	}{
		{"empty", nil, false, errVarintTruncated},
		{"continuation then end", []byte{0x80}, false, errVarintTruncated},
		{"zero in two bytes", []byte{0x80, 0x00}, false, errVarintOverlong},
		{"one in three bytes", []byte{0x81, 0x80, 0x00}, false, errVarintOverlong},
		{"varint 33 bits", []byte{0xff, 0xff, 0xff, 0xff, 0x1f}, false, errVarintOverflow},
		{"varint six bytes", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, false, errVarintOverflow},
		{"varlong 65 bits", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x03}, true, errVarintOverflow},
		{"varlong eleven bytes", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, true, errVarintOverflow},
		{"varlong zero padded", []byte{0x80, 0x80, 0x00}, true, errVarintOverlong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.long {
				_, _, err = readVarlong(tt.in)
			} else {
				_, _, err = readVarint(tt.in)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}
