package rpc

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// listenerNode is a node serving two named client listeners, "inside" and
// "outside" (a container network and the host, say), plus "extra", which
// it serves but never advertised.
type listenerNode struct {
	id     string
	node   *cluster.Node
	srv    *Server
	addrs  map[string]string // listener -> address
	conns  map[string]*grpc.ClientConn
	served chan error
}

func startListenerCluster(t *testing.T, count int) []*listenerNode {
	t.Helper()
	dir := t.TempDir()
	var nodes []*listenerNode
	t.Cleanup(func() {
		for _, ln := range nodes {
			ln.stop()
		}
	})
	for i := range count {
		id := fmt.Sprintf("l%d", i)
		cfg := cluster.LoopbackConfig(filepath.Join(dir, id), id, count)
		if i > 0 {
			cfg.Join = []string{nodes[0].node.GossipAddr()}
		}
		ln := &listenerNode{id: id, addrs: map[string]string{}, conns: map[string]*grpc.ClientConn{}, served: make(chan error, 3)}
		bound := map[string]net.Listener{}
		for _, name := range []string{"inside", "outside", "extra"} {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			bound[name], ln.addrs[name] = l, l.Addr().String()
		}
		cfg.GRPCAddr = ln.addrs["inside"]
		cfg.Listeners = map[string]string{"inside": ln.addrs["inside"], "outside": ln.addrs["outside"]}
		n, err := cluster.Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		ln.node, ln.srv = n, NewServer(n)
		for name, l := range bound {
			go func() { ln.served <- ln.srv.ServeListener(name, l) }()
			c, err := grpc.NewClient(ln.addrs[name], grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			ln.conns[name] = c
		}
		nodes = append(nodes, ln)
	}
	ctx := ctxFor(t, 60*time.Second)
	for _, ln := range nodes {
		if err := ln.node.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

func (ln *listenerNode) stop() {
	if ln.node == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range ln.conns {
		c.Close()
	}
	ln.srv.Stop(ctx)
	for range 3 {
		<-ln.served
	}
	ln.node.Close(ctx)
	ln.node = nil
}

// A client is only ever given addresses of the listener it connected on:
// in metadata, in not-leader redirects and coordinator lookups, before and
// after the leader fails over; a listener some node lacks gets an error
// naming it instead of an address the client cannot use.
func TestClientsStayOnTheirListener(t *testing.T) {
	nodes := startListenerCluster(t, 3)
	addrsOf := func(name string, live []*listenerNode) []string {
		var out []string
		for _, ln := range live {
			out = append(out, ln.addrs[name])
		}
		return out
	}
	ctx := ctxFor(t, 60*time.Second)
	admin := skiffpb.NewAdminClient(nodes[0].conns["inside"])
	if _, err := admin.CreateTopic(ctx, &skiffpb.CreateTopicRequest{Name: "orders", Partitions: 1, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}

	// leaderVia waits until metadata asked on conn names a leader, and
	// checks that every address in it belongs to listener name.
	leaderVia := func(name string, conn *grpc.ClientConn, live []*listenerNode) (id, addr string) {
		t.Helper()
		var md *skiffpb.MetadataResponse
		waitFor(t, 30*time.Second, "a leader in the metadata on listener "+name, func() bool {
			var err error
			md, err = skiffpb.NewAdminClient(conn).Metadata(ctx, &skiffpb.MetadataRequest{Topics: []string{"orders"}})
			if err != nil || len(md.Topics) != 1 || md.Topics[0].Partitions[0].LeaderAddr == "" {
				return false
			}
			return slices.Contains(addrsOf(name, live), md.Topics[0].Partitions[0].LeaderAddr)
		})
		for _, b := range md.Brokers {
			if b.State == "alive" && !slices.Contains(addrsOf(name, nodes), b.GrpcAddr) {
				t.Fatalf("metadata on listener %s lists broker %s at %s, not on that listener", name, b.Id, b.GrpcAddr)
			}
		}
		p := md.Topics[0].Partitions[0]
		return p.LeaderId, p.LeaderAddr
	}
	// redirectVia checks that every follower's not-leader answer on
	// listener name names the leader by its address on that listener.
	// Leadership may move while it looks (elections on a loaded machine),
	// so an answer naming no leader, or another leader than the metadata
	// just named, is asked again; an answer naming the right leader at an
	// address of the wrong listener fails at once.
	redirectVia := func(name string, live []*listenerNode) {
		t.Helper()
		var last string
		deadline := time.Now().Add(30 * time.Second)
		for !func() bool {
			leader, _ := leaderVia(name, live[0].conns[name], live)
			for _, ln := range live {
				if ln.id == leader {
					continue
				}
				_, err := skiffpb.NewProducerClient(ln.conns[name]).Produce(ctx, &skiffpb.ProduceRequest{Topic: "orders", Records: []*skiffpb.Record{{Value: []byte("x")}}})
				st, _ := status.FromError(err)
				nl := notLeaderDetail(st)
				if err == nil || st.Code() != codes.FailedPrecondition || nl == nil || nl.LeaderId != leader {
					last = fmt.Sprintf("%s answered %v with %v, metadata names %s", ln.id, err, nl, leader)
					return false
				}
				if want := byListenerID(live, leader).addrs[name]; nl.LeaderAddr != want {
					t.Fatalf("redirect from %s on listener %s: %v, want the leader at %s", ln.id, name, nl, want)
				}
			}
			return true
		}() {
			if time.Now().After(deadline) {
				t.Fatalf("no settled not-leader answers on listener %s in 30s; last: %s", name, last)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// agreedLeader waits until both listeners' metadata name one leader,
	// at its address on each.
	agreedLeader := func(live []*listenerNode) string {
		t.Helper()
		var leader string
		waitFor(t, 30*time.Second, "both listeners naming one leader", func() bool {
			inside, insideAddr := leaderVia("inside", live[0].conns["inside"], live)
			outside, outsideAddr := leaderVia("outside", live[1].conns["outside"], live)
			if inside != outside {
				return false // moved between the two looks
			}
			if insideAddr != byListenerID(live, inside).addrs["inside"] || outsideAddr != byListenerID(live, inside).addrs["outside"] {
				t.Fatalf("leader %s at %s inside, at %s outside", inside, insideAddr, outsideAddr)
			}
			leader = inside
			return true
		})
		return leader
	}

	insideLeader := agreedLeader(nodes)
	redirectVia("inside", nodes)
	redirectVia("outside", nodes)
	for _, ns := range nodes[0].node.Status(ctx).Nodes {
		ln := byListenerID(nodes, ns.ID)
		if len(ns.Listeners) != 2 || ns.Listeners["inside"] != ln.addrs["inside"] || ns.Listeners["outside"] != ln.addrs["outside"] {
			t.Fatalf("cluster status shows %s's listeners as %v", ns.ID, ns.Listeners)
		}
	}
	for _, name := range []string{"inside", "outside"} {
		var fc *skiffpb.FindCoordinatorResponse
		waitFor(t, 30*time.Second, "a coordinator on listener "+name, func() bool {
			var err error
			fc, err = skiffpb.NewGroupsClient(nodes[2].conns[name]).FindCoordinator(ctx, &skiffpb.FindCoordinatorRequest{Group: "billing"})
			return err == nil
		})
		if fc.Addr != byListenerID(nodes, fc.NodeId).addrs[name] {
			t.Fatalf("coordinator on listener %s: %v", name, fc)
		}
	}

	// "extra" is served but advertised by no node.
	_, err := skiffpb.NewGroupsClient(nodes[0].conns["extra"]).FindCoordinator(ctx, &skiffpb.FindCoordinatorRequest{Group: "billing"})
	if st := wantCode(t, err, codes.Unavailable); errorReason(st) != ReasonListenerNotFound {
		t.Fatalf("coordinator on an unadvertised listener: reason %q (%s)", errorReason(st), st.Message())
	}
	md, err := skiffpb.NewAdminClient(nodes[0].conns["extra"]).Metadata(ctx, &skiffpb.MetadataRequest{Topics: []string{"orders"}})
	if err != nil || len(md.Brokers) != 0 || md.Topics[0].Partitions[0].LeaderAddr != "" {
		t.Fatalf("metadata on an unadvertised listener: %v, %v: want no broker and no leader address", md, err)
	}
	dc, err := skiffpb.NewAdminClient(nodes[0].conns["extra"]).DescribeCluster(ctx, &skiffpb.DescribeClusterRequest{})
	if err != nil || len(dc.Brokers) != 3 {
		t.Fatalf("describe cluster on an unadvertised listener: %v, %v: want the 3 nodes", dc, err)
	}
	for _, b := range dc.Brokers {
		if b.GrpcAddr != "" {
			t.Fatalf("describe cluster on an unadvertised listener shows %s at %s: another listener's address", b.Id, b.GrpcAddr)
		}
	}

	// Fail the leader over: both listeners follow it.
	old := byListenerID(nodes, insideLeader)
	old.stop()
	var live []*listenerNode
	for _, ln := range nodes {
		if ln != old {
			live = append(live, ln)
		}
	}
	newLeader := agreedLeader(live)
	if newLeader == insideLeader {
		t.Fatalf("after failover: leader still %s", newLeader)
	}
	redirectVia("inside", live)
	redirectVia("outside", live)
}

func byListenerID(nodes []*listenerNode, id string) *listenerNode {
	for _, ln := range nodes {
		if ln.id == id {
			return ln
		}
	}
	return &listenerNode{addrs: map[string]string{}}
}
