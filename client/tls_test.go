package client

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/skiff-mq/skiff/internal/certs"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// metadataOnly is a broker that answers Metadata with itself.
type metadataOnly struct {
	skiffpb.UnimplementedAdminServer
	addr string
}

func (m metadataOnly) Metadata(context.Context, *skiffpb.MetadataRequest) (*skiffpb.MetadataResponse, error) {
	return &skiffpb.MetadataResponse{Brokers: []*skiffpb.Broker{{Id: "n1", GrpcAddr: m.addr, State: "alive"}}, ControllerId: "n1"}, nil
}

// startBroker serves Metadata on loopback until the test ends, over TLS
// when srvTLS is set.
func startBroker(t *testing.T, srvTLS *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if srvTLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(srvTLS)))
	}
	srv := grpc.NewServer(opts...)
	skiffpb.RegisterAdminServer(srv, metadataOnly{addr: ln.Addr().String()})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// clusterCerts creates a CA, node n1 and client admin in a temporary
// directory and returns n1's server TLS config (client certificates
// required) and the directory.
func clusterCerts(t *testing.T) (*tls.Config, string) {
	t.Helper()
	dir := t.TempDir()
	if err := certs.Create(certs.CreateOptions{Dir: dir, Nodes: []string{"n1"}, Clients: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	crt, key := certs.Paths(dir, "n1")
	pair, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	// The server trusts the cluster CA for client certificates: reuse
	// ClientTLS's pool rather than parse ca.crt again.
	pool, err := certs.ClientTLS(certs.ClientFiles{CAFile: filepath.Join(dir, certs.CACertFile)})
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool.RootCAs, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}, dir
}

// tls12 caps cfg at TLS 1.2, where the broker refuses a client
// certificate inside the handshake. Under TLS 1.3 the client finishes its
// half first and the refusal races with its first write: it may surface
// as the broker's alert or only as a reset connection.
func tls12(cfg *tls.Config) *tls.Config {
	cfg = cfg.Clone()
	cfg.MaxVersion = tls.VersionTLS12
	return cfg
}

func newClient(t *testing.T, addr string, cfg *tls.Config) (*Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := New(ctx, Config{Brokers: []string{addr}, RequestTimeout: 2 * time.Second, DialTimeout: 2 * time.Second, TLS: cfg})
	if err == nil {
		t.Cleanup(func() { cl.Close() })
	}
	return cl, err
}

func TestClientWithTLSTalksToATLSBroker(t *testing.T) {
	srvTLS, dir := clusterCerts(t)
	addr := startBroker(t, srvTLS)
	crt, key := certs.Paths(dir, "admin")
	cliTLS, err := certs.ClientTLS(certs.ClientFiles{CAFile: filepath.Join(dir, certs.CACertFile), CertFile: crt, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := newClient(t, addr, cliTLS)
	if err != nil {
		t.Fatalf("New over TLS: %v", err)
	}
	// New succeeded only if Metadata was answered over TLS; a second
	// call goes over the same connection, the broker's advertised one.
	resp, err := cl.metadataFrom(context.Background(), addr, nil)
	if err != nil {
		t.Fatalf("Metadata over TLS: %v", err)
	}
	if resp.GetControllerId() != "n1" || len(resp.GetBrokers()) != 1 {
		t.Fatalf("metadata %v", resp)
	}
}

func TestTLSMismatchSaysSo(t *testing.T) {
	srvTLS, dir := clusterCerts(t)
	tlsAddr := startBroker(t, srvTLS)
	plainAddr := startBroker(t, nil)
	ca := filepath.Join(dir, certs.CACertFile)
	noCert, err := certs.ClientTLS(certs.ClientFiles{CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	crt, key := certs.Paths(dir, "admin")
	wrongName, err := certs.ClientTLS(certs.ClientFiles{CAFile: ca, CertFile: crt, KeyFile: key, ServerName: "elsewhere.example"})
	if err != nil {
		t.Fatal(err)
	}
	otherDir := t.TempDir()
	if err := certs.Create(certs.CreateOptions{Dir: otherDir, Clients: []string{"intruder"}}); err != nil {
		t.Fatal(err)
	}
	otherCrt, otherKey := certs.Paths(otherDir, "intruder")
	foreignClient, err := certs.ClientTLS(certs.ClientFiles{CAFile: ca, CertFile: otherCrt, KeyFile: otherKey})
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := certs.ClientTLS(certs.ClientFiles{CAFile: filepath.Join(otherDir, certs.CACertFile), CertFile: crt, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		addr string
		tls  *tls.Config
		want error
	}{
		{"plaintext client, TLS broker", tlsAddr, nil, ErrBrokerWantsTLS},
		{"TLS client, plaintext broker", plainAddr, noCert, ErrBrokerNotTLS},
		{"no client certificate", tlsAddr, tls12(noCert), ErrClientCertRefused},
		{"client certificate of another CA", tlsAddr, tls12(foreignClient), ErrClientCertRefused},
		{"certificate of another CA", tlsAddr, otherCA, ErrBrokerCertRejected},
		{"name not in the broker's certificate", tlsAddr, wrongName, ErrBrokerCertRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newClient(t, tt.addr, tt.tls)
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrUnavailable) {
				t.Fatalf("New: %v, want %v (and unavailable)", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want.Error()) {
				t.Fatalf("New: %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestTLSCauseFromGRPCStatusText(t *testing.T) {
	cases := []struct {
		msg  string
		want error
	}{
		{`connection error: desc = "error reading server preface: EOF"`, ErrBrokerWantsTLS},
		{`connection error: desc = "error reading server preface: read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"`, ErrBrokerWantsTLS},
		{`connection error: desc = "transport: authentication handshake failed: tls: first record does not look like a TLS handshake"`, ErrBrokerNotTLS},
		{`connection error: desc = "transport: authentication handshake failed: remote error: tls: certificate required"`, ErrClientCertRefused},
		{`connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`, ErrBrokerCertRejected},
		{`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`, nil},
	}
	for _, tc := range cases {
		if got := tlsCause(tc.msg); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.msg, got, tc.want)
		}
	}
}
