package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// partitionProducer is the pipeline of one partition. Produce appends
// records to the open batch (add); one goroutine (run) seals batches, sends
// them in order with up to MaxInFlightPerPartition in flight, and resolves
// them in order, running the records' callbacks.
//
// Idempotence works as in Kafka's producer. Each batch gets its sequence
// number when it is opened and keeps its encoded bytes for every retry, so
// the partition answers a retry of a batch it already wrote with the
// original offsets, and refuses a batch whose predecessor is missing
// (out-of-order sequence). When a batch fails, nothing more is sent; once
// every batch in flight has answered, the failed head is resent alone
// until it succeeds (batches behind it that failed only because it was
// missing follow it), then the pipeline opens up again. A batch that
// cannot be delivered is failed, and the partition goes on under a fresh
// producer id from sequence 0: the old sequence has a hole no batch fills.
type partitionProducer struct {
	p    *Producer
	tp   topicPartition
	wake chan struct{} // cap 1: records arrived or a flush started
	done chan *batch   // sends report here; cap MaxInFlightPerPartition

	mu      sync.Mutex // guards the fields below: Produce adds, run seals
	builder *record.Builder
	open    *batch   // the batch being filled, nil if none
	sealed  []*batch // sealed, not yet taken by run
	pid     int64
	epoch   int16
	nextSeq int32 // base sequence of the next batch opened
	exited  bool  // run has returned: add fails records

	// Owned by run.
	queue      []*batch // in sequence order; queue[0] is the oldest unresolved
	inflight   int
	recovering bool // the head failed: resend it alone until it succeeds
	needPID    bool // the sequence broke: take a new producer id before sending
	pidRetry   time.Time
	pidBackoff *retryBackoff
}

type batchState uint8

const (
	batchQueued   batchState = iota // waiting to be sent (again)
	batchInFlight                   // a send is running
	batchAcked                      // written; callbacks run when it reaches the head
	batchFailed                     // the last attempt failed; run decides at the head
)

// batch is a sealed batch and its records.
type batch struct {
	recs    []*Record
	cbs     []func(*Record, error)
	size    int       // bytes accounted in Producer.buffered
	created time.Time // first record added: DeliveryTimeout runs from here
	baseSeq int32
	bytes   []byte // the encoded batch, the same for every attempt
	err     error  // encoding error at seal, or the last attempt's error

	// Owned by run, except sent, resp and err, which the send goroutine
	// writes before it reports on done.
	state           batchState
	attempts        int
	withPredecessor bool      // last sent while an earlier batch was unresolved
	maybeWritten    bool      // an attempt ended in a way that may have written it
	notBefore       time.Time // retry backoff
	backoff         *retryBackoff
	sent            bool // the last attempt reached a broker
	resp            *skiffpb.ProduceResponse
}

func newPartitionProducer(p *Producer, tp topicPartition, pid int64, epoch int16) *partitionProducer {
	return &partitionProducer{
		p:          p,
		tp:         tp,
		wake:       make(chan struct{}, 1),
		done:       make(chan *batch, p.cfg.MaxInFlightPerPartition),
		builder:    record.NewBuilder(record.BatchOptions{}),
		pid:        pid,
		epoch:      epoch,
		pidBackoff: newBackoff(),
	}
}

func (pp *partitionProducer) signal() {
	select {
	case pp.wake <- struct{}{}:
	default:
	}
}

// optsLocked are the options of the next batch opened.
func (pp *partitionProducer) optsLocked() record.BatchOptions {
	o := record.BatchOptions{Compression: pp.p.cfg.Compression}
	if !pp.p.cfg.DisableIdempotence {
		o.Idempotent, o.ProducerID, o.ProducerEpoch, o.BaseSequence = true, pp.pid, pp.epoch, pp.nextSeq
	}
	return o
}

// add appends a record to the open batch, sealing it first if the record
// would overflow it.
func (pp *partitionProducer) add(r *Record, cb func(*Record, error), size int) {
	rec := r.wire()
	max := pp.p.cfg.MaxBatchBytes
	pp.mu.Lock()
	if pp.exited {
		pp.mu.Unlock()
		cb(r, fmt.Errorf("produce: producer %w", ErrClosed))
		pp.p.release(1, size)
		return
	}
	wake := pp.p.cfg.Linger == 0
	if pp.open != nil && pp.builder.EstimatedSizeWith(rec) > max {
		pp.sealLocked()
		wake = true
	}
	if pp.open == nil {
		pp.builder.Reset(pp.optsLocked())
		pp.open = &batch{created: time.Now(), baseSeq: pp.nextSeq}
		wake = true // arms the linger timer
	}
	pp.builder.Add(rec)
	pp.open.recs = append(pp.open.recs, r)
	pp.open.cbs = append(pp.open.cbs, cb)
	pp.open.size += size
	if pp.builder.EstimatedSize() >= max {
		pp.sealLocked()
		wake = true
	}
	pp.mu.Unlock()
	if wake {
		pp.signal()
	}
}

// sealLocked closes the open batch: its bytes are final from here on.
func (pp *partitionProducer) sealLocked() {
	b := pp.open
	pp.open = nil
	b.bytes, b.err = pp.builder.Build()
	if b.err == nil {
		pp.nextSeq = addSequence(pp.nextSeq, len(b.recs))
	}
	pp.sealed = append(pp.sealed, b)
	if o, ok := pp.p.cfg.Partitioner.(batchObserver); ok {
		o.batchSealed(pp.tp.topic, pp.tp.partition)
	}
}

// addSequence advances a producer sequence by n records; sequences wrap
// from MaxInt32 to 0, as in Kafka.
func addSequence(s int32, n int) int32 {
	return int32((int64(s) + int64(n)) % (math.MaxInt32 + 1))
}

// run is the partition's loop. It exits once Close was called and
// nothing is left to deliver.
func (pp *partitionProducer) run() {
	defer pp.p.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	stop := pp.p.stop
	stopping := false
	for {
		now := time.Now()
		pp.collect(now, stopping)
		pp.advance(now)
		if stopping && pp.exitIfIdle() {
			return
		}
		timer.Reset(pp.nextWake(now))
		select {
		case <-pp.wake:
		case b := <-pp.done:
			pp.complete(b)
		case <-timer.C:
		case <-stop:
			stopping, stop = true, nil
		}
	}
}

func (pp *partitionProducer) exitIfIdle() bool {
	if len(pp.queue) > 0 || pp.inflight > 0 {
		return false
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.open != nil || len(pp.sealed) > 0 {
		return false
	}
	pp.exited = true
	return true
}

// sendSlots is how many more batches could be sent now.
func (pp *partitionProducer) sendSlots() int {
	if pp.needPID || pp.recovering {
		return 0
	}
	return pp.p.cfg.MaxInFlightPerPartition - len(pp.queue)
}

// collect seals the open batch when it has lingered long enough and could
// be sent (while the pipeline is full it keeps growing instead), or when
// flushing; and moves sealed batches to the queue.
func (pp *partitionProducer) collect(now time.Time, stopping bool) {
	flush := stopping || pp.p.flushNow()
	slots := pp.sendSlots()
	pp.mu.Lock()
	if pp.open != nil && (flush || (slots > 0 && now.Sub(pp.open.created) >= pp.p.cfg.Linger)) {
		pp.sealLocked()
	}
	taken := pp.sealed
	pp.sealed = nil
	pp.mu.Unlock()
	for _, b := range taken {
		if b.err != nil {
			pp.fail(b, fmt.Errorf("produce to %s: encode batch: %w", pp.tp, b.err))
			continue
		}
		b.state = batchQueued
		pp.queue = append(pp.queue, b)
	}
}

// advance resolves batches from the head of the queue, decides what to do
// with a failed head, and sends what may be sent.
func (pp *partitionProducer) advance(now time.Time) {
	if pp.p.ctx.Err() != nil {
		pp.failUnsent(fmt.Errorf("produce to %s: producer %w before delivery", pp.tp, ErrClosed))
		return
	}
	for len(pp.queue) > 0 {
		head := pp.queue[0]
		if head.state == batchAcked {
			pp.ack(head)
			pp.queue = pp.queue[1:]
			pp.recovering = false
			continue
		}
		if pp.inflight > 0 && head.state == batchFailed {
			return // decide once every batch sent has answered
		}
		if head.state == batchFailed || (head.state == batchQueued && pp.inflight == 0) {
			if err := pp.giveUp(head, now); err != nil {
				pp.abandon(err)
				continue
			}
		}
		if head.state == batchFailed {
			pp.p.log.Debug("retrying batch", "partition", pp.tp, "attempt", head.attempts, "err", head.err)
			for _, b := range pp.queue {
				if b.state == batchFailed {
					b.state = batchQueued
				}
			}
			pp.recovering = true
			head.notBefore = now.Add(pp.retryDelay(head))
		}
		break
	}
	if pp.needPID && !pp.renewProducerID(now) {
		return
	}
	pp.sendReady(now)
}

// giveUp returns the error to fail the head with, or nil to retry it.
func (pp *partitionProducer) giveUp(head *batch, now time.Time) error {
	err := head.err
	if now.Sub(head.created) >= pp.p.cfg.DeliveryTimeout {
		if err == nil {
			err = errors.New("not sent")
		}
		return fmt.Errorf("produce to %s: %w after %d attempts: %w", pp.tp, ErrDeliveryTimeout, head.attempts, err)
	}
	switch {
	case head.state != batchFailed:
		return nil
	case errors.Is(err, ErrOutOfOrderSequence):
		// Sent while an earlier batch was not yet written, it may simply
		// have overtaken it: retry. Sent as the head, the partition has lost
		// our sequence: retrying cannot help.
		if head.withPredecessor {
			return nil
		}
	case errors.Is(err, errTopicGone):
	case retriable(err), errors.Is(err, ErrUnknownTopic):
		return nil
	}
	return fmt.Errorf("produce to %s: %w", pp.tp, err)
}

// retryDelay is how long a failed head waits before it is resent: not at
// all when a broker named the new leader (a few times), else a backoff.
func (pp *partitionProducer) retryDelay(head *batch) time.Duration {
	if nl, ok := notLeader(head.err); ok && nl.LeaderAddr != "" && head.attempts <= 3 {
		return 0
	}
	if head.backoff == nil {
		head.backoff = newBackoff()
	}
	return head.backoff.delay()
}

// abandon fails the head with cause. Batches behind it that were written
// are acknowledged; those that may have been written fail too; the rest
// stay queued. With idempotence the partition then needs a new producer
// id, since its sequence now has a hole.
func (pp *partitionProducer) abandon(cause error) {
	pp.p.log.Warn("batch failed", "partition", pp.tp, "err", cause)
	pp.fail(pp.queue[0], cause)
	var kept []*batch
	for _, b := range pp.queue[1:] {
		switch {
		case b.state == batchAcked:
			pp.ack(b)
		case b.maybeWritten:
			pp.fail(b, fmt.Errorf("produce to %s: an earlier batch failed and this one may or may not be written: %w", pp.tp, cause))
		default:
			b.state = batchQueued
			kept = append(kept, b)
		}
	}
	pp.queue = kept
	pp.recovering = false
	if !pp.p.cfg.DisableIdempotence {
		pp.needPID = true
		pp.pidRetry = time.Time{}
	}
}

// renewProducerID takes a new producer id and renumbers every batch not
// yet written (none is in flight) from sequence 0. It reports whether the
// partition may send again.
func (pp *partitionProducer) renewProducerID(now time.Time) bool {
	if now.Before(pp.pidRetry) {
		return false
	}
	ctx, cancel := context.WithTimeout(pp.p.ctx, pp.p.reqTimeout)
	id, epoch, err := pp.p.tr.initProducerID(ctx)
	cancel()
	if err != nil {
		pp.pidRetry = now.Add(pp.pidBackoff.delay())
		for len(pp.queue) > 0 && now.Sub(pp.queue[0].created) >= pp.p.cfg.DeliveryTimeout {
			pp.fail(pp.queue[0], fmt.Errorf("produce to %s: %w: %w", pp.tp, ErrDeliveryTimeout, err))
			pp.queue = pp.queue[1:]
		}
		return false
	}
	var failed []*batch
	pp.mu.Lock()
	pp.pid, pp.epoch, pp.nextSeq = id, epoch, 0
	for _, b := range pp.sealed {
		if b.err == nil {
			b.state = batchQueued
			pp.queue = append(pp.queue, b)
		} else {
			failed = append(failed, b)
		}
	}
	pp.sealed = nil
	kept := pp.queue[:0]
	for _, b := range pp.queue {
		b.baseSeq = pp.nextSeq
		wire := make([]record.Record, len(b.recs))
		for i, r := range b.recs {
			wire[i] = r.wire()
		}
		if b.bytes, b.err = record.Encode(pp.optsLocked(), wire); b.err != nil {
			failed = append(failed, b)
			continue
		}
		b.attempts, b.maybeWritten, b.backoff, b.notBefore = 0, false, nil, time.Time{}
		pp.nextSeq = addSequence(pp.nextSeq, len(b.recs))
		kept = append(kept, b)
	}
	pp.queue = kept
	if o := pp.open; o != nil {
		o.baseSeq = pp.nextSeq
		pp.builder.Reset(pp.optsLocked())
		for _, r := range o.recs {
			pp.builder.Add(r.wire())
		}
	}
	pp.mu.Unlock()
	for _, b := range failed {
		pp.fail(b, fmt.Errorf("produce to %s: encode batch: %w", pp.tp, b.err))
	}
	pp.p.log.Info("partition continues under a new producer id", "partition", pp.tp, "producer_id", id)
	pp.needPID = false
	pp.pidBackoff = newBackoff()
	return true
}

// sendReady sends queued batches in order while there is room in flight.
//
// The room is counted from the head of the queue, not by the answers still
// outstanding: a batch acknowledged behind an unresolved head still counts.
// So no batch is sent more than MaxInFlightPerPartition (at most five)
// batches after the oldest unresolved one, and if that one turns out to be
// written and must be retried, the partition still remembers it among its
// producer's last five batches and answers "duplicate".
func (pp *partitionProducer) sendReady(now time.Time) {
	limit := pp.p.cfg.MaxInFlightPerPartition
	if pp.recovering {
		limit = 1
	}
	for i, b := range pp.queue {
		if i >= limit {
			return
		}
		switch b.state {
		case batchInFlight, batchAcked:
			continue
		case batchFailed:
			return // the head's fate decides this one's
		}
		if now.Before(b.notBefore) {
			return
		}
		pp.send(b, i > 0)
	}
}

// send starts one attempt of b. The request goes on the wire here, on
// run's goroutine, so the partition's batches leave in sequence order; a
// goroutine waits for the answer and reports it on done.
func (pp *partitionProducer) send(b *batch, withPredecessor bool) {
	b.state = batchInFlight
	b.attempts++
	b.withPredecessor = withPredecessor
	pp.inflight++
	ctx, cancel := context.WithTimeout(pp.p.ctx, pp.p.reqTimeout)
	addr, err := pp.p.tr.leaderAddr(ctx, pp.tp.topic, pp.tp.partition, false)
	if err != nil {
		cancel()
		b.sent, b.resp, b.err = false, nil, err
		pp.done <- b // never blocks: done has room for every batch in flight
		return
	}
	acks := skiffpb.Acks_ACKS_ALL
	if pp.p.cfg.Acks == AcksNone {
		acks = skiffpb.Acks_ACKS_NONE
	}
	wait := pp.p.tr.produce(ctx, addr, &skiffpb.ProduceRequest{
		Topic: pp.tp.topic, Partition: pp.tp.partition, Batch: b.bytes, Acks: acks,
	})
	b.sent = true
	go func() {
		defer cancel()
		resp, err := wait()
		if err == nil {
			err = fromErrorStatus(resp.GetError())
		}
		b.resp, b.err = resp, err
		pp.done <- b
	}()
}

// complete takes the outcome of one attempt.
func (pp *partitionProducer) complete(b *batch) {
	pp.inflight--
	if b.err == nil {
		b.state = batchAcked
		return
	}
	b.state = batchFailed
	if b.sent && !definitelyNotWritten(b.err) {
		b.maybeWritten = true
	}
	pp.p.tr.learn(pp.tp.topic, pp.tp.partition, b.err)
}

// definitelyNotWritten reports whether a failed produce certainly left the
// partition unchanged (as opposed to a timeout or a lost connection).
func definitelyNotWritten(err error) bool {
	if _, ok := notLeader(err); ok {
		return true
	}
	var ia *InvalidArgumentError
	return errors.As(err, &ia) || errors.Is(err, ErrOutOfOrderSequence) || errors.Is(err, ErrProducerFenced) ||
		errors.Is(err, ErrTooLarge) || errors.Is(err, ErrUnknownTopic)
}

// failUnsent fails every batch not in flight (the producer was closed
// before it could deliver them); those in flight fail as they return.
func (pp *partitionProducer) failUnsent(cause error) {
	var kept []*batch
	for _, b := range pp.queue {
		switch b.state {
		case batchInFlight:
			kept = append(kept, b)
		case batchAcked:
			pp.ack(b)
		default:
			pp.fail(b, cause)
		}
	}
	pp.queue = kept
	pp.mu.Lock()
	taken := pp.sealed
	pp.sealed = nil
	if pp.open != nil {
		taken = append(taken, pp.open)
		pp.open = nil
	}
	pp.mu.Unlock()
	for _, b := range taken {
		pp.fail(b, cause)
	}
}

// nextWake is how long run may sleep without missing a deadline: the open
// batch's linger, a retry's backoff, a delivery timeout.
func (pp *partitionProducer) nextWake(now time.Time) time.Duration {
	wake := now.Add(time.Hour)
	at := func(t time.Time) {
		if t.Before(wake) {
			wake = t
		}
	}
	switch {
	case pp.needPID:
		at(pp.pidRetry)
	case len(pp.queue) > 0 && pp.queue[0].state == batchQueued && pp.inflight == 0:
		// A head waiting out its backoff. (One in flight or failed waits
		// for a send to return instead, which wakes run.)
		at(pp.queue[0].notBefore)
		at(pp.queue[0].created.Add(pp.p.cfg.DeliveryTimeout))
	}
	if pp.sendSlots() > 0 {
		pp.mu.Lock()
		if pp.open != nil {
			at(pp.open.created.Add(pp.p.cfg.Linger))
		}
		pp.mu.Unlock()
	}
	return max(time.Until(wake), 0)
}

// ack runs the callbacks of a written batch.
func (pp *partitionProducer) ack(b *batch) {
	base := b.resp.GetBaseOffset()
	for i, r := range b.recs {
		r.Offset = -1
		if pp.p.cfg.Acks == AcksAll && base >= 0 {
			r.Offset = base + int64(i)
		}
		r.LeaderEpoch = b.resp.GetLeaderEpoch()
		b.cbs[i](r, nil)
	}
	pp.p.release(len(b.recs), b.size)
}

// fail runs the callbacks of a batch that was not delivered.
func (pp *partitionProducer) fail(b *batch, err error) {
	for i, r := range b.recs {
		b.cbs[i](r, err)
	}
	pp.p.release(len(b.recs), b.size)
}
