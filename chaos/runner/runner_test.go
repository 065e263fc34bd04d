package runner

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/chaos/fault/inproc"
	"github.com/skiff-mq/skiff/chaos/nemesis"
	"github.com/skiff-mq/skiff/chaos/workload"
)

// TestScenariosLoseNoAckedWrite runs short scenarios against an in-process
// cluster (no Docker), with a partition reader and two members of a
// consumer group committing after every poll: the checker must find no
// anomaly at all (no lost write, no skip or rewind of a group member
// outside a rebalance, no committed offset going backwards).
func TestScenariosLoseNoAckedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster per scenario")
	}
	// Recovery leaves the group time to settle after the faults healed: a
	// member's first assignment after every node restarted takes a few
	// seconds (coordinator election, rejoin backoff).
	tests := []struct {
		scenario        string
		fault, recovery time.Duration
	}{
		{"leader-kill", 7 * time.Second, 2 * time.Second},
		{"kill-all-restart", 3 * time.Second, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			sc, err := nemesis.Lookup(tt.scenario)
			if err != nil {
				t.Fatal(err)
			}
			sc.MinFault = 0 // the test picks a short phase
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
			defer cancel()
			dir := t.TempDir()
			c, err := inproc.Start(ctx, inproc.Config{Dir: filepath.Join(dir, "nodes")})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			res, err := Run(ctx, Config{
				Workload: workload.Config{
					Brokers: c.Brokers(), Topic: "chaos", Partitions: 3, Producers: 2, Readers: 1, GroupConsumers: 2, Rate: 100,
					DeliveryTimeout: 10 * time.Second, DrainTimeout: 10 * time.Second, FinalReadTimeout: 15 * time.Second,
				},
				Scenario: sc,
				Cluster:  c,
				Timings:  nemesis.Timings{Down: 2 * time.Second, Settle: time.Second, Healthy: 20 * time.Second},
				Steady:   time.Second, Fault: tt.fault, Recovery: tt.recovery,
				HistoryPath:    filepath.Join(dir, "history.jsonl"),
				HealthyTimeout: 20 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %s", tt.scenario, res.Report.String())
			if !res.Valid() {
				if b, err := os.ReadFile(filepath.Join(dir, "history.jsonl")); err == nil && len(b) < 1<<20 {
					t.Logf("history: %d bytes", len(b))
				}
				t.Fatalf("run not valid: errors %v, skipped %q\n%s", res.Errors, res.Skipped, res.Report)
			}
			if res.Report.Acked == 0 || res.Final.Records == 0 {
				t.Fatalf("nothing acknowledged or read back: %+v %+v", res.Stats, res.Final)
			}
			// CHAOS_KEEP=DIR keeps each scenario's history for a look.
			if d := os.Getenv("CHAOS_KEEP"); d != "" {
				b, _ := os.ReadFile(filepath.Join(dir, "history.jsonl"))
				_ = os.WriteFile(filepath.Join(d, tt.scenario+".jsonl"), b, 0o644)
			}
			if res.Stats.Commits == 0 || res.Report.Commits == 0 || res.Report.Assignments == 0 {
				t.Fatalf("the group consumers committed nothing or were never assigned: %+v", res.Stats)
			}
			if res.Report.FinalRecords < res.Report.Acked {
				t.Fatalf("final read has %d records, fewer than the %d acked", res.Report.FinalRecords, res.Report.Acked)
			}
		})
	}
}
