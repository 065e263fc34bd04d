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
	redirectVia := func(name string, live []*listenerNode, leader string) {
		t.Helper()
		for _, ln := range live {
			if ln.id == leader {
				continue
			}
			_, err := skiffpb.NewProducerClient(ln.conns[name]).Produce(ctx, &skiffpb.ProduceRequest{Topic: "orders", Records: []*skiffpb.Record{{Value: []byte("x")}}})
			st := wantCode(t, err, codes.FailedPrecondition)
			nl := notLeaderDetail(st)
			want := byListenerID(live, leader).addrs[name]
			if nl == nil || nl.LeaderAddr != want {
				t.Fatalf("redirect from %s on listener %s: %v, want the leader at %s", ln.id, name, nl, want)
			}
		}
	}

	insideLeader, insideAddr := leaderVia("inside", nodes[0].conns["inside"], nodes)
	outsideLeader, outsideAddr := leaderVia("outside", nodes[1].conns["outside"], nodes)
	if insideLeader != outsideLeader || insideAddr != byListenerID(nodes, insideLeader).addrs["inside"] ||
		outsideAddr != byListenerID(nodes, insideLeader).addrs["outside"] {
		t.Fatalf("leader %s at %s inside, %s at %s outside", insideLeader, insideAddr, outsideLeader, outsideAddr)
	}
	redirectVia("inside", nodes, insideLeader)
	redirectVia("outside", nodes, insideLeader)
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

	// Fail the leader over: both listeners follow it.
	old := byListenerID(nodes, insideLeader)
	old.stop()
	var live []*listenerNode
	for _, ln := range nodes {
		if ln != old {
			live = append(live, ln)
		}
	}
	newInside, _ := leaderVia("inside", live[0].conns["inside"], live)
	newOutside, _ := leaderVia("outside", live[1].conns["outside"], live)
	if newInside == insideLeader || newInside != newOutside {
		t.Fatalf("after failover: leader %s inside, %s outside (old %s)", newInside, newOutside, insideLeader)
	}
	redirectVia("inside", live, newInside)
	redirectVia("outside", live, newInside)
}

func byListenerID(nodes []*listenerNode, id string) *listenerNode {
	for _, ln := range nodes {
		if ln.id == id {
			return ln
		}
	}
	return &listenerNode{addrs: map[string]string{}}
}
