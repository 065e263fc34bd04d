package history

import (
	"testing"
	"time"
)

func TestFaultGapsMeasureEachFaultPerPartition(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ack := func(p int32, ms int) Event {
		return Event{Time: at(ms), Type: AckEvent, Topic: "t", Partition: p}
	}
	fault := func(ms int, name string) Event {
		return Event{Time: at(ms), Type: FaultEvent, Value: FaultStart, Detail: name}
	}
	stop := func(ms int, name string) Event {
		return Event{Time: at(ms), Type: FaultEvent, Value: FaultStop, Detail: name}
	}
	events := []Event{
		ack(0, 0), ack(1, 0),
		ack(0, 100), ack(1, 100),
		fault(150, "kill a"),
		ack(0, 200), ack(1, 160), // acks in flight when the fault starts
		ack(1, 220),
		ack(0, 2200), // partition 0: 2s once the kill bit
		stop(2500, "kill a"),
		ack(1, 3000), // partition 1: 2.78s, overlapping the fault's end
		fault(3500, "kill b"),
		ack(0, 3600), ack(1, 6500),
		stop(4000, ""),
		ack(0, 4100), // the gap after it starts once kill b ended
		ack(0, 9000),
		fault(9500, "after the last ack"), // no ack after: no gap
	}
	gaps := FaultGaps(events)
	want := []struct {
		fault string
		p     int32
		d     time.Duration
	}{
		{"kill a", 0, 2000 * time.Millisecond},
		{"kill a", 1, 2780 * time.Millisecond},
		{"kill b", 0, 1400 * time.Millisecond},
		{"kill b", 1, 3500 * time.Millisecond},
	}
	if len(gaps) != len(want) {
		t.Fatalf("%d gaps %+v, want %d", len(gaps), gaps, len(want))
	}
	for i, w := range want {
		g := gaps[i]
		if g.Fault != w.fault || g.Partition != w.p || g.Duration != w.d {
			t.Errorf("gap %d: %s %d %v, want %s %d %v", i, g.Fault, g.Partition, g.Duration, w.fault, w.p, w.d)
		}
	}
	if got := GapQuantile(gaps, 0.99); got != 3500*time.Millisecond {
		t.Errorf("p99 %v, want 3.5s", got)
	}
	if got := GapQuantile(nil, 0.99); got != 0 {
		t.Errorf("p99 of nothing %v, want 0", got)
	}
}
