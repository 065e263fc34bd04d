package consumergroup

import (
	"context"
	"errors"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// lagProbeBytes bounds the read that finds the oldest uncommitted record:
// one batch holds it, and a batch is at most the topic's max message size,
// but the timestamp sits in the first record, so a short read usually
// suffices; the host returns at least one whole batch.
const lagProbeBytes = 64 << 10

// lagAges finds, for each lagging partition of a group, the timestamp of
// the oldest record the group has not committed, remembering the answer
// per (partition, offset) so a group that does not move costs no reads.
// It belongs to the coordinator's lag loop and is not safe for concurrent
// use.
type lagAges struct {
	host Host
	// seen maps a partition and the offset looked up there to the
	// record's timestamp; rebuilt every round from the lookups of that
	// round, so it holds at most one entry per (partition, offset) in use.
	seen, next map[lagProbe]time.Time
}

type lagProbe struct {
	TopicPartition
	offset int64
}

func newLagAges(h Host) *lagAges {
	return &lagAges{host: h, seen: map[lagProbe]time.Time{}, next: map[lagProbe]time.Time{}}
}

// seconds is skiff_group_lag_seconds for one partition of a group: the age
// of the oldest record not yet committed, 0 when caught up, -1 when
// unknown (no high watermark, or the record could not be read).
func (a *lagAges) seconds(ctx context.Context, po PartitionOffset, now time.Time) float64 {
	if po.Lag < 0 {
		return -1
	}
	if po.Lag == 0 {
		return 0
	}
	off := max(po.Committed, 0)
	ts, ok := a.timestamp(ctx, po.TopicPartition, off)
	if !ok {
		return -1
	}
	return max(0, now.Sub(ts).Seconds())
}

// endRound forgets the lookups not repeated since the last endRound.
func (a *lagAges) endRound() {
	a.seen, a.next = a.next, a.seen
	clear(a.next)
}

func (a *lagAges) timestamp(ctx context.Context, tp TopicPartition, off int64) (time.Time, bool) {
	key := lagProbe{tp, off}
	if ts, ok := a.next[key]; ok {
		return ts, true
	}
	if ts, ok := a.seen[key]; ok {
		a.next[key] = ts
		return ts, true
	}
	ts, err := a.read(ctx, tp, off)
	if err != nil {
		return time.Time{}, false
	}
	a.next[key] = ts
	return ts, true
}

var errNoRecord = errors.New("no record at or after the offset")

// read finds the first record at or after off; a committed offset below
// the log start (retention deleted what the group never read) moves to the
// log start, whose record is then the oldest the group still has to read.
func (a *lagAges) read(ctx context.Context, tp TopicPartition, off int64) (time.Time, error) {
	res, err := a.host.ReadPartition(ctx, tp.Topic, tp.Partition, off, lagProbeBytes)
	if err != nil {
		return time.Time{}, err
	}
	if len(res.Batches) == 0 && res.Start > off {
		off = res.Start
		if res, err = a.host.ReadPartition(ctx, tp.Topic, tp.Partition, off, lagProbeBytes); err != nil {
			return time.Time{}, err
		}
	}
	for batch, err := range record.Batches(res.Batches) {
		if err != nil {
			return time.Time{}, err
		}
		var found int64 = -1
		err := record.Records(batch, func(r record.Record) error {
			if r.Offset >= off {
				found = r.Timestamp
				return errStopWalk
			}
			return nil
		})
		if found >= 0 {
			return time.UnixMilli(found), nil
		}
		if err != nil {
			return time.Time{}, err
		}
	}
	return time.Time{}, errNoRecord
}

var errStopWalk = errors.New("stop")
