package client

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// twoBrokers serves brokers a and b, which answer from one view in which a
// leads, and a client of both whose cached metadata never ages out.
func twoBrokers(t *testing.T) (view *clusterView, a *leaderBroker, addrA, addrB string, c *Client) {
	t.Helper()
	view = &clusterView{leader: "a"}
	a, b := &leaderBroker{view: view}, &leaderBroker{view: view}
	addrA, addrB = serveAdmin(t, a), serveAdmin(t, b)
	view.brokers = []*skiffpb.Broker{{Id: "a", GrpcAddr: addrA}, {Id: "b", GrpcAddr: addrB}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := New(ctx, Config{Brokers: []string{addrA, addrB}, MetadataMaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return view, a, addrA, addrB, c
}

// A leader that lets a request run into its deadline is not trusted from
// metadata fetched before that: the next lookup asks the cluster again
// (not the silent broker first) and goes to the leader named now. An answer
// from the broker clears the silence.
func TestSilentLeaderMakesTheNextLookupRefresh(t *testing.T) {
	view, a, addrA, addrB, c := twoBrokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
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

// A broker that answers "not the leader, no leader known" (a node cut off
// from the others) is not asked again on the strength of the cached answer:
// the next lookup waits for metadata fetched after it, which names the
// leader the rest of the cluster elected.
func TestNotLeaderWithoutLeaderMakesTheNextLookupRefresh(t *testing.T) {
	view, _, addrA, addrB, c := twoBrokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if addr, err := c.meta.leader(ctx, "t", 0, false); err != nil || addr != addrA {
		t.Fatalf("leader %s, %v; want a at %s", addr, err, addrA)
	}
	view.mu.Lock()
	view.leader = "b"
	view.mu.Unlock()
	c.meta.learn("t", 0, &NotLeaderError{Message: "not the partition leader; no leader is known"})
	if addr, err := c.meta.leader(ctx, "t", 0, false); err != nil || addr != addrB {
		t.Fatalf("leader %s, %v after a said it does not lead; want b at %s", addr, err, addrB)
	}

	// While the cluster names nobody, the lookup says so (and the caller
	// retries) instead of naming the broker that disowned the partition.
	view.mu.Lock()
	view.leader = ""
	view.mu.Unlock()
	c.meta.learn("t", 0, &NotLeaderError{Message: "no leader is known"})
	if addr, err := c.meta.leader(ctx, "t", 0, false); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("leader %q, %v during an election; want ErrUnavailable", addr, err)
	}
}

// blockingBroker answers Metadata like leaderBroker, but holds every call
// while hold is set, as a paused broker would.
type blockingBroker struct {
	leaderBroker
	hold    atomic.Bool
	release chan struct{}
}

func (b *blockingBroker) Metadata(ctx context.Context, req *skiffpb.MetadataRequest) (*skiffpb.MetadataResponse, error) {
	if b.hold.Load() {
		select {
		case <-b.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return b.leaderBroker.Metadata(ctx, req)
}

// Metadata that is merely old is answered from the cache while a refresh
// runs behind the caller's back: a lookup never waits on a broker that
// stopped answering, and the refreshed answer is used once it arrives.
func TestOldMetadataIsRefreshedWithoutMakingCallersWait(t *testing.T) {
	view := &clusterView{leader: "a"}
	b := &blockingBroker{leaderBroker: leaderBroker{view: view}, release: make(chan struct{})}
	addr := serveAdmin(t, b)
	view.brokers = []*skiffpb.Broker{{Id: "a", GrpcAddr: addr}, {Id: "b", GrpcAddr: "127.0.0.1:1"}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const maxAge = time.Minute
	c, err := New(ctx, Config{Brokers: []string{addr}, MetadataMaxAge: maxAge, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := c.meta.leader(ctx, "t", 0, false); err != nil || got != addr {
		t.Fatalf("leader %s, %v; want a", got, err)
	}
	b.hold.Store(true)
	view.mu.Lock()
	view.leader = "b"
	view.mu.Unlock()
	// Age the cached answer past maxAge without waiting for the clock.
	c.meta.mu.Lock()
	old := *c.meta.topics["t"]
	old.fetched = time.Now().Add(-2 * maxAge)
	c.meta.topics["t"] = &old
	c.meta.mu.Unlock()
	// The broker holds every Metadata call now; the lookup must not wait.
	lctx, lcancel := context.WithTimeout(ctx, time.Second)
	got, err := c.meta.leader(lctx, "t", 0, false)
	lcancel()
	if err != nil || got != addr {
		t.Fatalf("leader %s, %v while the refresh is held; want the cached a at once", got, err)
	}
	close(b.release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := c.meta.leader(ctx, "t", 0, false)
		if err == nil && got == "127.0.0.1:1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader %s, %v after the refresh was released; want b", got, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
