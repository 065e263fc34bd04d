package consumergroup

import (
	"context"
	"errors"
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
		entry{Kind: kindShareConfig, Group: "q", Config: shareDefaults()},
		entry{Kind: kindShareInit, Group: "q", Topic: "jobs", Partition: 0, Offset: 3})
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
