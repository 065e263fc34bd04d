package rpc

import (
	"context"
	"google.golang.org/grpc"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/skiff-mq/skiff/internal/acl"
	pb "github.com/skiff-mq/skiff/rpc/skiffpb"
)

// TestGroupAnswersRevealOnlyTopicsThePrincipalMayRead: a group's dead
// letters carry their records, its committed offsets name its topics, and
// a redrive or a dead-letter topic writes to a topic. None of it is open to
// a principal through its rights on the group alone. The share group
// "workers" has one dead letter of "jobs" and one of "secret"; the
// consumer group "billing" has offsets committed on both.
//   - alice may describe both groups and read "jobs": she sees the jobs
//     dead letter with its record, and the jobs offsets, nothing of secret;
//   - bob may describe the groups and "jobs", read nothing: the dead letters
//     are refused when he names jobs and empty when he names no topic; so
//     is the inspection of the jobs record;
//   - carol may alter the share group: she may discard but not redrive
//     until she may write to jobs, and may point dlq.topic at a topic only
//     when she may write to it.
func TestGroupAnswersRevealOnlyTopicsThePrincipalMayRead(t *testing.T) {
	an := startAuthNode(t)
	ctx := ctxFor(t, 120*time.Second)
	adminConn := dialAs(t, an.addr, credentials.NewTLS(clientTLS(t, an.dir, an.dir, "admin")), "")
	topics := []string{"jobs", "secret"}
	for _, name := range topics {
		if _, err := an.admin.CreateTopic(ctx, &pb.CreateTopicRequest{Name: name, Partitions: 1, ReplicationFactor: 1}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range topics {
		req := &pb.ProduceRequest{Topic: name, Records: []*pb.Record{{Key: []byte(name + "-key"), Value: []byte(name + "-value"),
			Headers: []*pb.Header{{Key: "h", Value: []byte(name + "-header")}}}}}
		waitFor(t, 30*time.Second, "a leader for "+name, func() bool {
			_, err := pb.NewProducerClient(adminConn).Produce(ctx, req)
			return err == nil
		})
	}
	for _, group := range []string{"workers", "billing"} {
		waitCoordinating(t, ctx, pb.NewGroupsClient(adminConn), group)
	}

	// The admin takes both records in "workers" and rejects them: two dead
	// letters.
	shares := pb.NewShareGroupsClient(adminConn)
	var member string
	var acks []*pb.ShareAck
	waitFor(t, 30*time.Second, "both records delivered to workers", func() bool {
		resp, err := shares.ShareFetch(ctx, &pb.ShareFetchRequest{Group: "workers", MemberId: member, Topics: topics, MaxWaitMs: 200})
		if retryableJoin(err) {
			return false
		}
		if err != nil {
			t.Fatalf("share fetch: %v", err)
		}
		member = resp.MemberId
		for _, r := range resp.Records {
			acks = append(acks, &pb.ShareAck{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Type: pb.ShareAckType_SHARE_ACK_REJECT})
		}
		return len(acks) == 2
	})
	if _, err := shares.ShareAcknowledge(ctx, &pb.ShareAckRequest{Group: "workers", MemberId: member, Acks: acks}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "two dead letters with their records", func() bool {
		resp, err := shares.ListDeadLetters(ctx, &pb.ListDeadLettersRequest{Group: "workers"})
		if err != nil {
			t.Fatalf("admin's dead letters: %v", err)
		}
		withRecords := 0
		for _, d := range resp.DeadLetters {
			if string(d.Value) == d.Topic+"-value" {
				withRecords++
			}
		}
		return withRecords == 2
	})
	// A record nobody fetched yet, for ShareInspect to show its key.
	if _, err := pb.NewProducerClient(adminConn).Produce(ctx, &pb.ProduceRequest{Topic: "jobs",
		Records: []*pb.Record{{Key: []byte("waiting-key"), Value: []byte("waiting")}}}); err != nil {
		t.Fatal(err)
	}
	groups := pb.NewGroupsClient(adminConn)
	if _, err := groups.ResetOffsets(ctx, &pb.ResetOffsetsRequest{Group: "billing", Offsets: []*pb.OffsetCommit{
		{Topic: "jobs", Partition: 0, Offset: 1}, {Topic: "secret", Partition: 0, Offset: 1}}}); err != nil {
		t.Fatal(err)
	}

	grant := func(principal string, typ acl.ResourceType, name string, op acl.Operation) {
		t.Helper()
		if _, err := an.admin.CreateACLs(ctx, &pb.CreateACLsRequest{Bindings: []*pb.AclBinding{
			{Principal: principal, ResourceType: string(typ), Name: name, Operation: string(op)}}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"User:alice", "User:bob"} {
		grant(p, acl.Group, "workers", acl.Describe)
		grant(p, acl.Group, "billing", acl.Describe)
	}
	grant("User:alice", acl.Topic, "jobs", acl.Read)
	grant("User:bob", acl.Topic, "jobs", acl.Describe)
	grant("User:carol", acl.Group, "workers", acl.Alter)

	type seen struct {
		topic, key, value, header string
	}
	deadLetters := func(c pb.ShareGroupsClient, topic string) ([]seen, error) {
		resp, err := c.ListDeadLetters(ctx, &pb.ListDeadLettersRequest{Group: "workers", Topic: topic})
		if err != nil {
			return nil, err
		}
		var out []seen
		for _, d := range resp.DeadLetters {
			s := seen{topic: d.Topic, key: string(d.Key), value: string(d.Value)}
			for _, h := range d.Headers {
				if h.Key == "h" {
					s.header = string(h.Value)
				}
			}
			out = append(out, s)
		}
		return out, nil
	}
	offsetTopicsOf := func(c pb.GroupsClient) []string {
		t.Helper()
		resp, err := c.FetchOffsets(ctx, &pb.FetchOffsetsRequest{Group: "billing"})
		if err != nil {
			t.Fatalf("fetch offsets: %v", err)
		}
		var out []string
		for _, o := range resp.Offsets {
			out = append(out, o.Topic)
		}
		return out
	}
	jobs := seen{topic: "jobs", key: "jobs-key", value: "jobs-value", header: "jobs-header"}
	// describedTopics are the topics DescribeGroup("billing") and
	// DescribeShareGroup("workers") show over conn.
	describedTopics := func(conn *grpc.ClientConn) (group, share []string) {
		t.Helper()
		d, err := pb.NewGroupsClient(conn).DescribeGroup(ctx, &pb.DescribeGroupRequest{Group: "billing"})
		if err != nil {
			t.Fatalf("describe group billing: %v", err)
		}
		for _, o := range d.Offsets {
			group = append(group, o.Topic)
		}
		sd, err := pb.NewShareGroupsClient(conn).DescribeShareGroup(ctx, &pb.DescribeShareGroupRequest{Group: "workers"})
		if err != nil {
			t.Fatalf("describe share group workers: %v", err)
		}
		for _, p := range sd.Partitions {
			share = append(share, p.Topic)
		}
		return group, share
	}
	if g, sh := describedTopics(adminConn); !slices.Equal(g, []string{"jobs", "secret"}) || !slices.Equal(sh, []string{"jobs", "secret"}) {
		t.Fatalf("the admin's descriptions show %v and %v, want both topics in each", g, sh)
	}

	t.Run("alice reads jobs", func(t *testing.T) {
		conn := an.userConn(t, "alice", "alice-password")
		c := pb.NewShareGroupsClient(conn)
		for _, topic := range []string{"", "jobs"} {
			got, err := deadLetters(c, topic)
			if err != nil || !slices.Equal(got, []seen{jobs}) {
				t.Errorf("alice's dead letters of %q: %v, %v; want only %v", topic, got, err, jobs)
			}
		}
		if _, err := deadLetters(c, "secret"); status.Code(err) != codes.PermissionDenied {
			t.Errorf("alice's dead letters of secret: %v, want PERMISSION_DENIED", err)
		}
		if got := offsetTopicsOf(pb.NewGroupsClient(conn)); !slices.Equal(got, []string{"jobs"}) {
			t.Errorf("alice's offsets of billing are of %v, want [jobs]", got)
		}
		if g, sh := describedTopics(conn); !slices.Equal(g, []string{"jobs"}) || !slices.Equal(sh, []string{"jobs"}) {
			t.Errorf("alice's descriptions of billing and workers show %v and %v, want only jobs", g, sh)
		}
		st, err := c.ShareInspect(ctx, &pb.ShareInspectRequest{Group: "workers", Topic: "jobs", Partition: 0, Offset: 1})
		if err != nil || string(st.GetKey()) != "waiting-key" {
			t.Errorf("alice inspects jobs@1: %v, key %q; want key waiting-key", err, st.GetKey())
		}
	})

	t.Run("bob only describes", func(t *testing.T) {
		conn := an.userConn(t, "bob", "bob-password")
		c := pb.NewShareGroupsClient(conn)
		if got, err := deadLetters(c, ""); err != nil || len(got) != 0 {
			t.Errorf("bob's dead letters of all topics: %v, %v; want none", got, err)
		}
		if got, err := deadLetters(c, "jobs"); status.Code(err) != codes.PermissionDenied {
			t.Errorf("bob's dead letters of jobs: %v, %v; want PERMISSION_DENIED", got, err)
		}
		if st, err := c.ShareInspect(ctx, &pb.ShareInspectRequest{Group: "workers", Topic: "jobs", Partition: 0, Offset: 1}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("bob inspects jobs@1: key %q, %v; want PERMISSION_DENIED", st.GetKey(), err)
		}
		if got := offsetTopicsOf(pb.NewGroupsClient(conn)); !slices.Equal(got, []string{"jobs"}) {
			t.Errorf("bob's offsets of billing are of %v, want [jobs]", got)
		}
		if g, sh := describedTopics(conn); !slices.Equal(g, []string{"jobs"}) || !slices.Equal(sh, []string{"jobs"}) {
			t.Errorf("bob's descriptions of billing and workers show %v and %v, want only jobs", g, sh)
		}
	})

	t.Run("carol alters", func(t *testing.T) {
		c := pb.NewShareGroupsClient(an.userConn(t, "carol", "carol-password"))
		hwm := func(topic string) int64 {
			t.Helper()
			resp, err := pb.NewConsumerClient(adminConn).ListOffsets(ctx, &pb.ListOffsetsRequest{Topic: topic})
			if err != nil {
				t.Fatal(err)
			}
			return resp.HighWatermark
		}
		pending := func() map[string]int {
			t.Helper()
			resp, err := shares.ListDeadLetters(ctx, &pb.ListDeadLettersRequest{Group: "workers"})
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]int{}
			for _, d := range resp.DeadLetters {
				if d.State == "pending" {
					out[d.Topic]++
				}
			}
			return out
		}
		redrive := &pb.ResolveDeadLettersRequest{Group: "workers", Topic: "jobs", All: true}
		if _, err := c.ResolveDeadLetters(ctx, redrive); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("carol redrives jobs without write on it: %v, want PERMISSION_DENIED", err)
		}
		if got, p := hwm("jobs"), pending(); got != 2 || p["jobs"] != 1 {
			t.Fatalf("after a refused redrive jobs has %d records and %d pending dead letters, want 2 and 1", got, p["jobs"])
		}
		resp, err := c.ResolveDeadLetters(ctx, &pb.ResolveDeadLettersRequest{Group: "workers", Topic: "secret", All: true,
			Action: pb.DeadLetterAction_DEAD_LETTER_DISCARD})
		if err != nil || resp.Count != 1 {
			t.Fatalf("carol discards secret's dead letter: %v, %v; want 1 discarded", resp, err)
		}
		grant("User:carol", acl.Topic, "jobs", acl.Write)
		if resp, err := c.ResolveDeadLetters(ctx, redrive); err != nil || resp.Count != 1 {
			t.Fatalf("carol redrives jobs with write on it: %v, %v; want 1 redriven", resp, err)
		}
		if got, p := hwm("jobs"), pending(); got != 3 || len(p) != 0 {
			t.Fatalf("after the redrive jobs has %d records and pending dead letters %v, want 3 and none", got, p)
		}

		dlqOf := func() string {
			t.Helper()
			d, err := shares.DescribeShareGroup(ctx, &pb.DescribeShareGroupRequest{Group: "workers"})
			if err != nil {
				t.Fatal(err)
			}
			return d.Config["dlq.topic"]
		}
		for _, v := range []string{"secret", "{topic}.parked"} {
			if _, err := c.AlterShareGroup(ctx, &pb.AlterShareGroupRequest{Group: "workers", Set: map[string]string{"dlq.topic": v}}); status.Code(err) != codes.PermissionDenied {
				t.Errorf("carol sets dlq.topic=%s: %v, want PERMISSION_DENIED", v, err)
			}
			if got := dlqOf(); got != "{topic}.dlq.{group}" {
				t.Fatalf("after a refused alter dlq.topic is %q, want the default", got)
			}
		}
		// The default again, and other settings, need only alter on the group.
		if _, err := c.AlterShareGroup(ctx, &pb.AlterShareGroupRequest{Group: "workers", Set: map[string]string{"dlq.topic": "{topic}.dlq.{group}", "max.deliveries": "3"}}); err != nil {
			t.Fatalf("carol sets the default dlq.topic: %v", err)
		}
		grant("User:carol", acl.Topic, "secret", acl.Write)
		if _, err := c.AlterShareGroup(ctx, &pb.AlterShareGroupRequest{Group: "workers", Set: map[string]string{"dlq.topic": "secret"}}); err != nil {
			t.Fatalf("carol sets dlq.topic=secret with write on it: %v", err)
		}
		if got := dlqOf(); got != "secret" {
			t.Fatalf("dlq.topic is %q, want secret", got)
		}
	})
}

// waitCoordinating waits until a coordinator serves group: finding it
// creates the offsets topic, and the coordinator answers NOT_COORDINATOR
// until it has loaded the group's shard.
func waitCoordinating(t *testing.T, ctx context.Context, groups pb.GroupsClient, group string) {
	t.Helper()
	waitFor(t, 30*time.Second, "a coordinator serving "+group, func() bool {
		if _, err := groups.FindCoordinator(ctx, &pb.FindCoordinatorRequest{Group: group}); err != nil {
			return false
		}
		_, err := groups.FetchOffsets(ctx, &pb.FetchOffsetsRequest{Group: group})
		return err == nil
	})
}

// retryableJoin says whether a group's first call failed only because its
// coordinator is not serving it yet (the offsets topic being created, its
// shard being loaded).
func retryableJoin(err error) bool {
	st, _ := status.FromError(err)
	return st.Code() == codes.Unavailable || (st.Code() == codes.FailedPrecondition && errorReason(st) == ReasonNotCoordinator)
}
