package consumergroup

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func newLimitedCoordinator(t *testing.T, maxMembers int, topics map[string]int32) (*Coordinator, *fakeHost) {
	t.Helper()
	host := &fakeHost{log: newMemLog(true), topics: topics}
	cfg := DefaultConfig()
	cfg.TickInterval = 10 * time.Millisecond
	cfg.MaxGroupMembers = maxMembers
	c, err := New(cfg, host, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, host
}

func wantLimit(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrLimitExceeded) || !strings.Contains(err.Error(), "--max-group-members") {
		t.Fatalf("got %v, want ErrLimitExceeded naming --max-group-members", err)
	}
}

func TestGroupRefusesMembersBeyondTheLimitAndKeepsTheOthers(t *testing.T) {
	c, _ := newLimitedCoordinator(t, 2, map[string]int32{"t": 2})
	ctx := testCtx(t)
	a, b := join(t, c, "g", "t"), join(t, c, "g", "t")
	_, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", Topics: []string{"t"}})
	wantLimit(t, err)
	// The members already in keep heartbeating at their epochs.
	for _, m := range []HeartbeatResponse{a, b} {
		if _, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: m.MemberID, MemberEpoch: m.MemberEpoch, Topics: []string{"t"}}); err != nil {
			t.Fatalf("member %s after the refusal: %v", m.MemberID, err)
		}
	}
	// Another group is not affected.
	join(t, c, "other", "t")
}

func TestShareGroupRefusesMembersBeyondTheLimitAndKeepsTheirRecords(t *testing.T) {
	c, h := newLimitedCoordinator(t, 2, map[string]int32{"jobs": 1})
	produceTo(t, h, "jobs", 0, testRec{value: "a"}, testRec{value: "b"}, testRec{value: "c"})
	ra, rb := fetch(t, c, "m1", 1), fetch(t, c, "m2", 1)
	_, err := c.ShareFetch(testCtx(t), ShareFetchRequest{Group: "q", MemberID: "m3", Topics: []string{"jobs"}, MaxRecords: 1})
	wantLimit(t, err)
	mustAck(t, c, "m1", ShareAccept, ra...)
	mustAck(t, c, "m2", ShareAccept, rb...)
	if got := values(fetch(t, c, "m1", 10)); len(got) != 1 || got[0] != "c" {
		t.Fatalf("after the refusal m1 fetched %q, want [c]", got)
	}
}

func TestOverlongIDsAreInvalid(t *testing.T) {
	c, _ := newLimitedCoordinator(t, 10, map[string]int32{"jobs": 1})
	ctx := testCtx(t)
	long := strings.Repeat("x", MaxMemberIDLength+1)
	for name, call := range map[string]func() error{
		"group id": func() error {
			_, err := c.Heartbeat(ctx, HeartbeatRequest{Group: strings.Repeat("g", MaxGroupIDLength+1)})
			return err
		},
		"member id": func() error {
			_, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: long, MemberEpoch: 1})
			return err
		},
		"instance id": func() error {
			_, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", InstanceID: long})
			return err
		},
		"share member id": func() error {
			_, err := c.ShareFetch(ctx, ShareFetchRequest{Group: "q", MemberID: long, Topics: []string{"jobs"}})
			return err
		},
		"share ack member id": func() error {
			_, err := c.ShareAcknowledge(ctx, "q", long, nil)
			return err
		},
	} {
		if err := call(); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "at most 255") {
			t.Errorf("%s: %v, want ErrInvalidArgument naming the bound", name, err)
		}
	}
}
