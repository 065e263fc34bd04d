package history

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// h builds histories tersely; each event is one second after the previous.
type h struct {
	events []Event
	final  map[TopicPartition][]Record
}

func (b *h) add(e Event) *h {
	e.Time = t0.Add(time.Duration(len(b.events)) * time.Second)
	if e.Topic == "" {
		e.Topic = "t"
	}
	b.events = append(b.events, e)
	return b
}

func (b *h) send(p, v string, seq int64) *h {
	return b.add(Event{Type: SendEvent, Process: p, Value: v, Seq: seq})
}

func (b *h) ack(p, v string, part int32, off int64) *h {
	return b.add(Event{Type: AckEvent, Process: p, Value: v, Partition: part, Offset: off})
}

func (b *h) sent(p, v string, seq int64, part int32, off int64) *h {
	return b.send(p, v, seq).ack(p, v, part, off)
}

func (b *h) read(c, v string, part int32, off int64) *h {
	return b.add(Event{Type: ReadEvent, Process: c, Value: v, Partition: part, Offset: off})
}

func (b *h) fin(part int32, values ...string) *h {
	if b.final == nil {
		b.final = make(map[TopicPartition][]Record)
	}
	tp := TopicPartition{"t", part}
	for i, v := range values {
		b.final[tp] = append(b.final[tp], Record{Offset: int64(i), Value: v})
	}
	return b
}

// clean is a valid history: two producers, one consumer, one commit.
func clean() *h {
	b := &h{}
	b.sent("p1", "a", 1, 0, 0).sent("p2", "b", 1, 0, 1).sent("p1", "c", 2, 0, 2).sent("p1", "d", 3, 1, 0)
	b.add(Event{Type: AssignEvent, Process: "c1", Partition: 0})
	b.read("c1", "a", 0, 0).read("c1", "b", 0, 1).read("c1", "c", 0, 2)
	b.add(Event{Type: CommitEvent, Process: "c1", Group: "g", Offset: 3})
	return b.fin(0, "a", "b", "c").fin(1, "d")
}

func TestCheckFlagsEachAnomalyClass(t *testing.T) {
	tests := []struct {
		name   string
		build  func() *h
		class  func(*Report) *Anomalies
		detail string // substring of the first example's Detail
	}{
		{"lost write missing", func() *h {
			return clean().sent("p1", "e", 4, 0, 3)
		}, func(r *Report) *Anomalies { return &r.LostWrites }, `"e" acked at 3 is missing`},
		{"lost write overwritten", func() *h {
			b := clean()
			b.final[TopicPartition{"t", 1}] = []Record{{0, "x"}}
			return b.send("p3", "x", 1)
		}, func(r *Report) *Anomalies { return &r.LostWrites }, `"d" acked at 0, final read has "x"`},
		{"duplicate", func() *h {
			b := clean().send("p1", "e", 4)
			b.final[TopicPartition{"t", 0}] = append(b.final[TopicPartition{"t", 0}], Record{3, "a"})
			return b
		}, func(r *Report) *Anomalies { return &r.Duplicates }, `"a" at t/0@0 and @3`},
		{"inconsistent offset from read", func() *h {
			return clean().send("p2", "z", 2).add(Event{Type: IndeterminateEvent, Value: "z"}).read("c2", "z", 0, 1)
		}, func(r *Report) *Anomalies { return &r.InconsistentOffsets }, `"b" and "z" (read by c2)`},
		{"inconsistent offset from acks", func() *h {
			return clean().send("p2", "z", 2).ack("p2", "z", 0, 1)
		}, func(r *Report) *Anomalies { return &r.InconsistentOffsets }, `"b" and "z" (ack by p2)`},
		{"aborted read", func() *h {
			b := clean().send("p2", "f", 2).add(Event{Type: FailEvent, Value: "f"})
			b.final[TopicPartition{"t", 1}] = append(b.final[TopicPartition{"t", 1}], Record{1, "f"})
			return b
		}, func(r *Report) *Anomalies { return &r.AbortedReads }, `"f" was read although its send failed`},
		{"aborted read recorded before the failure", func() *h {
			return clean().send("p2", "f", 2).read("c2", "f", 1, 1).add(Event{Type: FailEvent, Value: "f"})
		}, func(r *Report) *Anomalies { return &r.AbortedReads }, `"f" was read although its send failed`},
		{"unexpected value", func() *h {
			return clean().read("c2", "ghost", 1, 0)
		}, func(r *Report) *Anomalies { return &r.UnexpectedValues }, `"ghost" was never sent`},
		{"non-dense offsets", func() *h {
			b := clean().sent("p2", "e", 2, 1, 2)
			b.final[TopicPartition{"t", 1}] = append(b.final[TopicPartition{"t", 1}], Record{2, "e"})
			return b
		}, func(r *Report) *Anomalies { return &r.NonDenseOffsets }, "offset 2 follows 0"},
		{"nonmonotonic send", func() *h {
			b := &h{}
			b.sent("p1", "a", 2, 0, 0).sent("p1", "b", 1, 0, 1)
			return b.fin(0, "a", "b")
		}, func(r *Report) *Anomalies { return &r.NonmonotonicSends }, "p1 seq 1 acked at 1, seq 2 at 0"},
		{"poll skip", func() *h {
			return clean().read("c1", "a", 0, 0).read("c1", "c", 0, 2)
		}, func(r *Report) *Anomalies { return &r.PollSkips }, "c1 read 2 after 0, skipping 1"},
		{"nonmonotonic poll", func() *h {
			return clean().read("c1", "b", 0, 1)
		}, func(r *Report) *Anomalies { return &r.NonmonotonicPolls }, "c1 read 1 after 2"},
		{"commit regression", func() *h {
			return clean().add(Event{Type: CommitEvent, Process: "c2", Group: "g", Offset: 1})
		}, func(r *Report) *Anomalies { return &r.CommitRegressions }, "group g committed 1 after 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.build()
			r := Check(b.events, b.final)
			if r.Valid() {
				t.Fatalf("history judged valid:\n%s", r.String())
			}
			a := tt.class(&r)
			if a.Count == 0 || len(a.Examples) == 0 {
				t.Fatalf("anomaly not reported:\n%s", r.String())
			}
			if !strings.Contains(a.Examples[0].Detail, tt.detail) {
				t.Fatalf("example %q does not contain %q", a.Examples[0].Detail, tt.detail)
			}
		})
	}
}

func TestCheckPassesCleanHistory(t *testing.T) {
	b := clean()
	r := Check(b.events, b.final)
	if !r.Valid() {
		t.Fatalf("clean history flagged:\n%s", r.String())
	}
	if r.Sends != 4 || r.Acked != 4 || r.Reads != 3 || r.FinalRecords != 4 {
		t.Fatalf("counts: %+v", r)
	}
}

func TestCheckAllowsIndeterminateEitherWay(t *testing.T) {
	b := clean()
	b.send("p1", "in", 4).add(Event{Type: IndeterminateEvent, Value: "in"})
	b.send("p2", "out", 2).add(Event{Type: IndeterminateEvent, Value: "out"})
	b.final[TopicPartition{"t", 1}] = append(b.final[TopicPartition{"t", 1}], Record{1, "in"})
	r := Check(b.events, b.final)
	if !r.Valid() {
		t.Fatalf("indeterminate sends flagged:\n%s", r.String())
	}
	if r.Indeterminate != 2 || r.IndeterminateFound != 1 || r.IndeterminateNotFound != 1 {
		t.Fatalf("indeterminate counts: %d found %d not found %d", r.Indeterminate, r.IndeterminateFound, r.IndeterminateNotFound)
	}
}

func TestCheckAllowsReadJumpAfterAssign(t *testing.T) {
	b := clean()
	b.add(Event{Type: AssignEvent, Process: "c1", Partition: -1})
	b.read("c1", "a", 0, 0)
	r := Check(b.events, b.final)
	if !r.Valid() {
		t.Fatalf("read after reassignment flagged:\n%s", r.String())
	}
}

func TestCheckBlamesUnavailabilityOnFaultInEffect(t *testing.T) {
	b := &h{}
	b.sent("p1", "a", 1, 0, 0) // ack at t0+1s
	b.add(Event{Type: FaultEvent, Value: FaultStart, Detail: "kill-leader"})
	b.add(Event{Type: FaultEvent, Value: FaultStart, Detail: "pause-n2"})
	b.add(Event{Type: FaultEvent, Value: FaultStop, Detail: "pause-n2"})
	b.add(Event{Type: FaultEvent, Value: FaultStop})
	b.sent("p1", "b", 2, 0, 1) // ack at t0+7s
	b.add(Event{Type: FaultEvent, Detail: "later"})
	b.sent("p1", "c", 3, 0, 2)
	b.fin(0, "a", "b", "c")
	r := Check(b.events, b.final)
	if !r.Valid() || len(r.Unavailability) != 1 {
		t.Fatalf("report:\n%s", r.String())
	}
	w := r.Unavailability[0]
	if w.Duration != 6*time.Second || strings.Join(w.Causes, ",") != "kill-leader,pause-n2" {
		t.Fatalf("window %+v", w)
	}
	if !strings.Contains(r.String(), "max unavailability    6s on t/0 during kill-leader, pause-n2") {
		t.Fatalf("summary:\n%s", r.String())
	}
}

func TestCheckHoldsGroupsOnlyToSuccessfulCommits(t *testing.T) {
	b := clean()
	// A commit that returned an error may or may not have happened: a
	// lower offset after it is no regression, and a later success may go
	// below it.
	b.add(Event{Type: CommitFailedEvent, Process: "c1", Group: "g", Offset: 9, Detail: "fenced"})
	b.add(Event{Type: CommitEvent, Process: "c2", Group: "g", Offset: 3})
	b.add(Event{Type: AssignEvent, Process: "c1", Partition: 0, Detail: AssignRevoked})
	r := Check(b.events, b.final)
	if !r.Valid() {
		t.Fatalf("failed commit held against the group:\n%s", r.String())
	}
	if r.Commits != 2 || r.CommitsFailed != 1 || r.Assignments != 2 {
		t.Fatalf("commits %d, failed %d, assignments %d", r.Commits, r.CommitsFailed, r.Assignments)
	}
	if !strings.Contains(r.String(), "group commits 2 (failed 1), assignment changes 2") {
		t.Fatalf("summary:\n%s", r.String())
	}
}
