package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/skiff-mq/skiff/client"
	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/cluster/membership"
)

func TestNewGossipKeyFileIsAValidPrivateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gossip.keys")
	key, err := writeNewGossipKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := membership.ReadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || membership.EncodeKey(keys[0]) != key {
		t.Fatalf("file holds %d keys, want the returned one", len(keys))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestGossipFlagsReadTheEnvironment(t *testing.T) {
	t.Setenv("SKIFF_GOSSIP_KEY_FILE", "/etc/skiff/gossip.keys")
	t.Setenv("SKIFF_CLUSTER_NAME", "prod-eu")
	cfg := cluster.DefaultConfig()
	f := pflag.NewFlagSet("server", pflag.ContinueOnError)
	addGossipFlags(f, &cfg)
	if err := f.Parse([]string{"--cluster-name", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(f); err != nil {
		t.Fatal(err)
	}
	if cfg.GossipKeyFile != "/etc/skiff/gossip.keys" || cfg.ClusterName != "from-flag" {
		t.Fatalf("GossipKeyFile %q, ClusterName %q: want the env's file and the flag's name", cfg.GossipKeyFile, cfg.ClusterName)
	}
}

func TestGossipKeysOutput(t *testing.T) {
	res := client.GossipKeysResult{Key: "NEW=", Nodes: []client.GossipKeyNode{
		{NodeID: "n0", Keys: []string{"OLD=", "NEW="}},
		{NodeID: "n1", Keys: []string{"OLD=", "NEW="}},
		{NodeID: "n2", Error: "connection refused"},
	}}
	var text strings.Builder
	if err := printGossipKeys(&text, client.GossipKeyInstall, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"install done on 2 of 3 nodes", "NEW=  2/3    0", "OLD=  2/3    2", "failed on n2: connection refused", "key: NEW="} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, text.String())
		}
	}
	b, err := json.Marshal(gossipKeysJSON(client.GossipKeyInstall, res))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"op":"install","key":"NEW=","keys":[{"key":"NEW=","nodes":2,"primary_on":0},{"key":"OLD=","nodes":2,"primary_on":2}],` +
		`"nodes":[{"node_id":"n0","keys":["OLD=","NEW="]},{"node_id":"n1","keys":["OLD=","NEW="]},{"node_id":"n2","error":"connection refused"}]}`
	if string(b) != want {
		t.Fatalf("json:\n%s\nwant\n%s", b, want)
	}
}
