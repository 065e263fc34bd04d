package log

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/skiff-mq/skiff/record"
)

// kill9DirEnv makes TestKill9Writer, run as a child process, append to the
// log in that directory until it is killed.
const kill9DirEnv = "SKIFF_LOG_KILL9_DIR"

// kill9Batch is batch i of the killed writer's deterministic sequence.
func kill9Batch(i int) []byte {
	return testBatch(1+i%5, 40+(i*13)%300, int64(i), int64(i), byte(i))
}

func kill9Config() Config {
	cfg := smallConfig(nil)
	cfg.SegmentBytes = 8 << 10 // rolls happen while the child is killed
	return cfg
}

// TestKill9Writer is not a test on its own: TestKillDashNineLosesNothingAppended
// runs it in a child process. It resumes the sequence after what the log
// holds and reports each batch whose Append returned on stdout.
func TestKill9Writer(t *testing.T) {
	dir := os.Getenv(kill9DirEnv)
	if dir == "" {
		t.Skip("helper process for TestKillDashNineLosesNothingAppended")
	}
	l, err := Open(dir, kill9Config())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := int(l.LastIndex()); ; i++ {
		if _, err := l.Append(kill9Batch(i), uint64(i+1)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stdout, "%d\n", i) // unbuffered: one write per batch
	}
}

func TestKillDashNineLosesNothingAppended(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	acked := -1
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Writer$")
		cmd.Env = append(os.Environ(), kill9DirEnv+"="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		target := acked + 300
		for acked < target && sc.Scan() {
			n, err := strconv.Atoi(sc.Text())
			if err != nil {
				continue // test framework chatter
			}
			acked = n
		}
		cmd.Process.Kill() // SIGKILL: no Close, no Sync, no deferred anything
		cmd.Wait()
		if acked < target {
			t.Fatalf("round %d: writer stopped at %d: %s", round, acked, stderr.String())
		}

		l := mustOpen(t, dir, kill9Config())
		got := readAll(t, l)
		if len(got) < acked+1 {
			t.Fatalf("round %d: %d batches survived, but %d were acknowledged", round, len(got), acked+1)
		}
		var next int64
		for i, b := range got {
			if !bytes.Equal(b, stamped(kill9Batch(i), next)) {
				t.Fatalf("round %d: batch %d is not what was appended", round, i)
			}
			h, _ := record.ParseHeader(b)
			next = h.NextOffset()
		}
		if l.LastIndex() != uint64(len(got)) || l.NextOffset() != next {
			t.Fatalf("round %d: last index %d next %d; want %d, %d", round, l.LastIndex(), l.NextOffset(), len(got), next)
		}
		acked = len(got) - 1
		l.Close()
	}
}
