package acl

import (
	"testing"

	"pgregory.net/rapid"
)

func topicReq(principal, host, name string, op Operation) Request {
	return Request{Principal: principal, Host: host, Resource: Resource{Type: Topic, Name: name}, Operation: op}
}

func allowTopic(principal, name string, pattern PatternType, op Operation) Binding {
	return Binding{Principal: principal, Host: AnyHost, Type: Topic, Pattern: pattern, Name: name, Operation: op, Permission: Allow}
}

func TestAuthorize(t *testing.T) {
	aliceWritesOrders := allowTopic("User:alice", "orders", Literal, Write)
	cases := []struct {
		name     string
		bindings []Binding
		req      Request
		want     bool
	}{
		{"no binding denies", nil, topicReq("User:alice", "10.0.0.1", "orders", Write), false},
		{"literal allow", []Binding{aliceWritesOrders}, topicReq("User:alice", "10.0.0.1", "orders", Write), true},
		{"other topic", []Binding{aliceWritesOrders}, topicReq("User:alice", "10.0.0.1", "orders2", Write), false},
		{"other operation", []Binding{aliceWritesOrders}, topicReq("User:alice", "10.0.0.1", "orders", Delete), false},
		{"other principal", []Binding{aliceWritesOrders}, topicReq("User:bob", "10.0.0.1", "orders", Write), false},
		{"write implies describe", []Binding{aliceWritesOrders}, topicReq("User:alice", "10.0.0.1", "orders", Describe), true},
		{"describe does not imply read", []Binding{allowTopic("User:alice", "orders", Literal, Describe)}, topicReq("User:alice", "h", "orders", Read), false},
		{"prefixed", []Binding{allowTopic("User:alice", "orders.", Prefixed, Read)}, topicReq("User:alice", "h", "orders.eu", Read), true},
		{"prefixed is not literal", []Binding{allowTopic("User:alice", "orders.", Prefixed, Read)}, topicReq("User:alice", "h", "order", Read), false},
		{"literal star", []Binding{allowTopic("User:alice", "*", Literal, Read)}, topicReq("User:alice", "h", "anything", Read), true},
		{"any user", []Binding{allowTopic(AnyUser, "orders", Literal, Read)}, topicReq("User:carol", "h", "orders", Read), true},
		{"any user is not a node", []Binding{allowTopic(AnyUser, "orders", Literal, Read)}, topicReq("Node:n1", "h", "orders", Read), false},
		{"all covers every operation", []Binding{allowTopic("User:alice", "orders", Literal, All)}, topicReq("User:alice", "h", "orders", Delete), true},
		{"deny wins", []Binding{allowTopic("User:alice", "*", Literal, All), {Principal: "User:alice", Host: AnyHost, Type: Topic, Pattern: Literal, Name: "secret", Operation: Read, Permission: Deny}},
			topicReq("User:alice", "h", "secret", Read), false},
		{"deny of read leaves describe", []Binding{allowTopic("User:alice", "*", Literal, All), {Principal: "User:alice", Host: AnyHost, Type: Topic, Pattern: Literal, Name: "secret", Operation: Read, Permission: Deny}},
			topicReq("User:alice", "h", "secret", Describe), true},
		{"host must match", []Binding{{Principal: "User:alice", Host: "10.0.0.1", Type: Topic, Pattern: Literal, Name: "orders", Operation: Read, Permission: Allow}},
			topicReq("User:alice", "10.0.0.2", "orders", Read), false},
		{"resource type must match", []Binding{{Principal: "User:alice", Host: AnyHost, Type: Group, Pattern: Literal, Name: "orders", Operation: Read, Permission: Allow}},
			topicReq("User:alice", "h", "orders", Read), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Authorize(tc.bindings, tc.req); got.Allowed != tc.want {
				t.Fatalf("Authorize = %+v, want allowed=%v", got, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := allowTopic("User:alice", "orders", Literal, Read)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []Binding{
		{Principal: "alice", Host: "*", Type: Topic, Pattern: Literal, Name: "x", Operation: Read, Permission: Allow},
		{Principal: "User:alice", Host: "", Type: Topic, Pattern: Literal, Name: "x", Operation: Read, Permission: Allow},
		{Principal: "User:alice", Host: "*", Type: "queue", Pattern: Literal, Name: "x", Operation: Read, Permission: Allow},
		{Principal: "User:alice", Host: "*", Type: Topic, Pattern: "glob", Name: "x", Operation: Read, Permission: Allow},
		{Principal: "User:alice", Host: "*", Type: Topic, Pattern: Prefixed, Name: "*", Operation: Read, Permission: Allow},
		{Principal: "User:alice", Host: "*", Type: Topic, Pattern: Literal, Name: "x", Operation: "poke", Permission: Allow},
		{Principal: "User:alice", Host: "*", Type: Topic, Pattern: Literal, Name: "x", Operation: Read, Permission: "maybe"},
		{Principal: "User:alice", Host: "*", Type: Cluster, Pattern: Literal, Name: "x", Operation: Alter, Permission: Allow},
		{Principal: "User:alice", Host: "*", Type: Topic, Pattern: Literal, Name: "", Operation: Read, Permission: Allow},
	}
	for _, b := range bad {
		if err := b.Validate(); err == nil {
			t.Errorf("%+v: accepted", b)
		}
	}
}

func genBinding() *rapid.Generator[Binding] {
	return rapid.Custom(func(t *rapid.T) Binding {
		return Binding{
			Principal:  rapid.SampledFrom([]string{"User:alice", "User:bob", AnyUser}).Draw(t, "principal"),
			Host:       rapid.SampledFrom([]string{AnyHost, "10.0.0.1"}).Draw(t, "host"),
			Type:       rapid.SampledFrom([]ResourceType{Topic, Group}).Draw(t, "type"),
			Pattern:    rapid.SampledFrom([]PatternType{Literal, Prefixed}).Draw(t, "pattern"),
			Name:       rapid.SampledFrom([]string{"orders", "ord", "*", "pay"}).Draw(t, "name"),
			Operation:  rapid.SampledFrom(Operations).Draw(t, "op"),
			Permission: rapid.SampledFrom([]Permission{Allow, Deny}).Draw(t, "perm"),
		}
	})
}

func genRequest() *rapid.Generator[Request] {
	return rapid.Custom(func(t *rapid.T) Request {
		return Request{
			Principal: rapid.SampledFrom([]string{"User:alice", "User:bob", "Node:n1"}).Draw(t, "principal"),
			Host:      rapid.SampledFrom([]string{"10.0.0.1", "10.0.0.2"}).Draw(t, "host"),
			Resource: Resource{Type: rapid.SampledFrom([]ResourceType{Topic, Group}).Draw(t, "type"),
				Name: rapid.SampledFrom([]string{"orders", "ord", "orders.eu", "pay"}).Draw(t, "name")},
			Operation: rapid.SampledFrom([]Operation{Read, Write, Create, Delete, Alter, Describe}).Draw(t, "op"),
		}
	})
}

// The decision depends on the set of bindings, not their order; a deny
// added never allows more and an allow added never allows less.
func TestAuthorizeProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SliceOfN(genBinding(), 0, 8).Draw(t, "bindings")
		req := genRequest().Draw(t, "request")
		extra := genBinding().Draw(t, "extra")
		before := Authorize(bs, req).Allowed

		perm := rapid.Permutation(bs).Draw(t, "order")
		if got := Authorize(perm, req).Allowed; got != before {
			t.Fatalf("order changed the decision: %v then %v", before, got)
		}
		after := Authorize(append(append([]Binding(nil), bs...), extra), req).Allowed
		if extra.Permission == Deny && after && !before {
			t.Fatalf("adding deny %+v allowed %+v", extra, req)
		}
		if extra.Permission == Allow && before && !after {
			t.Fatalf("adding allow %+v refused %+v", extra, req)
		}
		if d := Authorize(bs, req); d.Allowed && (d.By == nil || d.By.Permission != Allow) {
			t.Fatalf("allowed without an allow binding: %+v", d)
		}
	})
}
