package history

import (
	"testing"
	"time"
)

func TestCheckAllUsesFinalEventsAsTheFinalRead(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ev := func(typ, value string, p int32, off int64) Event {
		return Event{Time: t0, Type: typ, Process: "p0", Topic: "t", Partition: p, Offset: off, Value: value}
	}
	tests := []struct {
		name     string
		events   []Event
		lost     int
		dups     int
		finalRec int
	}{
		{
			name: "acked values found",
			events: []Event{
				ev(SendEvent, "a", 0, 0), ev(AckEvent, "a", 0, 0),
				ev(SendEvent, "b", 0, 0), ev(AckEvent, "b", 0, 1),
				ev(FinalEvent, "b", 0, 1), ev(FinalEvent, "a", 0, 0),
			},
			finalRec: 2,
		},
		{
			name: "acked value missing",
			events: []Event{
				ev(SendEvent, "a", 0, 0), ev(AckEvent, "a", 0, 0),
				ev(SendEvent, "b", 1, 0), ev(AckEvent, "b", 1, 0),
				ev(FinalEvent, "a", 0, 0),
			},
			lost:     1,
			finalRec: 1,
		},
		{
			name: "value twice in the final read",
			events: []Event{
				ev(SendEvent, "a", 0, 0), ev(AckEvent, "a", 0, 0),
				ev(FinalEvent, "a", 0, 0), ev(FinalEvent, "a", 0, 1),
			},
			dups:     1,
			finalRec: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := CheckAll(tt.events)
			if r.LostWrites.Count != tt.lost || r.Duplicates.Count != tt.dups || r.FinalRecords != tt.finalRec {
				t.Fatalf("lost %d dups %d final %d, want %d %d %d\n%s",
					r.LostWrites.Count, r.Duplicates.Count, r.FinalRecords, tt.lost, tt.dups, tt.finalRec, r)
			}
		})
	}
}

func TestUnavailabilityQuantile(t *testing.T) {
	var r Report
	if got := r.UnavailabilityQuantile(0.99); got != 0 {
		t.Fatalf("empty report: %v, want 0", got)
	}
	for i := 1; i <= 100; i++ {
		r.Unavailability = append(r.Unavailability, Window{Duration: time.Duration(i) * time.Millisecond})
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0, time.Millisecond},
		{0.5, 50 * time.Millisecond},
		{0.99, 99 * time.Millisecond},
		{1, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := r.UnavailabilityQuantile(tt.q); got != tt.want {
			t.Errorf("q %v: %v, want %v", tt.q, got, tt.want)
		}
	}
}
