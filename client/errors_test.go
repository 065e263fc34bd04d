package client

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

func statusWith(code codes.Code, msg string, details ...protoadapt.MessageV1) error {
	st, err := status.New(code, msg).WithDetails(details...)
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func info(reason string) *errdetails.ErrorInfo {
	return &errdetails.ErrorInfo{Domain: "skiff", Reason: reason}
}

func TestFromStatusMapsEveryOutcome(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    error
		check func(error) bool
	}{
		{"unknown topic", statusWith(codes.NotFound, "no topic x", info("UNKNOWN_TOPIC")),
			func(e error) bool { return errors.Is(e, ErrUnknownTopic) }},
		{"topic exists", statusWith(codes.AlreadyExists, "x exists", info("TOPIC_EXISTS")),
			func(e error) bool { return errors.Is(e, ErrTopicExists) }},
		{"not leader with address", statusWith(codes.FailedPrecondition, "not leader",
			&skiffpb.NotLeader{LeaderId: "n2", LeaderAddr: "10.0.0.2:9400"}, info("NOT_LEADER")),
			func(e error) bool {
				nl, ok := notLeader(e)
				return ok && nl.LeaderID == "n2" && nl.LeaderAddr == "10.0.0.2:9400" && retriable(e) && definitelyNotWritten(e)
			}},
		{"fenced", statusWith(codes.FailedPrecondition, "epoch 1 older than 2", info("PRODUCER_FENCED")),
			func(e error) bool { return errors.Is(e, ErrProducerFenced) && !retriable(e) }},
		{"unknown broker is not fenced", statusWith(codes.FailedPrecondition, "no broker n9", info("UNKNOWN_BROKER")),
			func(e error) bool { return errors.Is(e, ErrRejected) && !errors.Is(e, ErrProducerFenced) }},
		{"disk full", statusWith(codes.ResourceExhausted, "disk full on node n2: 10 bytes free", info("DISK_FULL")),
			func(e error) bool {
				return errors.Is(e, ErrDiskFull) && retriable(e) && !errors.Is(e, ErrTooLarge) && strings.Contains(e.Error(), "disk full on node n2")
			}},
		{"refused", statusWith(codes.FailedPrecondition, "node n2 is the last node able to hold replicas", info("REFUSED")),
			func(e error) bool {
				return errors.Is(e, ErrRefused) && errors.Is(e, ErrRejected) && !errors.Is(e, ErrProducerFenced) && !retriable(e)
			}},
		{"unknown node", statusWith(codes.FailedPrecondition, "unknown broker \"n9\"", info("UNKNOWN_BROKER")),
			func(e error) bool { return errors.Is(e, ErrUnknownNode) }},
		{"offset out of range", statusWith(codes.OutOfRange, "offset 99",
			&skiffpb.OffsetOutOfRange{Offset: 99, LogStartOffset: 10, HighWatermark: 50}, info("OFFSET_OUT_OF_RANGE")),
			func(e error) bool {
				var oor *OffsetOutOfRangeError
				return errors.As(e, &oor) && oor.Offset == 99 && oor.Start == 10 && oor.End == 50
			}},
		{"request above --max-request-bytes", statusWith(codes.ResourceExhausted, "grpc: received message larger than max (3000000 vs. 2097164)"),
			func(e error) bool {
				return errors.Is(e, ErrTooLarge) && strings.Contains(e.Error(), "--max-request-bytes") && !retriable(e)
			}},
		{"cluster limit", statusWith(codes.ResourceExhausted, "cluster limit --max-topics reached: ... exceed the limit of 10", info("LIMIT_EXCEEDED")),
			func(e error) bool {
				return errors.Is(e, ErrLimitExceeded) && errors.Is(e, ErrRejected) && !errors.Is(e, ErrTooLarge) && !retriable(e)
			}},
		{"sequence gap", statusWith(codes.OutOfRange, "expected 5", info("OUT_OF_ORDER_SEQUENCE")),
			func(e error) bool { return errors.Is(e, ErrOutOfOrderSequence) }},
		{"invalid argument names the field", statusWith(codes.InvalidArgument, "name: bad",
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "name", Description: "bad"}}}),
			func(e error) bool {
				var ia *InvalidArgumentError
				return errors.As(e, &ia) && ia.Field == "name" && ia.Reason == "bad" && !retriable(e)
			}},
		{"indeterminate", statusWith(codes.Aborted, "leadership lost", &skiffpb.WriteIndeterminate{}),
			func(e error) bool { return errors.Is(e, ErrIndeterminate) && retriable(e) && !definitelyNotWritten(e) }},
		{"unavailable", status.Error(codes.Unavailable, "connection refused"),
			func(e error) bool { return errors.Is(e, ErrUnavailable) && retriable(e) }},
		{"too large", statusWith(codes.ResourceExhausted, "batch: 2000000 bytes exceed",
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "batch"}}}),
			func(e error) bool { return errors.Is(e, ErrTooLarge) }},
		{"topic full", statusWith(codes.ResourceExhausted, "topic orders is full (max.messages=100000)", info("TOPIC_FULL")),
			func(e error) bool {
				return errors.Is(e, ErrTopicFull) && !errors.Is(e, ErrTooLarge) && !retriable(e) &&
					e.Error() == "RESOURCE_EXHAUSTED: topic orders is full (max.messages=100000)"
			}},
		{"disk full on a stream answer (no reason)", statusWith(codes.ResourceExhausted, "disk full on node n2: 0 bytes free, under its --min-free-bytes threshold of 26843545"),
			func(e error) bool { return errors.Is(e, ErrDiskFull) && retriable(e) && !errors.Is(e, ErrTooLarge) }},
		{"failed replica's disk full on a stream answer (no reason)", statusWith(codes.ResourceExhausted,
			"disk full: partition replica failed: append at raft index 413: write segment 0: no space left on device"),
			func(e error) bool { return errors.Is(e, ErrDiskFull) && retriable(e) && !errors.Is(e, ErrTooLarge) }},
		{"topic full on a stream answer (no reason)", statusWith(codes.ResourceExhausted, "topic orders is full (max.bytes=1048576)"),
			func(e error) bool {
				return errors.Is(e, ErrTopicFull) && e.Error() == "RESOURCE_EXHAUSTED: topic orders is full (max.bytes=1048576)"
			}},
		{"producer ids exhausted", statusWith(codes.ResourceExhausted, "no more ids", info("PRODUCER_IDS_EXHAUSTED")),
			func(e error) bool { return errors.Is(e, ErrRejected) && !errors.Is(e, ErrTooLarge) }},
		{"internal topic", statusWith(codes.PermissionDenied, "internal", info("INTERNAL_TOPIC")),
			func(e error) bool {
				return errors.Is(e, ErrInternalTopic) && errors.Is(e, ErrRejected) && !retriable(e)
			}},
		{"deadline", status.Error(codes.DeadlineExceeded, "slow"),
			func(e error) bool { return errors.Is(e, context.DeadlineExceeded) && retriable(e) }},
		{"not a status", context.Canceled,
			func(e error) bool { return e == context.Canceled }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fromStatus(tc.in); !tc.check(got) {
				t.Fatalf("fromStatus(%v) = %v (%T)", tc.in, got, got)
			}
		})
	}
}

// ProduceStream answers carry code, message and NotLeader but no ErrorInfo.
func TestFromErrorStatusOfAStreamAnswer(t *testing.T) {
	if err := fromErrorStatus(nil); err != nil {
		t.Fatal(err)
	}
	err := fromErrorStatus(&skiffpb.ErrorStatus{Code: int32(codes.FailedPrecondition), Message: "m",
		NotLeader: &skiffpb.NotLeader{LeaderId: "n1", LeaderAddr: "a:1"}})
	if nl, ok := notLeader(err); !ok || nl.LeaderAddr != "a:1" {
		t.Fatalf("got %v", err)
	}
	if err := fromErrorStatus(&skiffpb.ErrorStatus{Code: int32(codes.OutOfRange), Message: "gap"}); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("OUT_OF_RANGE on produce: %v", err)
	}
	if err := fromErrorStatus(&skiffpb.ErrorStatus{Code: int32(codes.FailedPrecondition), Message: "old epoch"}); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("FAILED_PRECONDITION without NotLeader: %v", err)
	}
	if err := fromErrorStatus(&skiffpb.ErrorStatus{Code: int32(codes.Aborted)}); !errors.Is(err, ErrIndeterminate) {
		t.Fatalf("ABORTED: %v", err)
	}
}
