package partition

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-mq/skiff/log"
	"github.com/skiff-mq/skiff/record"
)

// Compaction configures the log compaction of a replica (a topic with
// cleanup.policy compact). The zero value is off.
type Compaction struct {
	Enabled bool
	// DeleteRetention: tombstones older than this are removed.
	DeleteRetention time.Duration
	// MinLag: records younger than this are not compacted.
	MinLag time.Duration
	// MaxLag, when positive: a log whose oldest sealed segment is older
	// than this and holds obsolete records is compacted whatever its
	// dirty ratio.
	MaxLag time.Duration
	// MinDirtyRatio: the log is compacted once at least this share of its
	// records is obsolete.
	MinDirtyRatio float64
}

// ErrKeyRequired matches a produce to a compacted partition of a batch with
// a record that has no key: compaction keeps records by key.
var ErrKeyRequired = errors.New("record without a key")

// SetCompaction turns compaction on or off and sets its rules. With it on,
// the leader refuses batches with keyless records, and the replica's
// background pass compacts its log when the rules say it is worth it.
func (r *Replica) SetCompaction(c Compaction) error {
	if c.DeleteRetention < 0 || c.MinLag < 0 || c.MaxLag < 0 || !(c.MinDirtyRatio >= 0 && c.MinDirtyRatio <= 1) {
		return fmt.Errorf("partition %s: invalid compaction settings %+v", r.cfg.Group, c)
	}
	r.compaction.Store(&c)
	return nil
}

func (r *Replica) compactionConfig() Compaction {
	if c := r.compaction.Load(); c != nil {
		return *c
	}
	return Compaction{}
}

// checkKeys refuses a batch for a compacted partition if a record has no
// key; it decodes the batch, which only compacted topics pay for.
func checkKeys(batch []byte) error {
	i := 0
	return record.Records(batch, func(rec record.Record) error {
		if rec.Key == nil {
			return fmt.Errorf("%w: record %d of the batch has no key, and a compacted topic (cleanup.policy=compact) keeps records by key: set a key on every record", ErrKeyRequired, i)
		}
		i++
		return nil
	})
}

// Dirty measures how much a compaction of this replica's log would remove.
func (r *Replica) Dirty() (log.DirtyStats, error) { return r.fsm.log().Dirty() }

// DirtyRatio returns the share of obsolete records the background check
// measured last; ok is false before the first measurement (or with
// compaction off).
func (r *Replica) DirtyRatio() (ratio float64, ok bool) {
	bits := r.dirtyRatio.Load()
	if bits == 0 {
		return 0, false
	}
	return math.Float64frombits(bits - 1), true
}

// Compact runs one compaction pass of this replica's log now, through the
// node's cleaner (one pass at a time per node, throttled), with the
// replica's rules evaluated at time now. Each replica compacts its own copy;
// replicas holding the same batches in the same segments, compacted at the
// same time, hold the same bytes.
func (r *Replica) Compact(ctx context.Context, now time.Time) (log.CompactStats, error) {
	if err := r.usable(); err != nil {
		return log.CompactStats{}, err
	}
	c := r.compactionConfig()
	if !c.Enabled {
		return log.CompactStats{}, fmt.Errorf("partition %s: compaction is off (cleanup.policy is not compact)", r.cfg.Group)
	}
	return r.node.cleaner.run(ctx, r.stop, func(throttle func(int64)) (log.CompactStats, error) {
		r.fsm.snapshotMu.Lock()
		defer r.fsm.snapshotMu.Unlock()
		return r.fsm.log().Compact(log.CompactOptions{
			Now:             now.UnixMilli(),
			DeleteRetention: c.DeleteRetention,
			MinLag:          c.MinLag,
			Throttle:        throttle,
		})
	})
}

// runCompaction checks the log every CompactionCheckInterval and compacts
// it when the rules say so. An error is logged and counted, and the next
// check tries again: cleaning never stops for good (a Kafka pitfall, where
// a cleaner thread that dies leaves every compacted log growing).
func (r *Replica) runCompaction() {
	defer r.wg.Done()
	tick := time.NewTicker(r.cfg.CompactionCheckInterval)
	defer tick.Stop()
	checkedAt := int64(-1) // log end at the last check that found nothing to do
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
		}
		c := r.compactionConfig()
		lg := r.fsm.log()
		if !c.Enabled || lg.NextOffset() == checkedAt {
			continue
		}
		due, err := r.compactionDue(c, time.Now())
		if err == nil && !due {
			checkedAt = lg.NextOffset()
			continue
		}
		if err == nil {
			var st log.CompactStats
			st, err = r.Compact(context.Background(), time.Now())
			if err == nil && st.Segments > 0 {
				r.logger.Info("compacted", "segments", st.Segments, "bytes_before", st.BytesBefore,
					"bytes_after", st.BytesAfter, "records_removed", st.RecordsRemoved)
			}
		}
		if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, log.ErrClosed) {
			r.node.cleaner.errors.Add(1)
			r.logger.Warn("log compaction failed; retrying at the next check", "error", err)
		}
	}
}

// compactionDue applies min.cleanable.dirty.ratio and max.compaction.lag.ms.
func (r *Replica) compactionDue(c Compaction, now time.Time) (bool, error) {
	d, err := r.Dirty()
	if err != nil {
		return false, err
	}
	r.node.cleaner.observe(r.cfg.Group, d.Ratio())
	r.dirtyRatio.Store(math.Float64bits(d.Ratio()) + 1) // 0 means never measured
	if d.ObsoleteRecords == 0 {
		return false, nil
	}
	if d.Ratio() >= c.MinDirtyRatio {
		return true, nil
	}
	if c.MaxLag > 0 {
		segs := r.fsm.log().Segments()
		if len(segs) > 1 && segs[0].MaxTimestamp < now.Add(-c.MaxLag).UnixMilli() {
			return true, nil
		}
	}
	return false, nil
}

// logCleaner is a node's compaction budget: one pass at a time across the
// node's replicas, and an I/O rate.
type logCleaner struct {
	slot        chan struct{} // capacity 1
	bytesPerSec int64         // 0 = unthrottled

	cleanedBytes   atomic.Int64
	removedRecords atomic.Int64
	runs           atomic.Int64
	errors         atomic.Int64
	lastRun        atomic.Int64 // Unix seconds of the last finished pass

	mu    sync.Mutex
	dirty map[string]float64 // guarded by mu; last dirty ratio per partition
}

func newLogCleaner(bytesPerSec int64) *logCleaner {
	return &logCleaner{slot: make(chan struct{}, 1), bytesPerSec: bytesPerSec, dirty: map[string]float64{}}
}

// run waits for the node's cleaner slot and runs pass with a throttle that
// sleeps to keep the pass's I/O at bytesPerSec.
func (c *logCleaner) run(ctx context.Context, stop <-chan struct{}, pass func(throttle func(int64)) (log.CompactStats, error)) (log.CompactStats, error) {
	select {
	case c.slot <- struct{}{}:
	case <-ctx.Done():
		return log.CompactStats{}, ctx.Err()
	case <-stop:
		return log.CompactStats{}, ErrClosed
	}
	defer func() { <-c.slot }()
	var throttle func(int64)
	if c.bytesPerSec > 0 {
		throttle = func(n int64) {
			d := time.Duration(float64(n) / float64(c.bytesPerSec) * float64(time.Second))
			select {
			case <-time.After(d):
			case <-stop:
			case <-ctx.Done():
			}
		}
	}
	st, err := pass(throttle)
	c.runs.Add(1)
	c.lastRun.Store(time.Now().Unix())
	if err != nil {
		return st, err
	}
	c.cleanedBytes.Add(st.BytesBefore)
	c.removedRecords.Add(st.RecordsRemoved)
	return st, nil
}

// observe records a partition's dirty ratio for the max gauge.
func (c *logCleaner) observe(group string, ratio float64) {
	c.mu.Lock()
	c.dirty[group] = ratio
	c.mu.Unlock()
}

func (c *logCleaner) forget(group string) {
	c.mu.Lock()
	delete(c.dirty, group)
	c.mu.Unlock()
}

func (c *logCleaner) maxDirty() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := 0.0
	for _, r := range c.dirty {
		m = math.Max(m, r)
	}
	return m
}

// collectors are the skiff_log_cleaner_* metrics.
func (c *logCleaner) collectors() []prometheus.Collector {
	counter := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "log_cleaner", Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	return []prometheus.Collector{
		counter("bytes_cleaned_total", "Bytes of segments rewritten by compaction (their size before).", &c.cleanedBytes),
		counter("records_removed_total", "Records removed by compaction.", &c.removedRecords),
		counter("runs_total", "Compaction passes run.", &c.runs),
		counter("errors_total", "Compaction checks or passes that failed (each is retried at the next check).", &c.errors),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "skiff", Subsystem: "log_cleaner", Name: "last_run_timestamp_seconds",
			Help: "Unix time the last compaction pass finished; 0 if none ran."}, func() float64 { return float64(c.lastRun.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "skiff", Subsystem: "log_cleaner", Name: "max_dirty_ratio",
			Help: "Highest share of obsolete records among the node's compacted partitions at their last check."}, c.maxDirty),
	}
}
