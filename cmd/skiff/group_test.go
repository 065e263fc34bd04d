package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func testGroupVerbs(t *testing.T, c *cli) {
	c.mustRun(t, "", "topic", "create", "cli-jobs", "--partitions", "3")
	var input strings.Builder
	for i := range 30 {
		fmt.Fprintf(&input, "k%d:job-%d\n", i%7, i)
	}
	if _, stderr, code := c.run(t, input.String(), "produce", "cli-jobs", "--key-delim", ":"); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, stderr)
	}
	consume := func() map[string]bool {
		t.Helper()
		out := c.mustRun(t, "", "consume", "cli-jobs", "--group", "workers", "--from", "earliest", "--max", "30", "--timeout", "60s")
		got := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if got[line] {
				t.Fatalf("%q printed twice", line)
			}
			got[line] = true
		}
		if len(got) != 30 {
			t.Fatalf("group consume printed %d distinct records:\n%s", len(got), out)
		}
		return got
	}
	consume()

	describe := func() groupJSON {
		t.Helper()
		var d groupJSON
		if err := json.Unmarshal([]byte(c.mustRun(t, "", "group", "describe", "workers", "-o", "json")), &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := describe()
	var committed int64
	for _, p := range d.Partitions {
		committed += p.Committed
	}
	if d.State != "Empty" || len(d.Members) != 0 || committed != 30 || d.TotalLag != 0 || len(d.Partitions) != 3 {
		t.Fatalf("after consuming everything: %+v", d)
	}
	if list := c.mustRun(t, "", "group", "list"); !strings.Contains(list, "workers") || !strings.Contains(list, "Empty") {
		t.Fatalf("group list:\n%s", list)
	}
	text := c.mustRun(t, "", "group", "describe", "workers")
	for _, want := range []string{"group: workers", "COMMITTED", "LAG", "cli-jobs"} {
		if !strings.Contains(text, want) {
			t.Fatalf("describe lacks %q:\n%s", want, text)
		}
	}

	// Replay: back to the start, and the group reads everything again.
	c.mustRun(t, "", "group", "reset-offsets", "workers", "--topic", "cli-jobs", "--to", "earliest")
	if d = describe(); d.TotalLag != 30 {
		t.Fatalf("lag after reset to earliest: %d", d.TotalLag)
	}
	consume()
	c.mustRun(t, "", "group", "reset-offsets", "workers", "--topic", "cli-jobs", "--shift-by", "-2")
	if d = describe(); d.TotalLag != 6 {
		t.Fatalf("lag after shifting 3 partitions back by 2: %d", d.TotalLag)
	}

	if _, stderr, code := c.run(t, "", "group", "reset-offsets", "workers", "--topic", "cli-jobs"); code == 0 || !strings.Contains(stderr, "--to") {
		t.Fatalf("reset without --to: exit %d %q", code, stderr)
	}
	c.mustRun(t, "", "group", "delete", "workers")
	if _, stderr, code := c.run(t, "", "group", "describe", "workers"); code == 0 || !strings.Contains(stderr, "not found") {
		t.Fatalf("describe a deleted group: exit %d %q", code, stderr)
	}
}
