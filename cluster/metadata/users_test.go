package metadata

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// cheapParams keep the tests fast; the FSM accepts any in-bounds parameters.
var cheapParams = Argon2Params{Time: 1, MemoryKB: 64, Threads: 1}

func credential(t *testing.T, password string) UserCredential {
	t.Helper()
	c, err := NewCredential(password, cheapParams)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestUserLifecycle(t *testing.T) {
	a := newApplier(t)
	alice := credential(t, "alice-password")
	a.must(UpsertUser{Name: "alice", Credential: alice, Create: true})
	if c, ok := a.fsm.State().User("alice"); !ok || !c.Verify("alice-password") || c.Verify("wrong-password") {
		t.Fatalf("alice's credential does not verify as it should: %+v %v", c, ok)
	}
	if r := a.apply(UpsertUser{Name: "alice", Credential: credential(t, "other-password"), Create: true}); !errors.Is(r.Err, ErrUserExists) {
		t.Fatalf("second create: %v", r.Err)
	}
	if r := a.apply(UpsertUser{Name: "bob", Credential: alice, Update: true}); !errors.Is(r.Err, ErrUnknownUser) {
		t.Fatalf("update of a missing user: %v", r.Err)
	}
	a.must(UpsertUser{Name: "alice", Credential: credential(t, "new-password"), Update: true})
	if c, _ := a.fsm.State().User("alice"); c.Verify("alice-password") || !c.Verify("new-password") || c.Same(alice) {
		t.Fatal("password change did not replace the credential")
	}
	a.must(UpsertUser{Name: "bob@example.com", Credential: alice}) // plain upsert creates
	if got := a.fsm.State().UserNames(); !reflect.DeepEqual(got, []string{"alice", "bob@example.com"}) {
		t.Fatalf("users %v", got)
	}
	a.must(DeleteUser{Name: "alice"})
	if r := a.apply(DeleteUser{Name: "alice"}); !errors.Is(r.Err, ErrUnknownUser) {
		t.Fatalf("second delete: %v", r.Err)
	}
	if err := a.fsm.State().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestUserCommandsRejectBadInput(t *testing.T) {
	good := credential(t, "a-good-password")
	bad := func(f func(*UserCredential)) UserCredential {
		c := good
		c.Salt, c.Hash = bytes.Clone(good.Salt), bytes.Clone(good.Hash)
		f(&c)
		return c
	}
	tests := []struct {
		name string
		cmd  Command
	}{
		{"empty name", UpsertUser{Name: "", Credential: good}},
		{"name with colon", UpsertUser{Name: "User:x", Credential: good}},
		{"name too long", UpsertUser{Name: strings.Repeat("a", 65), Credential: good}},
		{"create and update", UpsertUser{Name: "a", Credential: good, Create: true, Update: true}},
		{"no credential", UpsertUser{Name: "a"}},
		{"unknown mechanism", UpsertUser{Name: "a", Credential: bad(func(c *UserCredential) { c.Mechanism = "md5" })}},
		{"short salt", UpsertUser{Name: "a", Credential: bad(func(c *UserCredential) { c.Salt = c.Salt[:4] })}},
		{"short hash", UpsertUser{Name: "a", Credential: bad(func(c *UserCredential) { c.Hash = c.Hash[:4] })}},
		{"huge memory", UpsertUser{Name: "a", Credential: bad(func(c *UserCredential) { c.MemoryKB = 1 << 30 })}},
		{"zero time", UpsertUser{Name: "a", Credential: bad(func(c *UserCredential) { c.Time = 0 })}},
		{"zero threads", UpsertUser{Name: "a", Credential: bad(func(c *UserCredential) { c.Threads = 0 })}},
		{"delete bad name", DeleteUser{Name: "a b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newApplier(t)
			before := withoutIndex(a.fsm.State())
			if r := a.apply(tc.cmd); r.Err == nil {
				t.Fatal("accepted")
			}
			if !reflect.DeepEqual(before, withoutIndex(a.fsm.State())) {
				t.Fatal("a rejected command changed the state")
			}
		})
	}
}

func TestUserCommandsDecodeStrictly(t *testing.T) {
	cmd := UpsertUser{Name: "alice", Credential: credential(t, "alice-password")}
	data, err := EncodeCommand(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if data[0] != 10 {
		t.Fatalf("UpsertUser type byte %d, want 10", data[0])
	}
	got, err := DecodeCommand(data)
	if err != nil || !reflect.DeepEqual(got, cmd) {
		t.Fatalf("round trip: %v %+v", err, got)
	}
	if del, _ := EncodeCommand(DeleteUser{Name: "alice"}); del[0] != 11 {
		t.Fatalf("DeleteUser type byte %d, want 11", del[0])
	}
	for _, raw := range []string{
		"\x0a{\"name\":\"a\",\"credential\":{},\"password\":\"x\"}",
		"\x0b{\"name\":\"a\",\"extra\":1}",
		"\x0b{\"name\":\"a\"}{}",
	} {
		if _, err := DecodeCommand([]byte(raw)); !errors.Is(err, ErrMalformedCommand) {
			t.Errorf("%q: %v", raw, err)
		}
	}
}

func TestUsersSurviveSnapshotsAndOldSnapshotsLoad(t *testing.T) {
	a := seeded(t)
	a.must(UpsertUser{Name: "alice", Credential: credential(t, "alice-password")})
	data := snapshotBytes(t, a.fsm)
	if !bytes.Contains(data, []byte(`"users":{"alice":{"mechanism":"argon2id","time":1,"memory_kb":64,"threads":1,`)) {
		t.Fatalf("snapshot lacks the user's hash parameters:\n%s", data)
	}
	b := NewFSM()
	if err := b.Restore(readCloser(data)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.fsm.State(), b.State()) {
		t.Fatal("restored state differs")
	}
	if c, ok := b.State().User("alice"); !ok || !c.Verify("alice-password") {
		t.Fatal("restored credential does not verify")
	}

	// A snapshot written before users existed has no "users" key.
	old := seeded(t)
	oldData := snapshotBytes(t, old.fsm)
	if bytes.Contains(oldData, []byte(`"users"`)) {
		t.Fatalf("a state without users still writes the key:\n%s", oldData)
	}
	c := NewFSM()
	if err := c.Restore(readCloser(oldData)); err != nil {
		t.Fatal(err)
	}
	if c.State().Users == nil {
		t.Fatal("restored users map is nil")
	}
	// and a damaged credential is refused.
	broken := bytes.Replace(data, []byte(`"mechanism":"argon2id"`), []byte(`"mechanism":"plain"`), 1)
	if err := NewFSM().Restore(readCloser(broken)); err == nil {
		t.Fatal("a snapshot with a bad credential was accepted")
	}
}

func TestCredentialNeverHoldsThePassword(t *testing.T) {
	c := credential(t, "a-secret-password")
	data, err := EncodeCommand(UpsertUser{Name: "alice", Credential: c})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("a-secret-password")) {
		t.Fatal("the password is in the command")
	}
	d := credential(t, "a-secret-password")
	if bytes.Equal(c.Salt, d.Salt) || bytes.Equal(c.Hash, d.Hash) {
		t.Fatal("two hashes of one password share a salt")
	}
	if _, err := NewCredential("short", cheapParams); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("short password: %v", err)
	}
	if _, err := NewCredential(strings.Repeat("x", MaxPasswordLen+1), cheapParams); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("long password: %v", err)
	}
}
