// Command skiff is the Skiff binary: the server, the local dev cluster and
// the command-line client. It parses flags, wires packages and prints; the
// logic lives in the packages.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		// One clear line, no usage dump or stack for a user's mistake.
		fmt.Fprintln(os.Stderr, "skiff:", err)
		os.Exit(1)
	}
}
