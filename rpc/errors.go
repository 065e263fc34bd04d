package rpc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/cluster/membership"
	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/consumergroup"
	"github.com/skiff-mq/skiff/log"
	"github.com/skiff-mq/skiff/partition"
	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// ErrorDomain is the domain of the google.rpc.ErrorInfo detail every error
// status of the server carries; its Reason is one of the Reason constants.
const ErrorDomain = "skiff"

// Reasons in the ErrorInfo detail. Clients may branch on them; they never
// change meaning. (ProduceStream's per-response ErrorStatus carries only the
// code, the message and NotLeader; the codes alone tell produce outcomes
// apart, see toStatus.)
const (
	ReasonNotLeader           = "NOT_LEADER"
	ReasonNotReady            = "NOT_READY"
	ReasonUnavailable         = "UNAVAILABLE"
	ReasonWriteIndeterminate  = "WRITE_INDETERMINATE"
	ReasonInvalidArgument     = "INVALID_ARGUMENT"
	ReasonInvalidBatch        = "INVALID_BATCH"
	ReasonTooLarge            = "TOO_LARGE"
	ReasonUnknownTopic        = "UNKNOWN_TOPIC"
	ReasonTopicExists         = "TOPIC_EXISTS"
	ReasonOffsetOutOfRange    = "OFFSET_OUT_OF_RANGE"
	ReasonOutOfOrderSequence  = "OUT_OF_ORDER_SEQUENCE"
	ReasonProducerFenced      = "PRODUCER_FENCED"
	ReasonInternalTopic       = "INTERNAL_TOPIC"
	ReasonProducerIDExhausted = "PRODUCER_IDS_EXHAUSTED"
	ReasonUnknownBroker       = "UNKNOWN_BROKER"
	ReasonNotCoordinator      = "NOT_COORDINATOR"
	ReasonCoordinatorLoading  = "COORDINATOR_LOADING"
	ReasonCoordinatorAbsent   = "COORDINATOR_UNAVAILABLE"
	ReasonUnknownMember       = "UNKNOWN_MEMBER"
	ReasonFencedMemberEpoch   = "FENCED_MEMBER_EPOCH"
	ReasonNotAssigned         = "NOT_ASSIGNED"
	ReasonGroupNotEmpty       = "GROUP_NOT_EMPTY"
	ReasonGroupNotFound       = "GROUP_NOT_FOUND"
	ReasonInternal            = "INTERNAL"
	ReasonGossipKeyRefused    = "GOSSIP_KEY_REFUSED"
	ReasonGossipUnencrypted   = "GOSSIP_ENCRYPTION_DISABLED"
	ReasonLimitExceeded       = "LIMIT_EXCEEDED"
	ReasonUnknown             = "UNKNOWN"
	ReasonUnauthenticated     = "UNAUTHENTICATED"
	ReasonNotAuthorized       = "NOT_AUTHORIZED"
	ReasonUnknownUser         = "UNKNOWN_USER"
	ReasonUserExists          = "USER_EXISTS"
	ReasonUnknownQuota        = "UNKNOWN_QUOTA"
	ReasonListenerNotFound    = "LISTENER_NOT_FOUND"
	ReasonTopicFull           = "TOPIC_FULL"
	ReasonRefused             = "REFUSED"
	ReasonDiskFull            = "DISK_FULL"
)

// errShuttingDown ends long-lived calls when the server stops.
var errShuttingDown = errors.New("server is shutting down; reconnect to another node")

// tooLargeError says a request part exceeds a size or count limit.
type tooLargeError struct {
	Field  string // request field at fault, e.g. "batch"
	What   string // "bytes", "headers"
	Size   int
	Limit  int
	Config string // the setting holding the limit, e.g. "max.message.bytes"; "" for fixed limits
}

func (e *tooLargeError) Error() string {
	if e.Config != "" {
		return fmt.Sprintf("%s: %d %s exceed the topic's %s of %d", e.Field, e.Size, e.What, e.Config, e.Limit)
	}
	return fmt.Sprintf("%s: %d %s exceed the limit of %d", e.Field, e.Size, e.What, e.Limit)
}

// panicError is a handler's recovered panic.
type panicError struct{ Value any }

func (e *panicError) Error() string { return fmt.Sprintf("internal error (panic: %v)", e.Value) }

// invalid returns the error for a bad request field.
func invalid(field, format string, args ...any) error {
	return &metadata.InvalidArgumentError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// toStatus is the one place where errors become gRPC statuses. grpcAddr
// maps a node id to its client address, for the NotLeader detail.
//
//	error                                         code                 details
//	*partition.NotLeaderError                     FAILED_PRECONDITION  NotLeader{leader_id, leader_addr}
//	partition.ErrIndeterminate                    ABORTED              WriteIndeterminate
//	cluster.ErrMetaIndeterminate                  ABORTED              WriteIndeterminate
//	*log.OffsetOutOfRangeError                    OUT_OF_RANGE         OffsetOutOfRange{offset, range}
//	*metadata.InvalidArgumentError                INVALID_ARGUMENT     BadRequest{field}
//	invalid batch (partition, record errors),
//	  partition.ErrKeyRequired                    INVALID_ARGUMENT     BadRequest{"batch"}
//	*tooLargeError, ErrBatchTooLarge, ErrTooLarge RESOURCE_EXHAUSTED   BadRequest{field}
//	metadata.ErrProducerIDsExhausted              RESOURCE_EXHAUSTED
//	partition.ErrFull                             RESOURCE_EXHAUSTED   (reason TOPIC_FULL; "topic orders is full (max.messages=100000)")
//	metadata.ErrLimitExceeded,
//	  consumergroup.ErrLimitExceeded              RESOURCE_EXHAUSTED   (reason LIMIT_EXCEEDED; the message names the flag)
//	metadata.ErrUnknownTopic                      NOT_FOUND
//	metadata.ErrTopicExists                       ALREADY_EXISTS
//	partition.ErrOutOfOrderSequence               OUT_OF_RANGE         (the sequence is outside what the partition expects)
//	partition.ErrProducerFenced                   FAILED_PRECONDITION  (no NotLeader detail)
//	metadata.ErrInternalTopic,
//	  consumergroup.ErrInternalTopic              PERMISSION_DENIED    (reason INTERNAL_TOPIC)
//	metadata.ErrUnknownBroker                     FAILED_PRECONDITION
//	partition.ErrNotReady, ErrClosed,
//	  log.ErrClosed/ErrFailed/ErrCorrupt,
//	  errShuttingDown                             UNAVAILABLE
//	context.DeadlineExceeded                      DEADLINE_EXCEEDED
//	context.Canceled                              CANCELED
//	consumergroup.ErrNotCoordinator               FAILED_PRECONDITION  (reason NOT_COORDINATOR)
//	consumergroup.ErrUnknownMember,
//	  ErrFencedMemberEpoch, ErrNotAssigned,
//	  ErrGroupNotEmpty                            FAILED_PRECONDITION  (reason names which)
//	consumergroup.ErrGroupNotFound                NOT_FOUND
//	consumergroup.ErrCoordinatorLoading,
//	  ErrCoordinatorUnavailable, ErrClosed        UNAVAILABLE
//	consumergroup.ErrInvalidArgument              INVALID_ARGUMENT
//	cluster.ErrGossipKeyRefused                   FAILED_PRECONDITION  (reason GOSSIP_KEY_REFUSED)
//	membership.ErrEncryptionDisabled              FAILED_PRECONDITION  (reason GOSSIP_ENCRYPTION_DISABLED)
//	*unauthenticatedError                         UNAUTHENTICATED      (reason UNAUTHENTICATED)
//	*permissionError                              PERMISSION_DENIED    (reason NOT_AUTHORIZED)
//	metadata.ErrUnknownUser                       NOT_FOUND            (reason UNKNOWN_USER)
//	metadata.ErrUserExists                        ALREADY_EXISTS       (reason USER_EXISTS)
//	metadata.ErrUnknownQuota                      NOT_FOUND            (reason UNKNOWN_QUOTA)
//	*panicError                                   INTERNAL
//	anything else                                 UNKNOWN
//
// Every status also carries an ErrorInfo{Domain: ErrorDomain, Reason}.
// On produce, codes never overlap: FAILED_PRECONDITION with NotLeader is
// "retry at the leader", without it "fenced"; OUT_OF_RANGE is a sequence
// error. An error that already is a status passes unchanged.
func toStatus(err error, brokerAddr func(id string) (string, error)) *status.Status {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		return st
	}
	msg := err.Error()
	var (
		nl   *partition.NotLeaderError
		oor  *log.OffsetOutOfRangeError
		ia   *metadata.InvalidArgumentError
		tl   *tooLargeError
		pe   *panicError
		ue   *unauthenticatedError
		pme  *permissionError
		fe   *record.FormatError
		code codes.Code
	)
	var reason string
	var details []protoadapt.MessageV1
	switch {
	case errors.As(err, &ue):
		code, reason = codes.Unauthenticated, ReasonUnauthenticated
	case errors.As(err, &pme):
		code, reason = codes.PermissionDenied, ReasonNotAuthorized
	case errors.Is(err, metadata.ErrUnknownUser):
		code, reason = codes.NotFound, ReasonUnknownUser
	case errors.Is(err, metadata.ErrUserExists):
		code, reason = codes.AlreadyExists, ReasonUserExists
	case errors.Is(err, metadata.ErrUnknownQuota):
		code, reason = codes.NotFound, ReasonUnknownQuota
	case errors.As(err, &nl):
		code, reason = codes.FailedPrecondition, ReasonNotLeader
		d := &skiffpb.NotLeader{LeaderId: nl.LeaderID}
		if nl.LeaderID != "" {
			addr, aerr := brokerAddr(nl.LeaderID)
			if aerr != nil {
				msg = fmt.Sprintf("not the partition leader; the leader is %s, but %v", d.LeaderId, aerr)
			} else {
				d.LeaderAddr = addr
				msg = fmt.Sprintf("not the partition leader; the leader is %s at %s", d.LeaderId, d.LeaderAddr)
			}
		} else {
			msg = "not the partition leader; no leader is known (election in progress): refresh metadata and retry shortly"
		}
		details = append(details, d)
	case errors.Is(err, ErrListenerNotFound):
		code, reason = codes.Unavailable, ReasonListenerNotFound
	case errors.Is(err, partition.ErrIndeterminate), errors.Is(err, cluster.ErrMetaIndeterminate):
		code, reason = codes.Aborted, ReasonWriteIndeterminate
		details = append(details, &skiffpb.WriteIndeterminate{})
	case errors.As(err, &oor):
		code, reason = codes.OutOfRange, ReasonOffsetOutOfRange
		msg = fmt.Sprintf("offset %d is out of range: valid offsets are [%d, %d]", oor.Offset, oor.Start, oor.End)
		details = append(details, &skiffpb.OffsetOutOfRange{Offset: oor.Offset, LogStartOffset: oor.Start, HighWatermark: oor.End})
	case errors.As(err, &ia):
		code, reason = codes.InvalidArgument, ReasonInvalidArgument
		msg = ia.Field + ": " + ia.Reason
		details = append(details, badRequest(ia.Field, ia.Reason))
	case errors.As(err, &tl):
		code, reason = codes.ResourceExhausted, ReasonTooLarge
		details = append(details, badRequest(tl.Field, msg))
	case errors.Is(err, partition.ErrBatchTooLarge), errors.Is(err, log.ErrBatchTooLarge), errors.Is(err, record.ErrTooLarge):
		code, reason = codes.ResourceExhausted, ReasonTooLarge
		details = append(details, badRequest("batch", msg))
	case errors.Is(err, partition.ErrInvalidBatch), errors.Is(err, partition.ErrKeyRequired), errors.Is(err, log.ErrInvalidBatch),
		errors.As(err, &fe), errors.Is(err, record.ErrEmptyBatch), errors.Is(err, record.ErrUnknownCompression):
		code, reason = codes.InvalidArgument, ReasonInvalidBatch
		details = append(details, badRequest("batch", msg))
	case errors.Is(err, metadata.ErrUnknownTopic):
		code, reason = codes.NotFound, ReasonUnknownTopic
	case errors.Is(err, metadata.ErrTopicExists):
		code, reason = codes.AlreadyExists, ReasonTopicExists
	case errors.Is(err, partition.ErrOutOfOrderSequence):
		code, reason = codes.OutOfRange, ReasonOutOfOrderSequence
	case errors.Is(err, partition.ErrProducerFenced):
		code, reason = codes.FailedPrecondition, ReasonProducerFenced
	case errors.Is(err, metadata.ErrInternalTopic), errors.Is(err, consumergroup.ErrInternalTopic):
		code, reason = codes.PermissionDenied, ReasonInternalTopic
	case errors.Is(err, metadata.ErrLimitExceeded), errors.Is(err, consumergroup.ErrLimitExceeded):
		code, reason = codes.ResourceExhausted, ReasonLimitExceeded
	case errors.Is(err, partition.ErrFull):
		code, reason = codes.ResourceExhausted, ReasonTopicFull
	case errors.Is(err, metadata.ErrProducerIDsExhausted):
		code, reason = codes.ResourceExhausted, ReasonProducerIDExhausted
	case errors.As(err, new(*cluster.DiskFullError)):
		code, reason = codes.ResourceExhausted, ReasonDiskFull
	case errors.Is(err, syscall.ENOSPC):
		code, reason = codes.ResourceExhausted, ReasonDiskFull
		msg = "disk full: " + msg
	case errors.Is(err, metadata.ErrFailedPrecondition):
		code, reason = codes.FailedPrecondition, ReasonRefused
	case errors.Is(err, metadata.ErrUnknownBroker):
		code, reason = codes.FailedPrecondition, ReasonUnknownBroker
	case errors.Is(err, partition.ErrNotReady):
		code, reason = codes.Unavailable, ReasonNotReady
	case errors.Is(err, cluster.ErrMetadataUnavailable):
		code, reason = codes.Unavailable, ReasonUnavailable
	case errors.Is(err, consumergroup.ErrNotCoordinator):
		code, reason = codes.FailedPrecondition, ReasonNotCoordinator
	case errors.Is(err, consumergroup.ErrUnknownMember):
		code, reason = codes.FailedPrecondition, ReasonUnknownMember
	case errors.Is(err, consumergroup.ErrFencedMemberEpoch):
		code, reason = codes.FailedPrecondition, ReasonFencedMemberEpoch
	case errors.Is(err, consumergroup.ErrNotAssigned):
		code, reason = codes.FailedPrecondition, ReasonNotAssigned
	case errors.Is(err, consumergroup.ErrGroupNotEmpty):
		code, reason = codes.FailedPrecondition, ReasonGroupNotEmpty
	case errors.Is(err, consumergroup.ErrGroupNotFound):
		code, reason = codes.NotFound, ReasonGroupNotFound
	case errors.Is(err, consumergroup.ErrCoordinatorLoading):
		code, reason = codes.Unavailable, ReasonCoordinatorLoading
	case errors.Is(err, consumergroup.ErrCoordinatorUnavailable), errors.Is(err, consumergroup.ErrClosed):
		code, reason = codes.Unavailable, ReasonCoordinatorAbsent
	case errors.Is(err, consumergroup.ErrUnknownRecord):
		code, reason = codes.NotFound, "UNKNOWN_RECORD"
	case errors.Is(err, consumergroup.ErrInvalidArgument):
		code, reason = codes.InvalidArgument, ReasonInvalidArgument
		msg = strings.TrimPrefix(msg, consumergroup.ErrInvalidArgument.Error()+": ")
	case errors.Is(err, cluster.ErrGossipKeyRefused):
		code, reason = codes.FailedPrecondition, ReasonGossipKeyRefused
	case errors.Is(err, membership.ErrEncryptionDisabled):
		code, reason = codes.FailedPrecondition, ReasonGossipUnencrypted
	case errors.Is(err, partition.ErrClosed), errors.Is(err, log.ErrClosed), errors.Is(err, log.ErrFailed),
		errors.Is(err, log.ErrCorrupt), errors.Is(err, errShuttingDown):
		code, reason = codes.Unavailable, ReasonUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		code, reason = codes.DeadlineExceeded, ReasonUnknown
	case errors.Is(err, context.Canceled):
		code, reason = codes.Canceled, ReasonUnknown
	case errors.As(err, &pe):
		code, reason = codes.Internal, ReasonInternal
		msg = "internal error; the server logged it"
	default:
		code, reason = codes.Unknown, ReasonUnknown
	}
	details = append(details, &errdetails.ErrorInfo{Domain: ErrorDomain, Reason: reason})
	st := status.New(code, msg)
	if withDetails, derr := st.WithDetails(details...); derr == nil {
		st = withDetails
	}
	return st
}

func badRequest(field, description string) *errdetails.BadRequest {
	return &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: description}}}
}

// errorStatus turns a status into a ProduceStream response's ErrorStatus.
func errorStatus(st *status.Status) *skiffpb.ErrorStatus {
	es := &skiffpb.ErrorStatus{Code: int32(st.Code()), Message: st.Message()}
	for _, d := range st.Details() {
		if nl, ok := d.(*skiffpb.NotLeader); ok {
			es.NotLeader = nl
		}
	}
	return es
}
