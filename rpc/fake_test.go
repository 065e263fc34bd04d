package rpc

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/consumergroup"
	"github.com/skiff-mq/skiff/partition"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// fakeNode is a Node with fixed metadata and no replicas; panics makes its
// Metadata panic, as a bug in a handler's path would.
type fakeNode struct {
	reg    *prometheus.Registry
	state  *metadata.State
	panics atomic.Bool
}

func newFakeNode() *fakeNode {
	st := metadata.NewState()
	st.Topics["__consumer_offsets"] = &metadata.Topic{Name: "__consumer_offsets", ID: 1, Config: metadata.DefaultTopicConfig(),
		Partitions: []metadata.PartitionAssignment{{Partition: 0, Replicas: []string{"n0"}}}, Internal: true}
	return &fakeNode{reg: prometheus.NewRegistry(), state: st}
}

func (f *fakeNode) Ready() bool                     { return true }
func (f *fakeNode) Registry() *prometheus.Registry  { return f.reg }
func (f *fakeNode) BrokerGRPCAddr(id string) string { return "" }
func (f *fakeNode) Metadata() *metadata.State {
	if f.panics.Load() {
		panic("injected panic")
	}
	return f.state
}

func (f *fakeNode) MetadataWithTopic(context.Context, string) *metadata.State { return f.Metadata() }
func (f *fakeNode) Replica(context.Context, string, int32) (*partition.Replica, error) {
	return nil, &partition.NotLeaderError{}
}
func (f *fakeNode) AllocateProducerID(context.Context) (int64, error) { return 42, nil }
func (f *fakeNode) CreateTopic(context.Context, cluster.TopicSpec) (*metadata.Topic, error) {
	return nil, errors.New("not supported")
}
func (f *fakeNode) DeleteTopic(context.Context, string) error { return nil }
func (f *fakeNode) AlterTopicConfig(context.Context, string, map[string]string, []string) (*metadata.Topic, error) {
	return nil, errors.New("not supported")
}
func (f *fakeNode) DescribeTopic(_ context.Context, name string) (cluster.TopicDescription, error) {
	return cluster.TopicDescription{}, metadata.ErrUnknownTopic
}
func (f *fakeNode) Status(context.Context) cluster.ClusterStatus { return cluster.ClusterStatus{} }
func (f *fakeNode) ID() string                                   { return "fake" }
func (f *fakeNode) Groups() *consumergroup.Coordinator           { return nil }
func (f *fakeNode) GroupCoordinator(context.Context, string) (string, error) {
	return "", consumergroup.ErrCoordinatorUnavailable
}

// fakeServer serves node (a fake, or a real node of the test cluster
// served a second time with other options) on a loopback port and returns
// a connection to it.
func fakeServer(t *testing.T, node Node, opts ...Option) (*Server, *grpc.ClientConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(node, opts...)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Stop(ctx)
		<-served
	})
	return srv, conn
}

func TestPanicInAHandlerAnswersInternalAndTheServerKeepsServing(t *testing.T) {
	node := newFakeNode()
	srv, conn := fakeServer(t, node)
	admin, producer := skiffpb.NewAdminClient(conn), skiffpb.NewProducerClient(conn)
	ctx := ctxFor(t, 10*time.Second)

	node.panics.Store(true)
	_, err := admin.ListTopics(ctx, &skiffpb.ListTopicsRequest{})
	if st := wantCode(t, err, codes.Internal); errorReason(st) != ReasonInternal {
		t.Errorf("reason %q", errorReason(st))
	}
	_, err = producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: "t", Records: []*skiffpb.Record{{}}})
	wantCode(t, err, codes.Internal)
	// In a stream, the failed request is answered and the stream goes on.
	stream, err := producer.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip := func(corr uint64) *skiffpb.ProduceResponse {
		t.Helper()
		if err := stream.Send(&skiffpb.ProduceRequest{Topic: "__consumer_offsets", CorrelationId: corr, Records: []*skiffpb.Record{{}}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := roundTrip(1); codes.Code(resp.Error.GetCode()) != codes.Internal {
		t.Fatalf("stream answer %v, want INTERNAL", resp.Error)
	}

	node.panics.Store(false)
	if _, err := admin.ListTopics(ctx, &skiffpb.ListTopicsRequest{}); err != nil {
		t.Fatalf("after the panic: %v", err)
	}
	if resp := roundTrip(2); codes.Code(resp.Error.GetCode()) != codes.PermissionDenied {
		t.Fatalf("stream answer after the panic %v, want PERMISSION_DENIED (an internal topic)", resp.Error)
	}
	// ListTopics, Produce and the stream's request panicked in their
	// handlers; the stream message's quota metering read the panicking
	// metadata too (counted, the message went on unthrottled).
	if n := testutil.ToFloat64(srv.metrics.panics); n != 4 {
		t.Errorf("panics_total = %v, want 4", n)
	}
	got := testutil.ToFloat64(srv.metrics.requests.WithLabelValues("skiff.v1.Admin/ListTopics", codes.Internal.String()))
	if got != 1 {
		t.Errorf("requests_total{ListTopics, Internal} = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(node.reg, "skiff_rpc_requests_total", "skiff_rpc_request_duration_seconds"); n == 0 {
		t.Errorf("no rpc metrics on the node's registry")
	}
}

func TestInternalTopicsCannotBeProducedToOrDeleted(t *testing.T) {
	_, conn := fakeServer(t, newFakeNode())
	ctx := ctxFor(t, 10*time.Second)
	_, err := skiffpb.NewProducerClient(conn).Produce(ctx, &skiffpb.ProduceRequest{Topic: "__consumer_offsets", Records: []*skiffpb.Record{{}}})
	wantCode(t, err, codes.PermissionDenied)
	_, err = skiffpb.NewAdminClient(conn).DeleteTopic(ctx, &skiffpb.DeleteTopicRequest{Name: "__consumer_offsets"})
	wantCode(t, err, codes.PermissionDenied)
}

func TestStopEndsOpenStreamsPromptly(t *testing.T) {
	srv, conn := fakeServer(t, newFakeNode())
	ctx := ctxFor(t, 20*time.Second)
	stream, err := skiffpb.NewProducerClient(conn).ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A round trip makes sure the server's handler runs.
	if err := stream.Send(&skiffpb.ProduceRequest{Topic: "nope", Records: []*skiffpb.Record{{}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Stop(stopCtx)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop took %v with a stream open: it should end streams, not wait for clients", d)
	}
	_, err = stream.Recv()
	wantCode(t, err, codes.Unavailable)
}
