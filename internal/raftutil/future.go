package raftutil

import (
	"context"
	"errors"

	"github.com/hashicorp/raft"
)

// ErrFutureTimeout is returned when the caller's context ends before Raft
// answers; the operation may still complete.
var ErrFutureTimeout = errors.New("timed out waiting for raft")

// WaitFuture waits for f with the caller's deadline. hashicorp/raft's own
// timeouts only bound enqueueing, and Error() can block for ever once quorum
// is lost (hashicorp/raft #498), so no caller waits on a future directly.
// The goroutine left behind on timeout ends when Raft answers or shuts down,
// which always resolves outstanding futures.
func WaitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return errors.Join(ErrFutureTimeout, ctx.Err())
	}
}
