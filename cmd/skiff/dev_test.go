package main

import (
	"bufio"
	"context"

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
		for p := base; p < base+30 && ok; p++ {
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
	base := freeBasePort(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "dev", "--secure", "--nodes", "3", "--base-port", strconv.Itoa(base), "--dir", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
	}()
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
