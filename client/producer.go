package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Producer sends records to partitions in batches. It is safe for
// concurrent use. Records of one partition are written in the order
// Produce accepted them; with idempotence (the default) retries never
// duplicate or reorder them.
type Producer struct {
	cfg        ProducerConfig
	tr         transport
	log        *slog.Logger
	reqTimeout time.Duration

	// ctx is the producer's lifetime: every send derives from it, and a
	// Close that gives up on flushing cancels it to cut sends short.
	ctx    context.Context
	cancel context.CancelFunc
	stop   chan struct{}  // closed by Close: partition loops finish and exit
	wg     sync.WaitGroup // one per partition loop

	pidMu    sync.Mutex // serializes InitProducerId; guards the two below
	pid      int64
	pidEpoch int16
	hasPID   bool

	mu       sync.Mutex // guards the fields below
	parts    map[topicPartition]*partitionProducer
	closing  bool
	pending  int           // records accepted whose callback has not run
	buffered int           // their bytes, bounded by MaxBufferedBytes
	flushing int           // Flush calls in progress: batches go out without lingering
	changed  chan struct{} // closed (and replaced) whenever pending drops
}

type topicPartition struct {
	topic     string
	partition int32
}

func (tp topicPartition) String() string { return fmt.Sprintf("%s/%d", tp.topic, tp.partition) }

// NewProducer returns a producer sending through c. With idempotence, the
// producer id is requested from the cluster on the first Produce.
func (c *Client) NewProducer(cfg ProducerConfig) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newProducer(grpcTransport{c}, cfg, c.cfg.RequestTimeout, c.log), nil
}

func newProducer(tr transport, cfg ProducerConfig, reqTimeout time.Duration, log *slog.Logger) *Producer {
	ctx, cancel := context.WithCancel(context.Background())
	return &Producer{
		cfg:        cfg.withDefaults(),
		tr:         tr,
		log:        log,
		reqTimeout: reqTimeout,
		ctx:        ctx,
		cancel:     cancel,
		stop:       make(chan struct{}),
		parts:      make(map[topicPartition]*partitionProducer),
		changed:    make(chan struct{}),
	}
}

// Produce hands r to the producer and returns once it is buffered; cb (if
// not nil) runs once r is acknowledged, with r.Partition, r.Offset and
// r.LeaderEpoch set, or once it failed. Callbacks of one partition run in
// order, on the producer's goroutine for that partition: keep them short.
//
// ctx bounds only the wait before r is buffered (the topic's metadata, the
// producer id, room under MaxBufferedBytes); if it ends first, cb gets its
// error. Delivery itself is bounded by DeliveryTimeout. r must not be
// modified until cb runs.
func (p *Producer) Produce(ctx context.Context, r *Record, cb func(*Record, error)) {
	if cb == nil {
		cb = func(*Record, error) {}
	}
	if err := p.produce(ctx, r, cb); err != nil {
		cb(r, err)
	}
}

func (p *Producer) produce(ctx context.Context, r *Record, cb func(*Record, error)) error {
	if p.isClosing() {
		return fmt.Errorf("produce: producer %w", ErrClosed)
	}
	if r.Timestamp.IsZero() {
		r.Timestamp = time.Now()
	}
	n, err := p.tr.partitionCount(ctx, r.Topic)
	if err != nil {
		return fmt.Errorf("produce to %q: %w", r.Topic, err)
	}
	part, err := p.cfg.Partitioner.Partition(r, n)
	if err != nil {
		return fmt.Errorf("produce to %q: %w", r.Topic, err)
	}
	r.Partition = part
	r.Offset = -1
	var pid int64
	var epoch int16
	if !p.cfg.DisableIdempotence {
		if pid, epoch, err = p.producerID(ctx); err != nil {
			return fmt.Errorf("produce to %q: %w", r.Topic, err)
		}
	}
	size := r.size()
	if err := p.reserve(ctx, size); err != nil {
		return fmt.Errorf("produce to %q: %w", r.Topic, err)
	}
	pp := p.partition(topicPartition{r.Topic, part}, pid, epoch)
	if pp == nil {
		p.release(1, size)
		return fmt.Errorf("produce: producer %w", ErrClosed)
	}
	pp.add(r, cb, size)
	return nil
}

// ProduceSync produces rs and waits until every one is acknowledged or
// failed; it returns the errors of the failed ones, joined. If ctx ends
// first it returns ctx's error; records still buffered are delivered (or
// fail) later as with Produce.
func (p *Producer) ProduceSync(ctx context.Context, rs ...*Record) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	wg.Add(len(rs))
	for _, r := range rs {
		p.Produce(ctx, r, func(r *Record, err error) {
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			wg.Done()
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(errs...)
}

// Flush sends every buffered batch without waiting for Linger and returns
// once every record accepted so far (and while Flush runs) has been
// acknowledged or failed, or when ctx ends.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	p.flushing++
	parts := p.partitionsLocked()
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.flushing--
		p.mu.Unlock()
	}()
	for _, pp := range parts {
		pp.signal()
	}
	for {
		p.mu.Lock()
		pending, changed := p.pending, p.changed
		p.mu.Unlock()
		if pending == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("flush: %d records not yet acknowledged: %w", pending, ctx.Err())
		}
	}
}

// Close flushes (within ctx) and stops the producer. Records not delivered
// when ctx ends fail with ErrClosed. Produce calls after Close fail with
// ErrClosed.
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return nil
	}
	p.closing = true
	p.mu.Unlock()
	err := p.Flush(ctx)
	if err != nil {
		p.cancel() // cut in-flight sends short; the loops fail what is left
	}
	close(p.stop)
	p.wg.Wait()
	p.cancel()
	return err
}

func (p *Producer) isClosing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closing
}

// flushNow reports whether batches should go out without lingering.
func (p *Producer) flushNow() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flushing > 0 || p.closing
}

func (p *Producer) partitionsLocked() []*partitionProducer {
	parts := make([]*partitionProducer, 0, len(p.parts))
	for _, pp := range p.parts {
		parts = append(parts, pp)
	}
	return parts
}

// partition returns the loop of tp, starting it on first use; nil once
// the producer is stopping.
func (p *Producer) partition(tp topicPartition, pid int64, epoch int16) *partitionProducer {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pp := p.parts[tp]; pp != nil {
		return pp
	}
	select {
	case <-p.stop:
		return nil
	default:
	}
	pp := newPartitionProducer(p, tp, pid, epoch)
	p.parts[tp] = pp
	p.wg.Add(1)
	go pp.run()
	return pp
}

// producerID returns the producer's id and epoch, asking the cluster the
// first time.
func (p *Producer) producerID(ctx context.Context) (int64, int16, error) {
	p.pidMu.Lock()
	defer p.pidMu.Unlock()
	if p.hasPID {
		return p.pid, p.pidEpoch, nil
	}
	id, epoch, err := p.tr.initProducerID(ctx)
	if err != nil {
		return 0, 0, err
	}
	p.pid, p.pidEpoch, p.hasPID = id, epoch, true
	return id, epoch, nil
}

// reserve accounts a record of size bytes as pending, waiting while the
// buffer is full. A record bigger than the whole buffer is let in alone.
func (p *Producer) reserve(ctx context.Context, size int) error {
	for {
		p.mu.Lock()
		if p.buffered == 0 || p.buffered+size <= p.cfg.MaxBufferedBytes {
			p.pending++
			p.buffered += size
			p.mu.Unlock()
			return nil
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for buffer space: %w", ctx.Err())
		}
	}
}

// release ends the accounting of n records of size bytes in all.
func (p *Producer) release(n, size int) {
	p.mu.Lock()
	p.pending -= n
	p.buffered -= size
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}
