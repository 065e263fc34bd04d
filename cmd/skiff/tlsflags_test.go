package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/skiff-mq/skiff/internal/certs"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// fakeAdmin answers Metadata and DescribeCluster as a one-node cluster.
type fakeAdmin struct {
	skiffpb.UnimplementedAdminServer
	addr string
}

func (a fakeAdmin) Metadata(context.Context, *skiffpb.MetadataRequest) (*skiffpb.MetadataResponse, error) {
	return &skiffpb.MetadataResponse{Brokers: []*skiffpb.Broker{{Id: "n1", GrpcAddr: a.addr, State: "alive"}}, ControllerId: "n1"}, nil
}

func (a fakeAdmin) DescribeCluster(context.Context, *skiffpb.DescribeClusterRequest) (*skiffpb.DescribeClusterResponse, error) {
	return &skiffpb.DescribeClusterResponse{Brokers: []*skiffpb.Broker{{Id: "n1", GrpcAddr: a.addr, State: "alive"}}, ControllerId: "n1"}, nil
}

// tlsNode is a fake node serving health and admin over mTLS on loopback
// with certificates from `skiff certs create`.
type tlsNode struct {
	addr, dir string
}

func (n tlsNode) file(name string) string { return filepath.Join(n.dir, name) }

// clientFlags are the TLS flags of the admin client.
func (n tlsNode) clientFlags() []string {
	return []string{"--tls-ca-file", n.file("ca.crt"), "--tls-cert-file", n.file("admin.crt"), "--tls-key-file", n.file("admin.key")}
}

func startTLSNode(t *testing.T) tlsNode {
	t.Helper()
	dir := t.TempDir()
	if _, err := execute(t, "certs", "create", "--dir", dir, "--nodes", "n1", "--clients", "admin"); err != nil {
		t.Fatal(err)
	}
	crt, key := certs.Paths(dir, "n1")
	pair, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := certs.ClientTLS(certs.ClientFiles{CAFile: filepath.Join(dir, "ca.crt")})
	if err != nil {
		t.Fatal(err)
	}
	srvTLS := &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: trust.RootCAs, ClientAuth: tls.RequireAndVerifyClientCert}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(srvTLS)))
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	skiffpb.RegisterAdminServer(srv, fakeAdmin{addr: ln.Addr().String()})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return tlsNode{addr: ln.Addr().String(), dir: dir}
}

func TestClientVerbsSpeakTLSWithTheTLSFlags(t *testing.T) {
	n := startTLSNode(t)

	out, err := execute(t, append([]string{"cluster", "status", "-o", "json", "--brokers", n.addr, "--timeout", "5s"}, n.clientFlags()...)...)
	if err != nil {
		t.Fatalf("cluster status over TLS: %v", err)
	}
	var status clusterStatusJSON
	if err := json.Unmarshal([]byte(out), &status); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if status.ControllerID != "n1" || len(status.Brokers) != 1 || status.Brokers[0].Addr != n.addr {
		t.Fatalf("status %+v", status)
	}

	_, err = execute(t, "cluster", "status", "--brokers", n.addr, "--timeout", "5s")
	if err == nil || !strings.Contains(err.Error(), "is it using TLS?") || !strings.Contains(err.Error(), "pass --tls-ca-file") {
		t.Fatalf("plaintext cluster status against TLS: %v, want a hint to pass --tls-ca-file", err)
	}
}

func TestHealthSpeaksTLSWithTheTLSFlagsOrEnvironment(t *testing.T) {
	n := startTLSNode(t)

	out, err := execute(t, append([]string{"health", "--addr", n.addr}, n.clientFlags()...)...)
	if err != nil || strings.TrimSpace(out) != "SERVING" {
		t.Fatalf("health over TLS: %q, %v", out, err)
	}

	// In a node's container the healthcheck inherits the node's
	// SKIFF_TLS_* variables.
	t.Setenv("SKIFF_TLS_CA_FILE", n.file("ca.crt"))
	t.Setenv("SKIFF_TLS_CERT_FILE", n.file("admin.crt"))
	t.Setenv("SKIFF_TLS_KEY_FILE", n.file("admin.key"))
	out, err = execute(t, "health", "--addr", n.addr, "-o", "json")
	if err != nil || !strings.Contains(out, `"status":"SERVING"`) {
		t.Fatalf("health over TLS from the environment: %q, %v", out, err)
	}
}

func TestHealthWithoutTLSFlagsAgainstATLSNodeSaysWhatToPass(t *testing.T) {
	n := startTLSNode(t)
	_, err := execute(t, "health", "--addr", n.addr)
	if err == nil || !strings.Contains(err.Error(), "pass --tls-ca-file") {
		t.Fatalf("plaintext health against TLS: %v, want a hint to pass --tls-ca-file", err)
	}
}

func TestTLSFlagsAreAllOrCAAtLeast(t *testing.T) {
	dir := t.TempDir()
	if _, err := execute(t, "certs", "create", "--dir", dir, "--clients", "admin"); err != nil {
		t.Fatal(err)
	}
	ca, crt, key := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "admin.crt"), filepath.Join(dir, "admin.key")
	tests := []struct {
		name string
		opts tlsOptions
		want string // error substring; empty: success
		tls  bool
	}{
		{"none: plaintext", tlsOptions{}, "", false},
		{"CA only", tlsOptions{caFile: ca}, "", true},
		{"all", tlsOptions{caFile: ca, certFile: crt, keyFile: key, serverName: "n1"}, "", true},
		{"server name alone", tlsOptions{serverName: "n1"}, "--tls-ca-file is required", false},
		{"cert without CA", tlsOptions{certFile: crt, keyFile: key}, "--tls-ca-file is required", false},
		{"cert without key", tlsOptions{caFile: ca, certFile: crt}, "--tls-cert-file given without --tls-key-file", false},
		{"key without cert", tlsOptions{caFile: ca, keyFile: key}, "--tls-key-file given without --tls-cert-file", false},
		{"missing CA file", tlsOptions{caFile: filepath.Join(dir, "nope.crt")}, "nope.crt", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.opts.config()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("config: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("config: %v, want an error containing %q", err, tt.want)
			case (cfg != nil) != tt.tls:
				t.Fatalf("TLS config %v, want TLS %v", cfg != nil, tt.tls)
			}
		})
	}

	// A verb refuses half-given flags before dialling anything.
	_, err := execute(t, "topic", "list", "--brokers", "127.0.0.1:1", "--tls-cert-file", crt)
	if err == nil || !strings.Contains(err.Error(), "--tls-ca-file is required") {
		t.Fatalf("topic list with --tls-cert-file alone: %v", err)
	}
}

func TestChaosRunChecksTheTLSFlagsFirst(t *testing.T) {
	_, err := execute(t, "chaos", "run", "--brokers", "127.0.0.1:1", "--tls-key-file", "admin.key", "--faults-script", "/nonexistent")
	if err == nil || !strings.Contains(err.Error(), "--tls-ca-file is required") {
		t.Fatalf("chaos run with --tls-key-file alone: %v", err)
	}
}
