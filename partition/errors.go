package partition

import (
	"errors"
	"fmt"
)

// Errors the replica returns; the rpc layer maps them to gRPC codes.
var (
	// ErrClosed means the replica was shut down.
	ErrClosed = errors.New("partition replica closed")
	// ErrNotReady means this replica leads but has not yet committed a barrier
	// in its term, so its applied state may still trail the old leader's.
	// Retriable after a short backoff.
	ErrNotReady = errors.New("partition leader is not ready yet (catching up after election)")
	// ErrIndeterminate means the write may or may not have been committed:
	// leadership was lost or the deadline passed after the entry was handed to
	// Raft. Retrying with an idempotent producer is safe.
	ErrIndeterminate = errors.New("write outcome unknown (leadership lost or timed out); retry with idempotence")
	// ErrInvalidBatch means the batch was rejected before it reached Raft.
	ErrInvalidBatch = errors.New("invalid record batch")
	// ErrBatchTooLarge means the batch exceeds the partition's max batch size.
	ErrBatchTooLarge = errors.New("record batch too large")
)

// NotLeaderError says this replica cannot serve the request because another
// replica leads. LeaderID and LeaderAddr are empty when no leader is known
// (an election is in progress).
type NotLeaderError struct {
	LeaderID   string
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "not the partition leader; no leader is known (election in progress), retry shortly"
	}
	return fmt.Sprintf("not the partition leader; leader is %s at %s", e.LeaderID, e.LeaderAddr)
}

// IsNotLeader reports whether err is (or wraps) a *NotLeaderError and returns it.
func IsNotLeader(err error) (*NotLeaderError, bool) {
	var nl *NotLeaderError
	ok := errors.As(err, &nl)
	return nl, ok
}
