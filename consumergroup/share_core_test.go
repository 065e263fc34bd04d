package consumergroup

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// randomSharePartition builds a share-partition and its feed in a state
// the coordinator can reach: records of a few keys (and null keys) with
// random delivery states, delays and not-before times, and quarantined
// keys whose redriven copy sits in the window or beyond it.
func randomSharePartition(rng *rand.Rand, nowMs int64) (*sharePartition, *feed, shareConfig) {
	cfg, _ := parseShareConfig(shareDefaults())
	cfg.MaxDeliveries = 3
	cfg.MaxInflight = int64(5 + rng.IntN(40))
	start := int64(rng.IntN(4))
	sp := &sharePartition{Start: start, Recs: map[int64]*shareRec{}, Quarantine: map[string]*quarantine{}}
	f := &feed{base: start}
	keys := []string{"", "a", "b", "c", "d"}
	n := rng.IntN(50)
	keyOf := map[int64]string{}
	for i := range n {
		o := start + int64(i)
		k := keys[rng.IntN(len(keys))]
		rec := record.Record{Offset: o, Value: []byte(fmt.Sprint(o))}
		if k != "" {
			rec.Key = []byte(k)
		}
		fr := feedRec{rec: rec, key: k}
		if rng.IntN(8) == 0 {
			fr.notBefore = nowMs + 1000
		}
		f.recs = append(f.recs, fr)
		f.index(o, &fr)
		keyOf[o] = k
		switch rng.IntN(8) {
		case 0:
			sp.Recs[o] = &shareRec{State: recAcquired, Deliveries: 1, Owner: "m", LockUntil: nowMs + 500}
		case 1:
			sp.Recs[o] = &shareRec{State: recAcquired, Deliveries: int32(1 + rng.IntN(3)), Owner: "m", LockUntil: nowMs - 1}
		case 2:
			sp.Recs[o] = &shareRec{State: recAcked, Deliveries: 1}
		case 3:
			sp.Recs[o] = &shareRec{State: recAvailable, Deliveries: 1, AvailableAt: nowMs + int64(rng.IntN(2))*1000}
		case 4:
			sp.Recs[o] = &shareRec{State: recDead, Deliveries: 3}
		case 5:
			sp.Recs[o] = &shareRec{State: recDeadLettered, Deliveries: 3}
		}
	}
	// Quarantine a key; its redriven copy is a record of the same key in
	// the window, or one beyond it (in extra), or not there yet.
	if k := keys[1+rng.IntN(len(keys)-1)]; rng.IntN(2) == 0 {
		q := &quarantine{DeadOffset: start, RedriveOffset: -1}
		switch rng.IntN(3) {
		case 0:
			for o := start; o < f.end(); o++ {
				if keyOf[o] == k && rng.IntN(2) == 0 {
					q.RedriveOffset = o
					break
				}
			}
		case 1:
			o := f.end() + int64(rng.IntN(60))
			f.extra = map[int64]feedRec{o: {rec: record.Record{Offset: o, Key: []byte(k)}, key: k}}
			q.RedriveOffset = o
		}
		sp.Quarantine[k] = q
	}
	return sp, f, cfg
}

// TestSelectKeyOrderedAgreesWithTheWalk: the per-key selection a fetch
// uses picks exactly the records the full walk (the definition, which
// inspect's blocked_by shows) finds deliverable, before and after the
// state moves on.
func TestSelectKeyOrderedAgreesWithTheWalk(t *testing.T) {
	nowMs := time.Unix(1000, 0).UnixMilli()
	for seed := range uint64(3000) {
		rng := rand.New(rand.NewPCG(seed, 1))
		sp, f, cfg := randomSharePartition(rng, nowMs)
		for step := range 3 {
			var want []int64
			walkShare(sp, f, cfg, nowMs, func(o int64, why string) bool {
				if why == "" {
					want = append(want, o)
				}
				return true
			})
			slices.Sort(want)
			var prune *sharePartition
			if step%2 == 0 {
				prune = sp
			}
			got := selectKeyOrdered(sp, f, cfg, nowMs, 1<<30, prune, nil)
			if !slices.Equal(got, want) {
				t.Fatalf("seed %d step %d: selected %v, the walk finds %v deliverable", seed, step, got, want)
			}
			// Move on: acquire and accept what was selected, as the
			// commands do (an accepted redriven copy lifts its key's
			// quarantine; the start advances).
			g := &shareGroupState{Partitions: map[string]*sharePartition{"jobs/0": sp}}
			m := map[string]*shareGroupState{"q": g}
			(&shareAcquireCmd{Group: "q", Topic: "jobs", Offsets: got, Member: "m", LockUntil: nowMs + 1}).apply(m)
			(&shareAckCmd{Group: "q", Topic: "jobs", Offsets: got, Ack: ackAccept}).apply(m)
		}
	}
}

// TestDecideFetchLocksOnePerKeyAndHonoursBounds drives the core with a
// fixed clock: one record per key, the record and byte bounds, and the
// rotation across partitions.
func TestDecideFetchLocksOnePerKeyAndHonoursBounds(t *testing.T) {
	now := time.Unix(5000, 0)
	newState := func() (*shareGroupState, *shareRuntime, []TopicPartition) {
		g := newShareGroupState()
		rt := newShareRuntime()
		var parts []TopicPartition
		for p := range int32(2) {
			tp := TopicPartition{Topic: "jobs", Partition: p}
			parts = append(parts, tp)
			g.Partitions[tpKey("jobs", p)] = &sharePartition{}
			f := &feed{}
			for i, k := range []string{"a", "b", "a", "c"} {
				fr := feedRec{rec: record.Record{Offset: int64(i), Key: []byte(k), Value: make([]byte, 10)}, key: k}
				f.recs = append(f.recs, fr)
				f.index(int64(i), &fr)
			}
			rt.feeds[tpKey("jobs", p)] = f
		}
		return g, rt, parts
	}
	for _, tc := range []struct {
		name     string
		maxRecs  int
		maxBytes int
		want     []string // partition/offset
	}{
		{"one per key, every partition", 100, 0, []string{"0/0", "0/1", "0/3", "1/0", "1/1", "1/3"}},
		{"record bound", 2, 0, []string{"0/0", "0/1"}},
		{"byte bound, first always fits", 100, 5, []string{"0/0"}},
		{"byte bound", 100, 35, []string{"0/0", "0/1", "0/3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, rt, parts := newState()
			cmds, recs := decideFetch(g, rt, now, fetchDecision{Group: "q", Member: "m", Parts: parts, MaxRecs: tc.maxRecs, MaxBytes: tc.maxBytes})
			var got []string
			for _, r := range recs {
				got = append(got, fmt.Sprintf("%d/%d", r.Partition, r.Record.Offset))
				if r.DeliveryCount != 1 || !r.LockUntil.Equal(now.Add(30*time.Second)) {
					t.Fatalf("record %+v: want delivery 1, lock until now+30s", r)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("picked %v, want %v", got, tc.want)
			}
			for _, c := range cmds {
				c.apply(map[string]*shareGroupState{"q": g})
			}
			// Applied, nothing more of those keys is deliverable.
			if _, again := decideFetch(g, rt, now, fetchDecision{Group: "q", Member: "m2", Parts: parts, MaxRecs: 100}); len(again) != 6-len(tc.want) {
				t.Fatalf("second fetch got %d records, want %d", len(again), 6-len(tc.want))
			}
		})
	}
}

// TestDecideAckChecksEachAckAlone: acks of records not held, held by
// another member, with an expired lock, settling already, or twice in
// one request fail alone; the rest become one command per kind.
func TestDecideAckChecksEachAckAlone(t *testing.T) {
	now := time.Unix(5000, 0)
	nowMs := now.UnixMilli()
	g := newShareGroupState()
	g.Partitions["jobs/0"] = &sharePartition{Recs: map[int64]*shareRec{
		0: {State: recAcquired, Owner: "m", LockUntil: nowMs + 1000, Deliveries: 1},
		1: {State: recAcquired, Owner: "other", LockUntil: nowMs + 1000, Deliveries: 1},
		2: {State: recAcquired, Owner: "m", LockUntil: nowMs, Deliveries: 1},
		3: {State: recAcquired, Owner: "m", LockUntil: nowMs + 1000, Deliveries: 2},
		4: {State: recAcquired, Owner: "m", LockUntil: nowMs + 1000, Deliveries: 1},
		5: {State: recAcquired, Owner: "m", LockUntil: nowMs + 1000, Deliveries: 1},
	}}
	rt := newShareRuntime()
	rt.settling = map[tpOffset]int{{TopicPartition{"jobs", 0}, 5}: 1}
	tp := TopicPartition{Topic: "jobs", Partition: 0}
	acks := []ShareAck{
		{TopicPartition: tp, Offset: 0, Type: ShareAccept},
		{TopicPartition: tp, Offset: 1, Type: ShareAccept},
		{TopicPartition: tp, Offset: 2, Type: ShareAccept},
		{TopicPartition: tp, Offset: 3, Type: ShareRelease, Delay: -1},
		{TopicPartition: tp, Offset: 0, Type: ShareAccept},
		{TopicPartition: tp, Offset: 9, Type: ShareAccept},
		{TopicPartition: tp, Offset: 4, Type: ShareRenew},
		{TopicPartition: tp, Offset: 5, Type: ShareAccept},
		{TopicPartition: TopicPartition{Topic: "nope"}, Offset: 0, Type: ShareAccept},
	}
	cmds, results := decideAck(g, rt, now, ackDecision{Group: "q", Member: "m", Acks: acks, Jitter: func() float64 { return 0.5 }})
	wantErr := []error{nil, ErrNotHeld, ErrLockExpired, nil, ErrInvalidArgument, ErrNotHeld, nil, ErrNotHeld, ErrUnknownRecord}
	for i, want := range wantErr {
		if (want == nil) != (results[i].Err == nil) || (want != nil && !errors.Is(results[i].Err, want)) {
			t.Errorf("ack %d: %v, want %v", i, results[i].Err, want)
		}
	}
	if len(cmds) != 3 {
		t.Fatalf("%d commands, want accept, release and renew: %+v", len(cmds), cmds)
	}
	rel := cmds[1].(*shareAckCmd)
	// Backoff after 2 deliveries: 1s × 2, jitter 0.5 is none.
	if rel.Ack != ackRelease || len(rel.Avail) != 1 || rel.Avail[0] != nowMs+2000 {
		t.Fatalf("release %+v: want available at now+2s", rel)
	}
	if ren := cmds[2].(*shareAckCmd); ren.LockUntil != nowMs+30000 || !results[6].LockUntil.Equal(time.UnixMilli(nowMs+30000)) {
		t.Fatalf("renew %+v, result %+v", ren, results[6])
	}
}

// fairState is one key-ordered partition of keys k0..k(n-1), two records
// each (offsets i and n+i), and a null-key record at 2n.
func fairState(keys int) (*shareGroupState, *shareRuntime, []TopicPartition) {
	g := newShareGroupState()
	rt := newShareRuntime()
	tp := TopicPartition{Topic: "jobs"}
	g.Partitions[tpKey("jobs", 0)] = &sharePartition{}
	f := &feed{}
	for round := range 2 {
		for i := range keys {
			k := fmt.Sprintf("k%d", i)
			o := int64(round*keys + i)
			fr := feedRec{rec: record.Record{Offset: o, Key: []byte(k), Value: []byte("v")}, key: k}
			f.recs = append(f.recs, fr)
			f.index(o, &fr)
		}
	}
	null := feedRec{rec: record.Record{Offset: int64(2 * keys), Value: []byte("v")}}
	f.recs = append(f.recs, null)
	f.index(int64(2*keys), &null)
	rt.feeds[tpKey("jobs", 0)] = f
	return g, rt, []TopicPartition{tp}
}

// TestDecideFetchSkipsARecordWhoseAckIsCommitting: member a's accept of
// offset 0, decided while a held it, is queued when the lock ends. Until
// it is committed no other member gets the record: the acquisition would
// commit after the accept and deliver an acknowledged record again (in
// key-ordered mode the key waits too). Once nothing settles it, the
// record with its lock ended is deliverable again.
func TestDecideFetchSkipsARecordWhoseAckIsCommitting(t *testing.T) {
	now := time.Unix(5000, 0)
	for _, ordered := range []bool{true, false} {
		g, rt, parts := fairState(1) // k0: 0, 1; null: 2
		g.Config = shareDefaults()
		g.Config["key.ordered"] = fmt.Sprint(ordered)
		g.parsed = nil
		if g.config().KeyOrdered != ordered {
			t.Fatalf("key.ordered=%v not taken", ordered)
		}
		*g.partition("jobs", 0).rec(0) = shareRec{State: recAcquired, Owner: "a", Deliveries: 1, LockUntil: now.Add(-time.Millisecond).UnixMilli()}
		ack := &shareAckCmd{Group: "q", Topic: "jobs", Ack: ackAccept, Offsets: []int64{0}, At: now.UnixMilli()}
		rt.markSettling(ack, +1)
		offsets := func() []int64 {
			_, recs := decideFetch(g, rt, now, fetchDecision{Group: "q", Member: "b", Parts: parts, MaxRecs: 10})
			var out []int64
			for _, r := range recs {
				out = append(out, r.Record.Offset)
			}
			slices.Sort(out)
			return out
		}
		want := []int64{1, 2}
		if ordered {
			want = []int64{2} // k0's next record waits for offset 0
		}
		if got := offsets(); !slices.Equal(got, want) {
			t.Fatalf("key.ordered=%v, accept of 0 committing: b got %v, want %v", ordered, got, want)
		}
		rt.markSettling(ack, -1) // failed after all: a's lock has ended
		want = []int64{0, 1, 2}
		if ordered {
			want = []int64{0, 2}
		}
		if got := offsets(); !slices.Equal(got, want) {
			t.Fatalf("key.ordered=%v, nothing committing: b got %v, want %v", ordered, got, want)
		}
	}
}

// keysOf lists the keys of records ("" for a null key).
func keysOf(recs []ShareRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Record.Key))
	}
	return out
}

// TestDecideFetchTakesAFairShareOfKeys: in key-ordered mode a member takes
// keyed records only up to its share of the keys among the members heard
// from lately (null keys are not bounded); a member silent for longer
// than shareActiveWindow leaves its share to the others; a fetch with
// acks takes the next records of its own keys first.
func TestDecideFetchTakesAFairShareOfKeys(t *testing.T) {
	now := time.Unix(5000, 0)
	apply := func(g *shareGroupState, cmds []shareCmd) {
		for _, c := range cmds {
			c.apply(map[string]*shareGroupState{"q": g})
		}
	}
	t.Run("three members split twelve keys", func(t *testing.T) {
		g, rt, parts := fairState(12)
		for _, m := range []string{"a", "b", "c"} {
			rt.members[m] = &shareMember{id: m, lastSeen: now, maxRecords: 100}
		}
		got := map[string]int{}
		for _, m := range []string{"a", "b", "c", "a"} {
			cmds, recs := decideFetch(g, rt, now, fetchDecision{Group: "q", Member: m, Parts: parts, MaxRecs: 100})
			apply(g, cmds)
			for _, r := range recs {
				if r.Record.Key != nil {
					got[m]++
				}
			}
		}
		if want := map[string]int{"a": 4, "b": 4, "c": 4}; !maps.Equal(got, want) {
			t.Fatalf("keys per member %v, want %v", got, want)
		}
	})
	t.Run("a member asking for less leaves the rest to the others", func(t *testing.T) {
		g, rt, parts := fairState(12)
		rt.members["one"] = &shareMember{id: "one", lastSeen: now, maxRecords: 1}
		rt.members["b"] = &shareMember{id: "b", lastSeen: now, maxRecords: 100}
		_, recs := decideFetch(g, rt, now, fetchDecision{Group: "q", Member: "a", Parts: parts, MaxRecs: 100})
		// 12 keys: 1 for "one", the other 11 split between a and b.
		if n := len(recs) - 1; n != 6 {
			t.Fatalf("took %d keys, want 6 (ceil(11/2))", n)
		}
	})
	t.Run("null keys are not bounded", func(t *testing.T) {
		g, rt, parts := fairState(3)
		rt.members["b"] = &shareMember{id: "b", lastSeen: now, maxRecords: 100}
		rt.members["c"] = &shareMember{id: "c", lastSeen: now, maxRecords: 100}
		_, recs := decideFetch(g, rt, now, fetchDecision{Group: "q", Member: "a", Parts: parts, MaxRecs: 100})
		if got := keysOf(recs); !slices.Equal(got, []string{"k0", ""}) {
			t.Fatalf("picked keys %q, want one key and the null-key record", got)
		}
	})
	t.Run("a silent member's share goes to the others", func(t *testing.T) {
		g, rt, parts := fairState(12)
		rt.members["b"] = &shareMember{id: "b", lastSeen: now, maxRecords: 100}
		rt.members["gone"] = &shareMember{id: "gone", lastSeen: now.Add(-shareActiveWindow - time.Millisecond), maxRecords: 100}
		_, recs := decideFetch(g, rt, now, fetchDecision{Group: "q", Member: "a", Parts: parts, MaxRecs: 100})
		if n := len(recs) - 1; n != 6 {
			t.Fatalf("took %d keys, want half of 12", n)
		}
	})
	t.Run("own keys first after acks", func(t *testing.T) {
		g, rt, parts := fairState(4)
		rt.members["b"] = &shareMember{id: "b", lastSeen: now, maxRecords: 100}
		// a holds k2 and k3; b holds nothing yet.
		apply(g, []shareCmd{&shareAcquireCmd{Group: "q", Topic: "jobs", Offsets: []int64{2, 3}, Member: "a", LockUntil: now.Add(time.Minute).UnixMilli()}})
		acks := []shareCmd{&shareAckCmd{Group: "q", Topic: "jobs", Ack: ackAccept, Offsets: []int64{2, 3}}}
		view := g.withAcks("q", acks)
		// Free: k0, k1 (first records) and k2, k3 (next records): a's
		// share is 2, taken from its own keys.
		_, recs := decideFetch(view, rt, now, fetchDecision{Group: "q", Member: "a", Parts: parts, MaxRecs: 100, View: true, Acks: acks})
		var got []string
		for _, r := range recs {
			got = append(got, fmt.Sprintf("%s@%d", r.Record.Key, r.Record.Offset))
		}
		if want := []string{"k2@6", "k3@7", "@8"}; !slices.Equal(got, want) {
			t.Fatalf("picked %v, want %v", got, want)
		}
	})
}

// TestSelectKeyOrderedPrunesAgainstTheBase: a view's selection drops
// from the key queues what the state it was made from settled (below the
// start, or done), keeps what only the view settled, and selects the
// first record of each key the view did not settle.
func TestSelectKeyOrderedPrunesAgainstTheBase(t *testing.T) {
	_, rt, _ := fairState(3) // k0: 0, 3; k1: 1, 4; k2: 2, 5; null: 6
	f := rt.feedOf(TopicPartition{Topic: "jobs"})
	cfg, _ := parseShareConfig(shareDefaults())
	base := &sharePartition{Start: 1, Recs: map[int64]*shareRec{
		1: {State: recAcked}, 2: {State: recAcquired, Owner: "m", LockUntil: 1 << 50}, 3: {State: recAcked},
	}}
	g := &shareGroupState{Partitions: map[string]*sharePartition{"jobs/0": base}}
	view := g.withAcks("q", []shareCmd{&shareAckCmd{Group: "q", Topic: "jobs", Ack: ackAccept, Offsets: []int64{2}}})
	if base.Recs[2].State != recAcquired {
		t.Fatal("the view changed the base's record")
	}
	got := selectKeyOrdered(view.partition("jobs", 0), f, cfg, 0, 10, base, nil)
	if want := []int64{4, 5, 6}; !slices.Equal(got, want) {
		t.Fatalf("selected %v, want %v", got, want)
	}
	fronts := map[string]int64{}
	for k, q := range f.byKey {
		fronts[k] = q.front()
	}
	// k0 is all settled in the base; k2's offset 2 is settled only in the
	// view.
	if want := map[string]int64{"k1": 4, "k2": 2}; !maps.Equal(fronts, want) {
		t.Fatalf("queue fronts %v, want %v", fronts, want)
	}
	if f.nulls.empty() || f.nulls.front() != 6 {
		t.Fatalf("null-key queue %+v, want 6 at its front", f.nulls)
	}
}
