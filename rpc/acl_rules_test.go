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
		want   map[string][]string // resource type -> names
	}{
		{pb.Producer_Produce_FullMethodName, &pb.ProduceRequest{Topic: "orders"}, map[string][]string{"topic": {"orders"}}},
		{pb.Admin_DeleteTopic_FullMethodName, &pb.DeleteTopicRequest{Name: "orders"}, map[string][]string{"topic": {"orders"}}},
		{pb.Groups_CommitOffsets_FullMethodName, &pb.CommitOffsetsRequest{Group: "billing", Offsets: []*pb.OffsetCommit{{Topic: "a"}, {Topic: "b"}, {Topic: "a"}}},
			map[string][]string{"group": {"billing"}, "topic": {"a", "b"}}},
		{pb.ShareGroups_ShareAcknowledge_FullMethodName, &pb.ShareAckRequest{Group: "w", Acks: []*pb.ShareAck{{Topic: "jobs"}}},
			map[string][]string{"group": {"w"}, "topic": {"jobs"}}},
		{pb.ShareGroups_ResolveDeadLetters_FullMethodName, &pb.ResolveDeadLettersRequest{Group: "w"}, map[string][]string{"group": {"w"}}},
		{pb.Admin_GossipKeys_FullMethodName, &pb.GossipKeysRequest{}, map[string][]string{"cluster": {"skiff-cluster"}}},
		{pb.Admin_CreateTopic_FullMethodName, &pb.CreateTopicRequest{}, map[string][]string{}},
	}
	for _, tc := range cases {
		got := map[string][]string{}
		for _, c := range rules[tc.method].checks {
			if names := c.names(tc.req); len(names) > 0 {
				got[string(c.res)] = append(got[string(c.res)], names...)
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
