package main

import (
	"encoding/json"
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
}
