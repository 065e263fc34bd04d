package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-mq/skiff/client"
)

// shareBenchOptions are the flags of `skiff bench share` beyond
// benchOptions.
type shareBenchOptions struct {
	members    int
	ackMode    string // batch or sync
	maxRecords int    // records per fetch
	timeout    time.Duration
	keyOrdered bool // the group's key.ordered: at most one record of a key in flight
}

// shareBenchResult is the JSON output of `skiff bench share`; the field
// names are a contract for scripts.
type shareBenchResult struct {
	Mode            string  `json:"mode"`
	Records         int64   `json:"records"`
	Acked           int64   `json:"acked"`
	Seconds         float64 `json:"seconds"`
	RecordsPerS     float64 `json:"records_per_sec"`
	LatencyP50      float64 `json:"latency_p50_ms"`
	LatencyP99      float64 `json:"latency_p99_ms"`
	LatencyMax      float64 `json:"latency_max_ms"`
	Redeliveries    int64   `json:"redeliveries"`
	Duplicates      int64   `json:"duplicates"`
	AckErrors       int64   `json:"ack_errors"`
	FirstError      string  `json:"first_error,omitempty"`
	Members         int     `json:"members"`
	Keys            int     `json:"keys"`
	Partitions      int     `json:"partitions"`
	AckMode         string  `json:"ack_mode"`
	KeyOrdered      bool    `json:"key_ordered"`
	Topic           string  `json:"topic"`
	ProduceRecsPerS float64 `json:"produce_records_per_sec"`
}

func (s *shareBenchOptions) validate() error {
	switch {
	case s.members < 1 || s.members > 256:
		return errors.New("--members must be in [1, 256]")
	case s.ackMode != "batch" && s.ackMode != "sync":
		return fmt.Errorf("--ack-mode %q: want batch or sync", s.ackMode)
	case s.maxRecords < 1 || s.maxRecords > 10000:
		return errors.New("--fetch-records must be in [1, 10000]")
	case s.timeout <= 0:
		return errors.New("--share-timeout must be positive")
	}
	return nil
}

// shareLedger is the share benchmark's bookkeeping: when each record was
// delivered, how often it was acked, and the delivery-to-commit
// latencies.
type shareLedger struct {
	mu        sync.Mutex
	delivered map[shareRecKey]time.Time // latest delivery
	acked     map[shareRecKey]bool
	latencies []time.Duration
	dups      int64
	firstErr  error

	unique, redeliveries, ackErrors atomic.Int64
	done                            chan struct{} // closed when every record is acked
	want                            int64
}

type shareRecKey struct {
	partition int32
	offset    int64
}

func newShareLedger(want int64) *shareLedger {
	return &shareLedger{delivered: map[shareRecKey]time.Time{}, acked: map[shareRecKey]bool{},
		done: make(chan struct{}), want: want}
}

func (l *shareLedger) deliver(r *client.ShareRecord, at time.Time) {
	if r.DeliveryCount > 1 {
		l.redeliveries.Add(1)
	}
	l.mu.Lock()
	l.delivered[shareRecKey{r.Partition, r.Offset}] = at
	l.mu.Unlock()
}

func (l *shareLedger) result(a client.ShareAck, err error) {
	now := time.Now()
	if err != nil {
		l.ackErrors.Add(1)
		l.mu.Lock()
		if l.firstErr == nil {
			l.firstErr = err
		}
		l.mu.Unlock()
		return
	}
	k := shareRecKey{a.Partition, a.Offset}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.acked[k] {
		l.dups++
		return
	}
	l.acked[k] = true
	if at, ok := l.delivered[k]; ok {
		l.latencies = append(l.latencies, now.Sub(at))
	}
	if l.unique.Add(1) == l.want {
		close(l.done)
	}
}

// runShareBench is `skiff bench share`: a fresh topic of bo.partitions
// partitions gets bo.records keyed records (bo.keys keys), then
// sb.members share consumers of one group take and ack every record. The
// time runs from the members' start to the last ack committed.
func runShareBench(cmd *cobra.Command, o *clientOptions, bo *benchOptions, sb *shareBenchOptions) error {
	ctx := cmd.Context()
	c, err := o.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	// A topic of its own, so that the group's records are exactly this
	// run's.
	run := *bo
	run.topic = fmt.Sprintf("%s.share.%d", bo.topic, time.Now().UnixNano())
	if _, err := ensureBenchTopic(ctx, c, &run); err != nil {
		return err
	}
	produced := &benchStats{}
	pstart := time.Now()
	if err := benchProduce(ctx, c, &run, produced); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	if n := produced.errors.Load(); n > 0 {
		return fmt.Errorf("produce: %d records failed (first: %v)", n, produced.firstErr)
	}
	pelapsed := time.Since(pstart)

	// The group is named after the topic: set its ordering before any
	// member joins.
	if _, err := c.AlterShareGroup(ctx, run.topic, map[string]string{"key.ordered": strconv.FormatBool(sb.keyOrdered)}, false); err != nil {
		return fmt.Errorf("configure share group %s: %w", run.topic, err)
	}
	l := newShareLedger(int64(run.records))
	ctx, cancel := context.WithTimeout(ctx, sb.timeout)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, sb.members)
	for range sb.members {
		// A connection each, as separate worker processes would have.
		mc, err := o.connect(ctx)
		if err != nil {
			return err
		}
		defer mc.Close()
		sc, err := mc.NewShareConsumer(client.ShareConsumerConfig{Group: run.topic, Topics: []string{run.topic},
			MaxRecords: sb.maxRecords, MaxWait: 200 * time.Millisecond, OnAckResult: l.result})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- shareBenchMember(ctx, sc, sb.ackMode, l)
		}()
	}
	select {
	case <-l.done:
	case <-ctx.Done():
	}
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	close(errs)
	var memberErr error
	for err := range errs {
		if err != nil && memberErr == nil {
			memberErr = err
		}
	}
	res := summarizeShareBench(&run, sb, l, elapsed)
	res.ProduceRecsPerS = float64(run.records) / pelapsed.Seconds()
	if o.g.output == "json" {
		if err := writeJSON(cmd.OutOrStdout(), res); err != nil {
			return err
		}
	} else {
		printShareBench(cmd.OutOrStdout(), res)
	}
	switch {
	case memberErr != nil:
		return memberErr
	case res.Acked < res.Records:
		return fmt.Errorf("%d of %d records acked within --share-timeout %v", res.Acked, res.Records, sb.timeout)
	case res.Duplicates > 0:
		return fmt.Errorf("%d records acked more than once", res.Duplicates)
	}
	return nil
}

// shareBenchMember fetches and acks until ctx ends; it leaves the group
// (flushing queued acks) on the way out.
func shareBenchMember(ctx context.Context, sc *client.ShareConsumer, ackMode string, l *shareLedger) error {
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sc.Close(cctx)
	}()
	for ctx.Err() == nil {
		recs, err := sc.Fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		now := time.Now()
		for _, r := range recs {
			l.deliver(r, now)
		}
		if ackMode == "batch" {
			for _, r := range recs {
				if err := r.AckAsync(); err != nil {
					return err
				}
			}
			continue
		}
		acks := make([]client.ShareAck, len(recs))
		for i, r := range recs {
			acks[i] = client.ShareAck{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Type: client.ShareAccept}
		}
		results, err := sc.Acknowledge(ctx, acks)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			for _, a := range acks {
				l.result(a, err)
			}
			continue
		}
		for i, a := range acks {
			l.result(a, results[i])
		}
	}
	return nil
}

func summarizeShareBench(bo *benchOptions, sb *shareBenchOptions, l *shareLedger, elapsed time.Duration) shareBenchResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	res := shareBenchResult{Mode: "share", Records: int64(bo.records), Acked: l.unique.Load(), Seconds: elapsed.Seconds(),
		Redeliveries: l.redeliveries.Load(), Duplicates: l.dups, AckErrors: l.ackErrors.Load(), Members: sb.members,
		Keys: bo.keys, Partitions: bo.partitions, AckMode: sb.ackMode, KeyOrdered: sb.keyOrdered, Topic: bo.topic}
	if res.Seconds > 0 {
		res.RecordsPerS = float64(res.Acked) / res.Seconds
	}
	if l.firstErr != nil {
		res.FirstError = l.firstErr.Error()
	}
	lat := slices.Clone(l.latencies)
	if len(lat) > 0 {
		slices.Sort(lat)
		pct := func(p float64) float64 {
			return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
		}
		res.LatencyP50, res.LatencyP99 = pct(0.50), pct(0.99)
		res.LatencyMax = float64(lat[len(lat)-1].Microseconds()) / 1000
	}
	return res
}

func printShareBench(w io.Writer, r shareBenchResult) {
	ordering := "key-ordered"
	if !r.KeyOrdered {
		ordering = "unordered"
	}
	fmt.Fprintf(w, "share: %d of %d records acked in %.2fs: %.0f records/s (%d members, %d keys, %d partitions, %s acks, %s)\n",
		r.Acked, r.Records, r.Seconds, r.RecordsPerS, r.Members, r.Keys, r.Partitions, r.AckMode, ordering)
	fmt.Fprintf(w, "latency (delivery to ack committed): p50 %.2fms  p99 %.2fms  max %.2fms\n", r.LatencyP50, r.LatencyP99, r.LatencyMax)
	fmt.Fprintf(w, "redeliveries: %d  duplicates: %d  ack errors: %d\n", r.Redeliveries, r.Duplicates, r.AckErrors)
	if r.FirstError != "" {
		fmt.Fprintf(w, "first ack error: %s\n", r.FirstError)
	}
	fmt.Fprintf(w, "(produced at %.0f records/s beforehand, into %s)\n", r.ProduceRecsPerS, r.Topic)
}
