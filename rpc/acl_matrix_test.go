package rpc

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/skiff-mq/skiff/internal/acl"
	"github.com/skiff-mq/skiff/internal/certs"
	pb "github.com/skiff-mq/skiff/rpc/skiffpb"
)

// authNode is a one-node cluster with TLS and --auth, super user
// User:admin (the admin client certificate).
type authNode struct {
	addr  string
	dir   string
	srv   *Server
	admin pb.AdminClient
}

func startAuthNode(t *testing.T) *authNode {
	t.Helper()
	dir := t.TempDir()
	if err := certs.Create(certs.CreateOptions{Dir: dir, Nodes: []string{"n0"}, Clients: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	sn := startSecureNode(t, dir, WithAuth(testAuth()))
	conn := dialAs(t, sn.addr, credentials.NewTLS(clientTLS(t, dir, dir, "admin")), "")
	return &authNode{addr: sn.addr, dir: dir, srv: sn.srv, admin: pb.NewAdminClient(conn)}
}

// userConn creates a user and connects as that user with a password (no
// client certificate).
func (an *authNode) userConn(t *testing.T, user, pass string) *grpc.ClientConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := an.admin.UpsertUser(ctx, &pb.UpsertUserRequest{Name: user, Password: pass}); err != nil {
		t.Fatal(err)
	}
	return dialAs(t, an.addr, credentials.NewTLS(clientTLS(t, an.dir, "", "")), password(user, pass))
}

// requestFor builds method's request naming topic and group wherever the
// message has a field for them, so that the access rule finds names in it.
func requestFor(t *testing.T, method, topic, group string) proto.Message {
	t.Helper()
	parts := strings.Split(strings.TrimPrefix(method, "/"), "/")
	sd, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(parts[0]))
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	md := sd.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(parts[1]))
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	m := mt.New()
	fill(m, topic, group)
	return m.Interface()
}

func fill(m protoreflect.Message, topic, group string) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		name := string(f.Name())
		switch {
		case f.Kind() == protoreflect.StringKind && !f.IsList() && (name == "topic" || name == "name"):
			m.Set(f, protoreflect.ValueOfString(topic))
		case f.Kind() == protoreflect.StringKind && !f.IsList() && name == "group":
			m.Set(f, protoreflect.ValueOfString(group))
		case f.Kind() == protoreflect.StringKind && f.IsList() && name == "topics":
			m.Mutable(f).List().Append(protoreflect.ValueOfString(topic))
		case f.Kind() == protoreflect.MessageKind && f.IsList() && (name == "offsets" || name == "acks" || name == "partitions"):
			el := m.Mutable(f).List().NewElement()
			fill(el.Message(), topic, group)
			m.Mutable(f).List().Append(el)
		}
	}
}

// call makes one call of method with req, unary or streaming.
func call(ctx context.Context, conn *grpc.ClientConn, method string, req proto.Message) error {
	for _, sd := range []grpc.ServiceDesc{pb.Producer_ServiceDesc, pb.Consumer_ServiceDesc, pb.Admin_ServiceDesc, pb.Groups_ServiceDesc, pb.ShareGroups_ServiceDesc} {
		for _, s := range sd.Streams {
			if "/"+sd.ServiceName+"/"+s.StreamName != method {
				continue
			}
			st, err := conn.NewStream(ctx, &grpc.StreamDesc{StreamName: s.StreamName, ServerStreams: s.ServerStreams, ClientStreams: s.ClientStreams}, method)
			if err != nil {
				return err
			}
			if err := st.SendMsg(req); err != nil {
				return err
			}
			if err := st.CloseSend(); err != nil {
				return err
			}
			var resp any = new(pb.FetchResponse)
			if method == pb.Producer_ProduceStream_FullMethodName {
				resp = new(pb.ProduceResponse)
			}
			return st.RecvMsg(resp)
		}
	}
	return conn.Invoke(ctx, method, req, new(emptyResponse))
}

// emptyResponse accepts any response message: the matrix looks only at
// the status.
type emptyResponse struct{ pb.DeleteTopicResponse }

// matrixVariants are further requests of method whose rule asks for
// other bindings than the filled request's (requestFor), named by what
// they vary: every way of asking gets its row in the matrix.
func matrixVariants(method, topic, group string) map[string]proto.Message {
	switch method {
	case pb.ShareGroups_AlterShareGroup_FullMethodName:
		return map[string]proto.Message{
			"literal-dlq": &pb.AlterShareGroupRequest{Group: group, Set: map[string]string{"dlq.topic": topic}},
			"pattern-dlq": &pb.AlterShareGroupRequest{Group: group, Set: map[string]string{"dlq.topic": topic + ".{group}"}},
		}
	case pb.ShareGroups_ResolveDeadLetters_FullMethodName:
		return map[string]proto.Message{
			"discard": &pb.ResolveDeadLettersRequest{Group: group, Topic: topic, All: true, Action: pb.DeadLetterAction_DEAD_LETTER_DISCARD},
		}
	case pb.ShareGroups_ListDeadLetters_FullMethodName:
		return map[string]proto.Message{"all-topics": &pb.ListDeadLettersRequest{Group: group}}
	case pb.Groups_FetchOffsets_FullMethodName:
		return map[string]proto.Message{"all-topics": &pb.FetchOffsetsRequest{Group: group}}
	}
	return nil
}

// TestACLMatrix walks the access rules: for every RPC that checks
// resources (and every variant of its request that asks for other
// bindings), a principal without bindings is refused with
// PERMISSION_DENIED, the same call lacking any one of the bindings the
// rule names is refused too, and with exactly those bindings it is let
// through (it may still fail for other reasons: the resources need not
// exist). It is generated from the table, so it cannot fall behind it.
func TestACLMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	an := startAuthNode(t)
	conn := an.userConn(t, "alice", "alice-password")
	rules := accessRules()
	methods := make([]string, 0, len(rules))
	for m := range rules {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	type row struct {
		name string
		req  proto.Message
	}
	i := 0
	names := func() (string, string) {
		suffix := string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		i++
		return "m-topic-" + suffix, "m-group-" + suffix
	}
	for _, method := range methods {
		rule := rules[method]
		if len(rule.checks) == 0 {
			continue
		}
		topic, group := names()
		rows := []row{{strings.TrimPrefix(method, "/skiff.v1."), requestFor(t, method, topic, group)}}
		variants := matrixVariants(method, "", "")
		for _, v := range slices.Sorted(maps.Keys(variants)) {
			topic, group := names()
			rows = append(rows, row{strings.TrimPrefix(method, "/skiff.v1.") + "/" + v, matrixVariants(method, topic, group)[v]})
		}
		for _, r := range rows {
			t.Run(r.name, func(t *testing.T) {
				attempt := func() error {
					ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), nil), 3*time.Second)
					defer cancel()
					return call(ctx, conn, method, r.req)
				}
				err := attempt()
				if status.Code(err) != codes.PermissionDenied {
					t.Fatalf("without bindings: %v, want PERMISSION_DENIED", err)
				}
				if msg := status.Convert(err).Message(); !strings.Contains(msg, "User:alice") {
					t.Errorf("refusal %q does not name the principal", msg)
				}
				var grants []*pb.AclBinding
				for _, c := range rule.checks {
					for _, name := range c.names(r.req) {
						grants = append(grants, &pb.AclBinding{Principal: "User:alice", ResourceType: string(c.res), Name: name, Operation: string(c.op)})
					}
				}
				actx, acancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer acancel()
				if _, err := an.admin.CreateACLs(actx, &pb.CreateACLsRequest{Bindings: grants}); err != nil {
					t.Fatal(err)
				}
				defer an.admin.DeleteACLs(actx, &pb.DeleteACLsRequest{Bindings: grants})
				if err := attempt(); status.Code(err) == codes.PermissionDenied || status.Code(err) == codes.Unauthenticated {
					t.Fatalf("with %d bindings %v: %v", len(grants), grants, err)
				}
				if len(grants) < 2 {
					return // without its one binding: refused above
				}
				for _, g := range grants {
					if _, err := an.admin.DeleteACLs(actx, &pb.DeleteACLsRequest{Bindings: []*pb.AclBinding{g}}); err != nil {
						t.Fatal(err)
					}
					if err := attempt(); status.Code(err) != codes.PermissionDenied {
						t.Errorf("without %s %s %q: %v, want PERMISSION_DENIED", g.Operation, g.ResourceType, g.Name, err)
					}
					if _, err := an.admin.CreateACLs(actx, &pb.CreateACLsRequest{Bindings: []*pb.AclBinding{g}}); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}

func TestListingsShowOnlyWhatThePrincipalMayDescribe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	an := startAuthNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range []string{"orders", "payments", "secret"} {
		if _, err := an.admin.CreateTopic(ctx, &pb.CreateTopicRequest{Name: name, Partitions: 1, ReplicationFactor: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := an.admin.CreateACLs(ctx, &pb.CreateACLsRequest{Bindings: []*pb.AclBinding{
		{Principal: "User:bob", ResourceType: string(acl.Topic), Name: "orders", Operation: string(acl.Write)},
		{Principal: "User:bob", ResourceType: string(acl.Topic), Name: "pay", Pattern: string(acl.Prefixed), Operation: string(acl.Read)},
	}}); err != nil {
		t.Fatal(err)
	}
	bob := pb.NewAdminClient(an.userConn(t, "bob", "bob-password"))
	lt, err := bob.ListTopics(ctx, &pb.ListTopicsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tm := range lt.Topics {
		names = append(names, tm.Name)
	}
	if strings.Join(names, ",") != "orders,payments" {
		t.Fatalf("bob lists %v, want [orders payments]", names)
	}
	md, err := bob.Metadata(ctx, &pb.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Topics) != 2 {
		t.Fatalf("bob's metadata has %d topics, want 2", len(md.Topics))
	}
	dc, err := bob.DescribeCluster(ctx, &pb.DescribeClusterRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if dc.Topics != 2 {
		t.Fatalf("bob's cluster description counts %d topics, want 2", dc.Topics)
	}
	_, err = bob.Metadata(ctx, &pb.MetadataRequest{Topics: []string{"secret"}})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `"secret"`) || strings.Contains(err.Error(), "orders") {
		t.Fatalf("metadata of secret: %v, want PERMISSION_DENIED naming only secret", err)
	}
	// The super user sees everything.
	all, err := an.admin.ListTopics(ctx, &pb.ListTopicsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Topics) != 3 {
		t.Fatalf("admin lists %d topics, want 3", len(all.Topics))
	}
}

// TestPatternSubscriptionsResolveOnlyReadableTopics: a pattern names no
// topic for the access rule to check, so what it resolves to is bounded by
// the principal's read permission. Alice may read ev.a, not ev.b: her
// share fetches with "ev.*" never deliver ev.b's records and her consumer
// group assignment never holds ev.b, until an ACL lets her read it.
func TestPatternSubscriptionsResolveOnlyReadableTopics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	an := startAuthNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adminConn := dialAs(t, an.addr, credentials.NewTLS(clientTLS(t, an.dir, an.dir, "admin")), "")
	for _, name := range []string{"ev.a", "ev.b"} {
		if _, err := an.admin.CreateTopic(ctx, &pb.CreateTopicRequest{Name: name, Partitions: 1, ReplicationFactor: 1}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"ev.a", "ev.b"} {
		req := &pb.ProduceRequest{Topic: name, Records: []*pb.Record{{Value: []byte("in " + name)}}}
		waitFor(t, 30*time.Second, "a leader for "+name, func() bool {
			_, err := pb.NewProducerClient(adminConn).Produce(ctx, req)
			return err == nil
		})
	}
	grant := func(topic string) {
		t.Helper()
		if _, err := an.admin.CreateACLs(ctx, &pb.CreateACLsRequest{Bindings: []*pb.AclBinding{
			{Principal: "User:alice", ResourceType: string(acl.Topic), Name: topic, Operation: string(acl.Read)},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	grant("ev.a")
	if _, err := an.admin.CreateACLs(ctx, &pb.CreateACLsRequest{Bindings: []*pb.AclBinding{
		{Principal: "User:alice", ResourceType: string(acl.Group), Name: "*", Pattern: string(acl.Literal), Operation: string(acl.Read)},
	}}); err != nil {
		t.Fatal(err)
	}
	alice := an.userConn(t, "alice", "alice-password")
	// A client asks for its group's coordinator first; that creates the
	// offsets topic.
	for _, group := range []string{"alice-share", "admin-share", "alice-group"} {
		waitFor(t, 30*time.Second, "a coordinator for "+group, func() bool {
			_, err := pb.NewGroupsClient(adminConn).FindCoordinator(ctx, &pb.FindCoordinatorRequest{Group: group})
			return err == nil
		})
	}

	// Share group: everything alice is ever given comes from ev.a.
	share := func(conn *grpc.ClientConn, group string, want int) map[string]int {
		t.Helper()
		got, member := map[string]int{}, ""
		deadline := time.Now().Add(20 * time.Second)
		for total := 0; total < want; {
			if time.Now().After(deadline) {
				t.Fatalf("share group %s: %d of %d records after 20s: %v", group, total, want, got)
			}
			resp, err := pb.NewShareGroupsClient(conn).ShareFetch(ctx, &pb.ShareFetchRequest{Group: group, MemberId: member, Pattern: "ev.*", MaxWaitMs: 200})
			if status.Code(err) == codes.Unavailable {
				time.Sleep(50 * time.Millisecond) // the offsets topic is being created
				continue
			}
			if err != nil {
				t.Fatalf("share fetch in %s: %v", group, err)
			}
			member = resp.MemberId
			for _, r := range resp.Records {
				got[r.Topic]++
				total++
			}
		}
		// Nothing more comes: the records of other topics are not waiting
		// behind the ones delivered.
		resp, err := pb.NewShareGroupsClient(conn).ShareFetch(ctx, &pb.ShareFetchRequest{Group: group, MemberId: member, Pattern: "ev.*", MaxWaitMs: 500})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.Records {
			got[r.Topic]++
		}
		return got
	}
	if got := share(alice, "alice-share", 1); got["ev.a"] != 1 || got["ev.b"] != 0 {
		t.Fatalf("alice's share fetches with ev.* delivered %v, want only ev.a's record", got)
	}
	if got := share(adminConn, "admin-share", 2); got["ev.a"] != 1 || got["ev.b"] != 1 {
		t.Fatalf("the super user's share fetches with ev.* delivered %v, want both topics' records", got)
	}

	// Consumer group: alice's assignment holds only what she may read,
	// and follows a new ACL.
	groups := pb.NewGroupsClient(alice)
	var member string
	var epoch int32
	assigned := func() []string {
		t.Helper()
		resp, err := groups.Heartbeat(ctx, &pb.GroupHeartbeatRequest{Group: "alice-group", MemberId: member, MemberEpoch: epoch,
			Pattern: "ev.*", RebalanceTimeoutMs: 10000})
		if status.Code(err) == codes.Unavailable {
			return nil // no coordinator yet
		}
		if err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		member, epoch = resp.MemberId, resp.MemberEpoch
		var topics []string
		for _, tp := range resp.Assignment {
			topics = append(topics, tp.Topic)
		}
		sort.Strings(topics)
		return topics
	}
	var topics []string
	waitFor(t, 20*time.Second, "alice's first assignment", func() bool {
		topics = assigned()
		return len(topics) > 0
	})
	if strings.Join(topics, ",") != "ev.a" {
		t.Fatalf("alice's group with ev.* is assigned %v, want [ev.a]", topics)
	}
	grant("ev.b")
	waitFor(t, 20*time.Second, "alice's assignment to take ev.b once she may read it", func() bool {
		topics = assigned()
		return strings.Join(topics, ",") == "ev.a,ev.b"
	})
}
