package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// ConsumerConfig configures a Consumer. Zero fields take the defaults
// documented on them.
type ConsumerConfig struct {
	// MaxBytes bounds one fetch of one partition; a batch larger than it
	// is still returned whole. Default 1 MiB.
	MaxBytes int
	// MaxWait is how long a broker holds a fetch at the end of the log
	// waiting for new records (long-poll). Default 500ms.
	MaxWait time.Duration
	// AllowFollower lets any in-sync replica serve fetches when the leader
	// cannot: every replica serves only committed records, so the order
	// and content are the same.
	AllowFollower bool
}

func (c ConsumerConfig) withDefaults() ConsumerConfig {
	if c.MaxBytes == 0 {
		c.MaxBytes = 1 << 20
	}
	if c.MaxWait == 0 {
		c.MaxWait = 500 * time.Millisecond
	}
	return c
}

// Validate reports every invalid field.
func (c ConsumerConfig) Validate() error {
	var errs []error
	if c.MaxBytes < 0 || c.MaxBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("consumer config: MaxBytes %d: want 0 (default) to 1 GiB", c.MaxBytes))
	}
	if c.MaxWait < 0 || c.MaxWait > time.Hour {
		errs = append(errs, fmt.Errorf("consumer config: MaxWait %v: want 0 (default) to 1h", c.MaxWait))
	}
	return errors.Join(errs...)
}

// Consumer reads assigned partitions. Poll fetches from all of them
// concurrently; each partition keeps one fetch running ahead of Poll, so
// records are usually waiting when Poll is called. A Consumer is safe for
// concurrent use, but Poll is meant to be called from one goroutine.
type Consumer struct {
	cfg        ConsumerConfig
	tr         transport
	log        *slog.Logger
	reqTimeout time.Duration

	ctx    context.Context // lifetime of the fetch goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup
	notify chan struct{} // cap 1: a fetch finished

	mu     sync.Mutex // guards the fields below
	parts  map[topicPartition]*assignment
	closed bool
}

// assignment is the consumer's state for one partition.
type assignment struct {
	offset   int64  // next offset to return
	gen      uint64 // changes on every Assign: older fetches are dropped
	fetching bool
	result   *fetchResult // a finished fetch not yet taken by Poll
	failed   error        // a non-retriable error: no fetching until Assign
}

type fetchResult struct {
	gen    uint64
	offset int64
	resp   *skiffpb.FetchResponse
	err    error
}

// NewConsumer returns a consumer reading through c; Assign partitions to
// it, then Poll.
func (c *Client) NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newConsumer(grpcTransport{c}, cfg, c.cfg.RequestTimeout, c.log), nil
}

func newConsumer(tr transport, cfg ConsumerConfig, reqTimeout time.Duration, log *slog.Logger) *Consumer {
	ctx, cancel := context.WithCancel(context.Background())
	return &Consumer{
		cfg:        cfg.withDefaults(),
		tr:         tr,
		log:        log,
		reqTimeout: reqTimeout,
		ctx:        ctx,
		cancel:     cancel,
		notify:     make(chan struct{}, 1),
		parts:      make(map[topicPartition]*assignment),
	}
}

// Assign makes the consumer read a partition from the given offset on
// (replacing any earlier assignment of it). Earliest, Latest and AtTime
// are resolved now, by asking the partition's leader.
func (co *Consumer) Assign(ctx context.Context, topic string, partition int32, from Offset) error {
	tp := topicPartition{topic, partition}
	offset, ok := from.exact()
	if ok && offset < 0 {
		return &InvalidArgumentError{Field: "offset", Reason: fmt.Sprintf("%d is negative", offset)}
	}
	if !ok {
		var err error
		if offset, err = co.resolve(ctx, tp, from); err != nil {
			return fmt.Errorf("assign %s from %v: %w", tp, from, err)
		}
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	if co.closed {
		return fmt.Errorf("assign: consumer %w", ErrClosed)
	}
	a := co.parts[tp]
	if a == nil {
		a = &assignment{}
		co.parts[tp] = a
	}
	a.offset, a.result, a.failed = offset, nil, nil
	a.gen++
	return nil
}

// Unassign stops reading a partition.
func (co *Consumer) Unassign(topic string, partition int32) {
	co.mu.Lock()
	defer co.mu.Unlock()
	if a := co.parts[topicPartition{topic, partition}]; a != nil {
		a.gen++ // a fetch still running is dropped when it returns
		delete(co.parts, topicPartition{topic, partition})
	}
}

// Position returns the next offset Poll will return for a partition, and
// whether it is assigned.
func (co *Consumer) Position(topic string, partition int32) (int64, bool) {
	co.mu.Lock()
	defer co.mu.Unlock()
	a := co.parts[topicPartition{topic, partition}]
	if a == nil {
		return 0, false
	}
	return a.offset, true
}

// resolve asks the partition's leader for the offset o stands for.
func (co *Consumer) resolve(ctx context.Context, tp topicPartition, o Offset) (int64, error) {
	var resp *skiffpb.ListOffsetsResponse
	err := co.retry(ctx, tp, func(ctx context.Context, addr string) error {
		var err error
		resp, err = co.tr.listOffsets(ctx, addr, o.request(tp.topic, tp.partition))
		return err
	})
	if err != nil {
		return 0, err
	}
	offset := resp.GetOffset()
	if o.kind == offsetTime && offset < resp.GetHighWatermark() {
		// The broker finds the first batch holding a record at or after
		// the time; the record itself is found in that batch.
		return co.firstAtOrAfter(ctx, tp, offset, o.t.UnixMilli())
	}
	return offset, nil
}

// firstAtOrAfter returns the offset of the first record from offset on
// with a timestamp at or after ts (ms), looking in the batch at offset;
// offset itself if that batch has none.
func (co *Consumer) firstAtOrAfter(ctx context.Context, tp topicPartition, offset, ts int64) (int64, error) {
	var resp *skiffpb.FetchResponse
	err := co.retry(ctx, tp, func(ctx context.Context, addr string) error {
		var err error
		// max_bytes 1: the broker still returns one whole batch.
		resp, err = co.tr.fetch(ctx, addr, &skiffpb.FetchRequest{Topic: tp.topic, Partition: tp.partition,
			Offset: offset, MaxBytes: 1, AllowFollower: co.cfg.AllowFollower})
		return err
	})
	if err != nil {
		return 0, err
	}
	recs, _, err := decodeFetch(tp, offset, resp.GetBatches())
	if err != nil {
		return 0, err
	}
	for _, r := range recs {
		if r.Timestamp.UnixMilli() >= ts {
			return r.Offset, nil
		}
	}
	return offset, nil
}

// retry runs call against the partition's leader (or a replica, with
// AllowFollower), following NotLeader answers and retrying unavailability
// with backoff until it succeeds, fails otherwise, or ctx ends.
func (co *Consumer) retry(ctx context.Context, tp topicPartition, call func(ctx context.Context, addr string) error) error {
	bo := newBackoff()
	for {
		addr, err := co.tr.leaderAddr(ctx, tp.topic, tp.partition, co.cfg.AllowFollower)
		if err == nil {
			err = call(ctx, addr)
		}
		if err == nil {
			return nil
		}
		if errors.Is(err, errTopicGone) || !(retriable(err) || errors.Is(err, ErrUnknownTopic)) || ctx.Err() != nil {
			return err
		}
		co.tr.learn(tp.topic, tp.partition, err)
		co.log.Debug("retrying", "partition", tp, "err", err)
		if nl, ok := notLeader(err); ok && nl.LeaderAddr != "" {
			continue
		}
		if werr := bo.wait(ctx); werr != nil {
			return fmt.Errorf("%w (last error: %w)", werr, err)
		}
	}
}

// Poll returns the next records of the assigned partitions: those of every
// partition whose fetch has finished, in offset order per partition. It
// blocks until there is at least one record or an error, or ctx ends (then
// it returns ctx's error). Record CRCs are verified.
//
// An offset outside a partition's log is an *OffsetOutOfRangeError naming
// the partition; that partition is not fetched again until it is
// re-assigned. The other partitions go on: like io.Reader, Poll may
// return records together with an error, and the records count.
func (co *Consumer) Poll(ctx context.Context) ([]*Record, error) {
	for {
		recs, err := co.take()
		if err != nil || len(recs) > 0 {
			return recs, err
		}
		select {
		case <-co.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// take decodes the finished fetches and starts the next ones.
func (co *Consumer) take() ([]*Record, error) {
	co.mu.Lock()
	defer co.mu.Unlock()
	if co.closed {
		return nil, fmt.Errorf("poll: consumer %w", ErrClosed)
	}
	if len(co.parts) == 0 {
		return nil, errors.New("poll: no partition assigned")
	}
	tps := make([]topicPartition, 0, len(co.parts))
	for tp := range co.parts {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].topic != tps[j].topic {
			return tps[i].topic < tps[j].topic
		}
		return tps[i].partition < tps[j].partition
	})
	var recs []*Record
	var errs []error
	for _, tp := range tps {
		a := co.parts[tp]
		if res := a.result; res != nil {
			a.result = nil
			if res.err != nil {
				a.failed = res.err
				errs = append(errs, res.err)
			} else {
				got, next, err := decodeFetch(tp, res.offset, res.resp.GetBatches())
				if err != nil {
					a.failed = fmt.Errorf("fetch %s at %d: %w", tp, res.offset, err)
					errs = append(errs, a.failed)
				} else {
					recs = append(recs, got...)
					a.offset = next
				}
			}
		}
		if !a.fetching && a.failed == nil {
			a.fetching = true
			co.wg.Add(1)
			go co.fetch(tp, a, a.gen, a.offset)
		}
	}
	// Records of healthy partitions come back with the errors of the others:
	// their offsets have advanced, so holding them back would lose them.
	return recs, errors.Join(errs...)
}

// fetch runs one long-poll fetch of a partition (retrying what can be
// retried) and leaves the result for Poll.
func (co *Consumer) fetch(tp topicPartition, a *assignment, gen uint64, offset int64) {
	defer co.wg.Done()
	req := &skiffpb.FetchRequest{
		Topic: tp.topic, Partition: tp.partition, Offset: offset,
		MaxBytes: int32(co.cfg.MaxBytes), MaxWaitMs: int32(co.cfg.MaxWait / time.Millisecond),
		AllowFollower: co.cfg.AllowFollower,
	}
	var resp *skiffpb.FetchResponse
	err := co.retry(co.ctx, tp, func(ctx context.Context, addr string) error {
		rctx, cancel := context.WithTimeout(ctx, co.reqTimeout+co.cfg.MaxWait)
		defer cancel()
		var err error
		resp, err = co.tr.fetch(rctx, addr, req)
		return err
	})
	var oor *OffsetOutOfRangeError
	if errors.As(err, &oor) {
		oor.Topic, oor.Partition = tp.topic, tp.partition
		if oor.Offset == 0 && offset != 0 {
			oor.Offset = offset
		}
	} else if err != nil {
		err = fmt.Errorf("fetch %s at %d: %w", tp, offset, err)
	}
	co.mu.Lock()
	a.fetching = false
	if a.gen == gen && co.ctx.Err() == nil {
		a.result = &fetchResult{gen: gen, offset: offset, resp: resp, err: err}
	}
	co.mu.Unlock()
	select {
	case co.notify <- struct{}{}:
	default:
	}
}

// Close stops every fetch and waits for them.
func (co *Consumer) Close() error {
	co.mu.Lock()
	co.closed = true
	co.mu.Unlock()
	co.cancel()
	co.wg.Wait()
	return nil
}
