package rpc

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

func TestAdminCreatesDescribesListsAltersAndDeletesTopics(t *testing.T) {
	c := theCluster(t)
	admin := c.nodes[1].admin
	ctx := ctxFor(t, 60*time.Second)

	tm, err := admin.CreateTopic(ctx, &skiffpb.CreateTopicRequest{Name: "admin-topic", Partitions: 3, ReplicationFactor: 2,
		Configs: map[string]string{"retention.ms": "60000"}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if tm.Name != "admin-topic" || len(tm.Partitions) != 3 || len(tm.Partitions[0].Replicas) != 2 || tm.Configs["retention.ms"] != "60000" || tm.TopicId == 0 {
		t.Fatalf("created %+v", tm)
	}
	_, err = admin.CreateTopic(ctx, &skiffpb.CreateTopicRequest{Name: "admin-topic", Partitions: 1, ReplicationFactor: 1})
	wantCode(t, err, codes.AlreadyExists)
	for _, tc := range []struct {
		req   *skiffpb.CreateTopicRequest
		field string
	}{
		{&skiffpb.CreateTopicRequest{Name: "bad name", Partitions: 1, ReplicationFactor: 1}, "name"},
		{&skiffpb.CreateTopicRequest{Name: "__reserved", Partitions: 1, ReplicationFactor: 1}, "name"},
		{&skiffpb.CreateTopicRequest{Name: "no-partitions", Partitions: 0, ReplicationFactor: 1}, "partitions"},
		{&skiffpb.CreateTopicRequest{Name: "too-many-replicas", Partitions: 1, ReplicationFactor: 4}, "replication_factor"},
		{&skiffpb.CreateTopicRequest{Name: "bad-config", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"durability": "maybe"}}, "config.durability"},
	} {
		_, err := admin.CreateTopic(ctx, tc.req)
		if st := wantCode(t, err, codes.InvalidArgument); fieldViolation(st) != tc.field {
			t.Errorf("create %q: field %q, want %q (%s)", tc.req.Name, fieldViolation(st), tc.field, st.Message())
		}
	}

	for p := range 3 {
		c.waitLeader(t, "admin-topic", int32(p))
	}
	desc, err := admin.DescribeTopic(ctx, &skiffpb.DescribeTopicRequest{Name: "admin-topic"})
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	for _, p := range desc.Partitions {
		if p.LeaderId != p.Replicas[0] || p.LeaderAddr != c.byID(t, p.LeaderId).addr || p.HighWatermark != 0 || len(p.InSync) == 0 {
			t.Errorf("partition %+v: want its preferred leader with its address, in-sync replicas, offset 0", p)
		}
	}

	list, err := admin.ListTopics(ctx, &skiffpb.ListTopicsRequest{})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if !slices.ContainsFunc(list.Topics, func(tm *skiffpb.TopicMetadata) bool { return tm.Name == "admin-topic" }) {
		t.Errorf("list lacks admin-topic")
	}

	tm, err = admin.AlterTopicConfig(ctx, &skiffpb.AlterTopicConfigRequest{Name: "admin-topic",
		Set: map[string]string{"segment.bytes": "2097152"}, Delete: []string{"retention.ms"}})
	if err != nil {
		t.Fatalf("alter: %v", err)
	}
	if tm.Configs["segment.bytes"] != "2097152" || tm.Configs["retention.ms"] != "604800000" {
		t.Errorf("altered configs %v: want segment.bytes 2097152 and retention.ms back to its default", tm.Configs)
	}
	_, err = admin.AlterTopicConfig(ctx, &skiffpb.AlterTopicConfigRequest{Name: "admin-topic", Set: map[string]string{"retention.ms": "-7"}})
	if st := wantCode(t, err, codes.InvalidArgument); fieldViolation(st) != "config.retention.ms" {
		t.Errorf("bad config: field %q", fieldViolation(st))
	}
	_, err = admin.AlterTopicConfig(ctx, &skiffpb.AlterTopicConfigRequest{Name: "no-such-topic", Set: map[string]string{"retention.ms": "1"}})
	wantCode(t, err, codes.NotFound)

	if _, err := admin.DeleteTopic(ctx, &skiffpb.DeleteTopicRequest{Name: "admin-topic"}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = admin.DescribeTopic(ctx, &skiffpb.DescribeTopicRequest{Name: "admin-topic"})
	wantCode(t, err, codes.NotFound)
	_, err = admin.DeleteTopic(ctx, &skiffpb.DeleteTopicRequest{Name: "admin-topic"})
	wantCode(t, err, codes.NotFound)
}

func TestMetadataListsLeadersWithAddressesAndDescribeClusterCounts(t *testing.T) {
	c := theCluster(t)
	leaders := c.createTopic(t, "metadata", 3, 3, nil)
	ctx := ctxFor(t, 30*time.Second)
	var md *skiffpb.MetadataResponse
	waitFor(t, 10*time.Second, "metadata naming every leader", func() bool {
		var err error
		md, err = c.nodes[2].admin.Metadata(ctx, &skiffpb.MetadataRequest{Topics: []string{"metadata", "no-such-topic"}})
		if err != nil {
			t.Fatalf("metadata: %v", err)
		}
		for _, tm := range md.Topics {
			for _, p := range tm.Partitions {
				if p.LeaderId != leaders[p.Partition].node.ID() {
					return false
				}
			}
		}
		return true
	})
	if len(md.Topics) != 1 || md.Topics[0].Name != "metadata" {
		t.Fatalf("metadata topics %v: want only the existing topic", md.Topics)
	}
	for _, p := range md.Topics[0].Partitions {
		if p.LeaderAddr != leaders[p.Partition].addr {
			t.Errorf("partition %d: leader address %q, want %q", p.Partition, p.LeaderAddr, leaders[p.Partition].addr)
		}
	}
	if len(md.Brokers) != 3 || md.ControllerId == "" {
		t.Fatalf("brokers %v, controller %q", md.Brokers, md.ControllerId)
	}
	for _, b := range md.Brokers {
		if b.State != "alive" || b.GrpcAddr != c.byID(t, b.Id).addr {
			t.Errorf("broker %+v: want alive at its gRPC address", b)
		}
	}

	dc, err := c.nodes[0].admin.DescribeCluster(ctx, &skiffpb.DescribeClusterRequest{})
	if err != nil {
		t.Fatal(err)
	}
	st := c.nodes[0].node.Metadata()
	partitions := 0
	for _, tp := range st.Topics {
		partitions += len(tp.Partitions)
	}
	if len(dc.Brokers) != 3 || dc.ControllerId == "" || int(dc.Topics) != len(st.Topics) || int(dc.Partitions) != partitions || dc.OfflinePartitions != 0 {
		t.Errorf("describe cluster %+v: want 3 brokers, %d topics, %d partitions, none offline", dc, len(st.Topics), partitions)
	}
}
