package main

import (
	"bufio"
	"context"
	"encoding/json"

	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildSkiff compiles the binary once per test run.
func buildSkiff(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "skiff")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// freeBasePort finds a base port whose 30 ports above it are free now.
func freeBasePort(t *testing.T) int {
	t.Helper()
	for attempt := 0; attempt < 50; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if base > 60000 {
			continue
		}
		ok := true
		for p := base; p < base+50 && ok; p++ {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

func TestDevStartsClusterAndStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildSkiff(t)
	base := freeBasePort(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "dev", "--nodes", "3", "--base-port", strconv.Itoa(base), "--dir", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	want := "brokers: 127.0.0.1:" + strconv.Itoa(base) + ",127.0.0.1:" + strconv.Itoa(base+10) + ",127.0.0.1:" + strconv.Itoa(base+20)
	select {
	case line := <-lines:
		if line != want {
			t.Fatalf("got %q, want %q", line, want)
		}
	case <-ctx.Done():
		t.Fatal("skiff dev printed no brokers line")
	}
	// Each node answers health checks and serves its HTTP endpoints.
	for i := 0; i < 3; i++ {
		out, err := exec.Command(bin, "health", "--addr", "127.0.0.1:"+strconv.Itoa(base+10*i)).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "SERVING" {
			t.Fatalf("health of node %d: %v %s", i, err, out)
		}
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(base+10*i+3) + "/readyz")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("readyz of node %d: %v", i, err)
		}
		resp.Body.Close()
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("skiff dev exited with %v after SIGINT:\n%s", err, stderr.String())
	}
	// --dir keeps the data: every node left its id behind.
	for i := 0; i < 3; i++ {
		if _, err := os.Stat(filepath.Join(dir, "node-"+strconv.Itoa(i), "node-id")); err != nil {
			t.Fatalf("node %d data: %v", i, err)
		}
	}
}

func TestHealthFailsWithoutANode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := checkHealth(ctx, "127.0.0.1:1"); err == nil {
		t.Fatal("health of a closed port succeeded")
	}
}

// TestDevSecureServesOnlyTLS starts `skiff dev --secure`, uses the printed
// exports as a shell would, and checks that plaintext clients are refused.
func TestDevSecureServesOnlyTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildSkiff(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	env := startDevSecure(t, ctx, bin, dir)
	run := func(withTLS bool, args ...string) (string, error) {
		c := exec.CommandContext(ctx, bin, append(args, "--timeout", "10s")...)
		c.Env = append(os.Environ(), "SKIFF_BROKERS="+env["SKIFF_BROKERS"])
		if withTLS {
			for k, v := range env {
				c.Env = append(c.Env, k+"="+v)
			}
		}
		out, err := c.CombinedOutput()
		return string(out), err
	}
	if out, err := run(true, "topic", "create", "secure-orders", "--partitions", "2", "--replication", "3"); err != nil {
		t.Fatalf("topic create over TLS: %v\n%s", err, out)
	}
	out, err := run(true, "topic", "list", "-o", "json")
	if err != nil || !strings.Contains(out, "secure-orders") {
		t.Fatalf("topic list over TLS: %v\n%s", err, out)
	}
	if out, err := run(false, "topic", "list"); err == nil || !strings.Contains(out, "TLS") {
		t.Fatalf("plaintext client: err %v, output %q: want a refusal that mentions TLS", err, out)
	}
	_, grpcPort, _ := net.SplitHostPort(strings.Split(env["SKIFF_BROKERS"], ",")[0])
	base, _ := strconv.Atoi(grpcPort)
	if resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(base+3) + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plaintext HTTP answered /readyz")
		}
	}
	// The gossip key and the certificates stay in DIR/certs for the next run.
	for _, f := range []string{"ca.crt", "node-0.crt", "admin.key", "gossip.key"} {
		if _, err := os.Stat(filepath.Join(dir, "certs", f)); err != nil {
			t.Fatalf("DIR/certs/%s: %v", f, err)
		}
	}
}

// TestSecureAuthEndToEnd is the operator's path on `skiff dev --secure`
// (auth on, User:admin super user): create a user, grant it write on a
// topic, produce as that user, be refused a topic delete, and be throttled
// by a produce quota to within 20% of it over about 10 s (1.2 MB at
// 100 KiB/s, the first second's worth being the burst).
func TestSecureAuthEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildSkiff(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	env := startDevSecure(t, ctx, bin, t.TempDir())
	// admin: the exported client certificate. alice: a password, the CA
	// only.
	run := func(asAlice bool, stdin string, args ...string) (string, error) {
		c := exec.CommandContext(ctx, bin, append(args, "--timeout", "20s")...)
		c.Env = append(os.Environ(), "SKIFF_BROKERS="+env["SKIFF_BROKERS"], "SKIFF_TLS_CA_FILE="+env["SKIFF_TLS_CA_FILE"])
		if asAlice {
			c.Env = append(c.Env, "SKIFF_USER=alice", "SKIFF_PASSWORD=alice-password-1")
		} else {
			c.Env = append(c.Env, "SKIFF_TLS_CERT_FILE="+env["SKIFF_TLS_CERT_FILE"], "SKIFF_TLS_KEY_FILE="+env["SKIFF_TLS_KEY_FILE"])
		}
		c.Stdin = strings.NewReader(stdin)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	must := func(out string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return out
	}
	must(run(false, "", "topic", "create", "orders", "--partitions", "3", "--replication", "3"))
	must(run(false, "alice-password-1\n", "user", "create", "alice", "--password-stdin"))
	if out, err := run(true, "k:v\n", "produce", "orders", "--key-delim", ":"); err == nil {
		t.Fatalf("alice produced without a binding:\n%s", out)
	}
	must(run(false, "", "acl", "add", "--principal", "User:alice", "--topic", "orders", "--operation", "write"))
	if out := must(run(true, "a:1\nb:2\nc:3\n", "produce", "orders", "--key-delim", ":")); !strings.Contains(out, "produced 3 messages") {
		t.Fatalf("alice's produce:\n%s", out)
	}
	out, err := run(true, "", "topic", "delete", "orders")
	if err == nil || !strings.Contains(out, "User:alice") || !strings.Contains(out, `delete topic "orders"`) {
		t.Fatalf("alice deletes orders: %v\n%s", err, out)
	}

	// Quotas are metered per node, as in Kafka: a one-partition topic puts
	// all of alice's writes on one leader.
	const quota = 100 << 10 // bytes/s
	must(run(false, "", "topic", "create", "metered", "--partitions", "1", "--replication", "3"))
	// The admin's write waits out the new partition's first election, so
	// the measured run starts on a led partition.
	must(run(false, "warm:up\n", "produce", "metered", "--key-delim", ":"))
	must(run(false, "", "acl", "add", "--principal", "User:alice", "--topic", "metered", "--operation", "write"))
	must(run(false, "", "quota", "set", "--principal", "User:alice", "--produce-bytes-per-sec", strconv.Itoa(quota)))
	// A run slower than the quota says nothing about it when the machine
	// is loaded (the client could not keep up): it is repeated, at most
	// three runs in all. A run faster than the quota allows, or with
	// errors, fails at once.
	for attempt := 1; ; attempt++ {
		out = must(run(true, "", "bench", "produce", "--topic", "metered", "--records", "1200", "--record-size", "1000", "--concurrency", "2", "-o", "json"))
		var res struct {
			Bytes   int64   `json:"bytes"`
			Seconds float64 `json:"seconds"`
			Errors  int64   `json:"errors"`
		}
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
			t.Fatalf("bench output: %v\n%s", err, out)
		}
		rate := float64(res.Bytes) / res.Seconds
		t.Logf("run %d: alice under a %d B/s quota: %d bytes in %.1f s = %.0f B/s (%.2f of the quota)", attempt, quota, res.Bytes, res.Seconds, rate, rate/quota)
		if res.Errors != 0 || rate > 1.2*quota {
			t.Fatalf("rate %.0f B/s with %d errors, want within 20%% of %d", rate, res.Errors, quota)
		}
		if rate >= 0.8*quota {
			return
		}
		if attempt == 3 {
			t.Fatalf("rate %.0f B/s in three runs, want within 20%% of %d", rate, quota)
		}
	}
}

// startDevSecure runs `skiff dev --secure` in dir until the test ends and
// returns the variables of the `export` lines it prints once ready.
func startDevSecure(t *testing.T, ctx context.Context, bin, dir string) map[string]string {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "dev", "--secure", "--nodes", "3", "--base-port", strconv.Itoa(freeBasePort(t)), "--dir", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
	})
	sc := bufio.NewScanner(stdout)
	env := map[string]string{}
	for len(env) < 4 && sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "="); ok && strings.HasPrefix(sc.Text(), "export ") {
			env[k] = v
		}
	}
	for _, k := range []string{"SKIFF_BROKERS", "SKIFF_TLS_CA_FILE", "SKIFF_TLS_CERT_FILE", "SKIFF_TLS_KEY_FILE"} {
		if env[k] == "" {
			t.Fatalf("no export of %s (got %v); stderr:\n%s", k, env, stderr.String())
		}
	}
	return env
}
