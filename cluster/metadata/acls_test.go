package metadata

import (
	"bytes"
	"testing"

	"github.com/skiff-mq/skiff/internal/acl"
)

func binding(principal, name string, op acl.Operation, perm acl.Permission) acl.Binding {
	return acl.Binding{Principal: principal, Host: acl.AnyHost, Type: acl.Topic, Pattern: acl.Literal, Name: name, Operation: op, Permission: perm}
}

func TestACLCommands(t *testing.T) {
	a := newApplier(t)
	alice := binding("User:alice", "orders", acl.Write, acl.Allow)
	bob := binding("User:bob", "orders", acl.Read, acl.Deny)

	if r := a.must(CreateACLs{Bindings: []acl.Binding{bob, alice, alice}}); r.Count != 2 {
		t.Fatalf("created %d, want 2 (a duplicate in one command counts once)", r.Count)
	}
	if r := a.must(CreateACLs{Bindings: []acl.Binding{alice}}); r.Count != 0 {
		t.Fatalf("re-created %d, want 0", r.Count)
	}
	got := a.fsm.State().ACLs
	if len(got) != 2 || got[0] != alice || got[1] != bob {
		t.Fatalf("ACLs %v, want [alice bob] sorted", got)
	}
	if r := a.apply(CreateACLs{Bindings: []acl.Binding{{Principal: "alice", Host: "*", Type: acl.Topic, Pattern: acl.Literal, Name: "x", Operation: acl.Read, Permission: acl.Allow}}}); r.Err == nil {
		t.Fatal("a binding with a bad principal was accepted")
	}
	if r := a.apply(CreateACLs{}); r.Err == nil {
		t.Fatal("an empty CreateACLs was accepted")
	}

	// The state round-trips through a snapshot, bindings included.
	var buf bytes.Buffer
	if err := WriteSnapshot(&buf, a.fsm.State()); err != nil {
		t.Fatal(err)
	}
	restored, err := ReadSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(restored.ACLs) != 2 || restored.ACLs[1] != bob {
		t.Fatalf("restored ACLs %v", restored.ACLs)
	}

	if r := a.must(DeleteACLs{Bindings: []acl.Binding{bob, binding("User:carol", "x", acl.Read, acl.Allow)}}); r.Count != 1 {
		t.Fatalf("deleted %d, want 1", r.Count)
	}
	if got := a.fsm.State().ACLs; len(got) != 1 || got[0] != alice {
		t.Fatalf("after delete: %v", got)
	}
}

func TestACLCommandsDecodeStrictly(t *testing.T) {
	raw, err := EncodeCommand(CreateACLs{Bindings: []acl.Binding{binding("User:alice", "orders", acl.Read, acl.Allow)}})
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := DecodeCommand(raw)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := cmd.(CreateACLs); !ok || len(c.Bindings) != 1 || c.Bindings[0].Principal != "User:alice" {
		t.Fatalf("decoded %#v", cmd)
	}
	bad := append([]byte{byte(TypeCreateACLs)}, []byte(`{"bindings":[],"extra":1}`)...)
	if _, err := DecodeCommand(bad); err == nil {
		t.Fatal("an unknown field was accepted")
	}
}

func TestSnapshotWithoutACLsStillLoads(t *testing.T) {
	old := `{"version":1,"state":{"brokers":{},"topics":{},"next_producer_id":0,"index":0}}`
	s, err := ReadSnapshot(bytes.NewBufferString(old))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.ACLs) != 0 {
		t.Fatalf("ACLs %v", s.ACLs)
	}
}
