package consumergroup

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// gatedLog is a memLog whose asynchronous appends land in the log at once
// but are answered only when the test opens their gates, with the error
// it passes (nil: success).
type gatedLog struct {
	*memLog
	mu     sync.Mutex
	gates  []chan error
	handed chan struct{} // one per append handed over
	refuse bool          // the next append never gets in
}

var errRefused = errors.New("append refused before reaching the log")

func (l *gatedLog) AppendAsync(ctx context.Context, batch []byte) (func(context.Context) (int64, error), error) {
	l.mu.Lock()
	refuse := l.refuse
	l.refuse = false
	l.mu.Unlock()
	if refuse {
		return nil, errRefused
	}
	base, err := l.memLog.Append(ctx, batch)
	gate := make(chan error, 1)
	l.mu.Lock()
	l.gates = append(l.gates, gate)
	l.mu.Unlock()
	l.handed <- struct{}{}
	return func(ctx context.Context) (int64, error) {
		select {
		case gerr := <-gate:
			if gerr != nil {
				return 0, gerr
			}
			return base, err
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}, nil
}

func (l *gatedLog) open(i int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gates[i] <- err
}

// committerFixture is a coordinator over a gatedLog with the shard of
// group "q", for the committer tests.
func committerFixture(t *testing.T, partitions int32) (*gatedLog, *shard, context.Context) {
	t.Helper()
	lg := &gatedLog{memLog: newMemLog(true), handed: make(chan struct{}, 16)}
	c := newTestCoordinator(t, lg, map[string]int32{"jobs": partitions}, nil)
	ctx := testCtx(t)
	s, err := c.shardFor(ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	return lg, s, ctx
}

// submitInit decides and queues a share init of jobs/p as an operation
// would, without waiting for it.
func submitInit(t *testing.T, ctx context.Context, s *shard, p int32) *commitOp {
	t.Helper()
	term, err := s.shareBegin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	op, err := s.submit(term, []shareCmd{&shareInitCmd{Group: "q", Topic: "jobs", Partition: p}})
	s.shares.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	return op
}

// TestShareCommitterPipelinesAndAnswersInOrder: the committer hands the
// next append to the log before the one ahead is answered; an append is
// answered only after those ahead of it; when one fails, the operations
// behind it fail too (even though their own append succeeded) and the
// working state is rebuilt before the next operation.
func TestShareCommitterPipelinesAndAnswersInOrder(t *testing.T) {
	lg, s, ctx := committerFixture(t, 3)
	submit := func(p int32) *commitOp {
		t.Helper()
		op := submitInit(t, ctx, s, p)
		select {
		case <-lg.handed:
		case <-ctx.Done():
			t.Fatalf("append of partition %d not handed to the log while %d are unanswered", p, p)
		}
		return op
	}
	answered := func(op *commitOp) bool {
		select {
		case <-op.done:
			return true
		default:
			return false
		}
	}
	first, second := submit(0), submit(1) // both in flight at once
	lg.open(1, nil)
	// The second append succeeded; its answer waits for the first. Give
	// the answerer a moment it would need to answer it wrongly.
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) {
		if answered(second) {
			t.Fatal("the second append was answered before the first")
		}
		time.Sleep(5 * time.Millisecond)
	}
	boom := errors.New("replication failed")
	lg.open(0, boom)
	if err := first.wait(ctx); !errors.Is(err, boom) {
		t.Fatalf("first: %v, want %v", err, boom)
	}
	if err := second.wait(ctx); !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("second: %v, want ErrNotCoordinator (decided against the failed first)", err)
	}
	// The next operation starts from the committed table: both inits
	// landed in the log, so both partitions have share state.
	third := submit(2)
	lg.open(2, nil)
	if err := third.wait(ctx); err != nil {
		t.Fatalf("third: %v", err)
	}
	if _, err := s.shareBegin(ctx); err != nil {
		t.Fatal(err)
	}
	g := s.shares.state("q")
	s.shares.mu.Unlock()
	if g == nil || g.partition("jobs", 0) == nil || g.partition("jobs", 1) == nil || g.partition("jobs", 2) == nil {
		t.Fatalf("working state after the rebuild: %+v, want the three partitions", g)
	}
}

// TestShareCommitterStopsHandingOverAfterARefusedAppend: an append refused
// before it reached the log (no budget, not the leader any more) leaves a
// gap that a later append could slip past, landing decisions made against
// a state that assumed the refused one. The committer hands over nothing
// more until the working state is rebuilt from what the log holds.
func TestShareCommitterStopsHandingOverAfterARefusedAppend(t *testing.T) {
	lg, s, ctx := committerFixture(t, 4)
	submit := func(p int32) *commitOp { return submitInit(t, ctx, s, p) }
	first := submit(0)
	<-lg.handed // in flight, unanswered
	lg.mu.Lock()
	lg.refuse = true
	lg.mu.Unlock()
	refused := submit(1)
	// Answers come in order, so the refusal is answered after the first;
	// the committer marks the working state stale as soon as it is
	// refused.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.shares.mu.Lock()
		stale := s.shares.stale
		s.shares.mu.Unlock()
		if stale {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the committer did not mark the working state stale after a refused append")
		}
		time.Sleep(time.Millisecond)
	}
	// Queued straight onto the shell, as a fetch deciding against the
	// working state of before would (shareBegin now waits for a rebuild).
	s.shares.mu.Lock()
	behind, err := s.submit(s.shares.term, []shareCmd{&shareInitCmd{Group: "q", Topic: "jobs", Partition: 2}})
	s.shares.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	lg.open(0, nil)
	if err := first.wait(ctx); err != nil && !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("first: %v", err)
	}
	if err := refused.wait(ctx); !errors.Is(err, errRefused) {
		t.Fatalf("refused append: %v, want %v", err, errRefused)
	}
	// Failed as queued behind the refusal, or as taken after it.
	if err := behind.wait(ctx); !errors.Is(err, ErrNotCoordinator) && !errors.Is(err, errRefused) {
		t.Fatalf("append behind the refused one: %v, want it failed", err)
	}
	select {
	case <-lg.handed:
		t.Fatal("an append behind the refused one was handed to the log")
	default:
	}
	// Rebuilt from the log: partition 0's init landed, 1 and 2 never did.
	next := submit(3)
	<-lg.handed
	lg.open(1, nil)
	if err := next.wait(ctx); err != nil {
		t.Fatalf("after the rebuild: %v", err)
	}
	if _, err := s.shareBegin(ctx); err != nil {
		t.Fatal(err)
	}
	g := s.shares.state("q")
	s.shares.mu.Unlock()
	if g == nil || g.partition("jobs", 0) == nil || g.partition("jobs", 3) == nil {
		t.Fatalf("working state after the rebuild: %+v, want partitions 0 and 3", g)
	}
	if g.partition("jobs", 1) != nil || g.partition("jobs", 2) != nil {
		t.Fatal("partitions 1 or 2 have share state, but their inits never reached the log")
	}
}
