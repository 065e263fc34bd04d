package metadata

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors callers branch on; the rpc layer maps them to gRPC codes
// (InvalidArgument, AlreadyExists, NotFound, ...). Errors returned by this
// package wrap them, so test with errors.Is.
var (
	// ErrInvalidArgument is matched by every *InvalidArgumentError.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrTopicExists means a topic of that name already exists.
	ErrTopicExists = errors.New("topic already exists")
	// ErrUnknownTopic means no topic of that name (or, where a topic id is
	// given, of that incarnation) exists.
	ErrUnknownTopic = errors.New("unknown topic")
	// ErrUnknownBroker means a replica list names a broker that never
	// registered.
	ErrUnknownBroker = errors.New("unknown broker")
	// ErrProducerIDsExhausted means the 63-bit producer-id space is used up.
	ErrProducerIDsExhausted = errors.New("producer ids exhausted")
	// ErrMalformedCommand means a log entry could not be decoded: not written
	// by EncodeCommand, damaged, or written by a newer version with a field
	// this one does not know.
	ErrMalformedCommand = errors.New("malformed metadata command")
	// ErrInternalTopic is matched by every *InternalTopicError.
	ErrInternalTopic = errors.New("internal topic")
	// ErrLimitExceeded is matched by every *LimitExceededError.
	ErrLimitExceeded = errors.New("cluster limit exceeded")
)

// LimitExceededError refuses a change that would take the cluster past one
// of the operator's limits (Limits.MaxTopics, Limits.MaxTotalPartitions).
type LimitExceededError struct {
	Limit   string // the `skiff server` flag holding it, e.g. "max-topics"
	What    string // what is counted: "topics", "partitions"
	Current int    // how many exist
	Adding  int    // how many the change adds
	Max     int
}

func (e *LimitExceededError) Error() string {
	return fmt.Sprintf("cluster limit --%s reached: the cluster has %d %s, adding %d would exceed the limit of %d; delete unused topics or raise --%s on every node",
		e.Limit, e.Current, e.What, e.Adding, e.Max, e.Limit)
}

// Is makes errors.Is(err, ErrLimitExceeded) hold.
func (e *LimitExceededError) Is(target error) bool { return target == ErrLimitExceeded }

// InternalTopicError refuses an operation on an internal topic (a name
// starting with InternalTopicPrefix) that only the cluster itself may
// perform. The rpc layer returns the same error for every client path
// (produce, delete, alter, create), so the message reads the same
// wherever it was refused.
type InternalTopicError struct {
	Topic string
	// Action completes "clients cannot ...", e.g. "produce to it".
	Action string
}

func (e *InternalTopicError) Error() string {
	return fmt.Sprintf("topic %q is internal to the cluster: clients cannot %s", e.Topic, e.Action)
}

// Is makes errors.Is(err, ErrInternalTopic) hold.
func (e *InternalTopicError) Is(target error) bool { return target == ErrInternalTopic }

// IsInternalTopic reports whether t belongs to the cluster: created as
// internal, or named with the internal prefix (which CreateTopic only
// allows for internal topics).
func IsInternalTopic(t *Topic) bool {
	return t != nil && (t.Internal || strings.HasPrefix(t.Name, InternalTopicPrefix))
}

// InvalidArgumentError names the offending field (as a user would spell it:
// "name", "partitions", "config.retention.ms") and why it is wrong.
type InvalidArgumentError struct {
	Field  string
	Reason string
}

func (e *InvalidArgumentError) Error() string {
	return fmt.Sprintf("invalid argument: %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidArgument) hold.
func (e *InvalidArgumentError) Is(target error) bool { return target == ErrInvalidArgument }

func invalid(field, format string, args ...any) error {
	return &InvalidArgumentError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// UnknownCommandError is the result of an entry whose type byte this binary
// does not know: written by a newer version. Every replica rejects it alike.
type UnknownCommandError struct {
	Type CommandType
}

func (e *UnknownCommandError) Error() string {
	return fmt.Sprintf("unknown metadata command type %d (written by a newer version?)", uint8(e.Type))
}

// ErrFailedPrecondition is matched by every *PreconditionError.
var ErrFailedPrecondition = errors.New("failed precondition")

// PreconditionError refuses an operator request the cluster cannot carry
// out in its present state (decommissioning the last node able to hold a
// replica, moving a replica to a dead node). Reason says why and what to
// do instead.
type PreconditionError struct {
	Reason string
}

func (e *PreconditionError) Error() string { return e.Reason }

// Is makes errors.Is(err, ErrFailedPrecondition) hold.
func (e *PreconditionError) Is(target error) bool { return target == ErrFailedPrecondition }

// Refused returns a *PreconditionError.
func Refused(format string, args ...any) error {
	return &PreconditionError{Reason: fmt.Sprintf(format, args...)}
}
