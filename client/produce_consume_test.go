package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/client"
)

// produced is what the callbacks reported, for checking against what a
// consumer reads back.
type produced struct {
	mu      sync.Mutex
	offsets map[string]int64 // "topic/partition/offset" -> sequence, to detect offset reuse
	byKey   map[string]int32 // key -> partition
	errs    []error
	acked   atomic.Int64
}

func newProduced() *produced {
	return &produced{offsets: map[string]int64{}, byKey: map[string]int32{}}
}

func (p *produced) callback() func(*client.Record, error) {
	return func(r *client.Record, err error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if err != nil {
			p.errs = append(p.errs, err)
			return
		}
		p.acked.Add(1)
		k := fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)
		if _, dup := p.offsets[k]; dup {
			p.errs = append(p.errs, fmt.Errorf("offset %s acknowledged twice", k))
		}
		p.offsets[k] = 1
		if part, ok := p.byKey[string(r.Key)]; ok && part != r.Partition {
			p.errs = append(p.errs, fmt.Errorf("key %s went to partitions %d and %d", r.Key, part, r.Partition))
		}
		p.byKey[string(r.Key)] = r.Partition
	}
}

// keyedRecord is record i of a run: key i%keys, value "<key>/<n>" where n
// counts that key's records, so a reader can check per-key order.
func keyedRecord(topic string, i, keys int) *client.Record {
	key := "key-" + strconv.Itoa(i%keys)
	return &client.Record{Topic: topic, Key: []byte(key), Value: []byte(key + "/" + strconv.Itoa(i/keys))}
}

// consumeAll reads every partition of topic from the start until want
// records arrived, and checks them: each key's records in order, none
// missing, none twice.
func consumeAll(t *testing.T, cl *client.Client, topic string, partitions, want, keys int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	co, err := cl.NewConsumer(client.ConsumerConfig{MaxWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	for p := 0; p < partitions; p++ {
		if err := co.Assign(ctx, topic, int32(p), client.Earliest()); err != nil {
			t.Fatal(err)
		}
	}
	next := make(map[string]int, keys) // key -> next expected n
	lastOffset := map[int32]int64{}
	got := 0
	for got < want {
		recs, err := co.Poll(ctx)
		if err != nil {
			t.Fatalf("poll after %d of %d records: %v", got, want, err)
		}
		for _, r := range recs {
			if last, ok := lastOffset[r.Partition]; ok && r.Offset <= last {
				t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, last)
			}
			lastOffset[r.Partition] = r.Offset
			key, nstr, ok := strings.Cut(string(r.Value), "/")
			if !ok || key != string(r.Key) {
				t.Fatalf("record %s/%d@%d: key %q value %q", r.Topic, r.Partition, r.Offset, r.Key, r.Value)
			}
			n, _ := strconv.Atoi(nstr)
			if n != next[key] {
				t.Fatalf("key %s: got record %d, want %d (lost, duplicated or reordered)", key, n, next[key])
			}
			next[key] = n + 1
			got++
		}
	}
	// Nothing beyond what was produced.
	pctx, pcancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer pcancel()
	if recs, err := co.Poll(pctx); len(recs) > 0 {
		t.Fatalf("%d records beyond the %d produced (first %q)", len(recs), want, recs[0].Value)
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
}

func recordCount(t *testing.T, full, short int) int {
	if testing.Short() {
		return short
	}
	if s := os.Getenv("SKIFF_CLIENT_RECORDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	return full
}

func TestProduceConsumeKeyedRecordsExactlyOnceInKeyOrder(t *testing.T) {
	const partitions, keys = 6, 1000
	n := recordCount(t, 100_000, 10_000)
	c := sharedCluster(t)
	cl := newClient(t, c)
	createTopic(t, cl, "keyed", partitions, 3)

	p, err := cl.NewProducer(client.ProducerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := newProduced()
	cb := res.callback()
	start := time.Now()
	for i := 0; i < n; i++ {
		p.Produce(ctx, keyedRecord("keyed", i, keys), cb)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	t.Logf("produced %d records (acks=all, idempotent) in %v: %.0f records/s", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(res.errs) > 0 {
		t.Fatalf("%d produce errors, first: %v", len(res.errs), res.errs[0])
	}
	if got := res.acked.Load(); got != int64(n) {
		t.Fatalf("%d acknowledged, want %d", got, n)
	}
	consumeAll(t, cl, "keyed", partitions, n, keys)
}

func TestIdempotentProducerSurvivesLeaderKillWithoutDuplicates(t *testing.T) {
	const partitions, keys = 3, 300
	n := recordCount(t, 60_000, 6_000)
	c, err := startCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close) // after createTopic's cleanup, which needs the cluster
	cl := newClient(t, c)
	createTopic(t, cl, "failover", partitions, 3)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ti, err := cl.DescribeTopic(ctx, "failover")
	if err != nil {
		t.Fatal(err)
	}
	victim := c.node(ti.Partitions[0].Leader)
	if victim == nil {
		t.Fatalf("leader %q of partition 0 is not a test node", ti.Partitions[0].Leader)
	}

	p, err := cl.NewProducer(client.ProducerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	res := newProduced()
	record := res.callback()
	// At most window records unacknowledged: production runs at the pace
	// of acknowledgements, so it stalls and resumes across the failover
	// with batches in flight to the stopped leader.
	const window = 2000
	slots := make(chan struct{}, window)
	cb := func(r *client.Record, err error) {
		record(r, err)
		<-slots
	}
	killed := make(chan struct{})
	start := time.Now()
	for i := 0; i < n; i++ {
		switch i {
		case n / 3:
			go func() {
				defer close(killed)
				t.Logf("killing node %s, leader of partition 0, after %d records acknowledged", victim.id, res.acked.Load())
				victim.kill()
				t.Logf("node %s killed after %d records acknowledged", victim.id, res.acked.Load())
			}()
		case 2 * n / 3:
			<-killed // the last third goes to the new leaders
		}
		slots <- struct{}{}
		p.Produce(ctx, keyedRecord("failover", i, keys), cb)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	<-killed
	t.Logf("produced %d records through a leader shutdown in %v: %.0f records/s", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(res.errs) > 0 {
		t.Fatalf("%d produce errors, first: %v", len(res.errs), res.errs[0])
	}
	ti, err = cl.DescribeTopic(ctx, "failover")
	if err != nil {
		t.Fatal(err)
	}
	if ti.Partitions[0].Leader == victim.id {
		t.Fatalf("partition 0 still led by the stopped node")
	}
	consumeAll(t, cl, "failover", partitions, n, keys)
}
