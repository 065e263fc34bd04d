package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func testTopicCreateDescribe(t *testing.T, c *cli) {
	out := c.mustRun(t, "", "topic", "create", "cli-orders", "--partitions", "3", "--replication", "3", "--config", "retention.ms=3600000")
	if !strings.Contains(out, "created topic cli-orders: 3 partitions") {
		t.Fatalf("create said %q", out)
	}
	_, stderr, code := c.run(t, "", "topic", "create", "cli-orders", "--partitions", "3")
	if code == 0 || !strings.Contains(stderr, "exists") {
		t.Fatalf("second create: exit %d %q", code, stderr)
	}
	// Leaders are elected shortly after creation.
	var ti topicJSON
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := json.Unmarshal([]byte(c.mustRun(t, "", "topic", "describe", "cli-orders", "-o", "json")), &ti); err != nil {
			t.Fatal(err)
		}
		led := len(ti.Partitions) == 3
		for _, p := range ti.Partitions {
			led = led && p.Leader != "" && len(p.InSync) > 0
		}
		if led {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leaders: %+v", ti)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ti.Configs["retention.ms"] != "3600000" {
		t.Fatalf("configs %v", ti.Configs)
	}
	for _, p := range ti.Partitions {
		if len(p.Replicas) != 3 || p.HighWatermark != 0 || p.LogStartOffset != 0 {
			t.Fatalf("partition %+v", p)
		}
	}
	text := c.mustRun(t, "", "topic", "describe", "cli-orders")
	for _, want := range []string{"topic: cli-orders", "PARTITION", "LEADER", "IN-SYNC", "HIGH-WATERMARK", "retention.ms=3600000"} {
		if !strings.Contains(text, want) {
			t.Fatalf("describe lacks %q:\n%s", want, text)
		}
	}
	if list := c.mustRun(t, "", "topic", "list"); !strings.Contains(list, "cli-orders") {
		t.Fatalf("list:\n%s", list)
	}
	if out := c.mustRun(t, "", "topic", "alter", "cli-orders", "--config", "retention.ms=60000"); !strings.Contains(out, "retention.ms=60000") {
		t.Fatalf("alter said %q", out)
	}
	_, stderr, code = c.run(t, "", "topic", "create", "bad/name")
	if code == 0 || !strings.Contains(stderr, "name") {
		t.Fatalf("bad name: exit %d %q", code, stderr)
	}
	// Bounded topics show their bounds; a topic cannot be both bounded and
	// compacted.
	c.mustRun(t, "", "topic", "create", "cli-bounded", "--config", "max.messages=5", "--config", "overflow.policy=drop-oldest")
	text = c.mustRun(t, "", "topic", "describe", "cli-bounded")
	if !strings.Contains(text, "bounds: max.messages=5 max.bytes=unbounded overflow.policy=drop-oldest") || !strings.Contains(text, "RECORDS") {
		t.Fatalf("describe of a bounded topic:\n%s", text)
	}
	var bt topicJSON
	if err := json.Unmarshal([]byte(c.mustRun(t, "", "topic", "describe", "cli-bounded", "-o", "json")), &bt); err != nil {
		t.Fatal(err)
	}
	if bt.Bounds == nil || *bt.Bounds != (boundsJSON{MaxMessages: 5, OverflowPolicy: "drop-oldest"}) {
		t.Fatalf("json bounds %+v", bt.Bounds)
	}
	if ti.Bounds != nil {
		t.Fatalf("unbounded topic shows bounds %+v", ti.Bounds)
	}
	_, stderr, code = c.run(t, "", "topic", "create", "cli-compacted-bounded", "--config", "cleanup.policy=compact", "--config", "max.messages=5")
	if code == 0 || !strings.Contains(stderr, "cleanup.policy") || !strings.Contains(stderr, "cannot also be bounded") {
		t.Fatalf("compacted and bounded topic: exit %d %q", code, stderr)
	}
	c.mustRun(t, "", "topic", "create", "cli-doomed")
	c.mustRun(t, "", "topic", "delete", "cli-doomed")
	if _, _, code := c.run(t, "", "topic", "describe", "cli-doomed"); code == 0 {
		t.Fatal("describe of a deleted topic succeeded")
	}
}

func TestParseKeyValues(t *testing.T) {
	got, err := parseKeyValues("--config", []string{"a=1", "b=x=y", "c="})
	if err != nil || got["a"] != "1" || got["b"] != "x=y" || got["c"] != "" {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"novalue", "=v"} {
		if _, err := parseKeyValues("--config", []string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
