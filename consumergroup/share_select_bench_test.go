package consumergroup

import (
	"fmt"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// BenchmarkSelectKeyOrdered is one share-partition of `skiff bench share`
// mid-run: 167 keys, a window of 10,000 records, the partition's start
// held back by one slow key, so that the records state holds the done
// records above it and the next record of every key, locked to one of
// three members.
func BenchmarkSelectKeyOrdered(b *testing.B) {
	const keys, perKey = 167, 60
	nowMs := time.Unix(1000, 0).UnixMilli()
	cfg, _ := parseShareConfig(shareDefaults())
	sp := &sharePartition{Recs: map[int64]*shareRec{}, Quarantine: map[string]*quarantine{}}
	f := &feed{}
	members := []string{"member-a", "member-b", "member-c"}
	for round := range perKey {
		for k := range keys {
			o := int64(round*keys + k)
			key := fmt.Sprintf("key-%d", k)
			fr := feedRec{rec: record.Record{Offset: o, Key: []byte(key), Value: []byte("v")}, key: key}
			f.recs = append(f.recs, fr)
			f.index(o, &fr)
			switch {
			case k == 0 && round == 0, k != 0 && round == 20:
				sp.Recs[o] = &shareRec{State: recAcquired, Deliveries: 1, Owner: members[k%3], LockUntil: nowMs + 30000}
			case k != 0 && round < 20:
				sp.Recs[o] = &shareRec{State: recAcked, Deliveries: 1}
			}
		}
	}
	var tally keyTally
	selectKeyOrdered(sp, f, cfg, nowMs, 1000, sp, &tally) // prunes once
	b.ResetTimer()
	for range b.N {
		var tally keyTally
		selectKeyOrdered(sp, f, cfg, nowMs, 1000, sp, &tally)
	}
}
