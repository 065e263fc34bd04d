package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/rpc"
)

// startDevSecureNode runs one node in process the way `skiff dev --secure`
// does (its certificates, gossip key and auth with User:admin as super
// user) and returns the flags of the admin shell: brokers and TLS.
func startDevSecureNode(t *testing.T) (dir string, adminFlags []string) {
	t.Helper()
	_, dir, adminFlags = startDevSecureNodeOf(t)
	return dir, adminFlags
}

// startDevSecureNodeOf is startDevSecureNode that also returns the node.
func startDevSecureNodeOf(t *testing.T) (node *cluster.Node, dir string, adminFlags []string) {
	t.Helper()
	dir = t.TempDir()
	sec, err := prepareDevSecurity(filepath.Join(dir, "certs"), []string{"n0"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := cluster.LoopbackConfig(filepath.Join(dir, "n0"), "n0", 1)
	cfg.MetaVoters = 1
	if err := sec.configure(&cfg, nil); err != nil {
		t.Fatal(err)
	}
	if !cfg.ClientAuth || len(cfg.SuperUsers) != 1 || cfg.SuperUsers[0] != "User:admin" {
		t.Fatalf("dev --secure does not turn auth on with User:admin: %v %v", cfg.ClientAuth, cfg.SuperUsers)
	}
	// Cheap password hashes, as in the rpc tests: the production ones take
	// seconds each under -race on a loaded machine. Each hash carries its
	// parameters, so logging in costs as little.
	cfg.PasswordHash = testPasswordHash()
	node = runTestNode(t, cfg)
	certDir := sec.dir
	adminFlags = []string{"--brokers", node.Metadata().Brokers["n0"].GRPCAddr, "--timeout", "20s",
		"--tls-ca-file", filepath.Join(certDir, "ca.crt")}
	return node, certDir, adminFlags
}

// testPasswordHash are the cheap argon2id parameters of the test nodes.
func testPasswordHash() metadata.Argon2Params {
	return metadata.Argon2Params{Time: 1, MemoryKB: 1024, Threads: 1}
}

// runTestNode runs a node with cfg in process the way `skiff dev` runs
// each of its nodes (runNode: gRPC server, web console) until the test
// ends, and waits until it is ready.
func runTestNode(t *testing.T, cfg cluster.Config) *cluster.Node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *cluster.Node, 1)
	done := make(chan error, 1)
	go func() {
		done <- runNode(ctx, cfg, defaultServerLimits(), func(n *cluster.Node, _ *rpc.Server) { started <- n })
	}()
	t.Cleanup(func() { cancel(); <-done })
	var node *cluster.Node
	select {
	case node = <-started:
	case err := <-done:
		t.Fatalf("node: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("node did not start")
	}
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	if err := node.WaitReady(rctx); err != nil {
		t.Fatal(err)
	}
	return node
}

// executeIn is execute with stdin.
func executeIn(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCommand()
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestUserCommandsAgainstASecureDevNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	node, certDir, base := startDevSecureNodeOf(t)
	admin := append(append([]string{}, base...), "--tls-cert-file", filepath.Join(certDir, "admin.crt"), "--tls-key-file", filepath.Join(certDir, "admin.key"))
	as := func(user, password string) []string {
		return append(append([]string{}, base...), "--user", user, "--password", password)
	}
	run := func(stdin string, flags []string, args ...string) (string, error) {
		return executeIn(t, stdin, append(args, flags...)...)
	}

	if out, err := run("alice-password-1\n", admin, "user", "create", "alice", "--password-stdin"); err != nil || !strings.Contains(out, "created user alice") {
		t.Fatalf("create alice: %v\n%s", err, out)
	}
	if got := node.Metadata().Users["alice"].Argon2Params; got != testPasswordHash() {
		t.Fatalf("alice's password was hashed with %+v, not the node's configured %+v", got, testPasswordHash())
	}
	out, err := run("", admin, "user", "create", "bob")
	if err != nil || !strings.Contains(out, "shown only now") {
		t.Fatalf("create bob with a generated password: %v\n%s", err, out)
	}
	bobPassword := strings.TrimSpace(out[strings.Index(out, "now): ")+len("now): ") : strings.Index(out, "\ncreated")])
	if _, err := run("", as("bob", bobPassword), "topic", "list"); err != nil {
		t.Fatalf("bob with the printed password: %v", err)
	}
	if _, err := run("another-password\n", admin, "user", "create", "alice", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("second create: %v", err)
	}

	out, err = run("", admin, "user", "list", "-o", "json")
	var users []userJSON
	if err != nil || json.Unmarshal([]byte(out), &users) != nil || len(users) != 2 || users[0] != (userJSON{"alice", "argon2id"}) || users[1].Name != "bob" {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if strings.Contains(out, "hash") || strings.Contains(out, "salt") {
		t.Fatalf("list shows hashes:\n%s", out)
	}

	// alice authenticates with her password but is no super user.
	if _, err := run("", as("alice", "alice-password-1"), "topic", "list"); err != nil {
		t.Fatalf("alice lists topics: %v", err)
	}
	if _, err := run("", as("alice", "alice-password-1"), "user", "list"); err == nil || !strings.Contains(err.Error(), `User:alice may not describe cluster "skiff-cluster"`) {
		t.Fatalf("alice lists users: %v", err)
	}
	if _, err := run("", as("alice", "wrong-password"), "topic", "list"); err == nil || !strings.Contains(err.Error(), "wrong password") {
		t.Fatalf("wrong password: %v", err)
	}
	// No identity at all: the refusal says how to authenticate.
	if _, err := run("", base, "topic", "list"); err == nil || !strings.Contains(err.Error(), "--user") {
		t.Fatalf("no identity: %v", err)
	}

	if out, err := run("alice-password-2\n", admin, "user", "passwd", "alice", "--password-stdin"); err != nil || !strings.Contains(out, "changed the password") {
		t.Fatalf("passwd: %v\n%s", err, out)
	}
	if _, err := run("", as("alice", "alice-password-1"), "topic", "list"); err == nil {
		t.Fatal("the old password still works")
	}
	if out, err := run("", admin, "user", "delete", "alice"); err != nil || !strings.Contains(out, "deleted user alice") {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	if _, err := run("", as("alice", "alice-password-2"), "topic", "list"); err == nil {
		t.Fatal("a deleted user still authenticates")
	}
	if _, err := run("", admin, "user", "delete", "alice"); err == nil || !strings.Contains(err.Error(), "unknown user") {
		t.Fatalf("second delete: %v", err)
	}
}

func TestLoginFlagsRefusePlaintextAndHalfPairs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--user", "a", "--password", "password1"}, "passwords travel only over TLS"},
		{[]string{"--user", "a"}, "without --password"},
		{[]string{"--password", "password1"}, "without --user"},
	} {
		_, err := execute(t, append([]string{"topic", "list", "--brokers", "127.0.0.1:1", "--timeout", "1s"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
