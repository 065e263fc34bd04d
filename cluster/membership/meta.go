package membership

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"unicode"

	"github.com/hashicorp/memberlist"
)

// MetaVersion is the version of the meta encoding this package writes.
// Decoders accept any version >= 1 and ignore fields they do not know, so a
// newer node may add fields without breaking older ones; bump it when the
// meaning of an existing field changes.
const MetaVersion = 1

// Meta is what a node advertises about itself through gossip. It must encode
// to at most 512 bytes (memberlist's limit; checked by Validate).
type Meta struct {
	// ID is the node's unique, stable id and its memberlist node name.
	// Required; no whitespace or control characters.
	ID string
	// GRPCAddr is the host:port clients and peers call (optional).
	GRPCAddr string
	// RaftAddr is the host:port of the node's Raft transport (optional).
	RaftAddr string
	// HTTPAddr is the host:port of the metrics/health endpoint (optional).
	HTTPAddr string
	// Rack is the failure domain used to spread replicas (optional).
	Rack string
	// Version is the encoding version the advertising node wrote. It is set
	// when meta is decoded; when this node advertises, it is always
	// MetaVersion whatever the caller put here.
	Version int
}

// wireMeta is the gossip encoding of Meta. JSON with short keys: compact
// enough for the 512-byte limit, readable in a packet dump, and tolerant of
// unknown fields for evolution.
type wireMeta struct {
	V    int    `json:"v"`
	ID   string `json:"id"`
	GRPC string `json:"grpc,omitempty"`
	Raft string `json:"raft,omitempty"`
	HTTP string `json:"http,omitempty"`
	Rack string `json:"rack,omitempty"`
	// Leaving marks a node that is about to broadcast a graceful leave, so
	// peers can report it as Left rather than Failed (memberlist does not
	// tell them apart; see the package doc).
	Leaving bool `json:"leaving,omitempty"`
}

func encodeMeta(m Meta, leaving bool) ([]byte, error) {
	return json.Marshal(wireMeta{
		V: MetaVersion, ID: m.ID, GRPC: m.GRPCAddr, Raft: m.RaftAddr, HTTP: m.HTTPAddr, Rack: m.Rack,
		Leaving: leaving,
	})
}

// decodeMeta returns the Meta and the leaving mark. It rejects meta that was
// not written by this package (a foreign memberlist cluster on the same
// port), which is how the alive filter keeps such nodes out.
func decodeMeta(b []byte) (Meta, bool, error) {
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, false, fmt.Errorf("decode node meta: %w", err)
	}
	if w.V < 1 {
		return Meta{}, false, fmt.Errorf("decode node meta: missing version")
	}
	if w.ID == "" {
		return Meta{}, false, fmt.Errorf("decode node meta: missing id")
	}
	return Meta{ID: w.ID, GRPCAddr: w.GRPC, RaftAddr: w.Raft, HTTPAddr: w.HTTP, Rack: w.Rack, Version: w.V}, w.Leaving, nil
}

// Validate checks every field and that the meta fits the gossip limit even
// with the leaving mark added at Leave, so Leave can never fail on size.
func (m Meta) Validate() error {
	if m.ID == "" {
		return fieldErr("Meta.ID", errors.New("required"))
	}
	if strings.IndexFunc(m.ID, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return fieldErr("Meta.ID", fmt.Errorf("%q contains whitespace or control characters", m.ID))
	}
	for _, f := range []struct{ name, addr string }{
		{"Meta.GRPCAddr", m.GRPCAddr}, {"Meta.RaftAddr", m.RaftAddr}, {"Meta.HTTPAddr", m.HTTPAddr},
	} {
		if f.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(f.addr); err != nil {
			return fieldErr(f.name, fmt.Errorf("%q is not host:port: %w", f.addr, err))
		}
	}
	b, err := encodeMeta(m, true)
	if err != nil {
		return fieldErr("Meta", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return fieldErr("Meta", fmt.Errorf("%w (%d bytes)", ErrMetaTooLarge, len(b)))
	}
	return nil
}
