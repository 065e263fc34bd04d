package rpc

import (
	"testing"

	"google.golang.org/grpc"

	pb "github.com/skiff-mq/skiff/rpc/skiffpb"
)

// Every RPC of every service must say what access it needs: this test is
// what stops a new RPC from being added without choosing.
func TestEveryRPCHasAnAccessRule(t *testing.T) {
	rules := accessRules()
	seen := map[string]bool{}
	for _, sd := range []grpc.ServiceDesc{pb.Producer_ServiceDesc, pb.Consumer_ServiceDesc, pb.Admin_ServiceDesc, pb.Groups_ServiceDesc, pb.ShareGroups_ServiceDesc} {
		var names []string
		for _, m := range sd.Methods {
			names = append(names, m.MethodName)
		}
		for _, s := range sd.Streams {
			names = append(names, s.StreamName)
		}
		for _, n := range names {
			full := "/" + sd.ServiceName + "/" + n
			seen[full] = true
			r, ok := rules[full]
			if !ok {
				t.Errorf("%s has no access rule: add one to accessRules", full)
				continue
			}
			if len(r.checks) == 0 && !r.filtered && !r.anyPrincipal {
				t.Errorf("%s: a rule must check something, filter its answer, or say why any principal may call it", full)
			}
			if r.anyPrincipal && r.why == "" {
				t.Errorf("%s: anyPrincipal without a reason", full)
			}
		}
	}
	for full := range rules {
		if !seen[full] {
			t.Errorf("access rule for %s, which no service has", full)
		}
	}
}

func TestAccessRuleNamesComeFromTheRequest(t *testing.T) {
	rules := accessRules()
	cases := []struct {
		method string
		req    any
		want   map[string][]string // "operation resource type" -> names
	}{
		{pb.Producer_Produce_FullMethodName, &pb.ProduceRequest{Topic: "orders"}, map[string][]string{"write topic": {"orders"}}},
		{pb.Admin_DeleteTopic_FullMethodName, &pb.DeleteTopicRequest{Name: "orders"}, map[string][]string{"delete topic": {"orders"}}},
		{pb.Groups_CommitOffsets_FullMethodName, &pb.CommitOffsetsRequest{Group: "billing", Offsets: []*pb.OffsetCommit{{Topic: "a"}, {Topic: "b"}, {Topic: "a"}}},
			map[string][]string{"read group": {"billing"}, "read topic": {"a", "b"}}},
		{pb.ShareGroups_ShareAcknowledge_FullMethodName, &pb.ShareAckRequest{Group: "w", Acks: []*pb.ShareAck{{Topic: "jobs"}}},
			map[string][]string{"read group": {"w"}, "read topic": {"jobs"}}},
		{pb.Admin_GossipKeys_FullMethodName, &pb.GossipKeysRequest{}, map[string][]string{"alter cluster": {"skiff-cluster"}}},
		{pb.Admin_CreateTopic_FullMethodName, &pb.CreateTopicRequest{}, map[string][]string{}},
		// Dead letters hold topic data, and a redrive writes it back.
		{pb.ShareGroups_ShareInspect_FullMethodName, &pb.ShareInspectRequest{Group: "w", Topic: "jobs"},
			map[string][]string{"describe group": {"w"}, "read topic": {"jobs"}}},
		{pb.ShareGroups_ListDeadLetters_FullMethodName, &pb.ListDeadLettersRequest{Group: "w", Topic: "jobs"},
			map[string][]string{"describe group": {"w"}, "read topic": {"jobs"}}},
		{pb.ShareGroups_ListDeadLetters_FullMethodName, &pb.ListDeadLettersRequest{Group: "w"}, map[string][]string{"describe group": {"w"}}},
		{pb.ShareGroups_ResolveDeadLetters_FullMethodName, &pb.ResolveDeadLettersRequest{Group: "w", Topic: "jobs", All: true},
			map[string][]string{"alter group": {"w"}, "write topic": {"jobs"}}},
		{pb.ShareGroups_ResolveDeadLetters_FullMethodName, &pb.ResolveDeadLettersRequest{Group: "w", Topic: "jobs", All: true, Action: pb.DeadLetterAction_DEAD_LETTER_DISCARD},
			map[string][]string{"alter group": {"w"}}},
		// Where the coordinator writes dead letters on the group's behalf.
		{pb.ShareGroups_AlterShareGroup_FullMethodName, &pb.AlterShareGroupRequest{Group: "w", Set: map[string]string{"max.deliveries": "3"}},
			map[string][]string{"alter group": {"w"}}},
		{pb.ShareGroups_AlterShareGroup_FullMethodName, &pb.AlterShareGroupRequest{Group: "w", Set: map[string]string{"dlq.topic": "orders"}},
			map[string][]string{"alter group": {"w"}, "write topic": {"orders"}}},
		{pb.ShareGroups_AlterShareGroup_FullMethodName, &pb.AlterShareGroupRequest{Group: "w", Set: map[string]string{"dlq.topic": "{topic}.dead"}},
			map[string][]string{"alter group": {"w"}, "alter cluster": {"skiff-cluster"}}},
		{pb.ShareGroups_AlterShareGroup_FullMethodName, &pb.AlterShareGroupRequest{Group: "w", Set: map[string]string{"dlq.topic": "{topic}.dlq.{group}"}},
			map[string][]string{"alter group": {"w"}}},
	}
	for _, tc := range cases {
		got := map[string][]string{}
		for _, c := range rules[tc.method].checks {
			if names := c.names(tc.req); len(names) > 0 {
				k := string(c.op) + " " + string(c.res)
				got[k] = append(got[k], names...)
			}
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: names %v, want %v", tc.method, got, tc.want)
			continue
		}
		for res, names := range tc.want {
			if len(got[res]) != len(names) {
				t.Errorf("%s: %s names %v, want %v", tc.method, res, got[res], names)
				continue
			}
			for i := range names {
				if got[res][i] != names[i] {
					t.Errorf("%s: %s names %v, want %v", tc.method, res, got[res], names)
				}
			}
		}
	}
}
