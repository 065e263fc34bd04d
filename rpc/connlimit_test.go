package rpc

import (
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// With real loopback connections: the third connection from one IP is
// closed at accept and counted, the two open ones keep working, and once
// one closes a new one is accepted.
func TestConnectionsPerIPBeyondTheLimitAreClosedAtAccept(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	ln := LimitConnectionsPerIP(raw, 2, reg)
	defer ln.Close()

	// The server side echoes one byte per connection until it is closed.
	accepted := make(chan net.Conn, 8)
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
			go func() {
				defer c.Close()
				buf := make([]byte, 1)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	defer func() { ln.Close(); <-acceptDone }()

	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	echo := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte{'x'}); err != nil {
			return err
		}
		buf := make([]byte, 1)
		_, err := c.Read(buf)
		return err
	}
	a, b := dial(), dial()
	for _, c := range []net.Conn{a, b} {
		if err := echo(c); err != nil {
			t.Fatalf("a connection within the limit: %v", err)
		}
	}
	third := dial()
	if err := echo(third); err == nil {
		t.Fatal("the third connection from one IP was served")
	}
	if n := testutil.ToFloat64(ln.refused); n != 1 {
		t.Errorf("connections_refused_total{per_ip} = %v, want 1", n)
	}
	if n := testutil.ToFloat64(ln.openGauge); n != 2 {
		t.Errorf("connections_open = %v, want 2", n)
	}
	if n := testutil.CollectAndCount(reg, "skiff_rpc_connections_refused_total", "skiff_rpc_connections_open"); n != 2 {
		t.Errorf("%d metrics on the registry, want 2", n)
	}
	// The connections already open are intact.
	if err := echo(a); err != nil {
		t.Fatalf("an open connection after the refusal: %v", err)
	}

	// Closing one (the server side notices EOF and closes its end) frees
	// the slot.
	a.Close()
	waitFor(t, 5*time.Second, "the closed connection's slot freed", func() bool { return ln.Open("127.0.0.1") == 1 })
	if err := echo(dial()); err != nil {
		t.Fatalf("a connection after a slot freed up: %v", err)
	}
	if err := echo(b); err != nil {
		t.Fatal(err)
	}
}

// Through gRPC: a second client connection from the same IP is never
// served (its calls fail while the connection is reset at accept); the
// first one is.
func TestConnectionsPerIPLimitUnderGRPC(t *testing.T) {
	node := newFakeNode()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := LimitConnectionsPerIP(raw, 1, node.reg)
	srv := NewServer(node)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Stop(ctxFor(t, 5*time.Second))
		<-served
	}()
	first := dialGRPC(t, raw.Addr().String())
	ctx := ctxFor(t, 10*time.Second)
	if _, err := healthpb.NewHealthClient(first).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	second := dialGRPC(t, raw.Addr().String())
	short := ctxFor(t, 2*time.Second)
	_, err = healthpb.NewHealthClient(second).Check(short, &healthpb.HealthCheckRequest{})
	if err == nil {
		t.Fatal("a second connection from the same IP was served")
	}
	if n := testutil.ToFloat64(ln.refused); n < 1 {
		t.Errorf("connections_refused_total{per_ip} = %v", n)
	}
	if _, err := healthpb.NewHealthClient(first).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("the first connection after the refusal: %v", err)
	}
}

func dialGRPC(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
