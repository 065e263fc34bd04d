package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// results collects callback outcomes.
type results struct {
	mu   sync.Mutex
	ok   []*Record
	errs []error
	wg   sync.WaitGroup
}

func (r *results) cb() func(*Record, error) {
	r.wg.Add(1)
	return func(rec *Record, err error) {
		r.mu.Lock()
		if err != nil {
			r.errs = append(r.errs, err)
		} else {
			r.ok = append(r.ok, rec)
		}
		r.mu.Unlock()
		r.wg.Done()
	}
}

func produceValues(t *testing.T, p *Producer, topic string, partition int32, values []string, res *results) {
	t.Helper()
	for _, v := range values {
		p.Produce(context.Background(), &Record{Topic: topic, Partition: partition, Value: []byte(v)}, res.cb())
	}
}

func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

func flushAndClose(t *testing.T, p *Producer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLingerGathersRecordsIntoOneBatch(t *testing.T) {
	f := newFakeCluster(map[string]int{"t": 1})
	p := testProducer(f, ProducerConfig{Partitioner: ManualPartitioner(), Linger: 200 * time.Millisecond})
	var res results
	produceValues(t, p, "t", 0, seq("v", 100), &res)
	res.wg.Wait()
	flushAndClose(t, p)
	if n := f.requestCount(topicPartition{"t", 0}); n != 1 {
		t.Fatalf("%d produce requests, want 1 batch of 100", n)
	}
	for i, r := range res.ok {
		if r.Offset != int64(i) || r.Partition != 0 {
			t.Fatalf("record %d: partition %d offset %d", i, r.Partition, r.Offset)
		}
	}
}

func TestFlushDoesNotWaitForLinger(t *testing.T) {
	f := newFakeCluster(map[string]int{"t": 1})
	p := testProducer(f, ProducerConfig{Partitioner: ManualPartitioner(), Linger: time.Hour})
	var res results
	produceValues(t, p, "t", 0, seq("v", 3), &res)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("flush with a one-hour linger: %v", err)
	}
	if len(res.ok) != 3 {
		t.Fatalf("%d acknowledged after Flush, want 3", len(res.ok))
	}
	flushAndClose(t, p)
}

func TestMaxBatchBytesSplitsBatches(t *testing.T) {
	f := newFakeCluster(map[string]int{"t": 1})
	p := testProducer(f, ProducerConfig{Partitioner: ManualPartitioner(), Linger: time.Hour, MaxBatchBytes: 4096})
	var res results
	value := string(bytes.Repeat([]byte("x"), 1000))
	values := make([]string, 20)
	for i := range values {
		values[i] = value
	}
	produceValues(t, p, "t", 0, values, &res)
	flushAndClose(t, p)
	tp := topicPartition{"t", 0}
	if n := f.requestCount(tp); n < 5 {
		t.Fatalf("%d batches of 20 1000-byte records, want at least 5 under 4096 bytes", n)
	}
	for _, b := range f.requests[tp] {
		if len(b) > 4096 {
			t.Fatalf("batch of %d bytes exceeds MaxBatchBytes", len(b))
		}
	}
	if got := len(f.values(tp)); got != 20 {
		t.Fatalf("%d records written, want 20", got)
	}
}

func TestInFlightPerPartitionIsBounded(t *testing.T) {
	f := newFakeCluster(map[string]int{"t": 1})
	f.gate = make(chan struct{})
	p := testProducer(f, ProducerConfig{Partitioner: ManualPartitioner(), Linger: -1, MaxBatchBytes: 100, MaxInFlightPerPartition: 3})
	var res results
	produceValues(t, p, "t", 0, seq(string(bytes.Repeat([]byte("y"), 80)), 20), &res)
	tp := topicPartition{"t", 0}
	deadline := time.Now().Add(5 * time.Second)
	for f.requestCount(tp) < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // room for a fourth, wrongly sent, request
	if n := f.requestCount(tp); n != 3 {
		t.Fatalf("%d requests sent with the answers held, want MaxInFlightPerPartition = 3", n)
	}
	close(f.gate)
	flushAndClose(t, p)
	if f.maxInflight[tp] > 3 {
		t.Fatalf("%d in flight at once", f.maxInflight[tp])
	}
	if got := f.values(tp); !slices.Equal(got, seq(string(bytes.Repeat([]byte("y"), 80)), 20)) {
		t.Fatalf("log %v", got)
	}
}

func TestIdempotentRetryResendsTheSameBytes(t *testing.T) {
	f := newFakeCluster(map[string]int{"t": 1})
	// The first attempt is written but its answer lost: the retry must be
	// recognized as a duplicate, so the bytes must be identical.
	f.fault = func(tp topicPartition, h record.BatchHeader, n int) fakeFault {
		if n == 0 {
			return fakeFault{after: fmt.Errorf("%w: leadership lost", ErrIndeterminate)}
		}
		return fakeFault{}
	}
	p := testProducer(f, ProducerConfig{Partitioner: ManualPartitioner()})
	var res results
	produceValues(t, p, "t", 0, seq("v", 10), &res)
	flushAndClose(t, p)
	tp := topicPartition{"t", 0}
	reqs := f.requests[tp]
	if len(reqs) != 2 || !bytes.Equal(reqs[0], reqs[1]) {
		t.Fatalf("%d requests; retry identical: %v", len(reqs), len(reqs) == 2 && bytes.Equal(reqs[0], reqs[1]))
	}
	if got := f.values(tp); !slices.Equal(got, seq("v", 10)) {
		t.Fatalf("log %v, want each value once", got)
	}
	if len(res.errs) != 0 || len(res.ok) != 10 || res.ok[9].Offset != 9 {
		t.Fatalf("callbacks: %d ok, errors %v", len(res.ok), res.errs)
	}
}

// A failure in the middle of a pipeline: the batches behind the failed one
// are refused as sequence gaps, then all are resent in order.
func TestFailedBatchInPipelineIsResentInOrderWithoutDuplicates(t *testing.T) {
	for _, fault := range []fakeFault{
		{before: &NotLeaderError{LeaderAddr: "new-leader"}},
		{before: fmt.Errorf("%w: election", ErrUnavailable)},
		{after: fmt.Errorf("%w: timed out", ErrIndeterminate)},
	} {
		name := fmt.Sprint(fault.before, fault.after)
		t.Run(name, func(t *testing.T) {
			f := newFakeCluster(map[string]int{"t": 1})
			f.fault = func(tp topicPartition, h record.BatchHeader, n int) fakeFault {
				if n == 2 || n == 7 {
					return fault
				}
				return fakeFault{}
			}
			p := testProducer(f, ProducerConfig{Partitioner: ManualPartitioner(), Linger: -1, MaxBatchBytes: 200})
			var res results
			want := seq("value-", 300)
			produceValues(t, p, "t", 0, want, &res)
			flushAndClose(t, p)
			if got := f.values(topicPartition{"t", 0}); !slices.Equal(got, want) {
				t.Fatalf("log has %d records, want the %d produced in order exactly once", len(got), len(want))
			}
			if len(res.errs) != 0 {
				t.Fatalf("errors: %v", res.errs[0])
			}
			for i, r := range res.ok {
				if string(r.Value) != want[i] || r.Offset != int64(i) {
					t.Fatalf("callback %d: %q at %d", i, r.Value, r.Offset)
				}
			}
		})
	}
}

// A batch the broker refuses for good fails alone; the partition goes on
// under a new producer id, since its sequence now has a hole.
func TestRejectedBatchFailsAloneAndThePartitionContinues(t *testing.T) {
	f := newFakeCluster(map[string]int{"t": 1})
	f.fault = func(tp topicPartition, h record.BatchHeader, n int) fakeFault {
		if n == 1 {
			return fakeFault{before: fmt.Errorf("%w: batch of 9999 bytes", ErrTooLarge)}
		}
		return fakeFault{}
	}
	p := testProducer(f, ProducerConfig{Partitioner: ManualPartitioner(), Linger: -1, MaxBatchBytes: 200})
	var res results
	produceValues(t, p, "t", 0, seq("value-", 100), &res)
	flushAndClose(t, p)
	if len(res.errs) == 0 {
		t.Fatal("no record failed")
	}
	for _, err := range res.errs {
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("failed with %v, want ErrTooLarge", err)
		}
	}
	got := f.values(topicPartition{"t", 0})
	if len(got)+len(res.errs) != 100 || len(res.ok) != len(got) {
		t.Fatalf("%d written + %d failed, want 100", len(got), len(res.errs))
	}
	if f.pidCalls != 2 {
		t.Fatalf("%d InitProducerId calls, want 2 (the first, and one after the hole)", f.pidCalls)
	}
	// Order is kept among the records written.
	last := -1
	for _, v := range got {
		n, _ := strconv.Atoi(v[len("value-"):])
		if n <= last {
			t.Fatalf("%s after value-%d", v, last)
		}
		last = n
	}
}

func TestDeliveryTimeoutFailsRecords(t *testing.T) {
	f := newFakeCluster(map[string]int{"t": 1})
	f.fault = func(topicPartition, record.BatchHeader, int) fakeFault {
		return fakeFault{before: fmt.Errorf("%w: no leader", ErrUnavailable)}
	}
	p := testProducer(f, ProducerConfig{Partitioner: ManualPartitioner(), DeliveryTimeout: 300 * time.Millisecond})
	var res results
	produceValues(t, p, "t", 0, seq("v", 5), &res)
	res.wg.Wait()
	if len(res.errs) != 5 {
		t.Fatalf("%d failed, want 5", len(res.errs))
	}
	for _, err := range res.errs {
		if !errors.Is(err, ErrDeliveryTimeout) || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("error %v, want ErrDeliveryTimeout wrapping ErrUnavailable", err)
		}
	}
	flushAndClose(t, p)
}

func TestUnknownTopicFailsAtOnce(t *testing.T) {
	f := newFakeCluster(map[string]int{"t": 1})
	p := testProducer(f, ProducerConfig{})
	defer flushAndClose(t, p)
	var got error
	p.Produce(context.Background(), &Record{Topic: "nope", Value: []byte("v")}, func(_ *Record, err error) { got = err })
	if !errors.Is(got, ErrUnknownTopic) {
		t.Fatalf("got %v, want ErrUnknownTopic", got)
	}
	if err := p.ProduceSync(context.Background(), &Record{Topic: "t", Partition: 3, Value: []byte("v")}); err != nil {
		t.Fatalf("key partitioner ignores Partition: %v", err)
	}
}

func TestCloseFailsWhatCannotBeDelivered(t *testing.T) {
	f := newFakeCluster(map[string]int{"t": 1})
	f.gate = make(chan struct{}) // never answers
	p := testProducer(f, ProducerConfig{Partitioner: ManualPartitioner()})
	var res results
	produceValues(t, p, "t", 0, seq("v", 5), &res)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close: %v, want the deadline", err)
	}
	res.wg.Wait()
	if len(res.errs) != 5 {
		t.Fatalf("%d failed, want 5", len(res.errs))
	}
	var got error
	p.Produce(context.Background(), &Record{Topic: "t", Value: []byte("late")}, func(_ *Record, err error) { got = err })
	if !errors.Is(got, ErrClosed) {
		t.Fatalf("produce after close: %v, want ErrClosed", got)
	}
}

func TestProducerConcurrentUseKeepsPerKeyOrder(t *testing.T) {
	f := newFakeCluster(map[string]int{"t": 4})
	p := testProducer(f, ProducerConfig{Linger: time.Millisecond, MaxBatchBytes: 512})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []byte("key-" + strconv.Itoa(g))
			for i := 0; i < 500; i++ {
				p.Produce(context.Background(), &Record{Topic: "t", Key: key, Value: []byte(strconv.Itoa(i))}, nil)
			}
		}()
	}
	wg.Wait()
	flushAndClose(t, p)
	total := 0
	for part := int32(0); part < 4; part++ {
		f.mu.Lock()
		l := f.logs[topicPartition{"t", part}]
		f.mu.Unlock()
		if l == nil {
			continue
		}
		next := map[string]int{}
		for _, r := range l.records {
			if want := kafkaPartition(r.Key, 4); want != part {
				t.Fatalf("key %s on partition %d, want %d", r.Key, part, want)
			}
			n, _ := strconv.Atoi(string(r.Value))
			if n != next[string(r.Key)] {
				t.Fatalf("key %s: %d after %d", r.Key, n, next[string(r.Key)]-1)
			}
			next[string(r.Key)]++
			total++
		}
	}
	if total != 2000 {
		t.Fatalf("%d records, want 2000", total)
	}
}

func TestProducerConfigValidate(t *testing.T) {
	for _, cfg := range []ProducerConfig{
		{MaxInFlightPerPartition: 6},
		{MaxBatchBytes: -1},
		{DeliveryTimeout: -time.Second},
		{Acks: Acks(7)},
		{Compression: record.Compression(9)},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%+v: valid", cfg)
		}
	}
	if err := (ProducerConfig{MaxInFlightPerPartition: 10, DisableIdempotence: true}).Validate(); err != nil {
		t.Errorf("10 in flight without idempotence: %v", err)
	}
}

func TestAcksNoneLearnsNoOffsetsAndSkipsIdempotence(t *testing.T) {
	f := newFakeCluster(map[string]int{"t": 1})
	p := testProducer(f, ProducerConfig{Partitioner: ManualPartitioner(), Acks: AcksNone})
	var res results
	produceValues(t, p, "t", 0, seq("v", 3), &res)
	flushAndClose(t, p)
	if len(res.ok) != 3 || f.pidCalls != 0 {
		t.Fatalf("%d acknowledged, %d InitProducerId calls", len(res.ok), f.pidCalls)
	}
	for _, r := range res.ok {
		if r.Offset != -1 {
			t.Fatalf("offset %d with AcksNone, want -1", r.Offset)
		}
	}
	h, err := record.ParseHeader(f.requests[topicPartition{"t", 0}][0])
	if err != nil || h.ProducerID != record.NoProducerID {
		t.Fatalf("batch producer id %d (%v), want none", h.ProducerID, err)
	}
}
