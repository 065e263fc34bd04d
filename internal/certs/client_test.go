package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serverTLS is what a node will present: its certificate, and client
// certificates required and verified against the cluster CA.
func serverTLS(t *testing.T, dir, node string) *tls.Config {
	t.Helper()
	crt, key := Paths(dir, node)
	pair, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientCAs:    caPool(t, dir),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
}

// handshake serves one connection on loopback with srv and dials it with
// cli; it returns the client's error (from the handshake or the first
// read, where TLS 1.3 reports a rejected client certificate) and the
// peer node id the client saw.
func handshake(t *testing.T, srv, cli *tls.Config) (string, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if err := conn.(*tls.Conn).Handshake(); err != nil {
			return
		}
		conn.Write([]byte("ok"))
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), cli)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return "", err
	}
	id, _ := NodeID(conn.ConnectionState().PeerCertificates[0])
	return id, nil
}

func TestMutualTLSHandshakeAcceptsOnlyTheClusterCA(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	mustCreate(t, CreateOptions{Dir: dir, Nodes: []string{"n1"}, Clients: []string{"admin"}})
	mustCreate(t, CreateOptions{Dir: other, Clients: []string{"admin"}})
	srv := serverTLS(t, dir, "n1")
	ca := filepath.Join(dir, CACertFile)

	t.Run("client certificate of the cluster", func(t *testing.T) {
		cli, err := ClientTLS(ClientFiles{CAFile: ca, CertFile: filepath.Join(dir, "admin.crt"), KeyFile: filepath.Join(dir, "admin.key")})
		if err != nil {
			t.Fatal(err)
		}
		// tls.Dial takes the server name from the address: 127.0.0.1 is
		// an IP SAN of every node.
		id, err := handshake(t, srv, cli)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if id != "n1" {
			t.Fatalf("server names node %q, want n1", id)
		}
	})
	t.Run("client certificate of another CA", func(t *testing.T) {
		cli, err := ClientTLS(ClientFiles{CAFile: ca, CertFile: filepath.Join(other, "admin.crt"), KeyFile: filepath.Join(other, "admin.key")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := handshake(t, srv, cli); err == nil {
			t.Fatal("a client certificate of another CA was accepted")
		} else if !strings.Contains(err.Error(), "unknown certificate authority") {
			t.Fatalf("handshake: %v, want the server to name an unknown certificate authority", err)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		cli, err := ClientTLS(ClientFiles{CAFile: ca})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := handshake(t, srv, cli); err == nil {
			t.Fatal("a client without a certificate was accepted")
		} else if !strings.Contains(err.Error(), "certificate required") {
			t.Fatalf("handshake: %v, want the server to say a certificate is required", err)
		}
	})
	t.Run("server of another CA", func(t *testing.T) {
		cli, err := ClientTLS(ClientFiles{CAFile: filepath.Join(other, CACertFile), CertFile: filepath.Join(other, "admin.crt"), KeyFile: filepath.Join(other, "admin.key")})
		if err != nil {
			t.Fatal(err)
		}
		_, err = handshake(t, srv, cli)
		var unknown x509.UnknownAuthorityError
		if !errorsAsUnknownAuthority(err, &unknown) {
			t.Fatalf("handshake: %v, want the server rejected as signed by an unknown authority", err)
		}
	})
	t.Run("server name not in the certificate", func(t *testing.T) {
		cli, err := ClientTLS(ClientFiles{CAFile: ca, CertFile: filepath.Join(dir, "admin.crt"), KeyFile: filepath.Join(dir, "admin.key"), ServerName: "elsewhere.example"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := handshake(t, srv, cli); err == nil || !strings.Contains(err.Error(), "elsewhere.example") {
			t.Fatalf("handshake: %v, want a host name mismatch", err)
		}
	})
}

// errorsAsUnknownAuthority finds an x509.UnknownAuthorityError in err
// (tls wraps it in a *tls.CertificateVerificationError).
func errorsAsUnknownAuthority(err error, target *x509.UnknownAuthorityError) bool {
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		return false
	}
	return errors.As(verr.Err, target)
}

func TestClientTLSErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	mustCreate(t, CreateOptions{Dir: dir, Clients: []string{"admin", "bob"}})
	ca := filepath.Join(dir, CACertFile)
	crt, key := Paths(dir, "admin")
	_, bobKey := Paths(dir, "bob")
	notPEM := filepath.Join(dir, "notpem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files ClientFiles
		want  []string
	}{
		{"no CA", ClientFiles{CertFile: crt, KeyFile: key}, []string{"no CA file", "ca.crt"}},
		{"missing CA", ClientFiles{CAFile: filepath.Join(dir, "nope.crt")}, []string{"nope.crt"}},
		{"CA not PEM", ClientFiles{CAFile: notPEM}, []string{notPEM, "no PEM certificate"}},
		{"cert without key", ClientFiles{CAFile: ca, CertFile: crt}, []string{crt, "without its key"}},
		{"key without cert", ClientFiles{CAFile: ca, KeyFile: key}, []string{key, "without its certificate"}},
		{"key of another cert", ClientFiles{CAFile: ca, CertFile: crt, KeyFile: bobKey}, []string{crt, bobKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ClientTLS(tt.files)
			if err == nil {
				t.Fatal("ClientTLS succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}

	cfg, err := ClientTLS(ClientFiles{CAFile: ca, CertFile: crt, KeyFile: key, ServerName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ServerName != "n1" || len(cfg.Certificates) != 1 || cfg.RootCAs == nil {
		t.Fatalf("config: min %x server name %q certs %d", cfg.MinVersion, cfg.ServerName, len(cfg.Certificates))
	}
}
