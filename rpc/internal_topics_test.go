package rpc

import (
	"bytes"
	"maps"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/skiff-mq/skiff/consumergroup"
	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// wantInternalTopic fails the test unless st refuses a client's write to
// topic as the one internal-topic error does.
func wantInternalTopic(t *testing.T, what string, st *status.Status, topic string) {
	t.Helper()
	if st.Code() != codes.PermissionDenied {
		t.Fatalf("%s: %v (%s), want PERMISSION_DENIED", what, st.Code(), st.Message())
	}
	if want := `topic "` + topic + `" is internal to the cluster: clients cannot`; !strings.Contains(st.Message(), want) {
		t.Fatalf("%s: message %q, want one containing %q", what, st.Message(), want)
	}
}

// offsetsValues returns every record value of every partition of the
// offsets topic, read through the partitions' leaders.
func (c *testCluster) offsetsValues(t *testing.T, partitions int) [][]byte {
	t.Helper()
	var out [][]byte
	for p := range int32(partitions) {
		leader := c.waitLeader(t, consumergroup.OffsetsTopic, p)
		ctx := ctxFor(t, 10*time.Second)
		lo, err := leader.consumer.ListOffsets(ctx, &skiffpb.ListOffsetsRequest{Topic: consumergroup.OffsetsTopic, Partition: p})
		if err != nil {
			t.Fatal(err)
		}
		for off := lo.LogStartOffset; off < lo.HighWatermark; {
			resp, err := leader.consumer.Fetch(ctx, &skiffpb.FetchRequest{Topic: consumergroup.OffsetsTopic, Partition: p, Offset: off})
			if err != nil {
				t.Fatalf("fetch %s/%d@%d: %v", consumergroup.OffsetsTopic, p, off, err)
			}
			if len(resp.Batches) == 0 {
				break
			}
			for batch, err := range record.Batches(resp.Batches) {
				if err != nil {
					t.Fatal(err)
				}
				err := record.Records(batch, func(r record.Record) error {
					out = append(out, r.Value)
					off = r.Offset + 1
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return out
}

// Every client path that writes is refused for internal topics, with the
// same PERMISSION_DENIED naming the topic, and changes nothing; reading
// them stays allowed.
func TestClientsCannotWriteAlterOrDeleteInternalTopics(t *testing.T) {
	c := theCluster(t)
	const internal = consumergroup.OffsetsTopic
	const marker = "trust-boundary-marker"
	ctx := ctxFor(t, 60*time.Second)

	// The share-group config is checked at the coordinator: find it (the
	// offsets topic is created on first use).
	shares := make([]skiffpb.ShareGroupsClient, len(c.nodes))
	for i, tn := range c.nodes {
		shares[i] = skiffpb.NewShareGroupsClient(tn.conn)
	}
	var dlqErr error
	groups := skiffpb.NewGroupsClient(c.nodes[0].conn)
	waitFor(t, 30*time.Second, "the share group's coordinator", func() bool {
		// FindCoordinator has the offsets topic created on first use.
		if _, err := groups.FindCoordinator(ctx, &skiffpb.FindCoordinatorRequest{Group: "trust"}); err != nil {
			return false
		}
		for _, sc := range shares {
			_, err := sc.AlterShareGroup(ctx, &skiffpb.AlterShareGroupRequest{Group: "trust",
				Set: map[string]string{"dlq.topic": internal, "max.deliveries": "1"}})
			if st := status.Convert(err); st.Code() != codes.FailedPrecondition && st.Code() != codes.Unavailable {
				dlqErr = err
				return true
			}
		}
		return false
	})
	st := wantCode(t, dlqErr, codes.InvalidArgument)
	if !strings.Contains(st.Message(), `dlq.topic="__consumer_offsets"`) || !strings.Contains(st.Message(), "internal") {
		t.Fatalf("dlq.topic refusal: %q does not name the topic", st.Message())
	}

	before, err := c.nodes[0].admin.DescribeTopic(ctx, &skiffpb.DescribeTopicRequest{Name: internal})
	if err != nil {
		t.Fatal(err)
	}
	partitions := len(before.Partitions)
	leader := c.waitLeader(t, internal, 0)
	batch := encodeValues(t, record.BatchOptions{}, marker)
	plain := []*skiffpb.Record{{Key: []byte("x"), Value: []byte(marker)}}

	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"produce batch", func() error {
			_, err := leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: internal, Batch: batch})
			return err
		}},
		{"produce records", func() error {
			_, err := leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: internal, Records: plain})
			return err
		}},
		{"produce acks none", func() error {
			_, err := leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: internal, Records: plain, Acks: skiffpb.Acks_ACKS_NONE})
			return err
		}},
		{"alter config", func() error {
			_, err := c.nodes[1].admin.AlterTopicConfig(ctx, &skiffpb.AlterTopicConfigRequest{Name: internal, Set: map[string]string{"retention.ms": "1"}})
			return err
		}},
		{"reset config key", func() error {
			_, err := c.nodes[1].admin.AlterTopicConfig(ctx, &skiffpb.AlterTopicConfigRequest{Name: internal, Delete: []string{"retention.ms"}})
			return err
		}},
		{"delete", func() error {
			_, err := c.nodes[2].admin.DeleteTopic(ctx, &skiffpb.DeleteTopicRequest{Name: internal})
			return err
		}},
	} {
		if err := tc.call(); err == nil {
			t.Fatalf("%s: accepted", tc.name)
		} else {
			st := statusOf(t, err)
			wantInternalTopic(t, tc.name, st, internal)
			if r := errorReason(st); r != ReasonInternalTopic {
				t.Fatalf("%s: reason %q, want %s", tc.name, r, ReasonInternalTopic)
			}
		}
	}

	// ProduceStream answers per batch.
	stream, err := leader.producer.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, req := range []*skiffpb.ProduceRequest{
		{Topic: internal, Batch: batch, CorrelationId: 1},
		{Topic: internal, Records: plain, CorrelationId: 2},
	} {
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.Error == nil {
			t.Fatalf("stream request %d accepted at offset %d", i, resp.BaseOffset)
		}
		wantInternalTopic(t, "produce stream", status.New(codes.Code(resp.Error.Code), resp.Error.Message), internal)
	}
	stream.CloseSend()

	// Creating a topic with an internal name is an invalid name (as it
	// was before; the admin tests pin that contract), naming the topic.
	for _, name := range []string{"__evil", internal} {
		_, err := c.nodes[0].admin.CreateTopic(ctx, &skiffpb.CreateTopicRequest{Name: name, Partitions: 1, ReplicationFactor: 1})
		st := wantCode(t, err, codes.InvalidArgument)
		if !strings.Contains(st.Message(), `"`+name+`"`) || !strings.Contains(st.Message(), "reserved for internal topics") {
			t.Fatalf("create %s: %q", name, st.Message())
		}
	}
	_, err = c.nodes[0].admin.DescribeTopic(ctx, &skiffpb.DescribeTopicRequest{Name: "__evil"})
	wantCode(t, err, codes.NotFound)

	// Nothing changed: same topic, same config, no marker in the log (a
	// fetch, which is allowed, shows it).
	after, err := c.nodes[0].admin.DescribeTopic(ctx, &skiffpb.DescribeTopicRequest{Name: internal})
	if err != nil {
		t.Fatalf("the internal topic after the refusals: %v", err)
	}
	if after.TopicId != before.TopicId || !maps.Equal(after.Configs, before.Configs) || len(after.Partitions) != partitions {
		t.Fatalf("the internal topic changed: %v %v, was %v %v", after.TopicId, after.Configs, before.TopicId, before.Configs)
	}
	for _, v := range c.offsetsValues(t, partitions) {
		if bytes.Contains(v, []byte(marker)) {
			t.Fatalf("a refused record reached %s: %q", internal, v)
		}
	}
}
