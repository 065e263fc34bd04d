package cluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/cluster/membership"
	"github.com/skiff-mq/skiff/cluster/metadata"
)

// newEncryptedTestCluster is newTestCluster with every node started from
// the same gossip key file and cluster name.
func newEncryptedTestCluster(t *testing.T, count int, keyFile, name string) *testCluster {
	return newTestClusterWith(t, count, func(cfg *Config) { cfg.GossipKeyFile, cfg.ClusterName = keyFile, name })
}

func writeKeyFile(t *testing.T, keys ...[]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gossip.keys")
	if err := membership.WriteKeyFile(path, keys); err != nil {
		t.Fatal(err)
	}
	return path
}

// watchFlaps records every member seen failed or left by any running node
// until the returned stop function is called; stop returns them.
func watchFlaps(c *testCluster) (stop func() []string) {
	var (
		mu     sync.Mutex
		flaps  []string
		unsubs []func()
		wg     sync.WaitGroup
	)
	for _, n := range c.running() {
		events, unsub := n.members.Subscribe()
		unsubs = append(unsubs, unsub)
		wg.Go(func() {
			for ev := range events {
				if ev.Type == membership.EventFailed || ev.Type == membership.EventLeft {
					mu.Lock()
					flaps = append(flaps, fmt.Sprintf("%s saw %s %v", n.ID(), ev.Member.Meta.ID, ev.Type))
					mu.Unlock()
				}
			}
		})
	}
	return func() []string {
		for _, u := range unsubs {
			u()
		}
		wg.Wait()
		return flaps
	}
}

// TestGossipKeyRotationUnderLoad rotates the gossip key of a 3-node cluster
// while producers write: install a new key, use it, remove the original.
// Every acknowledged record is read back, no member is ever seen failed or
// left, every node ends with the new key alone, and a node restarted with
// only the original key file still rejoins, from the keyring its data dir
// persisted.
func TestGossipKeyRotationUnderLoad(t *testing.T) {
	oldKey, err := membership.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writeKeyFile(t, oldKey)
	c := newEncryptedTestCluster(t, 3, keyFile, "rotation-test")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c.createLedTopic(ctx, "t", 3, 3)

	flaps := watchFlaps(c)
	a := &acked{}
	load, stopLoad := context.WithCancel(ctx)
	var producers sync.WaitGroup
	for p := range int32(3) {
		producers.Go(func() {
			for seq := int32(0); load.Err() == nil; seq++ {
				res, err := c.produce(load, "t", p, batchOf(t, int64(p), seq))
				if err != nil {
					if load.Err() == nil {
						t.Errorf("produce p%d seq %d: %v", p, seq, err)
					}
					return
				}
				a.add(fmt.Sprintf("p%d-s%d", p, seq), p, res.BaseOffset)
			}
		})
	}
	waitFor(t, 10*time.Second, "producers under way", func() bool { return a.len() >= 30 })

	nodes := c.running()
	oldB64 := membership.EncodeKey(oldKey)
	// Through a different node each time: any node can drive a rotation.
	res, err := nodes[0].GossipKeys(ctx, GossipKeyInstall, "")
	requireAllNodes(t, res, err, 3)
	newB64 := res.Key

	if _, err := nodes[1].GossipKeys(ctx, GossipKeyRemove, oldB64); !errors.Is(err, ErrGossipKeyRefused) {
		t.Fatalf("removing the primary key everywhere: %v, want ErrGossipKeyRefused", err)
	}
	other, _ := membership.GenerateKey()
	if _, err := nodes[1].GossipKeys(ctx, GossipKeyUse, membership.EncodeKey(other)); !errors.Is(err, ErrGossipKeyRefused) {
		t.Fatalf("using a key no node holds: %v, want ErrGossipKeyRefused", err)
	}
	var ia *metadata.InvalidArgumentError
	if _, err := nodes[1].GossipKeys(ctx, GossipKeyInstall, "c2hvcnQ="); !errors.As(err, &ia) {
		t.Fatalf("installing a short key: %v, want an InvalidArgumentError", err)
	}

	res, err = nodes[1].GossipKeys(ctx, GossipKeyUse, newB64)
	requireAllNodes(t, res, err, 3)
	res, err = nodes[2].GossipKeys(ctx, GossipKeyRemove, oldB64)
	requireAllNodes(t, res, err, 3)

	res, err = nodes[0].GossipKeys(ctx, GossipKeysList, "")
	requireAllNodes(t, res, err, 3)
	requireOnlyKey(t, "after rotation", res, newB64)

	// Let gossip run on the new key alone for a while under load.
	before := a.len()
	waitFor(t, 20*time.Second, "more writes after the rotation", func() bool { return a.len() >= before+30 })
	stopLoad()
	producers.Wait()
	if f := flaps(); len(f) > 0 {
		t.Fatalf("membership flapped during rotation: %v", f)
	}
	c.verifyAcked("t", a)
	t.Logf("%d acknowledged records read back", a.len())

	// The restarted node's --gossip-key-file holds only the removed key.
	restarted := c.nodes[2]
	c.stop(restarted, true)
	c.restart(restarted)
	if restarted.cfg.GossipKeyFile != keyFile {
		t.Fatal("test bug: the restarted node must use the original key file")
	}
	c.waitReady(30 * time.Second)
	for _, n := range c.running() {
		waitFor(t, 20*time.Second, n.ID()+" sees 3 alive members", func() bool { return len(n.members.Alive()) == 3 })
	}
	res, err = restarted.node().GossipKeys(ctx, GossipKeysList, "")
	requireAllNodes(t, res, err, 3)
	requireOnlyKey(t, "after restart", res, newB64)
}

// requireOnlyKey checks that every node holds key and nothing else.
func requireOnlyKey(t *testing.T, when string, res GossipKeysResult, key string) {
	t.Helper()
	for _, nk := range res.Nodes {
		if len(nk.Keys) != 1 || nk.Keys[0] != key {
			t.Fatalf("%s: node %s holds %v, want only %s", when, nk.Node, nk.Keys, key)
		}
	}
}

func requireAllNodes(t *testing.T, res GossipKeysResult, err error, n int) {
	t.Helper()
	if err != nil {
		t.Fatalf("gossip keys %s: %v", res.Op, err)
	}
	if f := res.Failed(); len(f) > 0 || len(res.Nodes) != n {
		t.Fatalf("gossip keys %s: %d nodes answered, failures %+v", res.Op, len(res.Nodes), f)
	}
}

func TestGossipKeysNeedEncryptionAndAValidConfig(t *testing.T) {
	c := newTestCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.anyNode().GossipKeys(ctx, GossipKeysList, ""); !errors.Is(err, membership.ErrEncryptionDisabled) {
		t.Fatalf("GossipKeys on a plain cluster = %v, want ErrEncryptionDisabled", err)
	}

	cfg := LoopbackConfig(t.TempDir(), "x", 1)
	cfg.ClusterName = "has space"
	cfg.GossipKeyFile = filepath.Join(t.TempDir(), "missing")
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad cluster name and a missing key file")
	}
	for _, want := range []string{"--cluster-name", "--gossip-key-file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %q does not name %s", err, want)
		}
	}
}
