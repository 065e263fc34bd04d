package partition

import (
	"errors"
	"testing"
	"time"
)

func TestShareBacklogCountsTheGroupFurthestBehind(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type report struct {
		group string
		p     ShareProgress
		at    time.Duration // after t0
		taken bool
	}
	tests := []struct {
		name       string
		reports    []report
		start, end int64
		at         time.Duration
		want       int64
		wantGroup  string
	}{
		{name: "no group: every record held counts", start: 5, end: 25, want: 20},
		{name: "one group", reports: []report{{"a", ShareProgress{Floor: 10, Done: 3, Seq: 1}, 0, true}},
			start: 0, end: 30, want: 17, wantGroup: "a"},
		{name: "the slowest of two", reports: []report{
			{"fast", ShareProgress{Floor: 28, Seq: 1}, 0, true},
			{"slow", ShareProgress{Floor: 4, Done: 2, Seq: 1}, 0, true},
		}, start: 0, end: 30, want: 24, wantGroup: "slow"},
		{name: "floor below the log start is clamped", reports: []report{{"a", ShareProgress{Floor: 2, Seq: 1}, 0, true}},
			start: 10, end: 30, want: 20, wantGroup: "a"},
		{name: "never negative", reports: []report{{"a", ShareProgress{Floor: 20, Done: 50, Seq: 1}, 0, true}},
			start: 0, end: 30, want: 0, wantGroup: "a"},
		{name: "an older report of the same coordinator is ignored", reports: []report{
			{"a", ShareProgress{Floor: 20, Epoch: 3, Seq: 9}, 0, true},
			{"a", ShareProgress{Floor: 5, Epoch: 3, Seq: 8}, time.Millisecond, false},
		}, start: 0, end: 30, want: 10, wantGroup: "a"},
		{name: "a resend of the same report renews it", reports: []report{
			{"a", ShareProgress{Floor: 20, Epoch: 3, Seq: 9}, 0, true},
			{"a", ShareProgress{Floor: 20, Epoch: 3, Seq: 9}, ShareProgressTTL - time.Second, true},
		}, start: 0, end: 30, at: ShareProgressTTL + time.Second, want: 10, wantGroup: "a"},
		{name: "a new coordinator replaces the old whatever its seq", reports: []report{
			{"a", ShareProgress{Floor: 20, Epoch: 3, Seq: 9}, 0, true},
			{"a", ShareProgress{Floor: 15, Epoch: 4, Seq: 1}, time.Millisecond, true},
			{"a", ShareProgress{Floor: 25, Epoch: 3, Seq: 10}, 2 * time.Millisecond, false},
		}, start: 0, end: 30, want: 15, wantGroup: "a"},
		{name: "an expired report no longer counts", reports: []report{
			{"gone", ShareProgress{Floor: 0, Seq: 1}, 0, true},
			{"live", ShareProgress{Floor: 25, Seq: 1}, ShareProgressTTL, true},
		}, start: 0, end: 30, at: ShareProgressTTL + time.Second, want: 5, wantGroup: "live"},
		{name: "all expired: back to every record held", reports: []report{{"a", ShareProgress{Floor: 29, Seq: 1}, 0, true}},
			start: 0, end: 30, at: ShareProgressTTL, want: 30},
		{name: "a stale entry is replaced even by a lower seq", reports: []report{
			{"a", ShareProgress{Floor: 29, Epoch: 2, Seq: 50}, 0, true},
			{"a", ShareProgress{Floor: 3, Epoch: 1, Seq: 1}, ShareProgressTTL, true},
		}, start: 0, end: 30, at: ShareProgressTTL, want: 27, wantGroup: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b shareBacklog
			for i, r := range tt.reports {
				if got := b.report(r.group, r.p, t0.Add(r.at)); got != r.taken {
					t.Fatalf("report %d taken = %v, want %v", i, got, r.taken)
				}
			}
			n, g := b.undone(tt.start, tt.end, t0.Add(tt.at))
			if n != tt.want || g != tt.wantGroup {
				t.Fatalf("undone = %d (group %q), want %d (group %q)", n, g, tt.want, tt.wantGroup)
			}
		})
	}
}

func TestRejectUnackedBoundUsesTheReportedProgress(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.setBounds(Bounds{Topic: "jobs", MaxMessages: 10, Overflow: OverflowRejectUnacked})
	ctx := t.Context()
	acks := &ackLog{}
	seq, err := c.fillUntilFull(ctx, acks, 1, 0, 1)
	var full *FullError
	if !errors.As(err, &full) || full.Unacked || seq != 10 {
		t.Fatalf("no group reported: refused after %d with %v, want after 10 with a plain max.messages refusal", seq, err)
	}
	// A group that has done 0..5 and 8: 3 records undone (6, 7, 9), room
	// for 7 on every replica, whichever leads.
	for _, nd := range c.running() {
		if err := nd.r().ReportShareProgress("workers", ShareProgress{Floor: 6, Done: 1, Epoch: 1, Seq: 1}); err != nil {
			t.Fatal(err)
		}
	}
	next, err := c.fillUntilFull(ctx, acks, 1, seq, 1)
	if !errors.As(err, &full) || !full.Unacked || full.Group != "workers" || next-seq != 7 {
		t.Fatalf("took %d more, then %v; want 7, then a refusal naming group workers", next-seq, err)
	}
	if want := "topic jobs is full (max.messages=10): share group workers has not acknowledged them; speed up or add its consumers"; err.Error() != want {
		t.Fatalf("error text %q, want %q", err.Error(), want)
	}
	old := c.waitLeader(10 * time.Second)
	c.crash(old)
	if _, err := c.fillUntilFull(ctx, acks, 2, 0, 1); !errors.As(err, &full) || !full.Unacked {
		t.Fatalf("after failover: %v, want the same refusal", err)
	}
	leader := c.waitLeader(10 * time.Second)
	if _, end := held(leader); end != 17 {
		t.Fatalf("new leader holds %d records, want 17", end)
	}
	if err := leader.r().ReportShareProgress("", ShareProgress{}); err == nil {
		t.Fatal("a report without a group was taken")
	}
}
