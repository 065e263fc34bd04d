package raftnet

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if goroutines of this package, or of the Raft
// transports running on it, outlive the tests: every goroutine has an
// owner that stops it.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines polls until no owned goroutine is left, or returns the
// stacks of those still running after wait.
func leakedGoroutines(wait time.Duration) string {
	owned := []string{
		"raftnet.(*Mux).",
		"raftnet.(*faultConn).",
		"raftnet.(*Hub).",
		"raftnet.(*clientConn).",
		"raftnet.(*serverConn).",
		"raftnet.(*Transport).",
		"raft.(*NetworkTransport).",
		"raft.(*netPipeline).",
	}
	deadline := time.Now().Add(wait)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			for _, o := range owned {
				if strings.Contains(g, o) {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
