package client

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// leaderBroker answers Metadata for topic "t" (one partition) with the
// leader the test sets, and counts the calls.
type leaderBroker struct {
	skiffpb.UnimplementedAdminServer
	view  *clusterView
	calls atomic.Int32
}

// clusterView is what every fake broker answers: the brokers and the
// partition's leader.
type clusterView struct {
	mu      sync.Mutex
	brokers []*skiffpb.Broker
	leader  string // broker id
}

func (b *leaderBroker) Metadata(context.Context, *skiffpb.MetadataRequest) (*skiffpb.MetadataResponse, error) {
	b.calls.Add(1)
	b.view.mu.Lock()
	defer b.view.mu.Unlock()
	return &skiffpb.MetadataResponse{
		Brokers: b.view.brokers,
		Topics: []*skiffpb.TopicMetadata{{Name: "t", Partitions: []*skiffpb.PartitionMetadata{
			{Partition: 0, LeaderId: b.view.leader, Replicas: []string{"a", "b"}},
		}}},
	}, nil
}

func serveLeaderBroker(t *testing.T, b *leaderBroker) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	skiffpb.RegisterAdminServer(srv, b)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// A leader that lets a request run into its deadline is not trusted from
// metadata fetched before that: the next lookup asks the cluster again
// (not the silent broker first) and goes to the leader named now. An answer
// from the broker clears the silence.
func TestSilentLeaderMakesTheNextLookupRefresh(t *testing.T) {
	view := &clusterView{leader: "a"}
	a, b := &leaderBroker{view: view}, &leaderBroker{view: view}
	addrA, addrB := serveLeaderBroker(t, a), serveLeaderBroker(t, b)
	view.brokers = []*skiffpb.Broker{{Id: "a", GrpcAddr: addrA}, {Id: "b", GrpcAddr: addrB}}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := New(ctx, Config{Brokers: []string{addrA, addrB}, MetadataMaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	leader := func() string {
		t.Helper()
		addr, err := c.meta.leader(ctx, "t", 0, false)
		if err != nil {
			t.Fatal(err)
		}
		return addr
	}
	if got := leader(); got != addrA {
		t.Fatalf("leader %s, want a at %s", got, addrA)
	}

	// The cluster elects b; the client's cache, an hour fresh, still says a.
	view.mu.Lock()
	view.leader = "b"
	view.mu.Unlock()
	if got := leader(); got != addrA {
		t.Fatalf("leader %s before any sign of trouble, want the cached a", got)
	}

	c.observe(addrA, context.DeadlineExceeded)
	if order := c.brokerOrder(); order[len(order)-1] != addrA {
		t.Fatalf("broker order %v: the silent broker should come last", order)
	}
	callsA := a.calls.Load()
	if got := leader(); got != addrB {
		t.Fatalf("leader %s after a went silent, want b at %s", got, addrB)
	}
	if n := a.calls.Load() - callsA; n != 0 {
		t.Fatalf("the refresh asked the silent broker %d times, want the other first", n)
	}
	if got := leader(); got != addrB {
		t.Fatalf("leader %s on the next lookup, want b (no refresh loop)", got)
	}

	// An answer from a ends its silence.
	c.observe(addrA, nil)
	if _, silent := c.silentSince(addrA); silent {
		t.Fatal("a still silent after it answered")
	}
	// An answer that is an error is still an answer; a lost connection is not.
	c.observe(addrB, context.DeadlineExceeded)
	c.observe(addrB, ErrUnavailable)
	if _, silent := c.silentSince(addrB); !silent {
		t.Fatal("b not silent after a deadline and an unavailable")
	}
	c.observe(addrB, &InvalidArgumentError{Field: "x", Reason: "y"})
	if _, silent := c.silentSince(addrB); silent {
		t.Fatal("b still silent after it answered with an error")
	}
}
