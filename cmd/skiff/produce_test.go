package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func testProduceConsumeRoundTrip(t *testing.T, c *cli) {
	c.mustRun(t, "", "topic", "create", "cli-events", "--partitions", "2")
	input := "user-1:signed up\nuser-2:logged in\nuser-1:bought\n:no key\nplain line\n"
	_, stderr, code := c.run(t, input, "produce", "cli-events", "--key-delim", ":", "--header", "source=cli")
	if code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "produced 5 messages to cli-events") || !strings.Contains(stderr, "offsets") {
		t.Fatalf("summary %q", stderr)
	}

	out := c.mustRun(t, "", "consume", "cli-events", "-o", "json")
	var recs []recordJSON
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r recordJSON
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 5 {
		t.Fatalf("%d records:\n%s", len(recs), out)
	}
	got := map[string]string{}
	partitionOf := map[string]int32{}
	for _, r := range recs {
		key := "<nil>"
		if r.Key != nil {
			key = *r.Key
		}
		got[key] += *r.Value + ";"
		if p, ok := partitionOf[key]; ok && p != r.Partition {
			t.Fatalf("key %s on partitions %d and %d", key, p, r.Partition)
		}
		partitionOf[key] = r.Partition
		if r.Topic != "cli-events" || len(r.Headers) != 1 || r.Headers[0].Key != "source" || *r.Headers[0].Value != "cli" || r.Timestamp == "" {
			t.Fatalf("record %+v", r)
		}
	}
	// Per-key order; an empty key is a key; a line without the delimiter has none.
	want := map[string]string{"user-1": "signed up;bought;", "user-2": "logged in;", "": "no key;", "<nil>": "plain line;"}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("key %q: got %q, want %q (all: %v)", k, got[k], v, got)
		}
	}

	// Text output is the values, one per line; --max stops early.
	text := c.mustRun(t, "", "consume", "cli-events", "--partition", "0")
	text += c.mustRun(t, "", "consume", "cli-events", "--partition", "1")
	if n := strings.Count(text, "\n"); n != 5 {
		t.Fatalf("text consume printed %d lines:\n%s", n, text)
	}
	if one := c.mustRun(t, "", "consume", "cli-events", "--max", "1"); strings.Count(one, "\n") != 1 {
		t.Fatalf("--max 1 printed %q", one)
	}
	// Binary values come back base64, flagged.
	c.mustRun(t, "\xff\xfe\n", "produce", "cli-events", "--key", "bin", "--partition", "0")
	out = c.mustRun(t, "", "consume", "cli-events", "--partition", "0", "--from", "latest", "-o", "json")
	if out != "" {
		t.Fatalf("--from latest printed %q", out)
	}
	found := false
	for _, line := range strings.Split(strings.TrimSpace(c.mustRun(t, "", "consume", "cli-events", "--partition", "0", "-o", "json")), "\n") {
		var r recordJSON
		json.Unmarshal([]byte(line), &r)
		if r.Key != nil && *r.Key == "bin" {
			found = r.ValueBase64 && *r.Value == "//4="
		}
	}
	if !found {
		t.Fatal("binary value not returned as flagged base64")
	}
}
