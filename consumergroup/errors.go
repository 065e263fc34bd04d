package consumergroup

import (
	"errors"
	"fmt"
)

// Errors callers branch on. The RPC layer maps each to a status code.
var (
	// ErrNotCoordinator: this node does not lead the group's offsets
	// partition. Find the coordinator again and retry there.
	ErrNotCoordinator = errors.New("this node is not the group's coordinator; find the coordinator again")
	// ErrCoordinatorLoading: this node just became coordinator and is
	// still reading the offsets log. Retry shortly.
	ErrCoordinatorLoading = errors.New("the group coordinator is loading its state; retry shortly")
	// ErrCoordinatorUnavailable: the offsets topic does not exist yet or
	// its partition has no leader. Retry shortly.
	ErrCoordinatorUnavailable = errors.New("no group coordinator is available yet; retry shortly")
	// ErrUnknownMember: the member id is not (or no longer) in the group,
	// e.g. it was removed after its session timed out. Rejoin with epoch 0.
	ErrUnknownMember = errors.New("unknown member: it left or its session timed out; rejoin the group")
	// ErrFencedMemberEpoch: the member's epoch is older than the
	// coordinator's: a zombie instance, or a member that missed a
	// rebalance. Release all partitions and rejoin with epoch 0.
	ErrFencedMemberEpoch = errors.New("fenced member epoch: release all partitions and rejoin the group")
	// ErrNotAssigned: a commit names a partition the member does not own.
	ErrNotAssigned = errors.New("partition is not assigned to this member")
	// ErrGroupNotEmpty: the operation needs a group without active
	// members (offset reset, delete, a commit without a member id).
	ErrGroupNotEmpty = errors.New("group has active members; stop its consumers first")
	// ErrGroupNotFound: the group has neither members nor committed
	// offsets.
	ErrGroupNotFound = errors.New("group not found")
	// ErrNotHeld: an acknowledgement names a record this member does not
	// hold (never delivered to it, or already given to another).
	ErrNotHeld = errors.New("record is not held by this member")
	// ErrLockExpired: the member's lock on the record expired before the
	// acknowledgement; the record may already be with another member.
	ErrLockExpired = errors.New("lock on the record expired; it will be (or was) delivered again")
	// ErrUnknownRecord: no such record in the share-partition.
	ErrUnknownRecord = errors.New("unknown record")
	// ErrInvalidArgument marks a malformed request.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrClosed: the coordinator has stopped.
	ErrClosed = errors.New("group coordinator is closed")
	// ErrInternalTopic: the operation would write to an internal topic
	// (a name starting with "__"), which only the cluster itself writes.
	ErrInternalTopic = errors.New("internal topic")
	// ErrLimitExceeded: the group already holds Config.MaxGroupMembers
	// members (`skiff server --max-group-members`).
	ErrLimitExceeded = errors.New("group limit exceeded")
)

// Bounds on the ids clients send; the coordinator keeps every id of a live
// member in memory and in the offsets log.
const (
	// MaxGroupIDLength bounds group ids, in bytes.
	MaxGroupIDLength = 255
	// MaxMemberIDLength bounds member ids and static instance ids, in
	// bytes (the ids the coordinator hands out are 36).
	MaxMemberIDLength = 255
)

// checkID refuses an id longer than limit; what names it ("member id").
func checkID(what, id string, limit int) error {
	if len(id) > limit {
		return invalidf("%s is %d bytes long, at most %d allowed", what, len(id), limit)
	}
	return nil
}

// tooManyMembers refuses a new member of a full group.
func tooManyMembers(group string, limit int) error {
	return fmt.Errorf("%w: group %s already has %d members, the limit (--max-group-members); stop idle consumers or raise the limit on every node",
		ErrLimitExceeded, group, limit)
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// internalTopicError refuses a write to an internal topic; it matches
// ErrInternalTopic and names the topic.
type internalTopicError struct {
	topic  string
	action string // what was refused, e.g. "share groups cannot write dead letters to it"
}

func (e *internalTopicError) Error() string {
	return fmt.Sprintf("topic %q is internal to the cluster: %s", e.topic, e.action)
}

func (e *internalTopicError) Is(target error) bool { return target == ErrInternalTopic }
