package rpc

import (
	"strings"

	"github.com/skiff-mq/skiff/consumergroup"
	"github.com/skiff-mq/skiff/internal/acl"
	pb "github.com/skiff-mq/skiff/rpc/skiffpb"
)

// accessCheck is one authorization a request needs: op on every resource
// of type res that names returns for the request.
type accessCheck struct {
	res   acl.ResourceType
	op    acl.Operation
	names func(req any) []string
}

// accessRule is what one RPC needs. Every RPC of every service has exactly
// one (TestEveryRPCHasAnAccessRule), so a new RPC cannot be added without
// choosing.
type accessRule struct {
	// checks must all pass before the handler runs.
	checks []accessCheck
	// filtered RPCs list resources; their answers keep only what the
	// principal may describe, rather than refusing the call.
	filtered bool
	// anyPrincipal RPCs need an identity and nothing more; why says why.
	anyPrincipal bool
	why          string
	// perMessage checks run on each message of a client stream (the
	// stream's opening cannot know the topics it will write).
	perMessage bool
}

func topicCheck(op acl.Operation, names func(req any) []string) accessCheck {
	return accessCheck{res: acl.Topic, op: op, names: names}
}

func groupCheck(op acl.Operation, names func(req any) []string) accessCheck {
	return accessCheck{res: acl.Group, op: op, names: names}
}

func clusterCheck(op acl.Operation) accessCheck {
	return accessCheck{res: acl.Cluster, op: op, names: func(any) []string { return []string{acl.ClusterName} }}
}

// one adapts a typed getter of one name.
func one[R any](get func(R) string) func(any) []string {
	return func(req any) []string {
		r, ok := req.(R)
		if !ok {
			return nil
		}
		if n := get(r); n != "" {
			return []string{n}
		}
		return nil // no name: the handler refuses the request as invalid
	}
}

// many adapts a typed getter of several names; duplicates are dropped.
func many[R any](get func(R) []string) func(any) []string {
	return func(req any) []string {
		r, ok := req.(R)
		if !ok {
			return nil
		}
		seen := map[string]bool{}
		var out []string
		for _, n := range get(r) {
			if n != "" && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
		return out
	}
}

func offsetTopics(cs []*pb.OffsetCommit) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.GetTopic())
	}
	return out
}

// accessRules maps each RPC's full method name to its rule.
func accessRules() map[string]accessRule {
	produceTopic := one(func(r *pb.ProduceRequest) string { return r.GetTopic() })
	return map[string]accessRule{
		pb.Producer_Produce_FullMethodName:        {checks: []accessCheck{topicCheck(acl.Write, produceTopic)}},
		pb.Producer_ProduceStream_FullMethodName:  {checks: []accessCheck{topicCheck(acl.Write, produceTopic)}, perMessage: true},
		pb.Producer_InitProducerId_FullMethodName: {anyPrincipal: true, why: "a producer id writes nothing; every produce it is used for is checked"},

		pb.Consumer_Fetch_FullMethodName:       {checks: []accessCheck{topicCheck(acl.Read, one(func(r *pb.FetchRequest) string { return r.GetTopic() }))}},
		pb.Consumer_Subscribe_FullMethodName:   {checks: []accessCheck{topicCheck(acl.Read, one(func(r *pb.SubscribeRequest) string { return r.GetTopic() }))}},
		pb.Consumer_ListOffsets_FullMethodName: {checks: []accessCheck{topicCheck(acl.Describe, one(func(r *pb.ListOffsetsRequest) string { return r.GetTopic() }))}},

		// Topics named explicitly need describe (a refusal names only them);
		// an empty list means all topics and is filtered.
		pb.Admin_Metadata_FullMethodName:         {checks: []accessCheck{topicCheck(acl.Describe, many(func(r *pb.MetadataRequest) []string { return r.GetTopics() }))}, filtered: true},
		pb.Admin_ListTopics_FullMethodName:       {filtered: true},
		pb.Admin_CreateTopic_FullMethodName:      {checks: []accessCheck{topicCheck(acl.Create, one(func(r *pb.CreateTopicRequest) string { return r.GetName() }))}},
		pb.Admin_DeleteTopic_FullMethodName:      {checks: []accessCheck{topicCheck(acl.Delete, one(func(r *pb.DeleteTopicRequest) string { return r.GetName() }))}},
		pb.Admin_DescribeTopic_FullMethodName:    {checks: []accessCheck{topicCheck(acl.Describe, one(func(r *pb.DescribeTopicRequest) string { return r.GetName() }))}},
		pb.Admin_AlterTopicConfig_FullMethodName: {checks: []accessCheck{topicCheck(acl.Alter, one(func(r *pb.AlterTopicConfigRequest) string { return r.GetName() }))}},
		pb.Admin_DescribeCluster_FullMethodName:  {filtered: true},
		pb.Admin_GossipKeys_FullMethodName:       {checks: []accessCheck{clusterCheck(acl.Alter)}},
		pb.Admin_CreateACLs_FullMethodName:       {checks: []accessCheck{clusterCheck(acl.Alter)}},
		pb.Admin_DeleteACLs_FullMethodName:       {checks: []accessCheck{clusterCheck(acl.Alter)}},
		pb.Admin_ListACLs_FullMethodName:         {checks: []accessCheck{clusterCheck(acl.Describe)}},
		pb.Admin_UpsertUser_FullMethodName:       {checks: []accessCheck{clusterCheck(acl.Alter)}},
		pb.Admin_DeleteUser_FullMethodName:       {checks: []accessCheck{clusterCheck(acl.Alter)}},
		pb.Admin_ListUsers_FullMethodName:        {checks: []accessCheck{clusterCheck(acl.Describe)}},
		pb.Admin_SetQuota_FullMethodName:         {checks: []accessCheck{clusterCheck(acl.Alter)}},
		pb.Admin_DeleteQuota_FullMethodName:      {checks: []accessCheck{clusterCheck(acl.Alter)}},
		pb.Admin_ListQuotas_FullMethodName:       {checks: []accessCheck{clusterCheck(acl.Describe)}},

		// Day-2 operations (docs/operations.md).
		pb.Admin_CreatePartitions_FullMethodName:  {checks: []accessCheck{topicCheck(acl.Alter, one(func(r *pb.CreatePartitionsRequest) string { return r.GetName() }))}},
		pb.Admin_ReassignPartition_FullMethodName: {checks: []accessCheck{clusterCheck(acl.Alter)}},
		pb.Admin_ListNodes_FullMethodName:         {checks: []accessCheck{clusterCheck(acl.Describe)}},
		pb.Admin_SetNodeMode_FullMethodName:       {checks: []accessCheck{clusterCheck(acl.Alter)}},
		pb.Admin_Rebalance_FullMethodName:         {checks: []accessCheck{clusterCheck(acl.Alter)}},

		pb.Groups_FindCoordinator_FullMethodName: {checks: []accessCheck{groupCheck(acl.Describe, one(func(r *pb.FindCoordinatorRequest) string { return r.GetGroup() }))}},
		pb.Groups_Heartbeat_FullMethodName: {checks: []accessCheck{
			groupCheck(acl.Read, one(func(r *pb.GroupHeartbeatRequest) string { return r.GetGroup() })),
			topicCheck(acl.Read, many(func(r *pb.GroupHeartbeatRequest) []string { return r.GetTopics() })),
		}},
		pb.Groups_CommitOffsets_FullMethodName: {checks: []accessCheck{
			groupCheck(acl.Read, one(func(r *pb.CommitOffsetsRequest) string { return r.GetGroup() })),
			topicCheck(acl.Read, many(func(r *pb.CommitOffsetsRequest) []string { return offsetTopics(r.GetOffsets()) })),
		}},
		// Topics named need describe; none named means every committed
		// topic, filtered to those the principal may describe.
		pb.Groups_FetchOffsets_FullMethodName: {filtered: true, checks: []accessCheck{
			groupCheck(acl.Describe, one(func(r *pb.FetchOffsetsRequest) string { return r.GetGroup() })),
			topicCheck(acl.Describe, many(func(r *pb.FetchOffsetsRequest) []string {
				var out []string
				for _, tp := range r.GetPartitions() {
					out = append(out, tp.GetTopic())
				}
				return out
			})),
		}},
		pb.Groups_ListGroups_FullMethodName:    {filtered: true},
		pb.Groups_DescribeGroup_FullMethodName: {checks: []accessCheck{groupCheck(acl.Describe, one(func(r *pb.DescribeGroupRequest) string { return r.GetGroup() }))}},
		pb.Groups_DeleteGroup_FullMethodName:   {checks: []accessCheck{groupCheck(acl.Delete, one(func(r *pb.DeleteGroupRequest) string { return r.GetGroup() }))}},
		pb.Groups_ResetOffsets_FullMethodName: {checks: []accessCheck{
			groupCheck(acl.Alter, one(func(r *pb.ResetOffsetsRequest) string { return r.GetGroup() })),
			topicCheck(acl.Read, many(func(r *pb.ResetOffsetsRequest) []string { return offsetTopics(r.GetOffsets()) })),
		}},

		pb.ShareGroups_ShareFetch_FullMethodName: {checks: []accessCheck{
			groupCheck(acl.Read, one(func(r *pb.ShareFetchRequest) string { return r.GetGroup() })),
			topicCheck(acl.Read, many(func(r *pb.ShareFetchRequest) []string { return r.GetTopics() })),
		}},
		pb.ShareGroups_ShareAcknowledge_FullMethodName: {checks: []accessCheck{
			groupCheck(acl.Read, one(func(r *pb.ShareAckRequest) string { return r.GetGroup() })),
			topicCheck(acl.Read, many(func(r *pb.ShareAckRequest) []string {
				var out []string
				for _, a := range r.GetAcks() {
					out = append(out, a.GetTopic())
				}
				return out
			})),
		}},
		pb.ShareGroups_ShareLeave_FullMethodName: {checks: []accessCheck{groupCheck(acl.Read, one(func(r *pb.ShareLeaveRequest) string { return r.GetGroup() }))}},
		// The answer carries the record's key, which is topic data: read.
		pb.ShareGroups_ShareInspect_FullMethodName: {checks: []accessCheck{
			groupCheck(acl.Describe, one(func(r *pb.ShareInspectRequest) string { return r.GetGroup() })),
			topicCheck(acl.Read, one(func(r *pb.ShareInspectRequest) string { return r.GetTopic() })),
		}},
		pb.ShareGroups_DescribeShareGroup_FullMethodName: {checks: []accessCheck{groupCheck(acl.Describe, one(func(r *pb.DescribeShareGroupRequest) string { return r.GetGroup() }))}},
		// The coordinator writes dead letters where dlq.topic says, on the
		// group's behalf: whoever points it somewhere needs the right to
		// write there (dlqTopicChecks).
		pb.ShareGroups_AlterShareGroup_FullMethodName: {checks: append([]accessCheck{
			groupCheck(acl.Alter, one(func(r *pb.AlterShareGroupRequest) string { return r.GetGroup() }))},
			dlqTopicChecks()...)},
		// Dead letters carry their records' keys, values and headers:
		// read on the source topic. A request naming no topic is answered
		// with the dead letters of the topics the principal may read.
		pb.ShareGroups_ListDeadLetters_FullMethodName: {checks: []accessCheck{
			groupCheck(acl.Describe, one(func(r *pb.ListDeadLettersRequest) string { return r.GetGroup() })),
			topicCheck(acl.Read, one(func(r *pb.ListDeadLettersRequest) string { return r.GetTopic() })),
		}, filtered: true},
		// A redrive writes the dead letters back to their source topic:
		// write on it. A discard writes nothing but the group's state.
		pb.ShareGroups_ResolveDeadLetters_FullMethodName: {checks: []accessCheck{
			groupCheck(acl.Alter, one(func(r *pb.ResolveDeadLettersRequest) string { return r.GetGroup() })),
			topicCheck(acl.Write, one(func(r *pb.ResolveDeadLettersRequest) string {
				if r.GetAction() == pb.DeadLetterAction_DEAD_LETTER_DISCARD {
					return ""
				}
				return r.GetTopic()
			})),
		}},
	}
}

// dlqTopicChecks is what setting a share group's dlq.topic needs beyond
// alter on the group. A literal name needs write on that topic. A name
// with placeholders ({topic}, {group}) needs alter on the cluster: what it
// expands to depends on the topics the group will consume, which patterns
// and topics created later decide, so no set of topic checks made now can
// bound it. Setting the default again needs nothing more: a new group
// writes its dead letters there without anyone choosing it.
func dlqTopicChecks() []accessCheck {
	dlq := func(req any) (name string, pattern bool) {
		r, ok := req.(*pb.AlterShareGroupRequest)
		if !ok {
			return "", false
		}
		v, set := r.GetSet()[consumergroup.ShareConfigDLQTopic]
		if !set || v == "" || v == consumergroup.DefaultShareDLQTopic {
			return "", false // an empty value is refused by the handler
		}
		return v, strings.ContainsAny(v, "{}")
	}
	return []accessCheck{
		topicCheck(acl.Write, func(req any) []string {
			if name, pattern := dlq(req); name != "" && !pattern {
				return []string{name}
			}
			return nil
		}),
		{res: acl.Cluster, op: acl.Alter, names: func(req any) []string {
			if name, pattern := dlq(req); name != "" && pattern {
				return []string{acl.ClusterName}
			}
			return nil
		}},
	}
}
