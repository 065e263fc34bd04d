package rpc

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

func TestConfigValidateNamesTheFlag(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		flag string // "" = valid
	}{
		{Config{}, ""},
		{DefaultConfig(), ""},
		{Config{MaxRecvMsgBytes: MinMaxRequestBytes}, ""},
		{Config{MaxRecvMsgBytes: MinMaxRequestBytes - 1}, "--max-request-bytes"},
		{Config{MaxRecvMsgBytes: MaxRequestBytesCeiling}, ""},
		{Config{MaxRecvMsgBytes: MaxRequestBytesCeiling + 1}, "--max-request-bytes"},
		{Config{MaxConcurrentStreams: -1}, "--max-concurrent-streams"},
		{Config{MaxConcurrentStreams: MaxConcurrentStreamsCeiling + 1}, "--max-concurrent-streams"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.flag == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg, err)
		case tc.flag != "" && (err == nil || !strings.Contains(err.Error(), tc.flag)):
			t.Errorf("%+v: error %v, want one naming %s", tc.cfg, err, tc.flag)
		}
	}
}

// A server with a lower --max-request-bytes refuses requests beyond it
// before decoding them, and refuses topic configurations whose batches it
// could not receive; what was written before is untouched.
func TestMaxRequestBytesRefusesLargerRequestsAndTopicConfigs(t *testing.T) {
	c := theCluster(t)
	const topic = "limits-request-bytes"
	leader := c.createTopic(t, topic, 1, 1, nil)[0]
	srv, conn := fakeServer(t, leader.node, WithConfig(Config{MaxRecvMsgBytes: MinMaxRequestBytes}))
	producer, admin := skiffpb.NewProducerClient(conn), skiffpb.NewAdminClient(conn)
	ctx := ctxFor(t, 30*time.Second)

	if _, err := producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: topic, Batch: encodeValues(t, record.BatchOptions{}, "kept")}); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", MinMaxRequestBytes)
	_, err := producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: topic, Records: []*skiffpb.Record{{Value: []byte(big)}}})
	// gRPC's own refusal, before the topic's max.message.bytes is looked at.
	if st := wantCode(t, err, codes.ResourceExhausted); !strings.Contains(st.Message(), "larger than max") {
		t.Errorf("message %q: want gRPC's receive limit", st.Message())
	}

	tooBig := srv.MaxTopicMessageBytes() + 1
	_, err = admin.CreateTopic(ctx, &skiffpb.CreateTopicRequest{Name: topic + "-big", Partitions: 1, ReplicationFactor: 1,
		Configs: map[string]string{"max.message.bytes": strconv.Itoa(tooBig)}})
	st := wantCode(t, err, codes.InvalidArgument)
	if f := fieldViolation(st); f != "configs.max.message.bytes" || !strings.Contains(st.Message(), "--max-request-bytes") {
		t.Errorf("field %q, message %q: want configs.max.message.bytes naming --max-request-bytes", f, st.Message())
	}
	if _, ok := leader.node.Metadata().Topics[topic+"-big"]; ok {
		t.Errorf("the refused topic was created")
	}
	_, err = admin.AlterTopicConfig(ctx, &skiffpb.AlterTopicConfigRequest{Name: topic, Set: map[string]string{"max.message.bytes": strconv.Itoa(tooBig)}})
	if st := wantCode(t, err, codes.InvalidArgument); fieldViolation(st) != "set.max.message.bytes" {
		t.Errorf("field %q", fieldViolation(st))
	}
	if got := leader.node.Metadata().Topics[topic].Config.MaxMessageBytes; got == tooBig {
		t.Errorf("the refused config was applied")
	}
	// At the limit is fine.
	if _, err := admin.AlterTopicConfig(ctx, &skiffpb.AlterTopicConfigRequest{Name: topic,
		Set: map[string]string{"max.message.bytes": strconv.Itoa(srv.MaxTopicMessageBytes())}}); err != nil {
		t.Fatalf("max.message.bytes at the limit: %v", err)
	}

	if got := fetchAll(t, leader, topic, 0, 0); len(got) != 1 || string(got[0].Value) != "kept" {
		t.Fatalf("after the refusals the partition holds %d records, want [kept]", len(got))
	}
}

// Calls beyond --max-concurrent-streams on one connection wait for a free
// slot instead of failing; the calls already open go on.
func TestMaxConcurrentStreamsQueuesCallsBeyondTheLimit(t *testing.T) {
	_, conn := fakeServer(t, newFakeNode(), WithConfig(Config{MaxConcurrentStreams: 2}))
	health := healthpb.NewHealthClient(conn)
	ctx := ctxFor(t, 20*time.Second)
	var cancels []context.CancelFunc
	for range 2 {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		w, err := health.Watch(wctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Recv(); err != nil { // the stream holds its slot on the server
			t.Fatal(err)
		}
		cancels = append(cancels, cancel)
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	_, err := health.Check(short, &healthpb.HealthCheckRequest{})
	wantCode(t, err, codes.DeadlineExceeded)

	cancels[0]() // a slot frees up: the next call goes through
	if _, err := health.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("after a stream ended: %v", err)
	}
}

// A node's --max-topics and --max-partitions refuse the topic that would
// pass them (RESOURCE_EXHAUSTED naming the flag and the count); the
// topics already there keep their data.
func TestClusterLimitsRefuseTopicsBeyondThem(t *testing.T) {
	cfg := testClusterConfig(t.TempDir(), "n0", 1)
	// No group is used, so __consumer_offsets (created on first use) is
	// not counted here.
	cfg.Limits.MaxTopics = 2
	cfg.Limits.MaxTotalPartitions = 3
	tn, err := startTestNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tn.stop()
	ctx := ctxFor(t, 60*time.Second)
	if err := tn.node.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	c := &testCluster{nodes: []*testNode{tn}}
	create := func(name string, partitions int) error {
		_, err := tn.admin.CreateTopic(ctx, &skiffpb.CreateTopicRequest{Name: name, Partitions: int32(partitions), ReplicationFactor: 1})
		return err
	}
	wantLimit := func(err error, flag string) {
		t.Helper()
		st := wantCode(t, err, codes.ResourceExhausted)
		if errorReason(st) != ReasonLimitExceeded || !strings.Contains(st.Message(), flag) {
			t.Errorf("reason %s, message %q: want %s naming %s", errorReason(st), st.Message(), ReasonLimitExceeded, flag)
		}
	}
	if err := create("a", 2); err != nil {
		t.Fatal(err)
	}
	c.waitLeader(t, "a", 0)
	if _, err := tn.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: "a", Records: []*skiffpb.Record{{Value: []byte("kept")}}}); err != nil {
		t.Fatal(err)
	}
	wantLimit(create("b", 2), "--max-partitions")
	if err := create("b", 1); err != nil { // exactly at both limits
		t.Fatal(err)
	}
	wantLimit(create("c", 1), "--max-topics")
	if _, ok := tn.node.Metadata().Topics["c"]; ok {
		t.Error("the refused topic exists")
	}
	if got := fetchAll(t, tn, "a", 0, 0); len(got) != 1 || string(got[0].Value) != "kept" {
		t.Fatalf("topic a holds %d records after the refusals, want [kept]", len(got))
	}
}
