// Package nemesis holds Skiff's chaos scenarios: schedules of faults, aimed
// at leaders, the controller or followers, that run during the fault phase
// of a chaos run over any fault backend (package chaos/fault).
//
// A scenario loops while its fault phase lasts, never more than a fixed
// number of times, and leaves every fault it injected healed when it
// returns (the runner heals everything again anyway). It records each
// fault's start and stop in the history, so that the checker can name the
// fault in effect during an unavailability window.
package nemesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/skiff-mq/skiff/chaos/fault"
	"github.com/skiff-mq/skiff/chaos/history"
)

// Env is what a scenario works with.
type Env struct {
	Cluster fault.Cluster
	// Topic and Partitions name the workload's topic, whose leaders
	// leader-aimed faults hit.
	Topic      string
	Partitions int
	// Replication is the topic's replication factor (default 3).
	Replication int
	// Record writes a history event (fault start or stop).
	Record func(history.Event)
	// T holds the schedules' durations; zero fields take DefaultTimings.
	T      Timings
	Logger *slog.Logger
}

// Scenario is one named fault schedule.
type Scenario struct {
	Name        string
	Description string
	// MinFault is the shortest fault phase the scenario is meaningful
	// with; runners stretch shorter phases to it.
	MinFault time.Duration
	// Needs lists what the scenario needs of the cluster beyond the
	// faults of fault.Injector, for the script that starts the cluster
	// (scripts/chaos.sh): NeedSmallDisk.
	Needs []string
	// run injects faults until ctx ends (the end of the fault phase) or
	// its schedule is done, and heals what it injected.
	run func(ctx context.Context, env *Env) error
}

// maxCycles bounds every scenario's loop, whatever the phase length.
const maxCycles = 50

// Run runs the scenario's schedule. ctx's deadline is the end of the fault
// phase.
func (s Scenario) Run(ctx context.Context, env *Env) error {
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	env.T = env.T.withDefaults()
	if err := s.run(ctx, env); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("scenario %s: %w", s.Name, err)
	}
	return nil
}

// All returns every scenario in suite order.
func All() []Scenario {
	return []Scenario{
		{Name: "leader-kill", Description: "kill -9 the leader of a partition (a different one each cycle), restart it 5s later",
			MinFault: 10 * time.Second, run: leaderKill},
		{Name: "follower-kill", Description: "kill -9 a follower of partition 0 for most of the fault phase, then restart it",
			MinFault: 10 * time.Second, run: followerKill},
		{Name: "controller-kill", Description: "kill -9 the metadata controller, restart it 5s later; repeat",
			MinFault: 10 * time.Second, run: controllerKill},
		{Name: "pause-leader", Description: "SIGSTOP the leader of a partition for 10s (past the election timeout), then resume it",
			MinFault: 15 * time.Second, run: pauseLeader},
		{Name: "isolate-leader", Description: "disconnect the leader of partition 0 from the network for 15s, then reconnect it",
			MinFault: 20 * time.Second, run: isolateLeader},
		{Name: "minority-partition", Description: "cut one node that leads neither partition 0 nor the controller from the other two",
			MinFault: 20 * time.Second, run: minorityPartition},
		{Name: "majority-partition", Description: "cut the leader of partition 0 from the majority: the majority elects anew, the old leader must not ack",
			MinFault: 20 * time.Second, run: majorityPartition},
		{Name: "flaky-network", Description: "5% packet loss on every node and 20-40ms of delay on every Raft link (delaying proxy)",
			MinFault: 20 * time.Second, run: flakyNetwork},
		{Name: "rolling-restart", Description: "stop (gracefully) and restart each node in turn, waiting for a whole cluster in between",
			MinFault: 10 * time.Second, run: rollingRestart},
		{Name: "kill-all-restart", Description: "kill -9 every node at once, restart them all 3s later (durability with fsync)",
			MinFault: 10 * time.Second, run: killAllRestart},
		{Name: "disk-full", Description: "fill a node's (small, tmpfs) data disk to the last byte for 15s, then free it: it must go degraded and recover",
			MinFault: 30 * time.Second, Needs: []string{NeedSmallDisk}, run: diskFull},
		{Name: "decommission-under-load", Description: "decommission the leader of partition 0 (adding a spare node first if no node is spare); no replica may remain on it",
			MinFault: 30 * time.Second, run: decommissionUnderLoad},
		{Name: "add-node-rebalance", Description: "start a spare node: auto-rebalance must move replicas onto it until every node holds within one of the others",
			MinFault: 30 * time.Second, run: addNodeRebalance},
		{Name: "maintenance-rolling-upgrade", Description: "for each node: maintenance on, recreate its container (same image), maintenance off; it must lead nothing meanwhile",
			MinFault: 30 * time.Second, run: maintenanceRollingUpgrade},
	}
}

// None is the scenario without faults: the workload alone, as a baseline.
func None() Scenario {
	return Scenario{Name: "none", Description: "no fault (a baseline)", run: func(ctx context.Context, env *Env) error {
		<-ctx.Done()
		return nil
	}}
}

// Lookup returns the scenario called name.
func Lookup(name string) (Scenario, error) {
	all := All()
	if i := slices.IndexFunc(all, func(s Scenario) bool { return s.Name == name }); i >= 0 {
		return all[i], nil
	}
	return Scenario{}, fmt.Errorf("unknown scenario %q (want one of %s)", name, strings.Join(Names(), ", "))
}

// Names lists the scenarios in suite order.
func Names() []string {
	var names []string
	for _, s := range All() {
		names = append(names, s.Name)
	}
	return names
}

// start and stop record a fault in the history and the log.
func (env *Env) start(name string) {
	env.Logger.Info("fault start", "fault", name)
	env.Record(history.Event{Type: history.FaultEvent, Value: history.FaultStart, Detail: name})
}

func (env *Env) stop(name string) {
	env.Logger.Info("fault stop", "fault", name)
	env.Record(history.Event{Type: history.FaultEvent, Value: history.FaultStop, Detail: name})
}

// sleep waits d or until ctx ends; it reports whether the full d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// remaining is how long ctx has left (a long time without a deadline).
func remaining(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl)
	}
	return time.Hour
}

// cleanup is a context for healing after the fault phase ended: not
// cancelled with it, but bounded.
func cleanup() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute)
}

// lookup retries a leader lookup for a few seconds: right after a fault
// there may be no leader yet.
func lookup(ctx context.Context, find func(context.Context) (string, error)) (string, error) {
	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		id, err := find(lctx)
		if err == nil && id != "" {
			return id, nil
		}
		if !sleep(lctx, 250*time.Millisecond) {
			return "", fmt.Errorf("no leader found: %w", err)
		}
	}
}

func (env *Env) leaderOf(ctx context.Context, p int32) (string, error) {
	return lookup(ctx, func(ctx context.Context) (string, error) { return env.Cluster.LeaderOf(ctx, env.Topic, p) })
}

func (env *Env) controller(ctx context.Context) (string, error) {
	return lookup(ctx, env.Cluster.Controller)
}

// others returns the nodes other than those in except.
func (env *Env) others(ctx context.Context, except ...string) ([]string, error) {
	nodes, err := env.Cluster.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range nodes {
		if !slices.Contains(except, n) {
			out = append(out, n)
		}
	}
	return out, nil
}
