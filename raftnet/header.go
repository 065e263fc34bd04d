package raftnet

import (
	"encoding/binary"
	"fmt"
	"io"
)

const (
	// headerMagic opens every connection ("SKiff RaFt").
	headerMagic = "SKRF"

	// HeaderVersion is the version byte this package writes and accepts.
	HeaderVersion = 1

	// MaxNameLen bounds group names and node ids in bytes. It leaves room
	// for a partition group named after a topic (up to 249 characters) plus
	// a partition number, and keeps a hostile header small.
	MaxNameLen = 512

	// headerPrefixLen is magic + version + group length.
	headerPrefixLen = len(headerMagic) + 1 + 2
)

// header is the first thing on every connection; see the package doc for
// its layout.
type header struct {
	group string // which Raft group on the accepting node
	node  string // id of the dialing node
}

// appendTo appends the encoded header to b. The caller has validated both
// names, so the lengths fit in their uint16 fields.
func (h header) appendTo(b []byte) []byte {
	b = append(b, headerMagic...)
	b = append(b, HeaderVersion)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.group)))
	b = append(b, h.group...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.node)))
	b = append(b, h.node...)
	return b
}

// readHeader reads exactly one header from r and not a byte more: what
// follows belongs to the Raft transport, which reads the raw connection.
// Errors wrap ErrBadHeader when the bytes are malformed, or the read error
// (EOF, timeout) when they did not arrive.
func readHeader(r io.Reader) (header, error) {
	var prefix [headerPrefixLen]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return header{}, fmt.Errorf("read header prefix: %w", err)
	}
	if string(prefix[:4]) != headerMagic {
		return header{}, fmt.Errorf("%w: magic %q", ErrBadHeader, prefix[:4])
	}
	if v := prefix[4]; v != HeaderVersion {
		return header{}, fmt.Errorf("%w: unsupported version %d", ErrBadHeader, v)
	}
	glen := int(binary.BigEndian.Uint16(prefix[5:7]))
	if glen == 0 || glen > MaxNameLen {
		return header{}, fmt.Errorf("%w: group name length %d", ErrBadHeader, glen)
	}

	// Group name and the node id's length arrive together: one read fewer.
	buf := make([]byte, glen+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		return header{}, fmt.Errorf("read header group: %w", err)
	}
	group := string(buf[:glen])
	if err := validateName(group); err != nil {
		return header{}, fmt.Errorf("%w: group: %w", ErrBadHeader, err)
	}
	nlen := int(binary.BigEndian.Uint16(buf[glen:]))
	if nlen == 0 || nlen > MaxNameLen {
		return header{}, fmt.Errorf("%w: node id length %d", ErrBadHeader, nlen)
	}

	buf = make([]byte, nlen)
	if _, err := io.ReadFull(r, buf); err != nil {
		return header{}, fmt.Errorf("read header node id: %w", err)
	}
	node := string(buf)
	if err := validateName(node); err != nil {
		return header{}, fmt.Errorf("%w: node id: %w", ErrBadHeader, err)
	}
	return header{group: group, node: node}, nil
}

// validateName checks a group name or node id. The character set is narrow
// on purpose: names show up in logs, metrics labels and file paths, and
// topic names ([a-zA-Z0-9._-]) plus a separator for the partition number
// fit in it.
func validateName(s string) error {
	if len(s) == 0 || len(s) > MaxNameLen {
		return fmt.Errorf("%w: length %d, want 1..%d", ErrInvalidName, len(s), MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == '-', c == ':', c == '/':
		default:
			return fmt.Errorf("%w: %q has byte %#x at %d, want [A-Za-z0-9._:/-]", ErrInvalidName, truncate(s), c, i)
		}
	}
	return nil
}

// truncate keeps error messages about hostile names short.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
