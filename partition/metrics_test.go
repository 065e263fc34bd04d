package partition

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsReportReplicaState(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := newTestCluster(t, 1, func(cfg *Config) { cfg.Registerer = reg })
	ctx := context.Background()
	for seq := int32(0); seq < 6; seq += 3 {
		if _, err := c.produceRetrying(ctx, testBatch(t, 1, seq, 3)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.produceRetrying(ctx, testBatch(t, 1, 9, 1)); err == nil {
		t.Fatal("gap accepted")
	}
	want := `
# HELP skiff_partition_high_watermark Offset the next appended record will get (all applied records are committed).
# TYPE skiff_partition_high_watermark gauge
skiff_partition_high_watermark{partition="orders/0"} 6
# HELP skiff_partition_is_leader 1 if this replica leads the partition and has caught up in its term.
# TYPE skiff_partition_is_leader gauge
skiff_partition_is_leader{partition="orders/0"} 1
# HELP skiff_partition_produced_records_total Records acknowledged by this leader.
# TYPE skiff_partition_produced_records_total counter
skiff_partition_produced_records_total{partition="orders/0"} 6
# HELP skiff_partition_append_errors_total Produce requests that failed, by reason.
# TYPE skiff_partition_append_errors_total counter
skiff_partition_append_errors_total{partition="orders/0",reason="out_of_order_sequence"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"skiff_partition_high_watermark", "skiff_partition_is_leader",
		"skiff_partition_produced_records_total", "skiff_partition_append_errors_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "skiff_partition_produce_latency_seconds"); n != 1 {
		t.Fatalf("latency histogram series: %d", n)
	}
	c.stop(c.nodes[0])
	waitFor(t, time.Second, "metrics unregistered", func() bool {
		n, _ := testutil.GatherAndCount(reg)
		return n == 0
	})
}
