package consumergroup

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/skiff-mq/skiff/record"
)

// dataHWHost reports the data partitions' real high watermarks.
type dataHWHost struct{ *fakeHost }

func (h dataHWHost) HighWatermarks(_ context.Context, _ []TopicPartition) map[TopicPartition]int64 {
	out := map[TopicPartition]int64{}
	for t, n := range h.Topics() {
		for p := range n {
			out[TopicPartition{t, p}] = h.dataLog(t, p).HighWatermark()
		}
	}
	return out
}

// gaugeValue reads one series of a gauge family from reg; ok is false
// while the series does not exist.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue series
				}
			}
			return gaugeOf(m), true
		}
	}
	return 0, false
}

func gaugeOf(m *dto.Metric) float64 { return m.GetGauge().GetValue() }

// waitGauge polls until the series equals want.
func waitGauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string, want float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, ok := gaugeValue(t, reg, name, labels)
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v (present %v), want %v", name, labels, got, ok, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestGroupLagSecondsRisesWhileStoppedAndFallsToZeroOnceCaughtUp(t *testing.T) {
	clk := &clock{now: time.UnixMilli(1_700_000_000_000)}
	host := dataHWHost{&fakeHost{log: newMemLog(true), topics: map[string]int32{"orders": 2}}}
	cfg := DefaultConfig()
	cfg.TickInterval = 10 * time.Millisecond
	cfg.LagInterval = 10 * time.Millisecond
	cfg.Now = clk.Now
	reg := prometheus.NewRegistry()
	c, err := New(cfg, host, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := testCtx(t)

	// Ten records on orders/0, one second apart, produced at t0..t0+9s;
	// orders/1 stays empty.
	t0 := clk.Now()
	for i := range 10 {
		b := record.NewBuilder(record.BatchOptions{})
		b.Add(record.Record{Timestamp: t0.Add(time.Duration(i) * time.Second).UnixMilli(), Value: []byte("v")})
		batch, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := host.ProducePartition(ctx, "orders", 0, batch); err != nil {
			t.Fatal(err)
		}
	}
	commit := func(off int64) {
		t.Helper()
		err := c.CommitOffsets(ctx, CommitRequest{Group: "billing", Offsets: []CommitOffset{
			{TopicPartition: TopicPartition{"orders", 0}, Offset: off},
			{TopicPartition: TopicPartition{"orders", 1}, Offset: 0}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	p0 := map[string]string{"group": "billing", "topic": "orders", "partition": "0"}
	p1 := map[string]string{"group": "billing", "topic": "orders", "partition": "1"}

	// The group read up to offset 4 and stopped: its oldest unread record
	// is offset 4, produced at t0+4s.
	clk.advance(10 * time.Second)
	commit(4)
	waitGauge(t, reg, "skiff_group_lag", p0, 6)
	waitGauge(t, reg, "skiff_group_lag_seconds", p0, 6)
	waitGauge(t, reg, "skiff_group_lag_seconds", p1, 0)

	// Stopped, it falls further behind as time passes.
	clk.advance(30 * time.Second)
	waitGauge(t, reg, "skiff_group_lag_seconds", p0, 36)
	waitGauge(t, reg, "skiff_group_lag", p0, 6)
	clk.advance(60 * time.Second)
	waitGauge(t, reg, "skiff_group_lag_seconds", p0, 96)

	// Part of the way: the oldest unread record is now offset 8 (t0+8s).
	commit(8)
	waitGauge(t, reg, "skiff_group_lag_seconds", p0, 92)

	// Caught up.
	commit(10)
	waitGauge(t, reg, "skiff_group_lag", p0, 0)
	waitGauge(t, reg, "skiff_group_lag_seconds", p0, 0)
	clk.advance(time.Hour)
	waitGauge(t, reg, "skiff_group_lag_seconds", p0, 0)

	// Deleting the group removes its series.
	if err := c.DeleteGroup(ctx, "billing"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, ok := gaugeValue(t, reg, "skiff_group_lag_seconds", p0); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("skiff_group_lag_seconds of a deleted group is still exported")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
