package consumergroup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-mq/skiff/record"
)

// craftedEntry is the record of the trust-boundary report: produced to a
// user topic, dead-lettered into __consumer_offsets (dlq.topic was not
// checked then), and replayed as a share-state with a null partition,
// which made shareGroupState.clone dereference nil on every start.
const craftedEntry = `{"k":"share-state","g":"evil","sg":{"partitions":{"a/0":null}}}`

// appendEntries writes coordinator entries to lg as the coordinator would.
func appendEntries(t *testing.T, lg *memLog, entries ...entry) {
	t.Helper()
	batches, err := encodeEntries(entries, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if _, err := lg.Append(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

// appendRaw writes records with arbitrary values to lg, as a client
// producing to the offsets topic could before it was closed.
func appendRaw(t *testing.T, lg *memLog, values ...[]byte) {
	t.Helper()
	var recs []record.Record
	for _, v := range values {
		recs = append(recs, record.Record{Key: []byte("x"), Value: v, Timestamp: time.Now().UnixMilli()})
	}
	b, err := record.Encode(record.BatchOptions{}, recs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lg.Append(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// newRegistryCoordinator starts a coordinator over host whose metrics go
// to a registry of its own.
func newRegistryCoordinator(t *testing.T, host *fakeHost) (*Coordinator, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.TickInterval = 10 * time.Millisecond
	c, err := New(cfg, host, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, reg
}

// counterValue reads a counter from what reg exposes (0 if absent).
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	return 0
}

// goodLog returns an offsets log with two groups' commits, a membership
// snapshot and a share group, with the given raw records in the middle.
func goodLog(t *testing.T, raw ...[]byte) *memLog {
	lg := newMemLog(true)
	appendEntries(t, lg,
		entry{Kind: kindCommit, Group: "g1", Topic: "t", Partition: 0, Offset: 10},
		shareEntry(&shareConfigCmd{Group: "q", Config: shareDefaults()}),
		shareEntry(&shareInitCmd{Group: "q", Topic: "jobs", Partition: 0, Offset: 3}))
	if len(raw) > 0 {
		appendRaw(t, lg, raw...)
	}
	appendEntries(t, lg,
		entry{Kind: kindCommit, Group: "g2", Topic: "t", Partition: 1, Offset: 20},
		entry{Kind: kindCommit, Group: "g1", Topic: "t", Partition: 1, Offset: 11})
	return lg
}

// checkGoodGroups asserts that the groups of goodLog are served as written.
func checkGoodGroups(t *testing.T, c *Coordinator) {
	t.Helper()
	ctx := testCtx(t)
	for g, want := range map[string]map[TopicPartition]int64{
		"g1": {{"t", 0}: 10, {"t", 1}: 11},
		"g2": {{"t", 1}: 20},
	} {
		got, err := c.FetchOffsets(ctx, g, nil)
		if err != nil {
			t.Fatalf("%s: %v", g, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: offsets %v, want %v", g, got, want)
		}
		for tp, o := range want {
			if got[tp].Offset != o {
				t.Fatalf("%s %v: offset %d, want %d", g, tp, got[tp].Offset, o)
			}
		}
	}
	d, err := c.DescribeShareGroup(ctx, "q")
	if err != nil {
		t.Fatalf("share group q: %v", err)
	}
	if len(d.Partitions) != 1 || d.Partitions[0].TopicPartition != (TopicPartition{"jobs", 0}) || d.Partitions[0].StartOffset != 3 {
		t.Fatalf("share group q: %+v", d.Partitions)
	}
}

func TestReplaySkipsTheCraftedShareStateAndServesEveryOtherGroup(t *testing.T) {
	host := &fakeHost{log: goodLog(t, []byte(craftedEntry)), topics: map[string]int32{"t": 2, "jobs": 1}}
	c, reg := newRegistryCoordinator(t, host)
	checkGoodGroups(t, c)
	if got := counterValue(t, reg, "skiff_group_offsets_malformed_total"); got != 1 {
		t.Fatalf("skiff_group_offsets_malformed_total = %v, want 1", got)
	}
	if _, err := c.DescribeShareGroup(testCtx(t), "evil"); !errors.Is(err, ErrGroupNotFound) {
		t.Fatalf("the crafted group: %v, want ErrGroupNotFound", err)
	}
	// A checkpoint restates the table without the skipped entry and lets
	// the log below it go: a coordinator started afterwards no longer
	// meets the entry at all.
	lg := host.log.(*memLog)
	if err := c.shardList()[0].checkpoint(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		lg.mu.Lock()
		start := lg.start
		lg.mu.Unlock()
		if start > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the checkpoint did not trim the log")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.Close()
	c2, reg2 := newRegistryCoordinator(t, host)
	checkGoodGroups(t, c2)
	if got := counterValue(t, reg2, "skiff_group_offsets_malformed_total"); got != 0 {
		t.Fatalf("after the checkpoint: skiff_group_offsets_malformed_total = %v, want 0", got)
	}
}

// Each of these records would have panicked, looped, or built a state the
// package does not expect; each is skipped and counted once.
func TestReplaySkipsEveryKindOfMalformedRecord(t *testing.T) {
	malformed := []string{
		craftedEntry,
		`x`,               // arbitrary bytes
		``,                // empty value
		`null`,            // JSON, but no entry
		`{"k":"commit"}`,  // no group
		`{"k":"no-such"}`, // unknown kind
		`{"k":"share-nope","g":"q"}`,
		`{"k":"commit","g":"g1","t":"t","p":0,"o":-5}`, // negative offset
		`{"k":"commit","g":"g1","t":"t","p":-1,"o":5}`, // negative partition
		`{"k":"commit","g":"g1","p":0,"o":5}`,          // no topic
		`{"k":"group-state","g":"g1"}`,                 // no snapshot
		`{"k":"group-state","g":"g1","gs":{"v":1,"members":[{"id":""}]}}`,
		`{"k":"group-state","g":"g1","gs":{"v":1,"members":[{"id":"m","assigned":[{"Topic":"","Partition":0}]}]}}`,
		`{"k":"share-config","g":"q"}`,                                      // no config
		`{"k":"share-ack","g":"q","t":"jobs","p":0,"os":[1],"ack":"maybe"}`, // unknown ack
		`{"k":"share-acquire","g":"q","t":"jobs","p":0,"os":[-1],"mb":"m"}`,
		`{"k":"share-resolve","g":"q","t":"jobs","p":0,"o":1,"ac":"explode"}`,
		`{"k":"share-state","g":"q","sg":{"partitions":{"jobs":{"start":0}}}}`,     // key without partition
		`{"k":"share-state","g":"q","sg":{"partitions":{"jobs/x":{"start":0}}}}`,   // partition not a number
		`{"k":"share-state","g":"q","sg":{"partitions":{"jobs/007":{"start":0}}}}`, // not as tpKey writes it
		`{"k":"share-state","g":"q","sg":{"partitions":{"jobs/0":{"start":-9}}}}`,  // negative start
		`{"k":"share-state","g":"q","sg":{"partitions":{"jobs/0":{"recs":{"5":null}}}}}`,
		`{"k":"share-state","g":"q","sg":{"partitions":{"jobs/0":{"recs":{"5":{"s":9}}}}}}`,
		`{"k":"share-state","g":"q","sg":{"partitions":{"jobs/0":{"quarantine":{"k":null}}}}}`,
		`{"k":"share-state","g":"q","sg":{"dead_letters":[null]}}`,
		`{"k":"share-state","g":"q","sg":{"partitions":{"jobs/0":{"start":4611686018427387905}}}}`, // absurd start
		`{"k":"checkpoint-end","b":-1}`,
	}
	raw := make([][]byte, len(malformed))
	for i, m := range malformed {
		raw[i] = []byte(m)
	}
	host := &fakeHost{log: goodLog(t, raw...), topics: map[string]int32{"t": 2, "jobs": 1}}
	c, reg := newRegistryCoordinator(t, host)
	checkGoodGroups(t, c)
	if got := counterValue(t, reg, "skiff_group_offsets_malformed_total"); got != float64(len(malformed)) {
		t.Fatalf("skiff_group_offsets_malformed_total = %v, want %d", got, len(malformed))
	}
}

// Every check of checkEntry names why, and a decoded good entry passes.
func TestDecodeEntryExplainsWhatIsWrong(t *testing.T) {
	for value, want := range map[string]string{
		craftedEntry:                                `partition "a/0": null`,
		`{"k":"commit","g":"g","t":"t"}`:            "",
		`{"k":"commit","t":"t"}`:                    "empty group name",
		`{"k":"` + strings.Repeat("z", 1000) + `"}`: "unknown-kind",
		`[1]`: "not-json",
	} {
		_, err := decodeEntry(record.Record{Value: []byte(value)})
		switch {
		case want == "" && err != nil:
			t.Errorf("%.60s: %v", value, err)
		case want != "" && (!errors.Is(err, errMalformedEntry) || !strings.Contains(err.Error(), want)):
			t.Errorf("%.60s: err %v, want one mentioning %q", value, err, want)
		case want == "unknown-kind" && len(err.Error()) > 200:
			t.Errorf("the error quotes the whole unknown kind: %d bytes", len(err.Error()))
		}
	}
}

// TestShareEntriesOfTheUnionFormatStillReplay: offsets logs written
// before share commands were typed hold entries as the old union struct
// encoded them (every field omitempty, in its field order). They must
// replay to the same state.
func TestShareEntriesOfTheUnionFormatStillReplay(t *testing.T) {
	values := [][]byte{
		[]byte(`{"k":"share-config","g":"q","cf":{"auto.offset.reset":"earliest","backoff.initial.ms":"1000","backoff.jitter":"0.2","backoff.max.ms":"3600000","backoff.multiplier":"2","dlq.flood.per.minute":"100","dlq.topic":"{topic}.dlq.{group}","key.ordered":"true","lock.timeout.ms":"7000","max.deliveries":"5","max.inflight":"10000"}}`),
		[]byte(`{"k":"share-init","g":"q","t":"jobs","o":5}`),
		[]byte(`{"k":"share-acquire","g":"q","t":"jobs","os":[5,6,7],"mb":"m1","lu":2000,"at":1000}`),
		[]byte(`{"k":"share-ack","g":"q","t":"jobs","os":[5],"at":1100,"ack":"accept"}`),
		[]byte(`{"k":"share-ack","g":"q","t":"jobs","os":[6],"av":[1500],"at":1100,"ack":"release","er":"boom"}`),
		[]byte(`{"k":"share-dead","g":"q","t":"jobs","o":7,"er":"poison","key":"aw==","q":true}`),
		[]byte(`{"k":"share-dead-lettered","g":"q","t":"jobs","o":7,"key":"aw==","dt":"jobs.dlq.q"}`),
		[]byte(`{"k":"share-acquire","g":"q","t":"jobs","os":[6],"mb":"m2","lu":3000,"at":1600}`),
		[]byte(`{"k":"share-leave","g":"q","mb":"m2"}`),
		[]byte(`{"k":"share-pause","g":"q","rs":"flood"}`),
	}
	table := replayedTable(t, values)
	g := table.shares["q"]
	if g == nil {
		t.Fatal("group q not replayed")
	}
	if cfg := g.config(); cfg.LockTimeout != 7*time.Second {
		t.Errorf("lock timeout %v, want 7s from the share-config entry", cfg.LockTimeout)
	}
	if !g.Paused || g.PausedReason != "flood" {
		t.Errorf("paused %v %q, want paused by flood", g.Paused, g.PausedReason)
	}
	sp := g.partition("jobs", 0)
	if sp == nil {
		t.Fatal("share-partition jobs/0 not replayed")
	}
	if sp.Start != 6 || sp.Acked != 1 || sp.DeadLettered != 1 || sp.Redeliveries != 1 {
		t.Errorf("start %d acked %d dead-lettered %d redeliveries %d, want 6 1 1 1", sp.Start, sp.Acked, sp.DeadLettered, sp.Redeliveries)
	}
	r := sp.Recs[6]
	if r == nil || r.State != recAvailable || r.Deliveries != 2 || r.LastError != "boom" || r.Owner != "" {
		t.Errorf("record 6: %+v, want available after the leave, 2 deliveries, last error boom", r)
	}
	if q := sp.Quarantine["k"]; q == nil || q.DeadOffset != 7 || q.RedriveOffset != -1 {
		t.Errorf("quarantine of key k: %+v", q)
	}
	if len(g.DeadLetters) != 1 || g.DeadLetters[0].DLQTopic != "jobs.dlq.q" || string(g.DeadLetters[0].Key) != "k" ||
		g.DeadLetters[0].LastError != "poison" || g.DeadLetters[0].State != dlPending {
		t.Errorf("dead letters %+v", g.DeadLetters)
	}
	// A checkpoint restates it in the typed form, which replays the same.
	checkRestatable(t, table)
	again := replayedTable(t, restated(t, table))
	if got, want := fmt.Sprintf("%+v", again.shares["q"].Partitions["jobs/0"].Recs[6]), fmt.Sprintf("%+v", r); got != want {
		t.Errorf("restated record 6 %s, want %s", got, want)
	}
}

// restated is the record values of a checkpoint of table.
func restated(t *testing.T, table *offsetTable) [][]byte {
	t.Helper()
	batches, err := encodeEntries(table.checkpointEntries(), time.UnixMilli(0))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, b := range batches {
		if err := record.Records(b, func(r record.Record) error {
			out = append(out, append([]byte(nil), r.Value...))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestShareCommandsRoundTrip: every command decodes from its encoding to
// itself, and carries its kind and group in the record key.
func TestShareCommandsRoundTrip(t *testing.T) {
	for _, e := range fuzzEntries() {
		if e.cmd == nil {
			continue
		}
		batches, err := encodeEntries([]entry{e}, time.UnixMilli(0))
		if err != nil {
			t.Fatal(err)
		}
		if err := record.Records(batches[0], func(r record.Record) error {
			if string(r.Key) != e.Kind+"/"+e.Group {
				t.Errorf("%s: record key %q", e.Kind, r.Key)
			}
			got, err := decodeEntry(r)
			if err != nil {
				t.Fatalf("%s: %v", e.Kind, err)
			}
			a, _ := json.Marshal(got.cmd)
			b, _ := json.Marshal(e.cmd)
			if got.Kind != e.Kind || string(a) != string(b) {
				t.Errorf("%s: decoded %s, want %s", e.Kind, a, b)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}
