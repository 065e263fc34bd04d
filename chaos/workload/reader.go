package workload

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/skiff-mq/skiff/chaos/history"
	"github.com/skiff-mq/skiff/client"
)

// reader consumes the topic while the workload runs and records every
// record it reads. Kinds of readers (Config.ReaderKind) differ in how they
// get partitions; for now there is one, explicit assignment. Members of a
// consumer group are not readers but group consumers (group.go).
type reader interface {
	// run reads until ctx ends; it returns an error only when it could not
	// go on at all.
	run(ctx context.Context) error
}

func (w *Workload) newReader(process string) (reader, error) {
	switch w.cfg.ReaderKind {
	case PartitionReaders:
		return &partitionReader{w: w, process: process}, nil
	}
	return nil, fmt.Errorf("workload: reader kind %q not supported", w.cfg.ReaderKind)
}

// partitionReader assigns every partition of the topic to one consumer and
// reads them from the log start.
type partitionReader struct {
	w       *Workload
	process string
}

// pollWait bounds one Poll, so that the loop notices ctx and logs progress.
const pollWait = 2 * time.Second

// retryPause is how long a reader waits after a failed assignment or poll.
const retryPause = 200 * time.Millisecond

func (pr *partitionReader) run(ctx context.Context) error {
	w := pr.w
	co, err := w.cl.NewConsumer(client.ConsumerConfig{})
	if err != nil {
		return fmt.Errorf("reader %s: %w", pr.process, err)
	}
	defer co.Close()
	ti, err := w.cl.DescribeTopic(ctx, w.cfg.Topic)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("reader %s: %w", pr.process, err)
	}
	for _, p := range ti.Partitions {
		// A partition whose assignment fails (no leader yet) is retried by
		// the poll loop below, which re-assigns unassigned partitions.
		if err := co.Assign(ctx, w.cfg.Topic, p.Partition, client.Earliest()); err != nil {
			w.cfg.Logger.Debug("assign failed", "process", pr.process, "partition", p.Partition, "err", err)
		}
	}
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, pollWait)
		recs, err := co.Poll(pctx)
		cancel()
		now := time.Now()
		for _, r := range recs {
			w.reads.Add(1)
			w.hist.write(history.Event{Time: now, Type: history.ReadEvent, Process: pr.process, Topic: r.Topic,
				Partition: r.Partition, Offset: r.Offset, Value: string(r.Value)})
		}
		if err == nil || errors.Is(err, context.DeadlineExceeded) && pctx.Err() != nil {
			pr.assignMissing(ctx, co, ti)
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		w.cfg.Logger.Debug("poll failed", "process", pr.process, "err", err)
		pr.recover(ctx, co, ti, err)
		pause(ctx, retryPause)
	}
	return nil
}

// assignMissing assigns, from the log start, partitions that an earlier
// Assign could not resolve.
func (pr *partitionReader) assignMissing(ctx context.Context, co *client.Consumer, ti client.TopicInfo) {
	for _, p := range ti.Partitions {
		if _, ok := co.Position(ti.Name, p.Partition); ok {
			continue
		}
		if err := co.Assign(ctx, ti.Name, p.Partition, client.Earliest()); err == nil {
			pr.w.hist.write(history.Event{Type: history.AssignEvent, Process: pr.process, Topic: ti.Name, Partition: p.Partition})
		}
	}
}

// recover restarts fetching after a failed poll. A partition whose offset
// left the log is re-assigned from the log start (recorded as an
// assignment, so the jump is no poll skip); the others are re-assigned
// where they stood, which continues them without a gap.
func (pr *partitionReader) recover(ctx context.Context, co *client.Consumer, ti client.TopicInfo, err error) {
	var oor *client.OffsetOutOfRangeError
	if errors.As(err, &oor) {
		co.Unassign(oor.Topic, oor.Partition)
		if aerr := co.Assign(ctx, oor.Topic, oor.Partition, client.Earliest()); aerr == nil {
			pr.w.hist.write(history.Event{Type: history.AssignEvent, Process: pr.process, Topic: oor.Topic,
				Partition: oor.Partition, Detail: oor.Error()})
		}
	}
	for _, p := range ti.Partitions {
		if pos, ok := co.Position(ti.Name, p.Partition); ok {
			_ = co.Assign(ctx, ti.Name, p.Partition, client.At(pos))
		}
	}
	pr.assignMissing(ctx, co, ti)
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
