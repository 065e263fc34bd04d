package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// testCompactedTopicShrinks writes 100,000 records over 1,000 keys to a
// compacted topic and waits for the background cleaner: the topic then
// serves about one record per key, each key's newest, at unchanged offsets.
func testCompactedTopicShrinks(t *testing.T, c *cli) {
	const keys, rounds = 1000, 100
	c.mustRun(t, "", "topic", "create", "cli-compacted", "--partitions", "1",
		"--config", "cleanup.policy=compact", "--config", "segment.ms=1000", "--config", "min.cleanable.dirty.ratio=0.1")
	var in strings.Builder
	for i := 0; i < (rounds-1)*keys; i++ {
		fmt.Fprintf(&in, "k%d:old-%d\n", i%keys, i)
	}
	if _, stderr, code := c.run(t, in.String(), "produce", "cli-compacted", "--key-delim", ":"); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, stderr)
	}
	// The last round goes into a new segment (segment.ms has passed), so
	// the active segment, which is never compacted, holds only it.
	done := time.Now()
	waitFor(t, 30*time.Second, "segment.ms to pass", func() bool { return time.Since(done) > 1500*time.Millisecond })
	in.Reset()
	for k := 0; k < keys; k++ {
		fmt.Fprintf(&in, "k%d:new-%d\n", k, k)
	}
	if _, stderr, code := c.run(t, in.String(), "produce", "cli-compacted", "--key-delim", ":"); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, stderr)
	}
	// "skiff consume -o json" without --follow stops at the end.
	var recs []recordJSON
	count := func() int {
		out := c.mustRun(t, "", "consume", "cli-compacted", "-o", "json")
		recs = recs[:0]
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var r recordJSON
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			recs = append(recs, r)
		}
		return len(recs)
	}
	before := count()
	waitFor(t, 120*time.Second, "the cleaner to compact the topic", func() bool { return count() <= 2*keys })
	t.Logf("compacted topic: %d records served before cleaning, %d after (%d written over %d keys)", before, len(recs), rounds*keys, keys)
	latest := map[string]string{}
	last := int64(-1)
	for _, r := range recs {
		if r.Offset <= last {
			t.Fatalf("offset %d after %d", r.Offset, last)
		}
		last = r.Offset
		latest[*r.Key] = *r.Value
	}
	for k := 0; k < keys; k++ {
		if got, want := latest[fmt.Sprintf("k%d", k)], fmt.Sprintf("new-%d", k); got != want {
			t.Fatalf("key k%d: newest value %q, want %q", k, got, want)
		}
	}
	if last != rounds*keys-1 {
		t.Fatalf("last offset %d, want %d: offsets never change", last, rounds*keys-1)
	}
	var ti topicJSON
	if err := json.Unmarshal([]byte(c.mustRun(t, "", "topic", "describe", "cli-compacted", "-o", "json")), &ti); err != nil {
		t.Fatal(err)
	}
	if p := ti.Partitions[0]; p.HighWatermark != rounds*keys || p.LogStartOffset != 0 {
		t.Fatalf("partition %+v: want offsets [0, %d)", p, rounds*keys)
	}
	// describe shows the dirty ratio, measured by each replica's checks:
	// low once the cleaner has run.
	waitFor(t, 60*time.Second, "a measured dirty ratio below 0.5", func() bool {
		var ti topicJSON
		if err := json.Unmarshal([]byte(c.mustRun(t, "", "topic", "describe", "cli-compacted", "-o", "json")), &ti); err != nil {
			t.Fatal(err)
		}
		r := ti.Partitions[0].DirtyRatio
		return r != nil && *r >= 0 && *r < 0.5
	})
	if text := c.mustRun(t, "", "topic", "describe", "cli-compacted"); !strings.Contains(text, "DIRTY-RATIO") || !strings.Contains(text, "cleanup.policy=compact") {
		t.Fatalf("describe of a compacted topic:\n%s", text)
	}
	// Keyless records are refused on a compacted topic.
	_, stderr, code := c.run(t, "no key here\n", "produce", "cli-compacted")
	if code == 0 || !strings.Contains(stderr, "no key") {
		t.Fatalf("keyless produce: exit %d %q", code, stderr)
	}
}
