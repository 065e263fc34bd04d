package workload

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/skiff-mq/skiff/chaos/history"
	"github.com/skiff-mq/skiff/client"
)

// commitTimeout bounds one commit of a group consumer, and the commit and
// leave of its Close.
const commitTimeout = 10 * time.Second

// groupConsumer is one member of the workload's consumer group. It commits
// by hand after every poll (DisableAutoCommit), so that the history holds
// exactly the commits that returned success (CommitEvent) or an error
// (CommitFailedEvent), and it records every assignment change, so that the
// checker treats a partition's first read after it moved as a new start
// rather than a skip or a rewind.
//
// Every field is owned by the goroutine running run: the rebalance
// callbacks run inside Poll and Close on that goroutine.
type groupConsumer struct {
	w       *Workload
	process string
	gc      *client.GroupConsumer
	// next is, per partition held, the offset after the last record Poll
	// returned; committed is the last offset committed with success.
	next      map[client.TopicPartition]int64
	committed map[client.TopicPartition]int64
}

func (w *Workload) newGroupConsumer(process string) (*groupConsumer, error) {
	g := &groupConsumer{w: w, process: process,
		next: map[client.TopicPartition]int64{}, committed: map[client.TopicPartition]int64{}}
	gc, err := w.cl.NewGroupConsumer(client.GroupConsumerConfig{
		Group: w.cfg.Group, Topics: []string{w.cfg.Topic}, ClientID: process,
		AutoOffsetReset: "earliest", DisableAutoCommit: true,
		OnAssigned: g.assigned, OnRevoked: g.revoked, OnLost: g.lost,
	})
	if err != nil {
		return nil, fmt.Errorf("group consumer %s: %w", process, err)
	}
	g.gc = gc
	return g, nil
}

// run polls until ctx ends, committing after each poll that returned
// records, then leaves the group (committing once more in revoked).
func (g *groupConsumer) run(ctx context.Context) error {
	w := g.w
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
		defer cancel()
		if err := g.gc.Close(cctx); err != nil {
			w.cfg.Logger.Debug("group consumer close", "process", g.process, "err", err)
		}
	}()
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, pollWait)
		recs, err := g.gc.Poll(pctx)
		cancel()
		now := time.Now()
		for _, r := range recs {
			w.reads.Add(1)
			w.hist.write(history.Event{Time: now, Type: history.ReadEvent, Process: g.process, Topic: r.Topic,
				Partition: r.Partition, Offset: r.Offset, Value: string(r.Value)})
			g.next[client.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset + 1
		}
		if len(recs) > 0 {
			g.commit(ctx, g.gc.Assignment())
		}
		switch {
		case err == nil, ctx.Err() != nil:
		case errors.Is(err, context.DeadlineExceeded) && pctx.Err() != nil:
		case errors.Is(err, client.ErrClosed):
			return fmt.Errorf("group consumer %s: %w", g.process, err)
		default:
			w.cfg.Logger.Debug("group poll failed", "process", g.process, "err", err)
			pause(ctx, retryPause)
		}
	}
	return nil
}

// commit commits the positions of the given partitions that moved since
// their last successful commit, and records the outcome per partition.
func (g *groupConsumer) commit(ctx context.Context, tps []client.TopicPartition) {
	offsets := map[client.TopicPartition]int64{}
	for _, tp := range tps {
		if next, ok := g.next[tp]; ok && next != g.committed[tp] {
			offsets[tp] = next
		}
	}
	if len(offsets) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, commitTimeout)
	err := g.gc.CommitOffsets(cctx, offsets)
	cancel()
	now := time.Now()
	w := g.w
	for _, tp := range slices.SortedFunc(maps.Keys(offsets), compareTP) {
		e := history.Event{Time: now, Type: history.CommitEvent, Process: g.process, Group: w.cfg.Group,
			Topic: tp.Topic, Partition: tp.Partition, Offset: offsets[tp]}
		if err != nil {
			e.Type, e.Detail = history.CommitFailedEvent, err.Error()
			w.commitsFailed.Add(1)
		} else {
			g.committed[tp] = offsets[tp]
			w.commits.Add(1)
		}
		w.hist.write(e)
	}
	if err != nil && ctx.Err() == nil {
		w.cfg.Logger.Debug("group commit failed", "process", g.process, "err", err)
	}
}

// assigned records partitions the group gave this member; their reads
// start at the group's committed offset (or the log start).
func (g *groupConsumer) assigned(_ context.Context, tps []client.TopicPartition) {
	for _, tp := range tps {
		delete(g.next, tp)
		delete(g.committed, tp)
	}
	g.record(tps, history.AssignAssigned)
}

// revoked commits what was read of partitions about to move (they are
// still this member's until the callback returns), then records the
// release.
func (g *groupConsumer) revoked(ctx context.Context, tps []client.TopicPartition) {
	g.commit(ctx, tps)
	g.forget(tps)
	g.record(tps, history.AssignRevoked)
}

// lost records partitions that already belong to another member: nothing
// can be committed for them.
func (g *groupConsumer) lost(_ context.Context, tps []client.TopicPartition) {
	g.forget(tps)
	g.record(tps, history.AssignLost)
}

func (g *groupConsumer) forget(tps []client.TopicPartition) {
	for _, tp := range tps {
		delete(g.next, tp)
		delete(g.committed, tp)
	}
}

func (g *groupConsumer) record(tps []client.TopicPartition, what string) {
	now := time.Now()
	for _, tp := range tps {
		g.w.rebalances.Add(1)
		g.w.hist.write(history.Event{Time: now, Type: history.AssignEvent, Process: g.process, Group: g.w.cfg.Group,
			Topic: tp.Topic, Partition: tp.Partition, Detail: what})
	}
}

func compareTP(a, b client.TopicPartition) int {
	return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}

// recordCommitted reads back the group's committed offsets once every
// member has left and records them as commits by process "final": the
// checker's commit-regression check then also catches a commit that
// returned success and was later lost (say, by a coordinator failover).
func (w *Workload) recordCommitted(ctx context.Context) error {
	ti, err := w.cl.DescribeTopic(ctx, w.cfg.Topic)
	if err != nil {
		return fmt.Errorf("workload: committed offsets of group %s: %w", w.cfg.Group, err)
	}
	tps := make([]client.TopicPartition, 0, len(ti.Partitions))
	for _, p := range ti.Partitions {
		tps = append(tps, client.TopicPartition{Topic: w.cfg.Topic, Partition: p.Partition})
	}
	offs, err := w.cl.FetchGroupOffsets(ctx, w.cfg.Group, tps...)
	if err != nil {
		return fmt.Errorf("workload: committed offsets of group %s: %w", w.cfg.Group, err)
	}
	now := time.Now()
	for _, tp := range tps {
		if c, ok := offs[tp]; ok {
			w.hist.write(history.Event{Time: now, Type: history.CommitEvent, Process: FinalCommitProcess, Group: w.cfg.Group,
				Topic: tp.Topic, Partition: tp.Partition, Offset: c.Offset, Detail: "fetched after the run"})
		}
	}
	return nil
}

// FinalCommitProcess is the Process of the CommitEvents that record the
// group's committed offsets read back after the run.
const FinalCommitProcess = "final"
