package proxy

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// echoServer echoes every connection until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestProxyDelaysEachDirectionAndKeepsBytes(t *testing.T) {
	tests := []struct {
		name          string
		delay, jitter time.Duration
		size          int
	}{
		{"no delay", 0, 0, 1 << 10},
		{"delay", 40 * time.Millisecond, 0, 1 << 10},
		{"delay with jitter, many chunks", 20 * time.Millisecond, 20 * time.Millisecond, 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Start(Config{Listen: "127.0.0.1:0", Target: echoServer(t), Delay: tt.delay, Jitter: tt.jitter})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			c, err := net.Dial("tcp", p.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			want := bytes.Repeat([]byte("0123456789abcdef"), tt.size/16)
			start := time.Now()
			go c.Write(want)
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			rtt := time.Since(start)
			if !bytes.Equal(got, want) {
				t.Fatal("bytes changed or reordered through the proxy")
			}
			// There and back: at least twice the fixed delay.
			if rtt < 2*tt.delay {
				t.Fatalf("round trip %v, want at least %v", rtt, 2*tt.delay)
			}
		})
	}
}

func TestProxyCloseEndsConnections(t *testing.T) {
	p, err := Start(Config{Listen: "127.0.0.1:0", Target: echoServer(t), Delay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(buf); err == nil {
		t.Fatal("read after Close succeeded, want the connection closed")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"ok", Config{Listen: ":0", Target: "127.0.0.1:1", Delay: time.Millisecond}, true},
		{"no target", Config{Listen: ":0"}, false},
		{"negative delay", Config{Listen: ":0", Target: "a:1", Delay: -1}, false},
	}
	for _, tt := range tests {
		if err := tt.cfg.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
