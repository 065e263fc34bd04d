package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cli runs the built binary against a `skiff dev` cluster.
type cli struct {
	bin     string
	brokers string
}

// run executes skiff with args (and --brokers), feeding stdin, and returns
// its output and exit code.
func (c *cli) run(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, append(args, "--brokers", c.brokers)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("skiff %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// mustRun is run for a command that must succeed.
func (c *cli) mustRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := c.run(t, stdin, args...)
	if code != 0 {
		t.Fatalf("skiff %v: exit %d\n%s", args, code, errOut)
	}
	return out
}

// startDevCluster runs `skiff dev --nodes 3` until the test ends.
func startDevCluster(t *testing.T) *cli {
	t.Helper()
	return startDevClusterOf(t, 3)
}

// startDevClusterOf runs `skiff dev --nodes nodes` until the test ends.
func startDevClusterOf(t *testing.T, nodes int) *cli {
	t.Helper()
	bin := buildSkiff(t)
	base := freeBasePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "dev", "--nodes", strconv.Itoa(nodes), "--base-port", strconv.Itoa(base))
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
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			cancel() // kills it
			<-done
		}
		cancel()
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case line := <-lines:
		brokers, ok := strings.CutPrefix(line, "brokers: ")
		if !ok {
			t.Fatalf("skiff dev printed %q", line)
		}
		return &cli{bin: bin, brokers: brokers}
	case <-time.After(90 * time.Second):
		t.Fatalf("skiff dev not ready:\n%s", stderr.String())
	}
	return nil
}

// TestCLIVerbsAgainstADevCluster runs every client verb against one dev
// cluster: starting one costs seconds, so the verbs share it.
func TestCLIVerbsAgainstADevCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a dev cluster")
	}
	c := startDevCluster(t)
	t.Run("cluster status", func(t *testing.T) { testClusterStatus(t, c) })
	t.Run("topic create and describe", func(t *testing.T) { testTopicCreateDescribe(t, c) })
	t.Run("day-2 operations", func(t *testing.T) { testDayTwoOperations(t, c) })
	t.Run("produce and consume round trip", func(t *testing.T) { testProduceConsumeRoundTrip(t, c) })
	t.Run("unknown topic fails every verb", func(t *testing.T) { testUnknownTopicExitCodes(t, c) })
	t.Run("consumer groups", func(t *testing.T) { testGroupVerbs(t, c) })
	t.Run("share groups", func(t *testing.T) { testShareGroupVerbs(t, c) })
	t.Run("quotas", func(t *testing.T) { testQuotaVerbs(t, c) })
	t.Run("bench produce consume e2e", func(t *testing.T) { testBench(t, c) })
	t.Run("compacted topic shrinks", func(t *testing.T) { testCompactedTopicShrinks(t, c) })
	t.Run("demo producer", func(t *testing.T) { testDemoProducer(t, c) })
}

func testClusterStatus(t *testing.T, c *cli) {
	var st clusterStatusJSON
	if err := json.Unmarshal([]byte(c.mustRun(t, "", "cluster", "status", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Brokers) != 3 || st.ControllerID == "" || st.OfflinePartitions != 0 {
		t.Fatalf("status %+v", st)
	}
	for _, b := range st.Brokers {
		if b.State != "alive" || !strings.Contains(c.brokers, b.Addr) {
			t.Fatalf("broker %+v (dev brokers %s)", b, c.brokers)
		}
	}
	text := c.mustRun(t, "", "cluster", "status")
	if !strings.Contains(text, "controller: "+st.ControllerID) || !strings.Contains(text, "node-2") {
		t.Fatalf("text status:\n%s", text)
	}
}

func TestClusterVerbsFailWithoutACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	c := &cli{bin: buildSkiff(t), brokers: "127.0.0.1:1"}
	_, stderr, code := c.run(t, "", "cluster", "status", "--timeout", "2s")
	if code == 0 || !strings.HasPrefix(stderr, "skiff: ") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("exit %d, stderr %q: want non-zero and one line", code, stderr)
	}
}
