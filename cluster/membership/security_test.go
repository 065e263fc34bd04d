package membership

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// isolationWindow is how long an outsider keeps trying to join (every
// JoinRetryInterval, 100ms in tests) while the test checks that nobody
// lets it in. memberlist's local profile pushes and pulls state at every
// join attempt and probes every 1s, so a merge, were it possible, would
// show well within it.
const isolationWindow = 3 * time.Second

func mustKey(t *testing.T) []byte {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// assertApart checks, for the whole window, that no node of a sees any
// node of b, and the other way round.
func assertApart(t *testing.T, window time.Duration, a, b []*Membership) {
	t.Helper()
	ids := func(ms []*Membership) map[string]bool {
		out := map[string]bool{}
		for _, m := range ms {
			out[m.Local().Meta.ID] = true
		}
		return out
	}
	aIDs, bIDs := ids(a), ids(b)
	check := func(side []*Membership, others map[string]bool) {
		for _, m := range side {
			for _, mb := range m.Members() {
				if others[mb.Meta.ID] {
					t.Fatalf("%s lets in %s: it sees %s", m.Local().Meta.ID, mb.Meta.ID, describe(m.Members()))
				}
			}
		}
	}
	deadline := time.Now().Add(window)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		check(a, bIDs)
		check(b, aIDs)
		if !time.Now().Before(deadline) {
			return
		}
		<-tick.C
	}
}

func TestNodeWithWrongOrNoKeyNeverJoins(t *testing.T) {
	t.Parallel()
	key := mustKey(t)
	cluster := startCluster(t, "enc", 3, func(c *Config) { c.Keys = [][]byte{key} })
	seed := cluster[0].Addr()

	wrong := testConfig(testMeta("wrongkey", 3), seed)
	wrong.Keys = [][]byte{mustKey(t)}
	plain := testConfig(testMeta("nokey", 4), seed)
	outsiders := []*Membership{start(t, wrong), start(t, plain)}

	assertApart(t, isolationWindow, cluster, outsiders)
	for _, o := range outsiders {
		if got := len(o.Members()); got != 1 {
			t.Fatalf("%s sees %s, want only itself", o.Local().Meta.ID, describe(o.Members()))
		}
	}
}

func TestEncryptedNodeCannotJoinPlainCluster(t *testing.T) {
	t.Parallel()
	cluster := startCluster(t, "plain", 2, nil)
	enc := testConfig(testMeta("encjoiner", 2), cluster[0].Addr())
	enc.Keys = [][]byte{mustKey(t)}
	assertApart(t, isolationWindow, cluster, []*Membership{start(t, enc)})
}

func TestClustersWithDifferentNamesNeverMerge(t *testing.T) {
	t.Parallel()
	alpha := startCluster(t, "alpha", 2, func(c *Config) { c.ClusterName = "alpha" })
	beta := startCluster(t, "beta", 2, func(c *Config) { c.ClusterName = "beta" })
	// Each cluster gets a member that keeps trying the other's seed, and
	// an unlabelled node tries both.
	crossA := testConfig(testMeta("alpha9", 9), beta[0].Addr())
	crossA.ClusterName = "alpha"
	crossB := testConfig(testMeta("beta9", 8), alpha[0].Addr())
	crossB.ClusterName = "beta"
	unlabelled := testConfig(testMeta("nolabel", 7), alpha[0].Addr(), beta[0].Addr())
	a := append(alpha, start(t, crossA))
	b := append(beta, start(t, crossB))
	loner := []*Membership{start(t, unlabelled)}

	assertApart(t, isolationWindow, a, b)
	assertApart(t, 0, a, loner)
	assertApart(t, 0, b, loner)
}

func TestSameNameAndKeyFormOneCluster(t *testing.T) {
	t.Parallel()
	key := mustKey(t)
	startCluster(t, "same", 3, func(c *Config) {
		c.ClusterName = "prod-eu.1"
		c.Keys = [][]byte{key}
	})
}

// TestRotationKeepsMembersAndPersistsKeyring rotates node by node, the
// way the cluster's fan-out does: install everywhere, use everywhere,
// remove everywhere. Nobody fails meanwhile, a node holding only the new
// key joins afterwards, one holding only the old key no longer can, and
// each node's keyring file holds exactly its live keyring.
func TestRotationKeepsMembersAndPersistsKeyring(t *testing.T) {
	t.Parallel()
	oldKey, newKey := mustKey(t), mustKey(t)
	dir := t.TempDir()
	nodes := startCluster(t, "rot", 3, func(c *Config) {
		c.Keys = [][]byte{oldKey}
		c.KeyringFile = filepath.Join(dir, c.Meta.ID+".keyring")
	})
	events, unsubscribe := nodes[0].Subscribe()
	defer unsubscribe()

	for _, step := range []struct {
		name string
		op   func(*Membership) error
	}{
		{"install", func(m *Membership) error { return m.InstallKey(newKey) }},
		{"use", func(m *Membership) error { return m.UseKey(newKey) }},
		{"remove", func(m *Membership) error { return m.RemoveKey(oldKey) }},
	} {
		for _, m := range nodes {
			if err := step.op(m); err != nil {
				t.Fatalf("%s on %s: %v", step.name, m.Local().Meta.ID, err)
			}
		}
	}
	for _, m := range nodes {
		st, err := m.Keyring()
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Keys) != 1 || !bytes.Equal(st.Primary(), newKey) {
			t.Fatalf("%s keyring has %d keys, primary new=%v", m.Local().Meta.ID, len(st.Keys), bytes.Equal(st.Primary(), newKey))
		}
		file := filepath.Join(dir, m.Local().Meta.ID+".keyring")
		persisted, err := ReadKeyFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if len(persisted) != 1 || !bytes.Equal(persisted[0], newKey) {
			t.Fatalf("%s persisted %d keys, want the new key only", file, len(persisted))
		}
		if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v (%v), want 0600", file, fi.Mode().Perm(), err)
		}
	}

	late := testConfig(testMeta("rot-late", 5), nodes[1].Addr())
	late.Keys = [][]byte{newKey}
	lm := start(t, late)
	waitView(t, lm, 10*time.Second, "late joiner with the new key sees 4", func([]Member) bool { return len(lm.Alive()) == 4 })

	stale := testConfig(testMeta("rot-stale", 6), nodes[1].Addr())
	stale.Keys = [][]byte{oldKey}
	assertApart(t, isolationWindow, append(nodes, lm), []*Membership{start(t, stale)})

	for drained := false; !drained; {
		select {
		case ev := <-events:
			if ev.Type == EventFailed || ev.Type == EventLeft {
				t.Fatalf("member flapped during rotation: %+v", ev)
			}
		default:
			drained = true
		}
	}
}

func TestKeyringOperationsRefuseWhatWouldCutANodeOff(t *testing.T) {
	t.Parallel()
	k1, k2 := mustKey(t), mustKey(t)
	cfg := testConfig(testMeta("ops", 0))
	cfg.Keys = [][]byte{k1}
	m := start(t, cfg)
	if err := m.RemoveKey(k1); !errors.Is(err, ErrRemovePrimary) {
		t.Fatalf("RemoveKey(primary) = %v, want ErrRemovePrimary", err)
	}
	if err := m.UseKey(k2); !errors.Is(err, ErrKeyNotInstalled) {
		t.Fatalf("UseKey(unknown) = %v, want ErrKeyNotInstalled", err)
	}
	var fe *FieldError
	if err := m.InstallKey(k1[:16]); !errors.As(err, &fe) {
		t.Fatalf("InstallKey(AES-128 key) = %v, want a FieldError", err)
	}
	if err := m.RemoveKey(k2); err != nil {
		t.Fatalf("RemoveKey(absent) = %v, want nil (idempotent)", err)
	}
	// Removing a key in the middle keeps the others, in order.
	k3 := mustKey(t)
	for _, k := range [][]byte{k2, k3} {
		if err := m.InstallKey(k); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.RemoveKey(k2); err != nil {
		t.Fatal(err)
	}
	st, _ := m.Keyring()
	if len(st.Keys) != 2 || !bytes.Equal(st.Keys[0], k1) || !bytes.Equal(st.Keys[1], k3) {
		t.Fatalf("after removing the middle key: %d keys", len(st.Keys))
	}

	plain := start(t, testConfig(testMeta("ops-plain", 1)))
	if plain.Encrypted() {
		t.Fatal("a node without keys reports encryption")
	}
	if err := plain.InstallKey(k1); !errors.Is(err, ErrEncryptionDisabled) {
		t.Fatalf("InstallKey on a plain node = %v, want ErrEncryptionDisabled", err)
	}
	if _, err := plain.Keyring(); !errors.Is(err, ErrEncryptionDisabled) {
		t.Fatalf("Keyring on a plain node = %v, want ErrEncryptionDisabled", err)
	}
}
