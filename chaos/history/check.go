package history

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Send outcomes tracked per value.
type outcome uint8

const (
	pending outcome = iota
	acked
	failed
	indeterminate
)

type send struct {
	process string
	topic   string
	seq     int64
	outcome outcome
	tp      TopicPartition
	offset  int64
}

type position struct {
	tp     TopicPartition
	offset int64
}

type procPartition struct {
	process string
	tp      TopicPartition
}

type groupPartition struct {
	group string
	tp    TopicPartition
}

type seqOffset struct{ seq, offset int64 }

type sighting struct {
	value string
	pos   position
}

type fault struct {
	name       string
	start, end time.Time // end is zero while the fault is in effect
}

// checker holds the indexes built in the single pass over the events.
type checker struct {
	r *Report

	sends map[string]*send
	order []string // values in the order their sends were first seen, for deterministic examples
	// at is the first value seen at each position, from acks, reads or
	// the final read; a different value there is an inconsistent offset.
	at map[position]string
	// seenAt is the first position a value was observed at in a read or the
	// final read (so its keys are the values found in the log); another
	// position is a duplicate.
	seenAt     map[string]position
	duplicated map[string]bool
	firstSeen  []sighting // first sighting of each found value, in order

	acks     map[procPartition][]seqOffset
	ackOrder []procPartition                     // keys of acks in first-seen order
	lastPoll map[string]map[TopicPartition]int64 // consumer → partition → last read offset
	commits  map[groupPartition]int64
	lastAck  map[TopicPartition]time.Time
	longest  map[TopicPartition]Window
	faults   []fault
	active   map[string]int // fault name → index in faults
}

// Check verifies a history against the final full read of every partition
// (final maps each partition to its records in offset order) and reports
// every anomaly class with examples.
//
// It runs in time linear in the size of its input (plus a sort of the acks
// per producer and partition, which are already in order in a sane history)
// and does not depend on event times except for unavailability windows;
// events must be in the order they were recorded.
func Check(events []Event, final map[TopicPartition][]Record) Report {
	c := &checker{
		r:          &Report{},
		sends:      make(map[string]*send, len(events)/2),
		at:         make(map[position]string, len(events)/2),
		seenAt:     make(map[string]position, len(events)/2),
		duplicated: make(map[string]bool),
		acks:       make(map[procPartition][]seqOffset),
		lastPoll:   make(map[string]map[TopicPartition]int64),
		commits:    make(map[groupPartition]int64),
		lastAck:    make(map[TopicPartition]time.Time),
		longest:    make(map[TopicPartition]Window),
		active:     make(map[string]int),
	}
	for i := range events {
		c.event(&events[i])
	}
	c.checkFinal(final)
	c.checkSightings()
	c.checkSends(final)
	c.checkSendOrder()
	c.windows()
	return *c.r
}

func (c *checker) event(e *Event) {
	tp := TopicPartition{e.Topic, e.Partition}
	switch e.Type {
	case SendEvent:
		c.r.Sends++
		if _, ok := c.sends[e.Value]; !ok {
			c.order = append(c.order, e.Value)
		}
		c.sends[e.Value] = &send{process: e.Process, topic: e.Topic, seq: e.Seq}
	case AckEvent:
		c.r.Acked++
		s := c.sendOf(e)
		s.outcome, s.tp, s.offset = acked, tp, e.Offset
		c.observe(tp, e.Offset, e.Value, "ack by", e.Process)
		pp := procPartition{s.process, tp}
		if _, ok := c.acks[pp]; !ok {
			c.ackOrder = append(c.ackOrder, pp)
		}
		c.acks[pp] = append(c.acks[pp], seqOffset{s.seq, e.Offset})
		c.ackAt(tp, e.Time)
	case FailEvent:
		c.r.Failed++
		c.sendOf(e).outcome = failed
	case IndeterminateEvent:
		c.r.Indeterminate++
		c.sendOf(e).outcome = indeterminate
	case ReadEvent:
		c.r.Reads++
		c.observe(tp, e.Offset, e.Value, "read by", e.Process)
		c.seen(tp, e.Offset, e.Value)
		c.poll(e, tp)
	case CommitEvent:
		c.r.Commits++
		gp := groupPartition{e.Group, tp}
		if last, ok := c.commits[gp]; ok && e.Offset < last {
			c.r.CommitRegressions.add(Anomaly{TopicPartition: tp, Offset: e.Offset, Group: e.Group, Process: e.Process,
				Detail: fmt.Sprintf("group %s committed %d after %d", e.Group, e.Offset, last)})
		}
		c.commits[gp] = max(c.commits[gp], e.Offset)
	case CommitFailedEvent:
		c.r.CommitsFailed++
	case AssignEvent:
		c.r.Assignments++
		polls := c.lastPoll[e.Process]
		if e.Partition < 0 {
			for p := range polls {
				if p.Topic == e.Topic {
					delete(polls, p)
				}
			}
		} else {
			delete(polls, tp)
		}
	case FaultEvent:
		c.fault(e)
	}
}

// sendOf returns the send of e.Value, creating an entry for an outcome whose
// send line is missing so that the value is not later called unexpected.
func (c *checker) sendOf(e *Event) *send {
	s, ok := c.sends[e.Value]
	if !ok {
		s = &send{process: e.Process, topic: e.Topic, seq: e.Seq}
		c.sends[e.Value] = s
		c.order = append(c.order, e.Value)
	}
	return s
}

// observe records that value was seen at tp/offset by source (and process,
// if any) and flags a second, different value at the same position.
func (c *checker) observe(tp TopicPartition, offset int64, value, source, process string) {
	pos := position{tp, offset}
	prev, ok := c.at[pos]
	if !ok {
		c.at[pos] = value
		return
	}
	if prev != value {
		if process != "" {
			source += " " + process
		}
		c.r.InconsistentOffsets.add(Anomaly{TopicPartition: tp, Offset: offset, Values: []string{prev, value}, Process: process,
			Detail: fmt.Sprintf("%q and %q (%s) at one offset", prev, value, source)})
	}
}

// seen records that value is in the log at tp/offset (a read or the final
// read) and checks it against what was sent.
func (c *checker) seen(tp TopicPartition, offset int64, value string) {
	pos := position{tp, offset}
	if first, ok := c.seenAt[value]; !ok {
		c.seenAt[value] = pos
		c.firstSeen = append(c.firstSeen, sighting{value, pos})
	} else if first != pos && !c.duplicated[value] {
		c.duplicated[value] = true
		c.r.Duplicates.add(Anomaly{TopicPartition: tp, Offset: offset, Values: []string{value},
			Detail: fmt.Sprintf("%q at %s/%d@%d and @%d", value, first.tp.Topic, first.tp.Partition, first.offset, offset)})
	}
}

// checkSightings flags values in the log that were never sent or whose send
// definitely failed. It runs after the pass so that an outcome recorded after
// a read (histories are written by concurrent goroutines) still counts.
func (c *checker) checkSightings() {
	for _, x := range c.firstSeen {
		s, ok := c.sends[x.value]
		switch {
		case !ok:
			c.r.UnexpectedValues.add(Anomaly{TopicPartition: x.pos.tp, Offset: x.pos.offset, Values: []string{x.value},
				Detail: fmt.Sprintf("%q was never sent", x.value)})
		case s.outcome == failed:
			c.r.AbortedReads.add(Anomaly{TopicPartition: x.pos.tp, Offset: x.pos.offset, Values: []string{x.value}, Process: s.process,
				Detail: fmt.Sprintf("%q was read although its send failed", x.value)})
		}
	}
}

func (c *checker) poll(e *Event, tp TopicPartition) {
	polls := c.lastPoll[e.Process]
	if polls == nil {
		polls = make(map[TopicPartition]int64)
		c.lastPoll[e.Process] = polls
	}
	last, ok := polls[tp]
	polls[tp] = e.Offset
	if !ok || e.Offset == last+1 {
		return
	}
	x := Anomaly{TopicPartition: tp, Offset: e.Offset, Values: []string{e.Value}, Process: e.Process}
	if e.Offset > last+1 {
		x.Detail = fmt.Sprintf("%s read %d after %d, skipping %d", e.Process, e.Offset, last, e.Offset-last-1)
		c.r.PollSkips.add(x)
	} else {
		x.Detail = fmt.Sprintf("%s read %d after %d", e.Process, e.Offset, last)
		c.r.NonmonotonicPolls.add(x)
	}
}

func (c *checker) ackAt(tp TopicPartition, t time.Time) {
	last, ok := c.lastAck[tp]
	c.lastAck[tp] = t
	if !ok {
		return
	}
	if w, ok := c.longest[tp]; !ok || t.Sub(last) > w.Duration {
		c.longest[tp] = Window{TopicPartition: tp, Start: last, End: t, Duration: t.Sub(last)}
	}
}

func (c *checker) fault(e *Event) {
	if e.Value != FaultStop {
		if _, ok := c.active[e.Detail]; !ok {
			c.active[e.Detail] = len(c.faults)
			c.faults = append(c.faults, fault{name: e.Detail, start: e.Time})
		}
		return
	}
	for name, i := range c.active {
		if e.Detail == "" || name == e.Detail {
			c.faults[i].end = e.Time
			delete(c.active, name)
		}
	}
}

// checkFinal checks the final read: density, and every record as an
// observation of the log.
func (c *checker) checkFinal(final map[TopicPartition][]Record) {
	for _, tp := range sortedPartitions(final) {
		recs := final[tp]
		c.r.FinalRecords += len(recs)
		for i, rec := range recs {
			if i > 0 && rec.Offset != recs[i-1].Offset+1 {
				c.r.NonDenseOffsets.add(Anomaly{TopicPartition: tp, Offset: rec.Offset,
					Detail: fmt.Sprintf("offset %d follows %d in the final read", rec.Offset, recs[i-1].Offset)})
			}
			c.observe(tp, rec.Offset, rec.Value, "final read", "")
			c.seen(tp, rec.Offset, rec.Value)
		}
	}
}

// checkSends finds lost writes and counts indeterminate outcomes.
func (c *checker) checkSends(final map[TopicPartition][]Record) {
	for _, value := range c.order {
		s := c.sends[value]
		switch s.outcome {
		case acked:
			if got, ok := finalAt(final[s.tp], s.offset); !ok || got != value {
				detail := fmt.Sprintf("%q acked at %d is missing from the final read", value, s.offset)
				if ok {
					detail = fmt.Sprintf("%q acked at %d, final read has %q there", value, s.offset, got)
				}
				c.r.LostWrites.add(Anomaly{TopicPartition: s.tp, Offset: s.offset, Values: []string{value},
					Process: s.process, Detail: detail})
			}
		case indeterminate:
			if _, found := c.seenAt[value]; found {
				c.r.IndeterminateFound++
			} else {
				c.r.IndeterminateNotFound++
			}
		}
	}
}

// finalAt finds the record at offset in a final read. Records of a dense
// read sit at index offset-start; a non-dense read (already reported) falls
// back to binary search.
func finalAt(recs []Record, offset int64) (string, bool) {
	if len(recs) == 0 {
		return "", false
	}
	if i := offset - recs[0].Offset; i >= 0 && i < int64(len(recs)) && recs[i].Offset == offset {
		return recs[i].Value, true
	}
	i, ok := slices.BinarySearchFunc(recs, offset, func(r Record, o int64) int { return cmp.Compare(r.Offset, o) })
	if !ok {
		return "", false
	}
	return recs[i].Value, true
}

// checkSendOrder flags a producer whose later send (by Seq) to a partition
// was acked at a lower offset than an earlier one.
func (c *checker) checkSendOrder() {
	for _, pp := range c.ackOrder {
		acks := c.acks[pp]
		// Acks of one producer and partition arrive in Seq order, so this
		// sort is linear in practice (pdqsort detects sorted runs).
		slices.SortFunc(acks, func(a, b seqOffset) int { return cmp.Compare(a.seq, b.seq) })
		for i := 1; i < len(acks); i++ {
			if acks[i].offset <= acks[i-1].offset {
				c.r.NonmonotonicSends.add(Anomaly{TopicPartition: pp.tp, Offset: acks[i].offset, Process: pp.process,
					Detail: fmt.Sprintf("%s seq %d acked at %d, seq %d at %d", pp.process,
						acks[i-1].seq, acks[i-1].offset, acks[i].seq, acks[i].offset)})
			}
		}
	}
}

// windows turns the longest ack gap of each partition into a Window with the
// faults in effect during it.
func (c *checker) windows() {
	for _, w := range c.longest {
		for _, f := range c.faults {
			if f.start.After(w.End) || (!f.end.IsZero() && f.end.Before(w.Start)) {
				continue
			}
			if !slices.Contains(w.Causes, f.name) {
				w.Causes = append(w.Causes, f.name)
			}
		}
		c.r.Unavailability = append(c.r.Unavailability, w)
	}
	slices.SortFunc(c.r.Unavailability, func(a, b Window) int { return compareTP(a.TopicPartition, b.TopicPartition) })
}

func sortedPartitions(final map[TopicPartition][]Record) []TopicPartition {
	tps := make([]TopicPartition, 0, len(final))
	for tp := range final {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, compareTP)
	return tps
}

func compareTP(a, b TopicPartition) int {
	return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}
