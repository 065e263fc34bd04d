package rpc

import (
	"context"
	"crypto/tls"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/internal/certs"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// secureNode is a one-node cluster serving gRPC over TLS with the
// certificates in dir (or in plaintext: startPlainNode).
type secureNode struct {
	node    *cluster.Node
	srv     *Server
	addr    string
	dataDir string
	tls     *certs.Reloader
	served  chan error
}

// startSecureNode starts a node with TLS from dir's n0 certificate; opts
// are added to the server's (WithAuth, say).
func startSecureNode(t *testing.T, dir string, opts ...Option) *secureNode {
	t.Helper()
	crt, key := certs.Paths(dir, "n0")
	r, err := certs.NewReloader(certs.Files{CertFile: crt, KeyFile: key, CAFile: filepath.Join(dir, certs.CACertFile)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return startNodeWith(t, r, opts...)
}

// startPlainNode starts a node without TLS.
func startPlainNode(t *testing.T, opts ...Option) *secureNode {
	t.Helper()
	return startNodeWith(t, nil, opts...)
}

func startNodeWith(t *testing.T, r *certs.Reloader, opts ...Option) *secureNode {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "n0")
	cfg := cluster.LoopbackConfig(dataDir, "n0", 1)
	cfg.MetaVoters = 1
	if r != nil {
		cfg.TLS = r
		opts = append([]Option{WithTLS(r.ServerConfig())}, opts...)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.GRPCAddr = ln.Addr().String()
	n, err := cluster.Start(context.Background(), cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	sn := &secureNode{node: n, srv: NewServer(n, opts...), addr: cfg.GRPCAddr, dataDir: dataDir, tls: r, served: make(chan error, 1)}
	go func() { sn.served <- sn.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sn.srv.Stop(ctx)
		<-sn.served
		n.Close(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return sn
}

// clientTLS trusts the CA in caDir and presents the client certificate
// name from certDir ("" for none).
func clientTLS(t *testing.T, caDir, certDir, name string) *tls.Config {
	t.Helper()
	f := certs.ClientFiles{CAFile: filepath.Join(caDir, certs.CACertFile)}
	if name != "" {
		f.CertFile, f.KeyFile = certs.Paths(certDir, name)
	}
	cfg, err := certs.ClientTLS(f)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func listTopics(addr string, creds credentials.TransportCredentials) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = skiffpb.NewAdminClient(conn).ListTopics(ctx, &skiffpb.ListTopicsRequest{})
	return err
}

func TestTLSNodeRefusesStrangerClients(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	dir, other := t.TempDir(), t.TempDir()
	if err := certs.Create(certs.CreateOptions{Dir: dir, Nodes: []string{"n0"}, Clients: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	if err := certs.Create(certs.CreateOptions{Dir: other, Nodes: []string{"n0"}, Clients: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	sn := startSecureNode(t, dir)
	cases := []struct {
		name  string
		creds credentials.TransportCredentials
		ok    bool
	}{
		{"plaintext client", insecure.NewCredentials(), false},
		{"client certificate from another CA", credentials.NewTLS(clientTLS(t, dir, other, "admin")), false},
		{"server checked against another CA", credentials.NewTLS(clientTLS(t, other, dir, "admin")), false},
		{"client certificate of the cluster CA", credentials.NewTLS(clientTLS(t, dir, dir, "admin")), true},
		// Until client authentication is switched on (--auth), TLS without
		// a client certificate is a client like any other.
		{"TLS without a client certificate", credentials.NewTLS(clientTLS(t, dir, "", "")), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := listTopics(sn.addr, tc.creds)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("served")
			}
		})
	}
}

func TestSIGHUPRotatesTheGRPCCertificateUnderConnectedClients(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	dir := t.TempDir()
	if err := certs.Create(certs.CreateOptions{Dir: dir, Nodes: []string{"n0"}, Clients: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	sn := startSecureNode(t, dir)
	serial := func() *big.Int {
		t.Helper()
		c, err := tls.Dial("tcp", sn.addr, clientTLS(t, dir, dir, "admin"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber
	}
	before := serial()
	conn, err := grpc.NewClient(sn.addr, grpc.WithTransportCredentials(credentials.NewTLS(clientTLS(t, dir, dir, "admin"))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	admin := skiffpb.NewAdminClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.CreateTopic(ctx, &skiffpb.CreateTopicRequest{Name: "rotating", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}

	if err := certs.Create(certs.CreateOptions{Dir: dir, Nodes: []string{"n0"}, Force: true}); err != nil {
		t.Fatal(err)
	}
	hold := make(chan os.Signal, 1)
	signal.Notify(hold, syscall.SIGHUP)
	defer signal.Stop(hold)
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sn.tls.Run(rctx, time.Hour); close(done) }()
	defer func() { stop(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for sn.tls.Reloads() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no reload after SIGHUP")
		}
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		time.Sleep(20 * time.Millisecond)
	}
	if after := serial(); after.Cmp(before) == 0 {
		t.Fatalf("new connections still get serial %v", before)
	}
	// The client connected before the rotation keeps working.
	resp, err := admin.ListTopics(ctx, &skiffpb.ListTopicsRequest{})
	if err != nil {
		t.Fatalf("connected client after rotation: %v", err)
	}
	if len(resp.Topics) != 1 || resp.Topics[0].Name != "rotating" {
		t.Fatalf("topics %v", resp.Topics)
	}
	// And the node still trusts its own new certificate on the peer
	// channel: describe fans out through it.
	if _, err := admin.DescribeTopic(ctx, &skiffpb.DescribeTopicRequest{Name: "rotating"}); err != nil {
		t.Fatalf("describe after rotation: %v", err)
	}
}
