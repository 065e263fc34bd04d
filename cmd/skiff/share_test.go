package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/client"
	"github.com/skiff-mq/skiff/record"
)

func TestShareEnvCarriesTheRecord(t *testing.T) {
	r := &client.ShareRecord{Record: client.Record{Topic: "orders", Partition: 2, Offset: 41, Key: []byte("cust-7"),
		Headers: []record.Header{
			{Key: "trace-id", Value: []byte("abc")},
			{Key: "bin", Value: []byte{0xff, 0x00}},
			{Key: "Trace.ID", Value: []byte("later")}, // same variable name: the last wins
		}}, DeliveryCount: 3}
	base := []string{"PATH=/bin", "SKIFF_KEY=stale", "SKIFF_HEADER_OLD=x", "SKIFF_BROKERS=b:1"}
	env := shareEnv(base, r)
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := got[k]; dup {
			t.Fatalf("%s set twice in %q", k, env)
		}
		got[k] = v
	}
	want := map[string]string{
		"PATH": "/bin", "SKIFF_BROKERS": "b:1",
		"SKIFF_KEY": "cust-7", "SKIFF_TOPIC": "orders", "SKIFF_PARTITION": "2", "SKIFF_OFFSET": "41", "SKIFF_DELIVERY_COUNT": "3",
		"SKIFF_HEADER_TRACE_ID": "later", "SKIFF_HEADER_BIN": "/wA=", "SKIFF_HEADER_BIN_BASE64": "1",
	}
	if len(got) != len(want) {
		t.Fatalf("env %q, want %v", env, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s=%q, want %q", k, got[k], v)
		}
	}

	// No key: no SKIFF_KEY at all, so a script can tell null from empty.
	env = shareEnv(nil, &client.ShareRecord{Record: client.Record{Topic: "t"}})
	if slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "SKIFF_KEY") }) {
		t.Fatalf("a record without a key set %q", env)
	}
	env = shareEnv(nil, &client.ShareRecord{Record: client.Record{Topic: "t", Key: []byte("a\x00b")}})
	if !slices.Contains(env, "SKIFF_KEY=YQBi") || !slices.Contains(env, "SKIFF_KEY_BASE64=1") {
		t.Fatalf("a key with NUL: %q", env)
	}
}

func TestHeaderEnvName(t *testing.T) {
	for in, want := range map[string]string{
		"content-type": "SKIFF_HEADER_CONTENT_TYPE",
		"x.Trace_id9":  "SKIFF_HEADER_X_TRACE_ID9",
		"é":            "SKIFF_HEADER__",
		"":             "SKIFF_HEADER_",
	} {
		if got := headerEnvName(in); got != want {
			t.Errorf("headerEnvName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLastLineWriterKeepsTheLastNonEmptyLine(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"nothing", nil, ""},
		{"one line", []string{"boom\n"}, "boom"},
		{"trailing blank lines", []string{"first\n", "last one  \n\n \n"}, "last one"},
		{"unterminated last line", []string{"a\n", "partial"}, "partial"},
		{"split across writes", []string{"con", "nection ref", "used\n"}, "connection refused"},
		{"crlf", []string{"windows\r\n"}, "windows"},
		{"long line cut", []string{strings.Repeat("x", 5000) + "\n"}, strings.Repeat("x", maxLastLine)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &lastLineWriter{}
			for _, w := range tc.writes {
				if n, err := l.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := l.Line(); got != tc.want {
				t.Fatalf("Line() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestShareFetchSize(t *testing.T) {
	for _, tc := range []struct {
		co   consumeOptions
		want int
	}{
		{consumeOptions{concurrency: 1}, 1000}, // printing: many at once
		{consumeOptions{concurrency: 8, max: 1_000_000}, 1000},
		{consumeOptions{concurrency: 1, max: 5}, 5},    // never more than --max
		{consumeOptions{concurrency: 4, exec: "x"}, 4}, // a command each: as many as there are workers
		{consumeOptions{concurrency: 4, exec: "x", max: 2}, 2},
		{consumeOptions{concurrency: 1, exec: "x", max: 1_000_000}, 1},
		{consumeOptions{concurrency: 50000, exec: "x"}, 10000}, // the broker's cap
	} {
		if got := shareFetchSize(&tc.co); got != tc.want {
			t.Errorf("shareFetchSize(%+v) = %d, want %d", tc.co, got, tc.want)
		}
	}
}

func TestParseSettings(t *testing.T) {
	got, err := parseSettings([]string{"max.deliveries=2", " backoff.jitter =0", "dlq.topic=a=b"})
	if err != nil || len(got) != 3 || got["max.deliveries"] != "2" || got["backoff.jitter"] != "0" || got["dlq.topic"] != "a=b" {
		t.Fatalf("parseSettings = %v, %v", got, err)
	}
	for _, bad := range []string{"novalue", "=x", " =x"} {
		if _, err := parseSettings([]string{bad}); err == nil {
			t.Errorf("parseSettings(%q) accepted", bad)
		}
	}
}

func TestKeyTextAndTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want string
	}{{nil, "-"}, {[]byte("k1"), "k1"}, {[]byte("a\tb"), `a\tb`}, {[]byte{0xff}, "base64:/w=="}, {[]byte{}, ""}} {
		if got := keyText(tc.in); got != tc.want {
			t.Errorf("keyText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := truncate("héllo world", 5); got != "héll…" {
		t.Errorf("truncate = %q", got)
	}
	if got := truncate("short", 60); got != "short" {
		t.Errorf("truncate = %q", got)
	}
}

func TestDeadLetterJSONRendersThePayloadAsConsumeDoes(t *testing.T) {
	dl := client.DeadLetter{Topic: "t", Partition: 1, Offset: 7, DLQTopic: "t.dlq.g", DLQOffset: 3, State: "pending",
		DeliveryCount: 5, LastError: "boom", LastDelivery: time.UnixMilli(1700000000000), Key: nil, Value: []byte{0xff},
		Headers: []record.Header{{Key: "h", Value: []byte("v")}}}
	b, err := json.Marshal(deadLetterJSONOf(dl))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["key"] != nil || got["value"] != "/w==" || got["value_base64"] != true || got["last_error"] != "boom" ||
		got["dlq_offset"] != float64(3) || got["last_delivery"] != "2023-11-14T22:13:20Z" || got["first_delivery"] != nil {
		t.Fatalf("dead letter JSON %s", b)
	}
	if h := got["headers"].([]any)[0].(map[string]any); h["key"] != "h" || h["value"] != "v" {
		t.Fatalf("headers %v", got["headers"])
	}
}

// testShareGroupVerbs runs a shell script as a share-group worker: a
// poison record fails until it reaches the dead-letter topic, is listed
// with its provenance and error, redriven, and then processed.
func testShareGroupVerbs(t *testing.T, c *cli) {
	const topic, group = "cli-queue", "cli-workers"
	c.mustRun(t, "", "topic", "create", topic, "--partitions", "3")
	var cfg map[string]string
	if err := json.Unmarshal([]byte(c.mustRun(t, "", "share", "config", group, "--set", "max.deliveries=2",
		"--set", "backoff.initial.ms=100", "-o", "json")), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg["max.deliveries"] != "2" || cfg["backoff.initial.ms"] != "100" {
		t.Fatalf("share config: %v", cfg)
	}

	// 12 good jobs over 4 keys, one poison job with a key of its own.
	var input strings.Builder
	for i := range 12 {
		fmt.Fprintf(&input, "k%d:job-%02d\n", i%4, i)
	}
	input.WriteString("kp:poison\n")
	if _, stderr, code := c.run(t, input.String(), "produce", topic, "--key-delim", ":"); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, stderr)
	}

	dir := t.TempDir()
	seen := filepath.Join(dir, "seen.log")
	script := filepath.Join(dir, "worker.sh")
	if err := os.WriteFile(script, []byte(`v=$(cat)
echo "$SKIFF_KEY $v $SKIFF_DELIVERY_COUNT $SKIFF_TOPIC/$SKIFF_PARTITION@$SKIFF_OFFSET" >> `+seen+`
if [ "$v" = poison ]; then
  echo "warming up" >&2
  echo "cannot digest $v" >&2
  exit 1
fi
`), 0o755); err != nil {
		t.Fatal(err)
	}
	// 12 jobs once each, the poison twice (max.deliveries=2).
	_, stderr, code := c.run(t, "", "consume", topic, "--share-group", group, "--exec", "sh "+script,
		"--concurrency", "3", "--max", "14", "--timeout", "50s")
	if code != 0 || !strings.Contains(stderr, "cannot digest poison") || !shareSummaryIs(stderr, 12, 2) {
		t.Fatalf("worker: exit %d\n%s", code, stderr)
	}
	lines := readLines(t, seen)
	if len(lines) != 14 {
		t.Fatalf("worker ran %d times:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	last := map[string]int{} // key -> last job number, to check per-key order
	var poisonDeliveries []string
	var poisonAt string
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 4 || !strings.HasPrefix(f[3], topic+"/") {
			t.Fatalf("worker saw %q", l)
		}
		if f[1] == "poison" {
			poisonDeliveries = append(poisonDeliveries, f[2])
			poisonAt = f[3]
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(f[1], "job-"))
		if err != nil || f[2] != "1" {
			t.Fatalf("worker saw %q", l)
		}
		if prev, ok := last[f[0]]; ok && prev > n {
			t.Fatalf("key %s: job-%d after job-%d", f[0], n, prev)
		}
		last[f[0]] = n
	}
	if !slices.Equal(poisonDeliveries, []string{"1", "2"}) {
		t.Fatalf("poison delivery counts %v", poisonDeliveries)
	}
	source := strings.TrimPrefix(poisonAt, topic+"/")
	srcPartition, srcOffset, _ := strings.Cut(source, "@")

	// The poison record reaches the dead-letter topic shortly after its
	// last release.
	var dl map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for dl == nil {
		var dls []map[string]any
		if err := json.Unmarshal([]byte(c.mustRun(t, "", "dlq", "list", "--topic", topic, "--share-group", group, "-o", "json")), &dls); err != nil {
			t.Fatal(err)
		}
		for _, d := range dls {
			if d["state"] == "pending" && d["value"] == "poison" {
				dl = d
			}
		}
		if dl == nil {
			if time.Now().After(deadline) {
				t.Fatalf("no pending dead letter with its payload: %v", dls)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if dl["topic"] != topic || fmt.Sprint(dl["partition"]) != srcPartition || fmt.Sprint(dl["offset"]) != srcOffset ||
		dl["key"] != "kp" || dl["last_error"] != "cannot digest poison" || dl["delivery_count"] != float64(2) ||
		dl["dlq_topic"] != topic+".dlq."+group {
		t.Fatalf("dead letter %v, want source %s", dl, poisonAt)
	}
	dlqOffset := fmt.Sprint(dl["dlq_offset"])
	text := c.mustRun(t, "", "dlq", "list", "--topic", topic, "--share-group", group)
	for _, want := range []string{"DLQ-OFFSET", poisonAt, "pending", "cannot digest poison", "kp"} {
		if !strings.Contains(text, want) {
			t.Fatalf("dlq list lacks %q:\n%s", want, text)
		}
	}
	if show := c.mustRun(t, "", "dlq", "show", "--topic", topic, "--share-group", group, "--offset", dlqOffset); !strings.Contains(show, "poison") ||
		!strings.Contains(show, "source:") {
		t.Fatalf("dlq show:\n%s", show)
	}
	var d shareGroupJSON
	if err := json.Unmarshal([]byte(c.mustRun(t, "", "share", "describe", group, "-o", "json")), &d); err != nil {
		t.Fatal(err)
	}
	var deadLettered int64
	quarantined := false
	for _, p := range d.Partitions {
		deadLettered += p.DeadLettered
		for _, k := range p.QuarantinedKeys {
			quarantined = quarantined || (k.Key != nil && *k.Key == "kp")
		}
	}
	if deadLettered != 1 || !quarantined || d.Config["max.deliveries"] != "2" {
		t.Fatalf("share describe after the dead letter: %+v", d)
	}
	if out := c.mustRun(t, "", "share", "inspect", group, "--topic", topic, "--partition", srcPartition, "--offset", srcOffset); !strings.Contains(out, "state:") {
		t.Fatalf("share inspect:\n%s", out)
	}

	// Redrive it: a worker that now succeeds processes and acks it.
	if out := c.mustRun(t, "", "dlq", "redrive", "--topic", topic, "--share-group", group, "--all"); !strings.Contains(out, "redriven 1") {
		t.Fatalf("dlq redrive: %s", out)
	}
	out, stderr, code := c.run(t, "", "consume", topic, "--share-group", group, "--exec", "cat", "--max", "1", "--timeout", "50s")
	if code != 0 || out != "poison" || !shareSummaryIs(stderr, 1, 0) {
		t.Fatalf("worker after redrive: exit %d, stdout %q\n%s", code, out, stderr)
	}
	if text := c.mustRun(t, "", "dlq", "list", "--topic", topic, "--share-group", group); !strings.Contains(text, "redriven") {
		t.Fatalf("dlq list after redrive:\n%s", text)
	}

	// Without --exec records are printed and acked; a new group starts at
	// the beginning: 13 records and the redriven copy.
	out, stderr, code = c.run(t, "", "consume", topic, "--share-group", "cli-printer", "-o", "json", "--max", "14", "--timeout", "50s")
	if code != 0 || !shareSummaryIs(stderr, 14, 0) {
		t.Fatalf("print worker: exit %d\n%s", code, stderr)
	}
	values := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r recordJSON
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Value == nil {
			t.Fatalf("printed %q: %v", l, err)
		}
		values[*r.Value]++
	}
	if len(values) != 13 || values["poison"] != 2 {
		t.Fatalf("printed values %v", values)
	}

	// A command that runs past its lock keeps the record: the worker
	// renews the lock at half time, so it is acked, not redelivered.
	c.mustRun(t, "", "topic", "create", "cli-slow", "--partitions", "1")
	c.mustRun(t, "slow-job\n", "produce", "cli-slow")
	// The command outlives its lock 2.5 times over; renewals at half time
	// leave a second of slack for a loaded machine.
	c.mustRun(t, "", "share", "config", "cli-slow-workers", "--set", "lock.timeout.ms=2000")
	out, stderr, code = c.run(t, "", "consume", "cli-slow", "--share-group", "cli-slow-workers", "--exec", "sleep 5; cat",
		"--max", "1", "--timeout", "50s")
	if code != 0 || out != "slow-job" || !strings.Contains(stderr, "acked 1, released 0") || strings.Contains(stderr, "renew") {
		t.Fatalf("slow worker: exit %d, stdout %q\n%s", code, out, stderr)
	}
	var slow shareGroupJSON
	if err := json.Unmarshal([]byte(c.mustRun(t, "", "share", "describe", "cli-slow-workers", "-o", "json")), &slow); err != nil {
		t.Fatal(err)
	}
	if len(slow.Partitions) != 1 || slow.Partitions[0].Redeliveries != 0 || slow.Partitions[0].Acked != 1 {
		t.Fatalf("slow worker's group: %+v", slow.Partitions)
	}

	// Ctrl-C stops fetching, lets the running command finish, acks its
	// record and leaves the group.
	c.mustRun(t, "interrupt-me\n", "produce", "cli-slow")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	worker := exec.CommandContext(ctx, c.bin, "consume", "cli-slow", "--share-group", "cli-slow-workers", "--exec", "sleep 1; cat",
		"--brokers", c.brokers)
	var wout, werr strings.Builder
	worker.Stdout, worker.Stderr = &wout, &werr
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var d shareGroupJSON
		if err := json.Unmarshal([]byte(c.mustRun(t, "", "share", "describe", "cli-slow-workers", "-o", "json")), &d); err != nil {
			t.Fatal(err)
		}
		if len(d.Partitions) == 1 && d.Partitions[0].InFlight == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker took nothing: %+v\n%s", d, werr.String())
		}
	}
	if err := worker.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := worker.Wait(); err != nil || wout.String() != "interrupt-me" || !strings.Contains(werr.String(), "acked 1, released 0") {
		t.Fatalf("interrupted worker: %v, stdout %q\n%s", err, wout.String(), werr.String())
	}
	if err := json.Unmarshal([]byte(c.mustRun(t, "", "share", "describe", "cli-slow-workers", "-o", "json")), &slow); err != nil {
		t.Fatal(err)
	}
	if len(slow.Members) != 0 || slow.Partitions[0].Acked != 2 || slow.Partitions[0].InFlight != 0 {
		t.Fatalf("after the interrupted worker left: %+v", slow)
	}

	// Bad input fails with one line.
	for _, args := range [][]string{
		{"dlq", "redrive", "--topic", topic, "--share-group", group},
		{"dlq", "show", "--topic", topic, "--share-group", group, "--offset", "999"},
		{"consume", topic, "--exec", "cat"},
		{"consume", "cli-no-such-topic", "--share-group", group},
		{"consume", topic, "--share-group", group, "--from", "latest"},
		{"share", "config", group, "--set", "max.deliveries=zero"},
		{"share", "describe", "cli-no-such-share-group"},
	} {
		if _, stderr, code := c.run(t, "", args...); code == 0 || !strings.HasPrefix(stderr, "skiff: ") ||
			strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("skiff %v: exit %d, stderr %q", args, code, stderr)
		}
	}
}

// shareSummaryIs reports whether a share worker's summary line says it
// acked and released so many records. A settlement whose outcome was lost
// in a coordinator failover (right after the cluster starts, leaders
// move) is counted as not settled, and may stand for either.
func shareSummaryIs(stderr string, acked, released int) bool {
	m := regexp.MustCompile(`acked (\d+), released (\d+)(?:, (\d+) not settled)?`).FindStringSubmatch(stderr)
	if m == nil {
		return false
	}
	a, _ := strconv.Atoi(m[1])
	r, _ := strconv.Atoi(m[2])
	u, _ := strconv.Atoi(m[3]) // "" when every record was settled
	return a <= acked && r <= released && a+r+u == acked+released
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
