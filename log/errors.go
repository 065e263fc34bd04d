package log

import (
	"errors"
	"fmt"
)

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrClosed is returned by operations on a closed log.
	ErrClosed = errors.New("log: closed")
	// ErrOffsetOutOfRange is matched by *OffsetOutOfRangeError.
	ErrOffsetOutOfRange = errors.New("log: offset out of range")
	// ErrBatchTooLarge is matched by *BatchTooLargeError.
	ErrBatchTooLarge = errors.New("log: batch too large")
	// ErrInvalidBatch means Append was handed bytes that are not exactly one
	// intact v2 record batch; the record package's cause is wrapped too.
	ErrInvalidBatch = errors.New("log: invalid batch")
	// ErrIndexDecreased means Append was called with an index lower than
	// LastIndex. The index is the caller's (Raft) position and may only grow.
	ErrIndexDecreased = errors.New("log: index lower than last index")
	// ErrOffsetOverflow means the batch would take offsets past math.MaxInt64.
	ErrOffsetOverflow = errors.New("log: offset overflow")
	// ErrCorrupt means bytes on disk contradict the log's own invariants in a
	// place recovery does not repair (inside a sealed segment).
	ErrCorrupt = errors.New("log: corrupt data")
	// ErrInvalidConfig is matched by *ConfigError.
	ErrInvalidConfig = errors.New("log: invalid config")
	// ErrFailed means an earlier write or fsync failed. After a failed fsync
	// the state of the page cache is unknown (PostgreSQL's "fsyncgate"), so
	// the log refuses further writes; reads keep working. Close and Open it
	// again to recover from what is on disk.
	ErrFailed = errors.New("log: failed earlier, reopen to recover")
)

// OffsetOutOfRangeError reports a read outside [Start, End], where Start is
// LogStartOffset and End is NextOffset at the time of the call. Reading at
// End itself is valid and returns no data.
type OffsetOutOfRangeError struct {
	Offset, Start, End int64
}

func (e *OffsetOutOfRangeError) Error() string {
	return fmt.Sprintf("log: offset %d out of range [%d, %d]", e.Offset, e.Start, e.End)
}

// Is makes errors.Is(err, ErrOffsetOutOfRange) true.
func (e *OffsetOutOfRangeError) Is(target error) bool { return target == ErrOffsetOutOfRange }

// BatchTooLargeError reports a batch above Config.MaxBatchBytes.
type BatchTooLargeError struct {
	Size, Max int
}

func (e *BatchTooLargeError) Error() string {
	return fmt.Sprintf("log: batch of %d bytes exceeds the maximum of %d", e.Size, e.Max)
}

// Is makes errors.Is(err, ErrBatchTooLarge) true.
func (e *BatchTooLargeError) Is(target error) bool { return target == ErrBatchTooLarge }

// ConfigError names the Config field that failed validation.
type ConfigError struct {
	Field, Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("log: invalid config: %s %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// corruptf builds an error matching ErrCorrupt with context.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}
