package workload

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/skiff-mq/skiff/chaos/history"
	"github.com/skiff-mq/skiff/client"
)

// FinalStats says what the final read found.
type FinalStats struct {
	Partitions int   `json:"partitions"`
	Records    int64 `json:"records"`
}

// FinalRead reads every partition of cfg.Topic from its log start up to
// its high watermark, as the partition's leader reports it now, with a
// fresh client, and records each record as a history.FinalEvent. Run it
// after every fault healed and the workload stopped. It is bounded by
// cfg.FinalReadTimeout (and ctx); a partition it could not read to the end
// makes it fail, with the records read so far recorded.
func FinalRead(ctx context.Context, cfg Config, hist *history.Writer) (FinalStats, error) {
	if err := cfg.Validate(); err != nil {
		return FinalStats{}, err
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, cfg.FinalReadTimeout)
	defer cancel()
	cl, err := client.New(ctx, client.Config{Brokers: cfg.Brokers, RequestTimeout: cfg.RequestTimeout, Logger: cfg.Logger, TLS: cfg.TLS})
	if err != nil {
		return FinalStats{}, fmt.Errorf("final read: connect: %w", err)
	}
	defer cl.Close()
	if err := waitLeaders(ctx, cl, cfg.Topic); err != nil {
		return FinalStats{}, fmt.Errorf("final read: %w", err)
	}
	ti, err := cl.DescribeTopic(ctx, cfg.Topic)
	if err != nil {
		return FinalStats{}, fmt.Errorf("final read: %w", err)
	}
	co, err := cl.NewConsumer(client.ConsumerConfig{MaxWait: 100 * time.Millisecond})
	if err != nil {
		return FinalStats{}, fmt.Errorf("final read: %w", err)
	}
	defer co.Close()
	// The end of each partition first, from its leader; then read from the
	// start up to it. Nothing writes any more, so the end holds still.
	ends := make(map[int32]int64)
	for _, p := range ti.Partitions {
		if err := co.Assign(ctx, cfg.Topic, p.Partition, client.Latest()); err != nil {
			return FinalStats{}, fmt.Errorf("final read: end of partition %d: %w", p.Partition, err)
		}
		end, _ := co.Position(cfg.Topic, p.Partition)
		co.Unassign(cfg.Topic, p.Partition)
		if end == 0 {
			continue
		}
		ends[p.Partition] = end
		if err := co.Assign(ctx, cfg.Topic, p.Partition, client.Earliest()); err != nil {
			return FinalStats{}, fmt.Errorf("final read: start of partition %d: %w", p.Partition, err)
		}
		if start, _ := co.Position(cfg.Topic, p.Partition); start >= end {
			// Nothing left in the log (retention): no record to wait for.
			co.Unassign(cfg.Topic, p.Partition)
			delete(ends, p.Partition)
		}
	}
	st := FinalStats{Partitions: len(ti.Partitions)}
	rec := &recorder{w: hist}
	for len(ends) > 0 {
		recs, err := co.Poll(ctx)
		for _, r := range recs {
			st.Records++
			rec.write(history.Event{Type: history.FinalEvent, Process: "final", Topic: r.Topic,
				Partition: r.Partition, Offset: r.Offset, Value: string(r.Value)})
		}
		for p, end := range ends {
			if pos, _ := co.Position(cfg.Topic, p); pos >= end {
				co.Unassign(cfg.Topic, p)
				delete(ends, p)
			}
		}
		if err == nil || len(ends) == 0 {
			continue
		}
		if ctx.Err() != nil {
			return st, fmt.Errorf("final read: %w; unfinished: %s", err, describeEnds(co, cfg.Topic, ends))
		}
		// A failed fetch (a leader change) stops its partition until it is
		// assigned again: continue where it stood.
		cfg.Logger.Debug("final read: poll failed", "err", err)
		for p := range ends {
			if pos, ok := co.Position(cfg.Topic, p); ok {
				_ = co.Assign(ctx, cfg.Topic, p, client.At(pos))
			}
		}
		var oor *client.OffsetOutOfRangeError
		if errors.As(err, &oor) {
			return st, fmt.Errorf("final read: %w", err)
		}
		pause(ctx, retryPause)
	}
	return st, rec.err()
}

func describeEnds(co *client.Consumer, topic string, ends map[int32]int64) string {
	var parts []string
	for p, end := range ends {
		pos, _ := co.Position(topic, p)
		parts = append(parts, fmt.Sprintf("%d at %d of %d", p, pos, end))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
