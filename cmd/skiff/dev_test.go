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
