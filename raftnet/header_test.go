package raftnet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestHeaderRoundTripsAndReadsNoFurther(t *testing.T) {
	h := header{group: "orders/3", node: "node-1.dc:a"}
	wire := h.appendTo(nil)
	want := "SKRF\x01\x00\x08orders/3\x00\x0bnode-1.dc:a"
	if string(wire) != want {
		t.Fatalf("encoded %q, want %q", wire, want)
	}

	// The Raft stream follows the header; not one byte of it may be eaten.
	r := bytes.NewReader(append(wire, "raft-bytes"...))
	got, err := readHeader(r)
	if err != nil {
		t.Fatalf("readHeader: %v", err)
	}
	if got != h {
		t.Fatalf("read %+v, want %+v", got, h)
	}
	rest, _ := io.ReadAll(r)
	if string(rest) != "raft-bytes" {
		t.Fatalf("left %q after the header, want %q", rest, "raft-bytes")
	}
}

func TestReadHeaderRejectsMalformedInput(t *testing.T) {
	valid := header{group: "g", node: "n"}.appendTo(nil)
	withGroupLen := func(n uint16) []byte {
		b := append([]byte("SKRF\x01"), 0, 0)
		binary.BigEndian.PutUint16(b[5:], n)
		return b
	}
	tests := []struct {
		name    string
		in      []byte
		badData bool // want ErrBadHeader; otherwise a read error (EOF)
	}{
		{"empty", nil, false},
		{"http request", []byte("GET / HTTP/1.1\r\n\r\n"), true},
		{"version 2", []byte("SKRF\x02\x00\x01g\x00\x01n"), true},
		{"empty group", withGroupLen(0), true},
		{"group too long", withGroupLen(MaxNameLen + 1), true},
		{"group with space", []byte("SKRF\x01\x00\x03a b\x00\x01n"), true},
		{"empty node id", []byte("SKRF\x01\x00\x01g\x00\x00"), true},
		{"node id too long", []byte("SKRF\x01\x00\x01g\xff\xff"), true},
		{"node id with NUL", []byte("SKRF\x01\x00\x01g\x00\x01\x00"), true},
		{"truncated prefix", valid[:5], false},
		{"truncated group", valid[:7], false},
		{"truncated node id", valid[:len(valid)-1], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readHeader(bytes.NewReader(tt.in))
			if err == nil {
				t.Fatal("readHeader accepted it")
			}
			if got := errors.Is(err, ErrBadHeader); got != tt.badData {
				t.Fatalf("errors.Is(%v, ErrBadHeader) = %v, want %v", err, got, tt.badData)
			}
			if !tt.badData && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("err = %v, want EOF", err)
			}
		})
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"meta", "orders.v2-7", "a/b:c_d", strings.Repeat("x", MaxNameLen)} {
		if err := validateName(ok); err != nil {
			t.Errorf("validateName(%q) = %v, want nil", truncate(ok), err)
		}
	}
	for _, bad := range []string{"", "a b", "é", "tab\t", strings.Repeat("x", MaxNameLen+1)} {
		if err := validateName(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("validateName(%q) = %v, want ErrInvalidName", truncate(bad), err)
		}
	}
}

// FuzzReadHeader: whatever the bytes, readHeader never panics, and what it
// accepts is exactly the encoding of what it returns, read to the byte.
func FuzzReadHeader(f *testing.F) {
	f.Add(header{group: "meta", node: "n1"}.appendTo(nil))
	f.Add([]byte("SKRF\x01\xff\xff"))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		h, err := readHeader(r)
		if err != nil {
			return
		}
		consumed := in[:len(in)-r.Len()]
		if enc := h.appendTo(nil); !bytes.Equal(enc, consumed) {
			t.Fatalf("accepted %q as %+v, which encodes as %q", consumed, h, enc)
		}
	})
}
