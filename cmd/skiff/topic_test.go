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

func testDayTwoOperations(t *testing.T, c *cli) {
	c.mustRun(t, "", "topic", "create", "cli-grow", "--partitions", "2", "--replication", "3")
	out := c.mustRun(t, "", "topic", "alter", "cli-grow", "--partitions", "4")
	if !strings.Contains(out, "partitions: 2 -> 4") {
		t.Fatalf("alter --partitions said %q", out)
	}
	_, stderr, code := c.run(t, "", "topic", "alter", "cli-grow", "--partitions", "3")
	if code == 0 || !strings.Contains(stderr, "never removed") {
		t.Fatalf("shrink: exit %d %q", code, stderr)
	}
	if _, stderr, code = c.run(t, "", "topic", "alter", "cli-grow", "--partitions", "-1"); code == 0 || !strings.Contains(stderr, "--partitions") {
		t.Fatalf("negative: exit %d %q", code, stderr)
	}
	var ti topicJSON
	if err := json.Unmarshal([]byte(c.mustRun(t, "", "topic", "describe", "cli-grow", "-o", "json")), &ti); err != nil || len(ti.Partitions) != 4 {
		t.Fatalf("describe after growing: %+v %v", ti, err)
	}

	var nodes []nodeJSON
	if err := json.Unmarshal([]byte(c.mustRun(t, "", "node", "list", "-o", "json")), &nodes); err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 3 {
		t.Fatalf("node list: %+v", nodes)
	}
	for _, n := range nodes {
		if n.Mode != "active" || n.State != "alive" || n.Replicas == 0 {
			t.Fatalf("node %+v", n)
		}
	}
	if text := c.mustRun(t, "", "node", "list"); !strings.Contains(text, "REPLICAS") || !strings.Contains(text, "node-1") {
		t.Fatalf("node list:\n%s", text)
	}
	// Every node holds a replica of a three-replica topic: none can go.
	_, stderr, code = c.run(t, "", "node", "decommission", "node-1")
	if code == 0 || !strings.Contains(stderr, "only 2 other nodes") {
		t.Fatalf("decommission: exit %d %q", code, stderr)
	}
	if _, stderr, code = c.run(t, "", "node", "maintenance", "sideways", "node-1"); code == 0 || !strings.Contains(stderr, "want on or off") {
		t.Fatalf("maintenance sideways: exit %d %q", code, stderr)
	}
	if _, stderr, code = c.run(t, "", "node", "maintenance", "on", "node-9"); code == 0 || !strings.Contains(stderr, "unknown") {
		t.Fatalf("maintenance of an unknown node: exit %d %q", code, stderr)
	}
	out = c.mustRun(t, "", "node", "maintenance", "on", "node-1", "--interval", "200ms", "--wait-timeout", "60s")
	if !strings.Contains(out, "node-1: maintenance on; leads 0 partitions") {
		t.Fatalf("maintenance on said %q", out)
	}
	var st clusterStatusJSON
	if err := json.Unmarshal([]byte(c.mustRun(t, "", "cluster", "status", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	modes := map[string]string{}
	for _, b := range st.Brokers {
		modes[b.ID] = b.Mode
	}
	if modes["node-1"] != "maintenance" || modes["node-0"] != "active" || st.ControllerID == "node-1" {
		t.Fatalf("cluster status in maintenance: %+v", st)
	}
	c.mustRun(t, "", "node", "maintenance", "off", "node-1")

	_, stderr, code = c.run(t, "", "topic", "reassign", "cli-grow", "--partition", "0", "--replicas", "node-0,node-9")
	if code == 0 || !strings.Contains(stderr, `"node-9" is unknown`) {
		t.Fatalf("reassign to an unknown node: exit %d %q", code, stderr)
	}
	if _, stderr, code = c.run(t, "", "topic", "reassign", "cli-grow", "--replicas", "node-0"); code == 0 || !strings.Contains(stderr, "--partition is required") {
		t.Fatalf("reassign without --partition: exit %d %q", code, stderr)
	}
	out = c.mustRun(t, "", "topic", "reassign", "cli-grow", "--partition", "3", "--replicas", "node-2,node-0,node-1")
	if !strings.Contains(out, "reassigned cli-grow/3 to node-2,node-0,node-1") {
		t.Fatalf("reassign said %q", out)
	}
}
