package history

import (
	"slices"
	"time"
)

// FaultGap is, for one fault and one partition, the longest gap between
// successive acks that overlaps the time the fault was in effect: how long
// that partition was unavailable to writers because of it. A partition the
// fault did not touch shows the usual gap between acks (milliseconds).
type FaultGap struct {
	Fault string `json:"fault"`
	TopicPartition
	Start    time.Time     `json:"start"` // the ack that opened the gap
	Duration time.Duration `json:"duration_ns"`
}

// FaultGaps returns a FaultGap per fault and partition that had acks on
// both sides of some moment of the fault, in the order the faults started
// and then by partition. A fault is in effect from its start event to its
// stop event (a stop without a name ends every fault; one never stopped
// lasts to the last event). Unlike Report.Unavailability, which keeps only
// each partition's longest gap over the whole run, these count every
// fault, so their quantiles estimate the unavailability one fault causes.
func FaultGaps(events []Event) []FaultGap {
	type span struct {
		name       string
		start, end time.Time
	}
	acks := make(map[TopicPartition][]time.Time)
	var spans []span
	open := make(map[string]int) // name -> index in spans, while in effect
	var last time.Time
	for _, e := range events {
		if e.Time.After(last) {
			last = e.Time
		}
		switch {
		case e.Type == AckEvent:
			tp := TopicPartition{e.Topic, e.Partition}
			acks[tp] = append(acks[tp], e.Time)
		case e.Type == FaultEvent && e.Value != FaultStop:
			if _, ok := open[e.Detail]; !ok {
				open[e.Detail] = len(spans)
				spans = append(spans, span{name: e.Detail, start: e.Time})
			}
		case e.Type == FaultEvent:
			for name, i := range open {
				if e.Detail == "" || e.Detail == name {
					spans[i].end = e.Time
					delete(open, name)
				}
			}
		}
	}
	for _, i := range open {
		spans[i].end = last
	}
	tps := make([]TopicPartition, 0, len(acks))
	for tp, ts := range acks {
		// Callbacks of different partitions interleave; per partition the
		// times are nearly sorted already.
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, compareTP)
	var gaps []FaultGap
	for _, s := range spans {
		for _, tp := range tps {
			ts := acks[tp]
			// i: the first ack after the fault started; the gaps that
			// overlap the fault run from ts[i-1] to the first ack after
			// its end.
			i, _ := slices.BinarySearchFunc(ts, s.start, func(t, at time.Time) int {
				if t.After(at) {
					return 1
				}
				return -1
			})
			if i == 0 || i == len(ts) {
				continue
			}
			g := FaultGap{Fault: s.name, TopicPartition: tp}
			for j := i; j < len(ts) && !ts[j-1].After(s.end); j++ {
				if d := ts[j].Sub(ts[j-1]); d > g.Duration {
					g.Start, g.Duration = ts[j-1], d
				}
			}
			gaps = append(gaps, g)
		}
	}
	return gaps
}

// GapQuantile returns the q-quantile (nearest rank) of the gaps' durations,
// 0 when there are none.
func GapQuantile(gaps []FaultGap, q float64) time.Duration {
	if len(gaps) == 0 {
		return 0
	}
	ds := make([]time.Duration, len(gaps))
	for i, g := range gaps {
		ds[i] = g.Duration
	}
	slices.Sort(ds)
	q = min(max(q, 0), 1)
	rank := int(q*float64(len(ds))+0.999999) - 1
	return ds[min(max(rank, 0), len(ds)-1)]
}
