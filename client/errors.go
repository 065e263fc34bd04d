package client

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// Errors callers branch on with errors.Is. Every error the client returns
// for a failed call wraps one of these or is one of the typed errors below;
// the broker's message is kept in the text.
var (
	// ErrUnknownTopic means the topic (or the partition) does not exist.
	ErrUnknownTopic = errors.New("unknown topic or partition")
	// ErrTopicExists means CreateTopic found a topic of that name.
	ErrTopicExists = errors.New("topic already exists")
	// ErrIndeterminate means a write may or may not have happened (the
	// leader lost leadership or timed out after accepting it). The
	// idempotent producer retries such writes with the same sequence
	// numbers, so they are never duplicated.
	ErrIndeterminate = errors.New("write outcome unknown")
	// ErrUnavailable means no broker could serve the request now (an
	// election in progress, a node shutting down, a broker unreachable).
	// Retriable.
	ErrUnavailable = errors.New("unavailable")
	// ErrTooLarge means a batch or a record exceeds the topic's limit
	// (max.message.bytes).
	ErrTooLarge = errors.New("batch or message too large")
	// ErrOutOfOrderSequence means a partition refused an idempotent batch
	// because its sequence number is not the next one expected. The
	// producer handles it; it reaches a callback only when the partition's
	// producer state was lost (a gap no retry can fill).
	ErrOutOfOrderSequence = errors.New("out of order sequence number")
	// ErrProducerFenced means a newer instance of the producer has taken
	// over its producer id.
	ErrProducerFenced = errors.New("producer fenced")
	// ErrDeliveryTimeout means a record was not acknowledged within
	// ProducerConfig.DeliveryTimeout; the error also wraps the last cause.
	// The record may or may not have been written.
	ErrDeliveryTimeout = errors.New("delivery timeout")
	// ErrClosed means the Client, Producer or Consumer was closed.
	ErrClosed = errors.New("closed")
	// ErrNotCoordinator means the broker asked is not the group's
	// coordinator (it moved); the client finds it again and retries.
	ErrNotCoordinator = errors.New("not the group coordinator")
	// ErrUnknownMember means the group no longer knows the member (it
	// left, or its session timed out); a GroupConsumer rejoins by itself.
	ErrUnknownMember = errors.New("unknown group member")
	// ErrFencedMemberEpoch means the member's epoch is stale (a zombie, or
	// a member that missed a rebalance); a GroupConsumer gives up its
	// partitions and rejoins by itself.
	ErrFencedMemberEpoch = errors.New("fenced member epoch")
	// ErrNotAssigned means a commit named a partition the member does not
	// own.
	ErrNotAssigned = errors.New("partition not assigned to this member")
	// ErrGroupNotEmpty means the operation (offset reset, group delete, a
	// commit without a member) needs a group with no active members.
	ErrGroupNotEmpty = errors.New("group has active members")
	// ErrGroupNotFound means the group has neither members nor committed
	// offsets.
	ErrGroupNotFound = errors.New("group not found")
	// ErrNoOffset means a group consumer with AutoOffsetReset "none" was
	// given a partition without a committed offset.
	ErrNoOffset = errors.New("no committed offset and auto offset reset is none")
	// ErrNotHeld means a share acknowledgement named a record this member
	// does not hold: it was never delivered to it, or another member has
	// it now. Nothing changed.
	ErrNotHeld = errors.New("record not held by this share member")
	// ErrLockExpired means a share acknowledgement came after the record's
	// lock expired: the record is available again (or already delivered to
	// another member) and will be processed again.
	ErrLockExpired = errors.New("share record lock expired")
	// ErrUnknownRecord means a share acknowledgement or inspection named a
	// record the share-partition does not know (beyond the records handed
	// out, or a partition that does not exist).
	ErrUnknownRecord = errors.New("unknown share record")
	// ErrGroupPaused means the DLQ flood breaker paused a share group:
	// more records went to its dead-letter topic than
	// dlq.flood.per.minute allows (an outage rather than a poison
	// message). Delivery resumes after AlterShareGroup with resume.
	ErrGroupPaused = errors.New("share group paused")
	// ErrRejected is any other refusal by the broker (an internal topic,
	// producer ids exhausted, an internal error); the message says why. Not
	// retriable.
	ErrRejected = errors.New("rejected by broker")
	// ErrInternalTopic means the request would write to, alter or delete
	// an internal topic (a name starting with "__", such as
	// __consumer_offsets): those belong to the cluster. Reading them is
	// allowed. It also matches ErrRejected. Not retriable.
	ErrInternalTopic = fmt.Errorf("%w: internal topic", ErrRejected)
	// ErrUnauthenticated means the cluster requires an identity (it runs
	// with --auth) and the call carried none, or a wrong password: set
	// Config.User and Config.Password, or a client certificate in
	// Config.TLS. Not retriable.
	ErrUnauthenticated = errors.New("not authenticated")
	// ErrPermissionDenied means the principal the client authenticated as
	// may not do what it asked (the message names the principal and the
	// operation). Not retriable.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnknownUser means a user operation named a user that does not
	// exist.
	ErrUnknownUser = errors.New("unknown user")
	// ErrUserExists means CreateUser found a user of that name.
	ErrUserExists = errors.New("user already exists")
	// ErrPasswordNeedsTLS means Config.Password was set without
	// Config.TLS: passwords travel only over TLS.
	ErrPasswordNeedsTLS = errors.New("client config: a password travels only over TLS: set Config.TLS (trusting the cluster CA), or authenticate with a client certificate instead")
	// ErrLimitExceeded means the request would take the cluster or a group
	// past one of the operator's limits (--max-topics, --max-partitions,
	// --max-group-members); the message names the limit, the current count
	// and what to do. It also matches ErrRejected. Not retriable as is.
	ErrLimitExceeded = fmt.Errorf("%w: limit exceeded", ErrRejected)
	// ErrTopicFull means a bounded topic (max.messages or max.bytes with
	// overflow.policy=reject) refused the batch because it holds as much
	// as it may; nothing was written. The text reads like
	// "RESOURCE_EXHAUSTED: topic orders is full (max.messages=100000)".
	// Not retriable as is: consume (or raise the bound) first.
	ErrTopicFull = errors.New("topic is full")
	// ErrRefused means the cluster cannot carry out an operator request in
	// its present state (decommissioning the last node able to hold a
	// replica, moving a replica to a dead node); the message says why and
	// what to do. It also matches ErrRejected.
	ErrRefused = fmt.Errorf("%w: refused", ErrRejected)
	// ErrUnknownNode means a request named a node id that never joined
	// the cluster. It also matches ErrRejected.
	ErrUnknownNode = fmt.Errorf("%w: unknown node", ErrRejected)
	// ErrDiskFull means the node that leads the partition is short of disk
	// space (under its --min-free-bytes threshold, or a write failed): it
	// hands its leaderships to other nodes, so a retry after a metadata
	// refresh usually succeeds; when every replica is full, writes fail
	// until space is freed.
	ErrDiskFull = errors.New("disk full")
)

// NotLeaderError means the broker asked does not lead the partition.
// LeaderAddr, when known, is where to retry; the client does so itself.
type NotLeaderError struct {
	LeaderID   string // empty while an election is in progress
	LeaderAddr string // gRPC address of the leader, empty when unknown
	Message    string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderAddr == "" {
		return "not leader (no leader known): " + e.Message
	}
	return fmt.Sprintf("not leader (leader is %s at %s): %s", e.LeaderID, e.LeaderAddr, e.Message)
}

// OffsetOutOfRangeError means a fetch asked for an offset outside the
// partition's log: valid offsets are Start (the log start offset) up to
// End (the high watermark, where the next record will go). The consumer
// fills in Topic and Partition.
type OffsetOutOfRangeError struct {
	Topic     string
	Partition int32
	Offset    int64
	Start     int64
	End       int64
}

func (e *OffsetOutOfRangeError) Error() string {
	where := ""
	if e.Topic != "" {
		where = fmt.Sprintf("%s/%d: ", e.Topic, e.Partition)
	}
	return fmt.Sprintf("%soffset %d out of range [%d, %d]", where, e.Offset, e.Start, e.End)
}

// InvalidArgumentError means the broker rejected a request field (a bad
// topic name, a partition count out of bounds, a corrupt batch).
type InvalidArgumentError struct {
	Field  string // the request field at fault, e.g. "name" or "partitions"
	Reason string
}

func (e *InvalidArgumentError) Error() string {
	if e.Field == "" {
		return "invalid argument: " + e.Reason
	}
	return fmt.Sprintf("invalid argument %s: %s", e.Field, e.Reason)
}

// fromStatus turns an error of a gRPC call into the client's error values.
// It is the one place that knows how the broker encodes failures (the
// comment at the top of skiff.proto, and the server's toStatus): the code,
// the typed details (NotLeader, OffsetOutOfRange, BadRequest) and the
// ErrorInfo reason. Errors that are not gRPC statuses (context
// cancellation, our own) pass through unchanged.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	return statusError(st.Code(), st.Message(), st.Details())
}

// fromErrorStatus converts the per-batch error of a ProduceStream response,
// which carries the code, the message and NotLeader but no ErrorInfo.
func fromErrorStatus(e *skiffpb.ErrorStatus) error {
	if e == nil || codes.Code(e.GetCode()) == codes.OK {
		return nil
	}
	var details []any
	if nl := e.GetNotLeader(); nl != nil {
		details = append(details, nl)
	}
	return statusError(codes.Code(e.GetCode()), e.GetMessage(), details)
}

// Reasons of the ErrorInfo detail (domain "skiff") that the codes alone do
// not tell apart.
const (
	reasonOutOfOrderSequence = "OUT_OF_ORDER_SEQUENCE"
	reasonProducerFenced     = "PRODUCER_FENCED"
	reasonNotCoordinator     = "NOT_COORDINATOR"
	reasonUnknownMember      = "UNKNOWN_MEMBER"
	reasonFencedMemberEpoch  = "FENCED_MEMBER_EPOCH"
	reasonNotAssigned        = "NOT_ASSIGNED"
	reasonGroupNotEmpty      = "GROUP_NOT_EMPTY"
	reasonGroupNotFound      = "GROUP_NOT_FOUND"
	reasonNotHeld            = "NOT_HELD"
	reasonLockExpired        = "LOCK_EXPIRED"
	reasonUnknownRecord      = "UNKNOWN_RECORD"
	reasonGroupPaused        = "GROUP_PAUSED"
	reasonInternalTopic      = "INTERNAL_TOPIC"
	reasonUnknownUser        = "UNKNOWN_USER"
	reasonUserExists         = "USER_EXISTS"
	reasonLimitExceeded      = "LIMIT_EXCEEDED"
	reasonTopicFull          = "TOPIC_FULL"
	reasonRefused            = "REFUSED"
	reasonUnknownBroker      = "UNKNOWN_BROKER"
	reasonDiskFull           = "DISK_FULL"
)

// shareReasonError maps the reasons of share groups, which the broker
// sends both per record (ShareAckResult.error_reason) and as the ErrorInfo
// of a status, whatever the code. ok is false for other reasons.
func shareReasonError(reason, msg string) (err error, ok bool) {
	switch reason {
	case reasonNotHeld:
		return brokerErr(ErrNotHeld, msg), true
	case reasonLockExpired:
		return brokerErr(ErrLockExpired, msg), true
	case reasonUnknownRecord:
		return brokerErr(ErrUnknownRecord, msg), true
	case reasonGroupPaused:
		return brokerErr(ErrGroupPaused, msg), true
	}
	return nil, false
}

func statusError(code codes.Code, msg string, details []any) error {
	var (
		nl     *skiffpb.NotLeader
		oor    *skiffpb.OffsetOutOfRange
		br     *errdetails.BadRequest
		reason string
	)
	for _, d := range details {
		switch d := d.(type) {
		case *skiffpb.NotLeader:
			nl = d
		case *skiffpb.OffsetOutOfRange:
			oor = d
		case *errdetails.BadRequest:
			br = d
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
		}
	}
	if err, ok := shareReasonError(reason, msg); ok {
		return err
	}
	if reason == reasonInternalTopic {
		return brokerErr(ErrInternalTopic, msg)
	}
	if reason == reasonLimitExceeded {
		return brokerErr(ErrLimitExceeded, msg)
	}
	if reason == reasonRefused {
		return brokerErr(ErrRefused, msg)
	}
	if reason == reasonUnknownBroker {
		return brokerErr(ErrUnknownNode, msg)
	}
	// ProduceStream's per-batch status has no reason: the broker's text
	// ("disk full on node n2: ...", "disk full: partition replica failed:
	// ...") tells. Unrecognised there, a full disk failed the batch for
	// good, and the producer carried on under a new producer id, sending
	// again as new the batches behind it that the cluster had written
	// (the chaos scenario disk-full found the duplicates).
	if reason == reasonDiskFull || (code == codes.ResourceExhausted && strings.HasPrefix(msg, "disk full")) {
		return brokerErr(ErrDiskFull, msg)
	}
	switch code {
	case codes.Unauthenticated:
		return brokerErr(ErrUnauthenticated, msg)
	case codes.PermissionDenied:
		return brokerErr(ErrPermissionDenied, msg)
	case codes.NotFound:
		switch reason {
		case reasonGroupNotFound:
			return brokerErr(ErrGroupNotFound, msg)
		case reasonUnknownUser:
			return brokerErr(ErrUnknownUser, msg)
		}
		return brokerErr(ErrUnknownTopic, msg)
	case codes.AlreadyExists:
		if reason == reasonUserExists {
			return brokerErr(ErrUserExists, msg)
		}
		return brokerErr(ErrTopicExists, msg)
	case codes.InvalidArgument:
		if v := br.GetFieldViolations(); len(v) > 0 {
			return &InvalidArgumentError{Field: v[0].GetField(), Reason: v[0].GetDescription()}
		}
		return &InvalidArgumentError{Reason: msg}
	case codes.FailedPrecondition:
		// On produce FAILED_PRECONDITION is "retry at the leader" with a
		// NotLeader detail, "fenced" without one.
		switch {
		case nl != nil:
			return &NotLeaderError{LeaderID: nl.GetLeaderId(), LeaderAddr: nl.GetLeaderAddr(), Message: msg}
		case reason == reasonNotCoordinator:
			return brokerErr(ErrNotCoordinator, msg)
		case reason == reasonUnknownMember:
			return brokerErr(ErrUnknownMember, msg)
		case reason == reasonFencedMemberEpoch:
			return brokerErr(ErrFencedMemberEpoch, msg)
		case reason == reasonNotAssigned:
			return brokerErr(ErrNotAssigned, msg)
		case reason == reasonGroupNotEmpty:
			return brokerErr(ErrGroupNotEmpty, msg)
		case reason == reasonProducerFenced || reason == "":
			return brokerErr(ErrProducerFenced, msg)
		}
	case codes.OutOfRange:
		// OUT_OF_RANGE with the range is a fetch offset; without it, a
		// produce sequence number.
		switch {
		case oor != nil:
			return &OffsetOutOfRangeError{Offset: oor.GetOffset(), Start: oor.GetLogStartOffset(), End: oor.GetHighWatermark()}
		case reason == reasonOutOfOrderSequence || reason == "":
			return brokerErr(ErrOutOfOrderSequence, msg)
		}
	case codes.Aborted:
		return brokerErr(ErrIndeterminate, msg)
	case codes.Unavailable:
		if cause := tlsCause(msg); cause != nil {
			return &tlsError{cause: cause, msg: msg}
		}
		return brokerErr(ErrUnavailable, "unavailable: "+msg)
	case codes.ResourceExhausted:
		// ProduceStream's per-batch status has no reason: the broker's
		// text ("topic orders is full (max.messages=100000)") tells.
		if reason == reasonTopicFull || strings.Contains(msg, " is full (") || strings.Contains(msg, "cannot take a batch of") {
			return brokerErr(ErrTopicFull, "RESOURCE_EXHAUSTED: "+msg)
		}
		if strings.Contains(msg, "received message larger than max") {
			// gRPC's own refusal of a request above the broker's
			// --max-request-bytes, before Skiff sees it.
			return brokerErr(ErrTooLarge, msg+": the request exceeds the broker's --max-request-bytes; send smaller batches")
		}
		if v := br.GetFieldViolations(); len(v) > 0 || strings.Contains(msg, "large") || strings.Contains(msg, "exceed") {
			return brokerErr(ErrTooLarge, msg)
		}
	case codes.DeadlineExceeded:
		return fmt.Errorf("%w: %s", context.DeadlineExceeded, msg)
	case codes.Canceled:
		return fmt.Errorf("%w: %s", context.Canceled, msg)
	}
	return brokerErr(ErrRejected, fmt.Sprintf("%s: %s", code, msg))
}

// brokerError is a broker's refusal: its text is the broker's message
// (which names the topic, field or limit), and it matches kind with
// errors.Is.
type brokerError struct {
	kind error
	msg  string
}

func brokerErr(kind error, msg string) error { return &brokerError{kind: kind, msg: msg} }

func (e *brokerError) Error() string {
	if e.msg == "" {
		return e.kind.Error()
	}
	return e.msg
}

func (e *brokerError) Unwrap() error { return e.kind }

// notLeader returns err as a *NotLeaderError when it is one.
func notLeader(err error) (*NotLeaderError, bool) {
	var nl *NotLeaderError
	ok := errors.As(err, &nl)
	return nl, ok
}

// retriable reports whether a produce or fetch may be retried after err:
// the request may have failed for a reason that a new leader, a refreshed
// view of the cluster or a little patience cures. (ErrUnknownTopic is
// retriable too while the metadata still lists the topic: a replica may
// not have started yet on the broker asked. Callers check that.)
func retriable(err error) bool {
	if _, ok := notLeader(err); ok {
		return true
	}
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrIndeterminate) || errors.Is(err, ErrDiskFull) ||
		errors.Is(err, context.DeadlineExceeded)
}
