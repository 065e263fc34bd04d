package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

func testBench(t *testing.T, c *cli) {
	for _, mode := range []string{"produce", "consume", "e2e"} {
		var res benchResult
		out := c.mustRun(t, "", "bench", mode, "--topic", "benchtest", "--records", "20000", "--partitions", "3", "-o", "json")
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%s: %v in %q", mode, err, out)
		}
		if res.Mode != mode || res.Records < 20000 || res.Errors != 0 || res.RecordsPerS <= 0 || res.Partitions != 3 {
			t.Fatalf("%s: %+v", mode, res)
		}
		if mode != "consume" && (res.LatencyP50 <= 0 || res.LatencyMax < res.LatencyP99 || res.LatencyP99 < res.LatencyP50) {
			t.Fatalf("%s latencies: %+v", mode, res)
		}
	}
	text := c.mustRun(t, "", "bench", "produce", "--topic", "benchtest", "--records", "1000")
	if !strings.Contains(text, "records/s") || !strings.Contains(text, "p99.9") {
		t.Fatalf("text output:\n%s", text)
	}
	if _, stderr, code := c.run(t, "", "bench", "sideways"); code == 0 || !strings.Contains(stderr, "want produce, consume or e2e") {
		t.Fatalf("bad mode: exit %d, %q", code, stderr)
	}
	testBenchShare(t, c)
}

// testBenchShare runs `skiff bench share` in both ack modes: every record
// acked once, figures present.
func testBenchShare(t *testing.T, c *cli) {
	for _, tc := range []struct {
		mode    string
		ordered bool
	}{{"batch", true}, {"sync", true}, {"batch", false}} {
		mode := tc.mode
		out := c.mustRun(t, "", "bench", "share", "--topic", "benchshare", "--records", "3000", "--keys", "100",
			"--partitions", "3", "--members", "3", "--ack-mode", mode, "--key-ordered="+strconv.FormatBool(tc.ordered), "-o", "json")
		var res map[string]any
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%s: %v in %q", mode, err, out)
		}
		for _, field := range []string{"records_per_sec", "latency_p50_ms", "latency_p99_ms", "redeliveries", "duplicates"} {
			if _, ok := res[field].(float64); !ok {
				t.Fatalf("%s: no number %s in %v", mode, field, res)
			}
		}
		if res["acked"] != float64(3000) || res["duplicates"] != float64(0) || res["records_per_sec"].(float64) <= 0 ||
			res["latency_p50_ms"].(float64) <= 0 || res["latency_p99_ms"].(float64) < res["latency_p50_ms"].(float64) || res["ack_mode"] != mode ||
			res["key_ordered"] != tc.ordered {
			t.Fatalf("%s: %v", mode, res)
		}
	}
	if _, stderr, code := c.run(t, "", "bench", "share", "--ack-mode", "maybe"); code == 0 || !strings.Contains(stderr, "want batch or sync") {
		t.Fatalf("bad ack mode: exit %d, %q", code, stderr)
	}
	if _, stderr, code := c.run(t, "", "bench", "produce", "--members", "2"); code == 0 || !strings.Contains(stderr, "applies to bench share only") {
		t.Fatalf("--members without share: exit %d, %q", code, stderr)
	}
}
