package client

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// fakeCluster is an in-memory transport: partitions are logs with the
// broker's idempotence rules (duplicates answered with their original
// offsets, sequence gaps refused), so producer logic is tested without a
// network. Faults are injected per produce request by a hook, the way
// franz-go's kfake lets tests intercept requests.
type fakeCluster struct {
	mu          sync.Mutex
	partitions  map[string]int
	logs        map[topicPartition]*fakeLog
	nextPID     int64
	pidCalls    int
	requests    map[topicPartition][][]byte // every batch received, in order
	inflight    map[topicPartition]int
	maxInflight map[topicPartition]int
	// fault, if set, decides the fate of each produce request before the
	// log sees it: n counts the requests of the partition so far.
	fault func(tp topicPartition, h record.BatchHeader, n int) fakeFault
	// gate, if set, holds every answer until it is closed.
	gate chan struct{}
	// fetch and listOffsets hooks for consumer tests.
	fetchFn  func(addr string, req *skiffpb.FetchRequest) (*skiffpb.FetchResponse, error)
	offsetFn func(addr string, req *skiffpb.ListOffsetsRequest) (*skiffpb.ListOffsetsResponse, error)
	leaders  map[topicPartition]string
	learned  []error
}

// fakeFault is what a hook does to one produce request.
type fakeFault struct {
	before error // fail without writing
	after  error // write, then fail anyway (an indeterminate outcome)
}

type fakeLog struct {
	records   []record.Record
	producers map[int64]*fakeProducer
}

type fakeProducer struct {
	epoch   int16
	batches []fakeBatch // the last five
}

type fakeBatch struct {
	first, last int32
	base        int64
}

func newFakeCluster(topics map[string]int) *fakeCluster {
	return &fakeCluster{
		partitions:  topics,
		logs:        map[topicPartition]*fakeLog{},
		requests:    map[topicPartition][][]byte{},
		inflight:    map[topicPartition]int{},
		maxInflight: map[topicPartition]int{},
		leaders:     map[topicPartition]string{},
	}
}

var _ transport = (*fakeCluster)(nil)

func (f *fakeCluster) partitionCount(ctx context.Context, topic string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.partitions[topic]
	if !ok {
		return 0, fmt.Errorf("topic %q: %w", topic, errTopicGone)
	}
	return n, nil
}

func (f *fakeCluster) leaderAddr(ctx context.Context, topic string, partition int32, anyReplica bool) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.partitions[topic]; !ok {
		return "", errTopicGone
	}
	if a := f.leaders[topicPartition{topic, partition}]; a != "" {
		return a, nil
	}
	return "leader", nil
}

func (f *fakeCluster) learn(topic string, partition int32, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.learned = append(f.learned, err)
	if nl, ok := notLeader(err); ok && nl.LeaderAddr != "" {
		f.leaders[topicPartition{topic, partition}] = nl.LeaderAddr
	}
}

func (f *fakeCluster) initProducerID(ctx context.Context) (int64, int16, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pidCalls++
	id := f.nextPID
	f.nextPID++
	return id, 0, nil
}

func (f *fakeCluster) produce(ctx context.Context, addr string, req *skiffpb.ProduceRequest) func() (*skiffpb.ProduceResponse, error) {
	tp := topicPartition{req.Topic, req.Partition}
	f.mu.Lock()
	f.inflight[tp]++
	f.maxInflight[tp] = max(f.maxInflight[tp], f.inflight[tp])
	n := len(f.requests[tp])
	f.requests[tp] = append(f.requests[tp], req.Batch)
	h, err := record.Verify(req.Batch)
	var ff fakeFault
	if err == nil && f.fault != nil {
		ff = f.fault(tp, h, n)
	}
	var resp *skiffpb.ProduceResponse
	switch {
	case err != nil:
		err = &InvalidArgumentError{Field: "batch", Reason: err.Error()}
	case ff.before != nil:
		err = ff.before
	default:
		resp, err = f.appendLocked(tp, req.Batch)
		if err == nil && ff.after != nil {
			resp, err = nil, ff.after
		}
	}
	gate := f.gate
	f.mu.Unlock()
	return func() (*skiffpb.ProduceResponse, error) {
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
			}
		}
		f.mu.Lock()
		f.inflight[tp]--
		f.mu.Unlock()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return resp, err
	}
}

// appendLocked is the broker's append with its idempotence checks.
func (f *fakeCluster) appendLocked(tp topicPartition, batch []byte) (*skiffpb.ProduceResponse, error) {
	h, recs, err := record.Decode(batch)
	if err != nil {
		return nil, &InvalidArgumentError{Field: "batch", Reason: err.Error()}
	}
	l := f.logs[tp]
	if l == nil {
		l = &fakeLog{producers: map[int64]*fakeProducer{}}
		f.logs[tp] = l
	}
	var p *fakeProducer
	if h.ProducerID >= 0 {
		first, last := h.BaseSequence, h.LastSequence()
		p = l.producers[h.ProducerID]
		switch {
		case p == nil && first != 0:
			return nil, fmt.Errorf("%w: unknown producer %d must start at 0, got %d", ErrOutOfOrderSequence, h.ProducerID, first)
		case p == nil:
			p = &fakeProducer{epoch: h.ProducerEpoch}
			l.producers[h.ProducerID] = p
		default:
			for _, b := range p.batches {
				if b.first == first && b.last == last {
					return &skiffpb.ProduceResponse{BaseOffset: b.base, LastOffset: b.base + int64(last-first), Duplicate: true}, nil
				}
			}
			if want := addSequence(p.batches[len(p.batches)-1].last, 1); first != want {
				return nil, fmt.Errorf("%w: expected %d, got %d", ErrOutOfOrderSequence, want, first)
			}
		}
	}
	base := int64(len(l.records))
	for i, r := range recs {
		r.Offset = base + int64(i)
		l.records = append(l.records, r)
	}
	if p != nil {
		p.batches = append(p.batches, fakeBatch{first: h.BaseSequence, last: h.LastSequence(), base: base})
		if len(p.batches) > 5 {
			p.batches = p.batches[1:]
		}
	}
	return &skiffpb.ProduceResponse{BaseOffset: base, LastOffset: base + int64(len(recs)) - 1}, nil
}

func (f *fakeCluster) fetch(ctx context.Context, addr string, req *skiffpb.FetchRequest) (*skiffpb.FetchResponse, error) {
	if f.fetchFn == nil {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return f.fetchFn(addr, req)
}

func (f *fakeCluster) listOffsets(ctx context.Context, addr string, req *skiffpb.ListOffsetsRequest) (*skiffpb.ListOffsetsResponse, error) {
	return f.offsetFn(addr, req)
}

// values returns the values in a partition's log, in offset order.
func (f *fakeCluster) values(tp topicPartition) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	if l := f.logs[tp]; l != nil {
		for _, r := range l.records {
			out = append(out, string(r.Value))
		}
	}
	return out
}

func (f *fakeCluster) requestCount(tp topicPartition) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests[tp])
}

// testProducer is a producer over f with test-friendly timing.
func testProducer(f *fakeCluster, cfg ProducerConfig) *Producer {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return newProducer(f, cfg, 2*time.Second, slog.New(slog.DiscardHandler))
}
