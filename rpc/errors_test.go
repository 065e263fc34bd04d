package rpc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/consumergroup"
	"github.com/skiff-mq/skiff/log"
	"github.com/skiff-mq/skiff/partition"
	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

func TestErrorsMapToCodesAndDetails(t *testing.T) {
	addrs := map[string]string{"n1": "10.0.0.1:9400"}
	grpcAddr := func(id string) (string, error) {
		if id == "n2" {
			return "", &listenerNotFoundError{Broker: "n2", Listener: "external"}
		}
		return addrs[id], nil
	}
	wrap := func(err error) error { return fmt.Errorf("context: %w", err) }
	for _, tc := range []struct {
		err    error
		code   codes.Code
		reason string
		check  func(t *testing.T, st *status.Status)
	}{
		{wrap(&cluster.DiskFullError{Node: "n2", Free: 10, Threshold: 1 << 30}), codes.ResourceExhausted, ReasonDiskFull, func(t *testing.T, st *status.Status) {
			if !strings.Contains(st.Message(), "disk full on node n2") {
				t.Errorf("message %q", st.Message())
			}
		}},
		{fmt.Errorf("partition replica failed: append: %w", syscall.ENOSPC), codes.ResourceExhausted, ReasonDiskFull, nil},
		{wrap(metadata.Refused("node n0 is the last node able to hold replicas")), codes.FailedPrecondition, ReasonRefused, func(t *testing.T, st *status.Status) {
			if !strings.Contains(st.Message(), "last node able") {
				t.Errorf("message %q", st.Message())
			}
		}},
		{&partition.NotLeaderError{LeaderID: "n1", LeaderAddr: "raft:1"}, codes.FailedPrecondition, ReasonNotLeader, func(t *testing.T, st *status.Status) {
			if nl := notLeaderDetail(st); nl == nil || nl.LeaderId != "n1" || nl.LeaderAddr != "10.0.0.1:9400" {
				t.Errorf("NotLeader %v: want n1 at its gRPC address, not its Raft one", nl)
			}
		}},
		{&partition.NotLeaderError{LeaderID: "n2"}, codes.FailedPrecondition, ReasonNotLeader, func(t *testing.T, st *status.Status) {
			if nl := notLeaderDetail(st); nl == nil || nl.LeaderId != "n2" || nl.LeaderAddr != "" || !strings.Contains(st.Message(), `no listener "external"`) {
				t.Errorf("NotLeader %v (%q): want n2 without an address, and the missing listener named", nl, st.Message())
			}
		}},
		{wrap(&listenerNotFoundError{Broker: "n2", Listener: "external"}), codes.Unavailable, ReasonListenerNotFound, nil},
		{wrap(&partition.NotLeaderError{}), codes.FailedPrecondition, ReasonNotLeader, func(t *testing.T, st *status.Status) {
			if nl := notLeaderDetail(st); nl == nil || nl.LeaderId != "" || nl.LeaderAddr != "" {
				t.Errorf("NotLeader %v: want an empty one while no leader is known", nl)
			}
		}},
		{fmt.Errorf("%w: %w", partition.ErrIndeterminate, partition.ErrClosed), codes.Aborted, ReasonWriteIndeterminate, func(t *testing.T, st *status.Status) {
			if !hasDetail[*skiffpb.WriteIndeterminate](st) {
				t.Error("no WriteIndeterminate detail")
			}
		}},
		{fmt.Errorf("create topic: %w", cluster.ErrMetaIndeterminate), codes.Aborted, ReasonWriteIndeterminate, func(t *testing.T, st *status.Status) {
			if !hasDetail[*skiffpb.WriteIndeterminate](st) || !strings.Contains(st.Message(), "check whether the change took effect") {
				t.Errorf("no WriteIndeterminate detail, or no advice in %q", st.Message())
			}
		}},
		{wrap(&log.OffsetOutOfRangeError{Offset: 9, Start: 2, End: 5}), codes.OutOfRange, ReasonOffsetOutOfRange, func(t *testing.T, st *status.Status) {
			for _, d := range st.Details() {
				if o, ok := d.(*skiffpb.OffsetOutOfRange); ok && o.Offset == 9 && o.LogStartOffset == 2 && o.HighWatermark == 5 {
					return
				}
			}
			t.Errorf("no OffsetOutOfRange{9, 2, 5} in %v", st.Details())
		}},
		{invalid("offset", "negative"), codes.InvalidArgument, ReasonInvalidArgument, wantField("offset")},
		{&tooLargeError{Field: "batch", What: "bytes", Size: 2, Limit: 1, Config: "max.message.bytes"}, codes.ResourceExhausted, ReasonTooLarge, wantField("batch")},
		{fmt.Errorf("%w: 9 bytes", partition.ErrBatchTooLarge), codes.ResourceExhausted, ReasonTooLarge, wantField("batch")},
		{&record.FormatError{Field: "crc", Err: record.ErrCRCMismatch}, codes.InvalidArgument, ReasonInvalidBatch, wantField("batch")},
		{fmt.Errorf("%w: bad", partition.ErrInvalidBatch), codes.InvalidArgument, ReasonInvalidBatch, wantField("batch")},
		{wrap(metadata.ErrUnknownTopic), codes.NotFound, ReasonUnknownTopic, nil},
		{wrap(metadata.ErrTopicExists), codes.AlreadyExists, ReasonTopicExists, nil},
		{fmt.Errorf("%w: group g already has 2 members", consumergroup.ErrLimitExceeded), codes.ResourceExhausted, ReasonLimitExceeded, nil},
		{wrap(&metadata.LimitExceededError{Limit: "max-topics", What: "topics", Current: 2, Adding: 1, Max: 2}), codes.ResourceExhausted, ReasonLimitExceeded, nil},
		{wrap(partition.ErrOutOfOrderSequence), codes.OutOfRange, ReasonOutOfOrderSequence, nil},
		{wrap(partition.ErrProducerFenced), codes.FailedPrecondition, ReasonProducerFenced, func(t *testing.T, st *status.Status) {
			if notLeaderDetail(st) != nil {
				t.Error("a fenced producer must not look like NotLeader")
			}
		}},
		{&metadata.InternalTopicError{Topic: "__x", Action: "delete it"}, codes.PermissionDenied, ReasonInternalTopic, nil},
		{fmt.Errorf("dead letter: %w", consumergroup.ErrInternalTopic), codes.PermissionDenied, ReasonInternalTopic, nil},
		{metadata.ErrProducerIDsExhausted, codes.ResourceExhausted, ReasonProducerIDExhausted, nil},
		{&partition.FullError{Topic: "orders", Limit: "max.messages", Max: 100000}, codes.ResourceExhausted, ReasonTopicFull, func(t *testing.T, st *status.Status) {
			if st.Message() != "topic orders is full (max.messages=100000)" {
				t.Errorf("message %q", st.Message())
			}
		}},
		{partition.ErrNotReady, codes.Unavailable, ReasonNotReady, nil},
		{fmt.Errorf("list nodes on n1: %w", cluster.ErrMetadataUnavailable), codes.Unavailable, ReasonUnavailable, nil},
		{wrap(partition.ErrClosed), codes.Unavailable, ReasonUnavailable, nil},
		{wrap(log.ErrFailed), codes.Unavailable, ReasonUnavailable, nil},
		{errShuttingDown, codes.Unavailable, ReasonUnavailable, nil},
		{wrap(context.DeadlineExceeded), codes.DeadlineExceeded, ReasonUnknown, nil},
		{context.Canceled, codes.Canceled, ReasonUnknown, nil},
		{&panicError{Value: "boom"}, codes.Internal, ReasonInternal, nil},
		{errors.New("who knows"), codes.Unknown, ReasonUnknown, nil},
		{status.Error(codes.ResourceExhausted, "from grpc"), codes.ResourceExhausted, "", nil},
	} {
		t.Run(fmt.Sprintf("%T %v", tc.err, tc.err), func(t *testing.T) {
			st := toStatus(tc.err, grpcAddr)
			if st.Code() != tc.code {
				t.Fatalf("code %v, want %v", st.Code(), tc.code)
			}
			if got := errorReason(st); got != tc.reason {
				t.Errorf("reason %q, want %q", got, tc.reason)
			}
			if tc.check != nil {
				tc.check(t, st)
			}
		})
	}
	if toStatus(nil, grpcAddr) != nil {
		t.Error("nil error mapped to a status")
	}
}

func wantField(field string) func(*testing.T, *status.Status) {
	return func(t *testing.T, st *status.Status) {
		if got := fieldViolation(st); got != field {
			t.Errorf("BadRequest field %q, want %q", got, field)
		}
	}
}

func hasDetail[T any](st *status.Status) bool {
	for _, d := range st.Details() {
		if _, ok := d.(T); ok {
			return true
		}
	}
	return false
}

func TestErrorStatusCarriesNotLeaderIntoStreamResponses(t *testing.T) {
	st := toStatus(&partition.NotLeaderError{LeaderID: "n1"}, func(string) (string, error) { return "h:1", nil })
	es := errorStatus(st)
	if codes.Code(es.Code) != codes.FailedPrecondition || es.NotLeader.GetLeaderAddr() != "h:1" || es.Message == "" {
		t.Fatalf("ErrorStatus %v", es)
	}
}
