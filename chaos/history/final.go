package history

import (
	"cmp"
	"slices"
	"time"
)

// FinalEvent: the final read, done with a fresh consumer after every fault
// healed, found Value at Partition/Offset. Final events are not observations
// of a consumer under faults; SplitFinal turns them into the final argument
// of Check, so that one history file holds a whole run.
const FinalEvent = "final"

// SplitFinal separates the final-read events of a history from the others.
// It returns the other events in their order and the final read per
// partition in offset order (a partition the final read found empty has no
// entry: every ack there is then a lost write).
func SplitFinal(events []Event) ([]Event, map[TopicPartition][]Record) {
	rest := make([]Event, 0, len(events))
	final := make(map[TopicPartition][]Record)
	for _, e := range events {
		if e.Type != FinalEvent {
			rest = append(rest, e)
			continue
		}
		tp := TopicPartition{e.Topic, e.Partition}
		final[tp] = append(final[tp], Record{Offset: e.Offset, Value: e.Value})
	}
	for tp, recs := range final {
		// Already in order when written by one reader per partition; the
		// stable sort keeps a repeated offset visible to the checker.
		slices.SortStableFunc(recs, func(a, b Record) int { return cmp.Compare(a.Offset, b.Offset) })
		final[tp] = recs
	}
	return rest, final
}

// CheckAll checks a whole history: the final-read events in it are the
// final read (see SplitFinal).
func CheckAll(events []Event) Report {
	rest, final := SplitFinal(events)
	return Check(rest, final)
}

// UnavailabilityQuantile returns the q-quantile (0 <= q <= 1, nearest rank)
// of the per-partition longest unavailability windows: with q = 0.99 and a
// window per partition, the duration that 99% of partitions stayed within.
func (r Report) UnavailabilityQuantile(q float64) time.Duration {
	if len(r.Unavailability) == 0 {
		return 0
	}
	ds := make([]time.Duration, len(r.Unavailability))
	for i, w := range r.Unavailability {
		ds[i] = w.Duration
	}
	slices.Sort(ds)
	q = min(max(q, 0), 1)
	rank := int(q*float64(len(ds))+0.999999) - 1 // nearest rank, 1-based
	return ds[min(max(rank, 0), len(ds)-1)]
}
