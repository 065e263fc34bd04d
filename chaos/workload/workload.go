package workload

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiff-mq/skiff/chaos/history"
	"github.com/skiff-mq/skiff/client"
)

// Stats counts what a workload did so far.
type Stats struct {
	Sends         int64 `json:"sends"`
	Acked         int64 `json:"acked"`
	Failed        int64 `json:"failed"`
	Indeterminate int64 `json:"indeterminate"`
	Reads         int64 `json:"reads"`
	// Commits and CommitsFailed count group consumers' commits per
	// partition that succeeded and that returned an error; Rebalances
	// counts partitions assigned to, revoked from or lost by a member.
	Commits       int64 `json:"commits"`
	CommitsFailed int64 `json:"commits_failed"`
	Rebalances    int64 `json:"rebalances"`
	// LastAck is when the most recent ack arrived (zero before the first).
	LastAck time.Time `json:"last_ack"`
}

// Workload is a running workload: producers and readers started by Start,
// stopped by Stop. Faults happen in between; FinalRead comes after.
type Workload struct {
	cfg  Config
	hist *recorder
	cl   *client.Client

	stopProducing context.CancelFunc
	stopReading   context.CancelFunc
	producers     []*producer
	producersDone sync.WaitGroup // the producers' send loops
	readersDone   sync.WaitGroup // the readers

	sends, acked, failed, indeterminate, reads atomic.Int64
	commits, commitsFailed, rebalances         atomic.Int64
	lastAck                                    atomic.Int64 // unix nanoseconds

	errMu sync.Mutex // guards errs
	errs  []error    // failures of readers (producers' failures are outcomes)
}

// Start connects to the cluster, creates the topic if it is missing, waits
// until every partition has a leader (within ctx) and starts the producers
// and readers. Every event goes to hist.
func Start(ctx context.Context, cfg Config, hist *history.Writer) (*Workload, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.Group == "" {
		cfg.Group = fmt.Sprintf("%s-chaos-%d", cfg.Topic, time.Now().UnixNano())
	}
	cl, err := client.New(ctx, client.Config{Brokers: cfg.Brokers, RequestTimeout: cfg.RequestTimeout, Logger: cfg.Logger, TLS: cfg.TLS})
	if err != nil {
		return nil, fmt.Errorf("workload: connect: %w", err)
	}
	if err := ensureTopic(ctx, cl, cfg); err != nil {
		cl.Close()
		return nil, err
	}
	w := &Workload{cfg: cfg, cl: cl}
	w.hist = &recorder{w: hist}
	pctx, stopProducing := context.WithCancel(context.Background())
	rctx, stopReading := context.WithCancel(context.Background())
	w.stopProducing, w.stopReading = stopProducing, stopReading
	for i := range cfg.Readers {
		r, err := w.newReader(fmt.Sprintf("r%d", i))
		if err != nil {
			w.abort()
			return nil, err
		}
		w.readersDone.Add(1)
		go func() {
			defer w.readersDone.Done()
			if err := r.run(rctx); err != nil {
				w.fail(err)
			}
		}()
	}
	for i := range cfg.GroupConsumers {
		g, err := w.newGroupConsumer(fmt.Sprintf("g%d", i))
		if err != nil {
			w.abort()
			return nil, err
		}
		w.readersDone.Add(1)
		go func() {
			defer w.readersDone.Done()
			if err := g.run(rctx); err != nil {
				w.fail(err)
			}
		}()
	}
	for i := range cfg.Producers {
		p, err := w.newProducer(i)
		if err != nil {
			w.abort()
			return nil, err
		}
		w.producers = append(w.producers, p)
		w.producersDone.Add(1)
		go func() {
			defer w.producersDone.Done()
			p.run(pctx)
		}()
	}
	cfg.Logger.Info("workload started", "topic", cfg.Topic, "producers", cfg.Producers, "readers", cfg.Readers,
		"group_consumers", cfg.GroupConsumers, "group", cfg.Group)
	return w, nil
}

// ensureTopic creates the topic unless it exists and waits until every
// partition has a leader.
func ensureTopic(ctx context.Context, cl *client.Client, cfg Config) error {
	_, err := cl.CreateTopic(ctx, cfg.Topic, cfg.Partitions, cfg.ReplicationFactor, nil)
	if err != nil && !errors.Is(err, client.ErrTopicExists) {
		return fmt.Errorf("workload: %w", err)
	}
	return waitLeaders(ctx, cl, cfg.Topic)
}

// waitLeaders polls until every partition of topic has a leader or ctx ends.
func waitLeaders(ctx context.Context, cl *client.Client, topic string) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ti, err := cl.DescribeTopic(ctx, topic)
		if err == nil && allLed(ti) {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New("a partition has no leader")
			}
			return fmt.Errorf("workload: wait for leaders of %s: %w (last: %w)", topic, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func allLed(ti client.TopicInfo) bool {
	if len(ti.Partitions) == 0 {
		return false
	}
	for _, p := range ti.Partitions {
		if p.Leader == "" {
			return false
		}
	}
	return true
}

// Group is the consumer group of the group consumers.
func (w *Workload) Group() string { return w.cfg.Group }

// Stats returns the counts so far.
func (w *Workload) Stats() Stats {
	s := Stats{
		Sends: w.sends.Load(), Acked: w.acked.Load(), Failed: w.failed.Load(),
		Indeterminate: w.indeterminate.Load(), Reads: w.reads.Load(),
		Commits: w.commits.Load(), CommitsFailed: w.commitsFailed.Load(), Rebalances: w.rebalances.Load(),
	}
	if ns := w.lastAck.Load(); ns != 0 {
		s.LastAck = time.Unix(0, ns)
	}
	return s
}

// Stop ends the workload: no new sends, then up to DrainTimeout for the
// outstanding ones (what is unresolved then is recorded as indeterminate),
// then the readers and group consumers stop (each group consumer commits
// what it read and leaves the group). It returns the readers' failures and the
// history's write errors, if any. ctx bounds the whole stop.
func (w *Workload) Stop(ctx context.Context) error {
	w.stopProducing()
	w.producersDone.Wait()
	dctx, cancel := context.WithTimeout(ctx, w.cfg.DrainTimeout)
	var wg sync.WaitGroup
	for _, p := range w.producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.drain(dctx)
		}()
	}
	wg.Wait()
	cancel()
	w.stopReading()
	w.readersDone.Wait()
	if w.cfg.GroupConsumers > 0 {
		if err := w.recordCommitted(ctx); err != nil {
			w.fail(err)
		}
	}
	w.cl.Close()
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return errors.Join(append(w.errs, w.hist.err())...)
}

// abort stops whatever Start started so far.
func (w *Workload) abort() {
	w.stopProducing()
	w.stopReading()
	w.producersDone.Wait()
	for _, p := range w.producers {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		p.drain(ctx)
	}
	w.readersDone.Wait()
	w.cl.Close()
}

func (w *Workload) fail(err error) {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	w.errs = append(w.errs, err)
}

// recorder writes events to the history and keeps its first error, so
// that callbacks (which cannot return one) do not lose it.
type recorder struct {
	w     *history.Writer
	mu    sync.Mutex // guards first
	first error
}

func (r *recorder) write(e history.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if err := r.w.Write(e); err != nil {
		r.mu.Lock()
		if r.first == nil {
			r.first = err
		}
		r.mu.Unlock()
	}
}

func (r *recorder) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first
}
