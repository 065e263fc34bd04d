package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/consumergroup"
	"github.com/skiff-mq/skiff/internal/certs"
	"github.com/skiff-mq/skiff/raftnet"
)

// certDir issues a CA, node certificates for n0..n3 and a client
// certificate "admin" into a fresh directory.
func certDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := certs.Create(certs.CreateOptions{Dir: dir, Nodes: []string{"n0", "n1", "n2", "n3"}, Clients: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func reloaderFor(t *testing.T, dir, name string) *certs.Reloader {
	t.Helper()
	crt, key := certs.Paths(dir, name)
	r, err := certs.NewReloader(certs.Files{CertFile: crt, KeyFile: key, CAFile: filepath.Join(dir, "ca.crt")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// newSecureTestCluster starts count nodes with TLS on every port and mTLS
// between them.
func newSecureTestCluster(t *testing.T, count int, dir string) *testCluster {
	return newTestClusterWith(t, count, func(cfg *Config) { cfg.TLS = reloaderFor(t, dir, cfg.ID) })
}

// heartbeat sends the mildest Raft RPC there is to group on the node at
// addr over the given mux: an AppendEntries of term 0, which a member
// answers (refusing the stale term) and which disturbs nothing. A transport
// error means the connection was refused.
func heartbeat(t *testing.T, m *raftnet.Mux, group, addr string) error {
	t.Helper()
	hub, err := raftnet.NewHub(m, raftnet.HubConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	trans, err := hub.Transport(group, raftnet.TransportConfig{RPCTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer trans.Close()
	var resp raft.AppendEntriesResponse
	return trans.AppendEntries(raft.ServerID("victim"), raft.ServerAddress(addr),
		&raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(m.NodeID()), Addr: []byte(m.Addr().String())}, Term: 0}, &resp)
}

// strangerMux is a mux on loopback claiming node id, with TLS from tlsFor
// when it is not nil.
func strangerMux(t *testing.T, id string, tlsFor *certs.Reloader) *raftnet.Mux {
	t.Helper()
	cfg := raftnet.DefaultMuxConfig()
	cfg.NodeID = id
	if tlsFor != nil {
		cfg.TLS = &raftnet.MuxTLS{Server: tlsFor.PeerServerConfig(), Client: tlsFor.PeerClientConfig(), PeerID: certs.PeerNodeID}
	}
	m, err := raftnet.Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// foreignCA issues certificates from a CA the cluster does not trust.
func foreignCA(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := certs.Create(certs.CreateOptions{Dir: dir, Nodes: []string{"n1"}, Clients: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// offsetsGroup returns the Raft group name of __consumer_offsets partition
// 0, creating the topic first.
func offsetsGroup(t *testing.T, c *testCluster) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := c.anyNode()
	var topic *metadata.Topic
	waitFor(t, 30*time.Second, "__consumer_offsets created", func() bool {
		n.GroupCoordinator(ctx, "billing")
		topic = n.Metadata().Topics[consumergroup.OffsetsTopic]
		return topic != nil
	})
	c.waitAllLed(consumergroup.OffsetsTopic, 30*time.Second)
	return partitionKey{Topic: topic.Name, Partition: 0, TopicID: topic.ID}.group()
}

func TestStrangersCannotReachRaftGroups(t *testing.T) {
	dir := certDir(t)
	c := newSecureTestCluster(t, 3, dir)
	group := offsetsGroup(t, c)
	victim := c.nodes[0].node().RaftAddr()
	other := foreignCA(t)

	cases := []struct {
		name    string
		mux     func() *raftnet.Mux
		group   string
		refused bool
	}{
		{"no certificate, plaintext header for __consumer_offsets-0", func() *raftnet.Mux { return strangerMux(t, "n1", nil) }, group, true},
		{"no certificate, plaintext header for meta", func() *raftnet.Mux { return strangerMux(t, "n1", nil) }, metaGroupName, true},
		{"node certificate from another CA", func() *raftnet.Mux { return strangerMux(t, "n1", reloaderFor(t, other, "n1")) }, group, true},
		{"client certificate of the cluster CA", func() *raftnet.Mux { return strangerMux(t, "admin", reloaderFor(t, dir, "admin")) }, group, true},
		{"claims n2 with n3's certificate", func() *raftnet.Mux { return strangerMux(t, "n2", reloaderFor(t, dir, "n3")) }, group, true},
		// The control: the same request with a matching certificate is
		// answered, so the refusals above are the trust boundary at work.
		{"n3 with n3's certificate (control)", func() *raftnet.Mux { return strangerMux(t, "n3", reloaderFor(t, dir, "n3")) }, group, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := heartbeat(t, tc.mux(), tc.group, victim)
			if tc.refused && err == nil {
				t.Fatal("AppendEntries from a stranger was answered")
			}
			if !tc.refused && err != nil {
				t.Fatalf("AppendEntries from a cluster node refused: %v", err)
			}
		})
	}
	// The victim counts a refusal when its side of the handshake ends,
	// which may be just after the stranger's side saw it fail.
	for _, want := range []struct {
		reason string
		min    float64
	}{{"identity", 1}, {"handshake", 4}} {
		deadline := time.Now().Add(10 * time.Second)
		for refusedCount(t, c.nodes[0].node(), want.reason) < want.min && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := refusedCount(t, c.nodes[0].node(), want.reason); got < want.min {
			t.Errorf("skiff_peer_connections_refused_total{reason=%s} = %v, want >= %v", want.reason, got, want.min)
		}
	}
}

func refusedCount(t *testing.T, n *Node, reason string) float64 {
	t.Helper()
	mfs, err := n.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "skiff_peer_connections_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// deleteOffsetsCommand is the issue's reproduction: a metadata command that
// deletes __consumer_offsets.
func deleteOffsetsCommand(t *testing.T) []byte {
	t.Helper()
	raw, err := metadata.EncodeCommand(metadata.DeleteTopic{Name: consumergroup.OffsetsTopic})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// postEverywhere sends the raw metadata command as an HTTP POST to every
// port of n, plain and with TLS (trusting the cluster CA when pool is set).
func postEverywhere(t *testing.T, n *Node, grpcAddr string, raw []byte, pool *x509.CertPool) {
	t.Helper()
	addrs := []string{n.HTTPAddr(), n.RaftAddr(), n.GossipAddr()}
	if grpcAddr != "" {
		addrs = append(addrs, grpcAddr)
	}
	clients := map[string]*http.Client{"http": {Timeout: 2 * time.Second}}
	if pool != nil {
		clients["https"] = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	for scheme, hc := range clients {
		for _, addr := range addrs {
			for _, path := range []string{"/internal/v1/meta", "/v1/meta"} {
				resp, err := hc.Post(scheme+"://"+addr+path, "application/octet-stream", bytes.NewReader(raw))
				if err != nil {
					continue
				}
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
				resp.Body.Close()
				if resp.StatusCode < 400 {
					t.Errorf("POST %s://%s%s: %s %s", scheme, addr, path, resp.Status, body)
				}
			}
		}
	}
}

func TestMetadataCommandOverEveryListenerChangesNothing(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", secure), func(t *testing.T) {
			var c *testCluster
			var pool *x509.CertPool
			if secure {
				dir := certDir(t)
				c = newSecureTestCluster(t, 3, dir)
				pem, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
				if err != nil {
					t.Fatal(err)
				}
				pool = x509.NewCertPool()
				pool.AppendCertsFromPEM(pem)
			} else {
				c = newTestCluster(t, 3)
			}
			offsetsGroup(t, c)
			raw := deleteOffsetsCommand(t)
			for _, tn := range c.nodes {
				postEverywhere(t, tn.node(), "", raw, pool)
			}
			// A stranger on the Raft port posing as a peer: in plaintext it
			// names an id gossip does not know; with TLS it has no
			// certificate at all.
			if err := postOverMux(t, strangerMux(t, "stranger", nil), c.nodes[1].node().RaftAddr(), raw); err == nil {
				t.Error("a stranger's forwarded metadata command was accepted")
			}
			// A wrongly accepted command would apply within moments; watch
			// every node's metadata for a while.
			deadline := time.Now().Add(time.Second)
			for time.Now().Before(deadline) {
				for _, n := range c.running() {
					if n.Metadata().Topics[consumergroup.OffsetsTopic] == nil {
						t.Fatalf("%s: __consumer_offsets was deleted", n.ID())
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// postOverMux posts raw to the peer channel of the node at raftAddr through
// m, as a node would forward a metadata command.
func postOverMux(t *testing.T, m *raftnet.Mux, raftAddr string, raw []byte) error {
	t.Helper()
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return m.Dial(ctx, peerGroup, addr) },
	}}
	resp, err := hc.Post(peerURL(raftAddr, "/internal/v1/meta"), "application/octet-stream", bytes.NewReader(raw))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	if bytes.Contains(body, []byte(`"error"`)) {
		return fmt.Errorf("refused: %s", body)
	}
	return nil
}

func TestBrokerRegistersOnlyItself(t *testing.T) {
	dir := certDir(t)
	c := newSecureTestCluster(t, 3, dir)
	n2 := c.nodes[2].node()
	// Every node is ready once its own registration is applied; node 0 may
	// still be applying n2's.
	waitFor(t, 10*time.Second, "n0 sees n2 registered", func() bool {
		return c.nodes[0].node().Metadata().Brokers["n2"].RaftAddr == n2.RaftAddr()
	})
	hijack := metadata.Broker{ID: "n2", GRPCAddr: "127.0.0.1:1", RaftAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:1", GossipAddr: n2.GossipAddr()}
	raw, err := metadata.EncodeCommand(metadata.RegisterBroker{Broker: hijack})
	if err != nil {
		t.Fatal(err)
	}
	// n3 holds a genuine node certificate of the cluster CA, but may only
	// speak for itself.
	err = postOverMux(t, strangerMux(t, "n3", reloaderFor(t, dir, "n3")), c.nodes[0].node().RaftAddr(), raw)
	if err == nil || !strings.Contains(err.Error(), "may not register broker") {
		t.Fatalf("registration of n2 by n3: %v, want refused", err)
	}
	if got := c.nodes[0].node().Metadata().Brokers["n2"]; got.RaftAddr != n2.RaftAddr() {
		t.Fatalf("n2's broker entry changed to %+v", got)
	}
}

func TestNodeRefusesCertificateOfAnotherNode(t *testing.T) {
	dir := certDir(t)
	cfg := LoopbackConfig(t.TempDir(), "n2", 1)
	cfg.TLS = reloaderFor(t, dir, "n3")
	n, err := Start(context.Background(), cfg)
	if err == nil {
		n.Abort()
		t.Fatal("node n2 started with n3's certificate")
	}
	if !strings.Contains(err.Error(), `names node "n3"`) {
		t.Fatalf("error %q does not say whose certificate it is", err)
	}
}

func TestSecureClusterServesHTTPSOnly(t *testing.T) {
	dir := certDir(t)
	c := newSecureTestCluster(t, 3, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.createLedTopic(ctx, "orders", 3, 3)

	addr := c.nodes[1].node().HTTPAddr()
	if resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + "/v1/topics/orders"); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("plaintext GET answered %s", resp.Status)
		}
	}
	pem, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get("https://" + addr + "/v1/topics/orders")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"orders"`)) {
		t.Fatalf("https GET: %s %s", resp.Status, body)
	}
	// The peer channel carries describe's fan-out: every node's replicas
	// report their status through it.
	n0 := c.nodes[0].node()
	got := map[string]int{}
	for _, ps := range n0.gatherPartitionStatus(ctx, n0.Metadata()) {
		got[ps.Node]++
	}
	for _, tn := range c.nodes {
		if got[tn.cfg.ID] != 3 {
			t.Fatalf("replica status by node %v: want 3 from each node", got)
		}
	}
}

func TestPlaintextWarningOnlyBeyondLoopback(t *testing.T) {
	cases := []struct {
		addrs map[string]string
		warns []string
	}{
		{map[string]string{"grpc": "127.0.0.1:9400", "raft": "localhost:9401", "http": "[::1]:9403", "gossip": "127.0.0.1:9402"}, nil},
		{map[string]string{"grpc": ":9400", "raft": "0.0.0.0:9401", "http": "10.1.2.3:9403"}, []string{"grpc", "raft", "http"}},
		{map[string]string{"gossip": "0.0.0.0:9402"}, []string{"gossip"}},
		// Named client listeners, by advertised address.
		{map[string]string{"grpc": "127.0.0.1:9400", "grpc/internal": "skiff-1:9400", "grpc/external": "127.0.0.1:9410"}, []string{"grpc/internal"}},
	}
	for _, tc := range cases {
		var buf bytes.Buffer
		warnPlaintext(slog.New(slog.NewTextHandler(&buf, nil)), tc.addrs)
		out := buf.String()
		if got := strings.Count(out, "level=WARN"); got != len(tc.warns) {
			t.Errorf("%v: %d warnings, want %d:\n%s", tc.addrs, got, len(tc.warns), out)
		}
		for _, name := range tc.warns {
			if !strings.Contains(out, "listener="+name) {
				t.Errorf("%v: no warning for %s:\n%s", tc.addrs, name, out)
			}
		}
	}
}

func TestPeerCannotIssueControllerOrLegacyCommands(t *testing.T) {
	dir := certDir(t)
	c := newSecureTestCluster(t, 3, dir)
	offsetsGroup(t, c)
	controller, err := metadata.EncodeCommand(metadata.DeleteTopic{Name: consumergroup.OffsetsTopic, Controller: true})
	if err != nil {
		t.Fatal(err)
	}
	// The encoding from before internal topics were protected: type 3.
	legacy := append([]byte{byte(metadata.TypeDeleteTopic)}, []byte(`{"name":"`+consumergroup.OffsetsTopic+`"}`)...)
	peer := strangerMux(t, "n3", reloaderFor(t, dir, "n3"))
	for name, raw := range map[string][]byte{"controller-marked": controller, "legacy type": legacy} {
		for _, tn := range c.nodes {
			err := postOverMux(t, peer, tn.node().RaftAddr(), raw)
			if err == nil || !strings.Contains(err.Error(), "403") {
				t.Errorf("%s delete via %s: %v, want 403", name, tn.cfg.ID, err)
			}
		}
	}
	for _, n := range c.running() {
		if n.Metadata().Topics[consumergroup.OffsetsTopic] == nil {
			t.Fatalf("%s: __consumer_offsets was deleted", n.ID())
		}
	}
}
