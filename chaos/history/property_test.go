package history

import (
	"cmp"
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// sim is a model cluster: one topic whose partitions are plain slices, with
// producers and consumers that behave correctly, so every history it records
// must be valid.
type sim struct {
	events []Event
	logs   [][]string
	acked  []position // where each acked value landed
	now    time.Time
}

func (s *sim) emit(e Event) {
	s.now = s.now.Add(time.Duration(1+len(s.events)%7) * time.Millisecond)
	e.Time = s.now
	e.Topic = "t"
	s.events = append(s.events, e)
}

func (s *sim) final() map[TopicPartition][]Record {
	final := make(map[TopicPartition][]Record)
	for p, log := range s.logs {
		recs := make([]Record, len(log))
		for i, v := range log {
			recs[i] = Record{Offset: int64(i), Value: v}
		}
		final[TopicPartition{"t", int32(p)}] = recs
	}
	return final
}

func genHistory(t *rapid.T) *sim {
	parts := rapid.IntRange(1, 3).Draw(t, "partitions")
	producers := rapid.IntRange(1, 3).Draw(t, "producers")
	consumers := rapid.IntRange(1, 2).Draw(t, "consumers")
	s := &sim{logs: make([][]string, parts), now: t0}
	seq := make([]int64, producers)
	pos := make([]map[int]int, consumers) // consumer → partition → next offset
	for c := range pos {
		pos[c] = make(map[int]int)
	}
	committed := make(map[int]int)
	send := func(p, part int, outcome string) {
		seq[p]++
		proc := fmt.Sprint("p", p)
		v := fmt.Sprintf("%s-%d", proc, seq[p])
		s.emit(Event{Type: SendEvent, Process: proc, Value: v, Seq: seq[p]})
		switch outcome {
		case "ack":
			off := len(s.logs[part])
			s.logs[part] = append(s.logs[part], v)
			s.acked = append(s.acked, position{TopicPartition{"t", int32(part)}, int64(off)})
			s.emit(Event{Type: AckEvent, Process: proc, Value: v, Partition: int32(part), Offset: int64(off)})
		case "fail":
			s.emit(Event{Type: FailEvent, Process: proc, Value: v})
		case "in":
			s.logs[part] = append(s.logs[part], v)
			s.emit(Event{Type: IndeterminateEvent, Process: proc, Value: v})
		case "out":
			s.emit(Event{Type: IndeterminateEvent, Process: proc, Value: v})
		}
	}
	send(0, 0, "ack") // mutations need at least one acked value
	steps := rapid.IntRange(0, 80).Draw(t, "steps")
	for range steps {
		part := rapid.IntRange(0, parts-1).Draw(t, "partition")
		switch rapid.IntRange(0, 9).Draw(t, "action") {
		case 0, 1, 2, 3:
			outcome := rapid.SampledFrom([]string{"ack", "ack", "ack", "fail", "in", "out"}).Draw(t, "outcome")
			send(rapid.IntRange(0, producers-1).Draw(t, "producer"), part, outcome)
		case 4, 5, 6:
			c := rapid.IntRange(0, consumers-1).Draw(t, "consumer")
			proc := fmt.Sprint("c", c)
			next, ok := pos[c][part]
			if !ok || rapid.IntRange(0, 9).Draw(t, "reassign") == 0 {
				next = rapid.IntRange(0, len(s.logs[part])).Draw(t, "start")
				pos[c][part] = next
				s.emit(Event{Type: AssignEvent, Process: proc, Partition: int32(part)})
			}
			if next < len(s.logs[part]) {
				s.emit(Event{Type: ReadEvent, Process: proc, Value: s.logs[part][next], Partition: int32(part), Offset: int64(next)})
				pos[c][part] = next + 1
			}
		case 7:
			c := rapid.IntRange(0, consumers-1).Draw(t, "consumer")
			committed[part] = max(committed[part], pos[c][part])
			s.emit(Event{Type: CommitEvent, Process: fmt.Sprint("c", c), Group: "g", Partition: int32(part), Offset: int64(committed[part])})
		case 8:
			s.emit(Event{Type: FaultEvent, Value: FaultStart, Detail: rapid.SampledFrom([]string{"kill", "pause", "partition"}).Draw(t, "fault")})
		case 9:
			s.emit(Event{Type: FaultEvent, Value: FaultStop})
		}
	}
	return s
}

func TestPropertyModelHistoriesAreValid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genHistory(t)
		r := Check(s.events, s.final())
		if !r.Valid() {
			t.Fatalf("valid model history flagged:\n%s", r.String())
		}
		if r.Acked != len(s.acked) {
			t.Fatalf("acked %d, model acked %d", r.Acked, len(s.acked))
		}
	})
}

func TestPropertySingleMutationIsFlagged(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genHistory(t)
		final := s.final()
		victim := rapid.SampledFrom(s.acked).Draw(t, "victim")
		recs := final[victim.tp]
		kind := rapid.SampledFrom([]string{"drop", "duplicate", "swap"}).Draw(t, "kind")
		var flagged func(*Report) bool
		switch kind {
		case "drop":
			final[victim.tp] = append(recs[:victim.offset:victim.offset], recs[victim.offset+1:]...)
			flagged = func(r *Report) bool { return r.LostWrites.Count > 0 }
		case "duplicate":
			onto := TopicPartition{"t", int32(rapid.IntRange(0, len(s.logs)-1).Draw(t, "onto"))}
			final[onto] = append(final[onto], Record{Offset: int64(len(final[onto])), Value: recs[victim.offset].Value})
			flagged = func(r *Report) bool { return r.Duplicates.Count > 0 }
		case "swap":
			var others []position
			for tp, rs := range final {
				for _, rec := range rs {
					if rec.Value != recs[victim.offset].Value {
						others = append(others, position{tp, rec.Offset})
					}
				}
			}
			if len(others) == 0 {
				t.Skip("nothing to swap with")
			}
			// Map order is random; sort so that rapid can shrink.
			slices.SortFunc(others, func(a, b position) int {
				return cmp.Or(cmp.Compare(a.tp.Partition, b.tp.Partition), cmp.Compare(a.offset, b.offset))
			})
			o := rapid.SampledFrom(others).Draw(t, "other")
			a, b := &final[victim.tp][victim.offset], &final[o.tp][o.offset]
			a.Value, b.Value = b.Value, a.Value
			flagged = func(r *Report) bool { return r.LostWrites.Count > 0 }
		}
		r := Check(s.events, final)
		if r.Valid() || !flagged(&r) {
			t.Fatalf("%s of %v not flagged:\n%s", kind, victim, r.String())
		}
	})
}
