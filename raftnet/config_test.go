package raftnet

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestMuxConfigValidate(t *testing.T) {
	base := DefaultMuxConfig()
	base.NodeID = "n1"
	tests := []struct {
		name    string
		mutate  func(*MuxConfig)
		wantErr string // substring; "" means valid
	}{
		{"defaults with a node id", func(*MuxConfig) {}, ""},
		{"zero optional fields mean defaults", func(c *MuxConfig) { *c = MuxConfig{NodeID: "n1"} }, ""},
		{"advertise host name", func(c *MuxConfig) { c.Advertise = "skiff-1.internal:9401" }, ""},
		{"missing node id", func(c *MuxConfig) { c.NodeID = "" }, "NodeID"},
		{"node id with space", func(c *MuxConfig) { c.NodeID = "node 1" }, "NodeID"},
		{"advertise without port", func(c *MuxConfig) { c.Advertise = "10.0.0.1" }, "Advertise"},
		{"advertise unspecified", func(c *MuxConfig) { c.Advertise = "0.0.0.0:9401" }, "not advertisable"},
		{"advertise port 0", func(c *MuxConfig) { c.Advertise = "10.0.0.1:0" }, "port"},
		{"negative header timeout", func(c *MuxConfig) { c.HeaderTimeout = -time.Second }, "HeaderTimeout"},
		{"negative pending", func(c *MuxConfig) { c.MaxPendingHandshakes = -1 }, "MaxPendingHandshakes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate = %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// fakeAddrListener reports a chosen address, to test what NewMux would
// advertise without binding a wildcard address in tests.
type fakeAddrListener struct {
	net.Listener
	addr net.Addr
}

func (l fakeAddrListener) Addr() net.Addr { return l.addr }

func TestNewMuxRefusesToAdvertiseAnUnspecifiedAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wildcard := fakeAddrListener{ln, &net.TCPAddr{IP: net.IPv4zero, Port: 9401}}

	cfg := DefaultMuxConfig()
	cfg.NodeID = "n1"
	if _, err := NewMux(wildcard, cfg); !errors.Is(err, ErrNotAdvertisable) {
		t.Fatalf("NewMux on 0.0.0.0 = %v, want ErrNotAdvertisable", err)
	}

	cfg.Advertise = "skiff-1.internal:9401"
	m, err := NewMux(wildcard, cfg)
	if err != nil {
		t.Fatalf("NewMux with Advertise: %v", err)
	}
	defer m.Close()
	l := mustLayer(t, m, "meta")
	if got := l.Addr().String(); got != cfg.Advertise {
		t.Fatalf("StreamLayer.Addr = %q, want the advertised %q", got, cfg.Advertise)
	}
}
