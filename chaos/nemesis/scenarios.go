package nemesis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Timings are the durations of the schedules.
type Timings struct {
	Down    time.Duration // a killed node stays down this long
	Pause   time.Duration // a paused node stays frozen this long
	Cut     time.Duration // an isolated or partitioned node stays cut this long
	Settle  time.Duration // quiet time between cycles
	Healthy time.Duration // bound on waiting for a whole cluster after a fault
	// Bounds of the day-2 operations (operations.go); overrunning one is
	// a finding, reported as a scenario error.
	Degrade     time.Duration // a full disk is noticed by the next disk check (5s) or failed write
	DiskRecover time.Duration // a replica that failed to write is reopened with a backoff up to 1 min
	Move        time.Duration // a decommission or rebalance copies replicas a few partitions at a time
	HandOn      time.Duration // a node in maintenance hands on a leadership it won within a reconcile interval (1s)
	Poll        time.Duration // how often an operation's progress is read
}

// DefaultTimings suit the compose cluster, whose Raft election timeout is
// about a second and whose gossip declares a silent node dead after ~5s.
func DefaultTimings() Timings {
	return Timings{Down: 5 * time.Second, Pause: 10 * time.Second, Cut: 15 * time.Second,
		Settle: 5 * time.Second, Healthy: 90 * time.Second,
		Degrade: 30 * time.Second, DiskRecover: 3 * time.Minute, Move: 5 * time.Minute, HandOn: 10 * time.Second, Poll: time.Second}
}

// withDefaults fills zero fields from DefaultTimings.
func (t Timings) withDefaults() Timings {
	d := DefaultTimings()
	for _, f := range []struct{ v, def *time.Duration }{
		{&t.Down, &d.Down}, {&t.Pause, &d.Pause}, {&t.Cut, &d.Cut}, {&t.Settle, &d.Settle}, {&t.Healthy, &d.Healthy},
		{&t.Degrade, &d.Degrade}, {&t.DiskRecover, &d.DiskRecover}, {&t.Move, &d.Move}, {&t.HandOn, &d.HandOn}, {&t.Poll, &d.Poll},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	return t
}

// cycle runs one fault of a repeating schedule: inject, hold for hold (or
// until the phase ends), undo, then wait for a whole cluster and settle.
// undo always runs once inject succeeded, on a context that outlives the
// phase.
func (env *Env) cycle(ctx context.Context, name string, hold time.Duration, inject, undo func(context.Context) error) error {
	// Recorded before the fault takes effect, so that an unavailability
	// window that starts while the fault is being injected names it.
	env.start(name)
	if err := inject(ctx); err != nil {
		env.stop(name)
		return fmt.Errorf("%s: %w", name, err)
	}
	sleep(ctx, hold)
	cctx, cancel := cleanup()
	defer cancel()
	err := undo(cctx)
	env.stop(name)
	if err != nil {
		return fmt.Errorf("undo %s: %w", name, err)
	}
	hctx, hcancel := context.WithTimeout(cctx, env.T.Healthy)
	defer hcancel()
	if err := env.Cluster.WaitHealthy(hctx); err != nil {
		return fmt.Errorf("after %s: %w", name, err)
	}
	sleep(ctx, env.T.Settle)
	return nil
}

// repeat runs one cycle after another while the phase has time for a
// whole one (need), at most maxCycles times. Each cycle is built by next
// from its index.
func repeat(ctx context.Context, need time.Duration, next func(ctx context.Context, i int) error) error {
	for i := 0; i < maxCycles && ctx.Err() == nil; i++ {
		if i > 0 && remaining(ctx) < need {
			return nil
		}
		if err := next(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

func leaderKill(ctx context.Context, env *Env) error {
	return repeat(ctx, env.T.Down, func(ctx context.Context, i int) error {
		p := int32(i % max(env.Partitions, 1))
		leader, err := env.leaderOf(ctx, p)
		if err != nil {
			return err
		}
		return env.cycle(ctx, fmt.Sprintf("kill %s (leader of %s/%d)", leader, env.Topic, p), env.T.Down,
			func(ctx context.Context) error { return env.Cluster.Kill(ctx, leader) },
			func(ctx context.Context) error { return env.Cluster.Start(ctx, leader) })
	})
}

func followerKill(ctx context.Context, env *Env) error {
	return repeat(ctx, env.T.Down, func(ctx context.Context, i int) error {
		leader, err := env.leaderOf(ctx, 0)
		if err != nil {
			return err
		}
		followers, err := env.others(ctx, leader)
		if err != nil || len(followers) == 0 {
			return errors.Join(err, errors.New("no follower to kill"))
		}
		victim := followers[i%len(followers)]
		hold := max(remaining(ctx)-env.T.Settle, env.T.Down)
		return env.cycle(ctx, fmt.Sprintf("kill %s (follower of %s/0)", victim, env.Topic), hold,
			func(ctx context.Context) error { return env.Cluster.Kill(ctx, victim) },
			func(ctx context.Context) error { return env.Cluster.Start(ctx, victim) })
	})
}

func controllerKill(ctx context.Context, env *Env) error {
	return repeat(ctx, env.T.Down, func(ctx context.Context, i int) error {
		ctl, err := env.controller(ctx)
		if err != nil {
			return err
		}
		return env.cycle(ctx, fmt.Sprintf("kill %s (controller)", ctl), env.T.Down,
			func(ctx context.Context) error { return env.Cluster.Kill(ctx, ctl) },
			func(ctx context.Context) error { return env.Cluster.Start(ctx, ctl) })
	})
}

func pauseLeader(ctx context.Context, env *Env) error {
	return repeat(ctx, env.T.Pause, func(ctx context.Context, i int) error {
		p := int32(i % max(env.Partitions, 1))
		leader, err := env.leaderOf(ctx, p)
		if err != nil {
			return err
		}
		return env.cycle(ctx, fmt.Sprintf("pause %s (leader of %s/%d)", leader, env.Topic, p), env.T.Pause,
			func(ctx context.Context) error { return env.Cluster.Pause(ctx, leader) },
			func(ctx context.Context) error { return env.Cluster.Resume(ctx, leader) })
	})
}

func isolateLeader(ctx context.Context, env *Env) error {
	return repeat(ctx, env.T.Cut, func(ctx context.Context, i int) error {
		leader, err := env.leaderOf(ctx, 0)
		if err != nil {
			return err
		}
		return env.cycle(ctx, fmt.Sprintf("isolate %s (leader of %s/0)", leader, env.Topic), env.T.Cut,
			func(ctx context.Context) error { return env.Cluster.Isolate(ctx, leader) },
			env.Cluster.Heal)
	})
}

// minorityPartition cuts a node that leads neither partition 0 nor the
// metadata group (when there is one): the majority keeps both leaders, and
// only the partitions the cut node led move.
func minorityPartition(ctx context.Context, env *Env) error {
	return repeat(ctx, env.T.Cut, func(ctx context.Context, i int) error {
		leader, err := env.leaderOf(ctx, 0)
		if err != nil {
			return err
		}
		ctl, err := env.controller(ctx)
		if err != nil {
			return err
		}
		candidates, err := env.others(ctx, leader, ctl)
		if err != nil {
			return err
		}
		if len(candidates) == 0 {
			if candidates, err = env.others(ctx, leader); err != nil || len(candidates) == 0 {
				return errors.Join(err, errors.New("no node to cut off"))
			}
		}
		victim := candidates[i%len(candidates)]
		return env.partition(ctx, []string{victim}, "minority")
	})
}

// majorityPartition cuts the leader of partition 0 from the other nodes:
// the majority must elect a new leader and the old one, alone, must refuse
// writes (an ack from it would show up as a lost write).
func majorityPartition(ctx context.Context, env *Env) error {
	return repeat(ctx, env.T.Cut, func(ctx context.Context, i int) error {
		leader, err := env.leaderOf(ctx, 0)
		if err != nil {
			return err
		}
		return env.partition(ctx, []string{leader}, fmt.Sprintf("leader of %s/0 alone", env.Topic))
	})
}

// partition cuts side from the other nodes for env.T.Cut.
func (env *Env) partition(ctx context.Context, side []string, why string) error {
	rest, err := env.others(ctx, side...)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("partition %s | %s (%s)", strings.Join(side, ","), strings.Join(rest, ","), why)
	return env.cycle(ctx, name, env.T.Cut,
		func(ctx context.Context) error { return env.Cluster.Partition(ctx, side, rest) },
		env.Cluster.Heal)
}

func flakyNetwork(ctx context.Context, env *Env) error {
	nodes, err := env.Cluster.Nodes(ctx)
	if err != nil {
		return err
	}
	hold := max(remaining(ctx)-env.T.Settle, env.T.Settle)
	return env.cycle(ctx, "flaky network: 5% loss and 20-40ms Raft delay on every node", hold,
		func(ctx context.Context) error {
			for _, n := range nodes {
				if err := env.Cluster.Delay(ctx, n, 20*time.Millisecond, 20*time.Millisecond); err != nil {
					return errors.Join(err, env.Cluster.Heal(ctx))
				}
				if err := env.Cluster.Loss(ctx, n, 5); err != nil {
					return errors.Join(err, env.Cluster.Heal(ctx))
				}
			}
			return nil
		},
		env.Cluster.Heal)
}

// rollingRestart restarts every node once, in order, gracefully: it runs
// to the end even past the phase (bounded by env.T.Healthy per node), since a
// half-done rolling restart is not the scenario.
func rollingRestart(ctx context.Context, env *Env) error {
	nodes, err := env.Cluster.Nodes(ctx)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if err := env.cycle(context.WithoutCancel(ctx), fmt.Sprintf("restart %s (graceful)", n), 0,
			func(ctx context.Context) error { return env.Cluster.Stop(ctx, n) },
			func(ctx context.Context) error { return env.Cluster.Start(ctx, n) }); err != nil {
			return err
		}
	}
	return nil
}

func killAllRestart(ctx context.Context, env *Env) error {
	nodes, err := env.Cluster.Nodes(ctx)
	if err != nil {
		return err
	}
	return env.cycle(ctx, "kill every node", 3*time.Second,
		func(ctx context.Context) error {
			var errs []error
			for _, n := range nodes {
				errs = append(errs, env.Cluster.Kill(ctx, n))
			}
			return errors.Join(errs...)
		},
		env.Cluster.StartAll)
}
