package workload

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiff-mq/skiff/chaos/history"
	"github.com/skiff-mq/skiff/client"
)

// producer is one writer of the workload: an idempotent client.Producer
// sending values "<process>-<seq>" with seq counting up from 0.
type producer struct {
	w       *Workload
	id      int
	process string
	p       *client.Producer
	slots   chan struct{} // one token per record sent and not resolved (MaxPending)

	mu      sync.Mutex       // guards pending
	pending map[string]int64 // value -> seq of records without an outcome
}

func (w *Workload) newProducer(id int) (*producer, error) {
	p, err := w.cl.NewProducer(client.ProducerConfig{DeliveryTimeout: w.cfg.DeliveryTimeout})
	if err != nil {
		return nil, fmt.Errorf("workload: producer %d: %w", id, err)
	}
	return &producer{
		w: w, id: id, process: fmt.Sprintf("p%d", id), p: p,
		slots:   make(chan struct{}, w.cfg.MaxPending),
		pending: make(map[string]int64),
	}, nil
}

// run sends at the configured rate until ctx ends, never more than
// MaxPending unresolved.
func (pr *producer) run(ctx context.Context) {
	tick := time.NewTicker(time.Second / time.Duration(pr.w.cfg.Rate))
	defer tick.Stop()
	for seq := int64(0); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case <-ctx.Done():
			return
		case pr.slots <- struct{}{}:
		}
		pr.send(ctx, seq)
	}
}

func (pr *producer) send(ctx context.Context, seq int64) {
	w := pr.w
	value := fmt.Sprintf("%s-%d", pr.process, seq)
	// Keys cycle, offset per producer, so every producer writes to every
	// partition and a partition gets several producers.
	key := fmt.Sprintf("k%d", (seq+int64(pr.id)*7919)%int64(w.cfg.Keys))
	pr.mu.Lock()
	pr.pending[value] = seq
	pr.mu.Unlock()
	w.sends.Add(1)
	w.hist.write(history.Event{Type: history.SendEvent, Process: pr.process, Topic: w.cfg.Topic, Value: value, Seq: seq})
	var returned atomic.Bool
	pr.p.Produce(ctx, &client.Record{Topic: w.cfg.Topic, Key: []byte(key), Value: []byte(value)},
		func(r *client.Record, err error) { pr.resolve(r, seq, value, err, !returned.Load()) })
	returned.Store(true)
}

// resolve records the outcome of one send.
func (pr *producer) resolve(r *client.Record, seq int64, value string, err error, beforeReturn bool) {
	now := time.Now()
	pr.mu.Lock()
	// Not pending any more: drain already recorded it as indeterminate.
	_, open := pr.pending[value]
	delete(pr.pending, value)
	pr.mu.Unlock()
	if !open {
		return
	}
	defer func() { <-pr.slots }()
	w := pr.w
	e := history.Event{Time: now, Process: pr.process, Topic: w.cfg.Topic, Value: value, Seq: seq}
	if err == nil {
		e.Type, e.Partition, e.Offset = history.AckEvent, r.Partition, r.Offset
		w.acked.Add(1)
		w.lastAck.Store(now.UnixNano())
	} else {
		e.Type, e.Detail = outcomeOf(err, beforeReturn), err.Error()
		e.Partition = r.Partition
		if e.Type == history.FailEvent {
			w.failed.Add(1)
		} else {
			w.indeterminate.Add(1)
		}
	}
	w.hist.write(e)
}

// drain waits (within ctx) until every send has an outcome, closes the
// producer, and records whatever is still unresolved as indeterminate.
func (pr *producer) drain(ctx context.Context) {
	if err := pr.p.Flush(ctx); err != nil {
		pr.w.cfg.Logger.Warn("producer did not drain", "process", pr.process, "err", err)
	}
	cctx, cancel := context.WithTimeout(context.Background(), pr.w.cfg.RequestTimeout)
	defer cancel()
	// Close fails what is still buffered (ErrClosed: indeterminate) and
	// waits, bounded, for what is in flight.
	_ = pr.p.Close(cctx)
	pr.mu.Lock()
	left := pr.pending
	pr.pending = map[string]int64{}
	pr.mu.Unlock()
	for value, seq := range left {
		pr.w.indeterminate.Add(1)
		pr.w.hist.write(history.Event{Type: history.IndeterminateEvent, Process: pr.process, Topic: pr.w.cfg.Topic,
			Value: value, Seq: seq, Detail: "no outcome when the workload stopped"})
	}
}
