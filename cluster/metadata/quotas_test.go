package metadata

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestQuotaCommands(t *testing.T) {
	a := newApplier(t)
	alice := Quota{ProduceBytesPerSec: 200 << 10, RequestsPerSec: 50}
	a.must(SetQuota{Principal: "User:alice", Quota: alice})
	a.must(SetQuota{Principal: DefaultQuotaPrincipal, Quota: Quota{FetchBytesPerSec: 1 << 20}})

	s := a.fsm.State()
	if got, ok := s.QuotaFor("User:alice"); !ok || got != alice {
		t.Fatalf("alice's quota %+v %v, want her own %+v", got, ok, alice)
	}
	if got, ok := s.QuotaFor("User:bob"); !ok || got.FetchBytesPerSec != 1<<20 || got.ProduceBytesPerSec != 0 {
		t.Fatalf("bob's quota %+v %v, want the User:* default", got, ok)
	}
	if _, ok := s.QuotaFor("Node:n1"); ok {
		t.Fatal("a node principal got the User:* default")
	}
	if got := s.QuotaPrincipals(); !reflect.DeepEqual(got, []string{"User:*", "User:alice"}) {
		t.Fatalf("principals %v", got)
	}

	// Set replaces the whole quota.
	a.must(SetQuota{Principal: "User:alice", Quota: Quota{FetchBytesPerSec: 10}})
	if got := a.fsm.State().Quotas["User:alice"]; got != (Quota{FetchBytesPerSec: 10}) {
		t.Fatalf("after replace: %+v", got)
	}

	for _, bad := range []Command{
		SetQuota{Principal: "alice", Quota: alice},
		SetQuota{Principal: "Node:n1", Quota: alice},
		SetQuota{Principal: "User:", Quota: alice},
		SetQuota{Principal: "User:a:b", Quota: alice},
		SetQuota{Principal: "User:alice", Quota: Quota{RequestsPerSec: -1}},
		SetQuota{Principal: "User:alice", Quota: Quota{ProduceBytesPerSec: MaxQuotaRate + 1}},
	} {
		r := a.apply(bad)
		var inv *InvalidArgumentError
		if !errors.As(r.Err, &inv) {
			t.Errorf("%+v: err %v, want an InvalidArgumentError", bad, r.Err)
		}
	}

	a.must(DeleteQuota{Principal: "User:alice"})
	if got, _ := a.fsm.State().QuotaFor("User:alice"); got.FetchBytesPerSec != 1<<20 {
		t.Fatalf("after delete alice falls back to the default, got %+v", got)
	}
	if r := a.apply(DeleteQuota{Principal: "User:alice"}); !errors.Is(r.Err, ErrUnknownQuota) {
		t.Fatalf("deleting a missing quota: %v, want ErrUnknownQuota", r.Err)
	}
	if err := a.fsm.State().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestQuotaCommandsDecodeStrictly(t *testing.T) {
	for _, cmd := range []Command{
		SetQuota{Principal: "User:alice", Quota: Quota{ProduceBytesPerSec: 1, FetchBytesPerSec: 2, RequestsPerSec: 3}},
		DeleteQuota{Principal: "User:*"},
	} {
		raw, err := EncodeCommand(cmd)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeCommand(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, cmd) {
			t.Fatalf("decoded %#v, want %#v", got, cmd)
		}
	}
	for _, bad := range []string{
		"\x0e" + `{"principal":"User:a","quota":{},"extra":1}`,
		"\x0e" + `{"principal":"User:a","quota":{"bytes":1}}`,
		"\x0f" + `{"principal":"User:a"} {}`,
	} {
		if _, err := DecodeCommand([]byte(bad)); !errors.Is(err, ErrMalformedCommand) {
			t.Errorf("%q: err %v, want ErrMalformedCommand", bad, err)
		}
	}
}

func TestQuotasSurviveSnapshotsAndOldSnapshotsLoad(t *testing.T) {
	a := seeded(t)
	a.must(SetQuota{Principal: "User:alice", Quota: Quota{ProduceBytesPerSec: 1000}})
	a.must(SetQuota{Principal: "User:*", Quota: Quota{}})
	data := snapshotBytes(t, a.fsm)
	if !bytes.Contains(data, []byte(`"quotas":{"User:*":{},"User:alice":{"produce_bytes_per_sec":1000}}`)) {
		t.Fatalf("snapshot lacks the quotas:\n%s", data)
	}
	b := NewFSM()
	if err := b.Restore(readCloser(data)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.fsm.State(), b.State()) {
		t.Fatal("restored state differs")
	}

	// A snapshot written before quotas existed has no "quotas" key.
	old := seeded(t)
	oldData := snapshotBytes(t, old.fsm)
	if bytes.Contains(oldData, []byte(`"quotas"`)) {
		t.Fatalf("a state without quotas still writes the key:\n%s", oldData)
	}
	c := NewFSM()
	if err := c.Restore(readCloser(oldData)); err != nil {
		t.Fatal(err)
	}
	if c.State().Quotas == nil {
		t.Fatal("restored quotas map is nil")
	}
	// and a damaged quota is refused.
	broken := bytes.Replace(data, []byte(`"produce_bytes_per_sec":1000`), []byte(`"produce_bytes_per_sec":-5`), 1)
	if err := NewFSM().Restore(readCloser(broken)); err == nil {
		t.Fatal("a snapshot with a negative quota was accepted")
	}
}
