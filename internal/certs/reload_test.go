package certs

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// echoServer serves TLS with cfg on loopback and echoes each line.
func echoServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
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
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// servedSerial dials addr trusting the CA in dir and returns the serial of
// the certificate the server presented, and the open connection.
func servedSerial(t *testing.T, addr, dir string) (*big.Int, *tls.Conn) {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.ConnectionState().PeerCertificates[0].SerialNumber, c
}

func echo(t *testing.T, c *tls.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		t.Fatalf("write on the connection opened before rotation: %v", err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != msg+"\n" {
		t.Fatalf("echo on the connection opened before rotation: %q, %v", got, err)
	}
}

func newTestReloader(t *testing.T, dir, name string) *Reloader {
	t.Helper()
	crt, key := Paths(dir, name)
	r, err := NewReloader(Files{CertFile: crt, KeyFile: key, CAFile: filepath.Join(dir, "ca.crt")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSIGHUPRotatesCertificateWhileClientsStayConnected(t *testing.T) {
	dir := t.TempDir()
	mustCreate(t, CreateOptions{Dir: dir, Nodes: []string{"n0"}})
	r := newTestReloader(t, dir, "n0")
	if r.NodeID() != "n0" {
		t.Fatalf("NodeID %q, want n0", r.NodeID())
	}
	addr := echoServer(t, r.ServerConfig())
	before, conn := servedSerial(t, addr, dir)

	// A fresh certificate for the same node from the same CA, as an
	// operator rotating it would write.
	mustCreate(t, CreateOptions{Dir: dir, Nodes: []string{"n0"}, Force: true})

	// Keep the test process alive on SIGHUP even before Run registers.
	hold := make(chan os.Signal, 1)
	signal.Notify(hold, syscall.SIGHUP)
	defer signal.Stop(hold)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { r.Run(ctx, time.Hour); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for r.Reloads() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no reload after SIGHUP")
		}
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		time.Sleep(20 * time.Millisecond)
	}
	after, _ := servedSerial(t, addr, dir)
	if after.Cmp(before) == 0 {
		t.Fatalf("new connections still get the old certificate (serial %v)", before)
	}
	echo(t, conn, "still here")
	cancel()
	<-done
}

func TestChangedFilesAreReloadedAndBadOnesRefused(t *testing.T) {
	dir := t.TempDir()
	mustCreate(t, CreateOptions{Dir: dir, Nodes: []string{"n0"}})
	r := newTestReloader(t, dir, "n0")
	addr := echoServer(t, r.ServerConfig())
	first, _ := servedSerial(t, addr, dir)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { r.Run(ctx, 20*time.Millisecond); close(done) }()

	mustCreate(t, CreateOptions{Dir: dir, Nodes: []string{"n0"}, Force: true})
	deadline := time.Now().Add(10 * time.Second)
	for r.Reloads() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("changed files were not reloaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	second, _ := servedSerial(t, addr, dir)
	if second.Cmp(first) == 0 {
		t.Fatal("still serving the first certificate")
	}

	// A half-written certificate is refused and the current one stays.
	crt, _ := Paths(dir, "n0")
	if err := os.WriteFile(crt, []byte("-----BEGIN CERTIFICATE-----\ntrunc"), 0o644); err != nil {
		t.Fatal(err)
	}
	for r.Failures() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a broken certificate file was not noticed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	still, _ := servedSerial(t, addr, dir)
	if still.Cmp(second) != 0 {
		t.Fatalf("serving serial %v after a refused reload, want %v", still, second)
	}
	cancel()
	<-done
}

func TestReloaderRefusesACertificateItsCADidNotSign(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	mustCreate(t, CreateOptions{Dir: a, Nodes: []string{"n0"}})
	mustCreate(t, CreateOptions{Dir: b, Nodes: []string{"n0"}})
	crt, key := Paths(a, "n0")
	if _, err := NewReloader(Files{CertFile: crt, KeyFile: key, CAFile: filepath.Join(b, "ca.crt")}, nil); err == nil {
		t.Fatal("a certificate from another CA was accepted")
	}
	if _, err := NewReloader(Files{CertFile: crt, KeyFile: key}, nil); err == nil {
		t.Fatal("TLS without a CA file was accepted")
	}
}

func TestPeerConfigsAcceptOnlyNodesOfTheCA(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	mustCreate(t, CreateOptions{Dir: dir, Nodes: []string{"n0", "n1"}, Clients: []string{"admin"}})
	mustCreate(t, CreateOptions{Dir: other, Nodes: []string{"n1"}})
	server := newTestReloader(t, dir, "n0")
	cases := []struct {
		name   string
		client *Reloader
		ok     bool
		id     string
	}{
		{"node of the CA", newTestReloader(t, dir, "n1"), true, "n1"},
		{"client certificate of the CA", newTestReloader(t, dir, "admin"), false, ""},
	}
	crt, key := Paths(other, "n1")
	foreign := &Reloader{files: Files{CertFile: crt, KeyFile: key, CAFile: filepath.Join(other, "ca.crt")}}
	if _, err := foreign.Reload(); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, struct {
		name   string
		client *Reloader
		ok     bool
		id     string
	}{"node of another CA", foreign, false, ""})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := tls.Listen("tcp", "127.0.0.1:0", server.PeerServerConfig())
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			got := make(chan string, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					got <- ""
					return
				}
				defer c.Close()
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					got <- ""
					return
				}
				id, _ := PeerNodeID(tc.ConnectionState())
				got <- id
			}()
			c, err := tls.Dial("tcp", ln.Addr().String(), tc.client.PeerClientConfig())
			if err == nil {
				// TLS 1.3 reports a refused client certificate on the first read.
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				_, err = c.Read(make([]byte, 1))
				c.Close()
			}
			id := <-got
			if tc.ok && id != tc.id {
				t.Fatalf("server saw peer %q (client err %v), want %q", id, err, tc.id)
			}
			if !tc.ok && id != "" {
				t.Fatalf("server accepted peer %q", id)
			}
		})
	}
}
