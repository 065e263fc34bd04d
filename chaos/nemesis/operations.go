package nemesis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/skiff-mq/skiff/chaos/fault"
)

// The day-2 scenarios (issue 17): a full disk, and the operations of
// docs/operations.md done while the workload runs. Each checks that the
// cluster did what the operation promises (the node went degraded and came
// back, no replica is left on a decommissioned node, a new node got its
// share, a node in maintenance led nothing), on top of the history check
// that every run gets.

// fullDisk is how full disk-full fills the disk: to the last byte, so
// that replicas' writes fail with ENOSPC as well as the free-space
// threshold tripping.
const fullDisk = 0

func (env *Env) operator() (fault.Operator, error) {
	op, ok := env.Cluster.(fault.Operator)
	if !ok {
		return nil, fmt.Errorf("operator commands: %w", fault.ErrUnsupported)
	}
	return op, nil
}

// waitStatus polls the cluster's status until ok accepts it, for at most
// bound. On failure the error says what was awaited and the last status
// seen (ok's explanation).
func (env *Env) waitStatus(ctx context.Context, op fault.Operator, bound time.Duration, what string,
	ok func(fault.Status) (bool, string)) error {
	wctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	last := "no status read"
	for {
		st, err := op.Status(wctx)
		if err == nil {
			done, why := ok(st)
			if done {
				return nil
			}
			last = why
		} else {
			last = err.Error()
		}
		if !sleep(wctx, env.T.Poll) {
			return fmt.Errorf("%s: not within %v (last: %s)", what, bound, last)
		}
	}
}

// nodeWith accepts a status in which node id satisfies ok.
func nodeWith(id string, ok func(fault.NodeStatus) bool) func(fault.Status) (bool, string) {
	return func(st fault.Status) (bool, string) {
		n, found := st.Node(id)
		if !found {
			return false, fmt.Sprintf("%s not listed", id)
		}
		return ok(n), describe(n, st)
	}
}

func describe(n fault.NodeStatus, st fault.Status) string {
	s := fmt.Sprintf("%s %s, mode %s, %d replicas, %d leaderships; %d partitions under-replicated, %d offline",
		n.ID, n.State, n.Mode, n.Replicas, n.Leaders, st.UnderReplicated, st.Offline)
	if n.Blocked != "" {
		s += "; blocked: " + n.Blocked
	}
	return s
}

// inSync accepts a status where every partition has all its replicas in
// sync and a leader.
func inSync(st fault.Status) (bool, string) {
	return st.UnderReplicated == 0 && st.Offline == 0,
		fmt.Sprintf("%d partitions under-replicated, %d offline", st.UnderReplicated, st.Offline)
}

// diskFull fills the data disk of a node that has a small one to the last
// byte, under load, holds it full for T.Cut, then frees it. The node must
// report itself degraded (refusing produce, handing its leaderships away)
// within T.Degrade, and after the space returns come back in service
// with every partition in sync, by itself, within T.DiskRecover.
func diskFull(ctx context.Context, env *Env) error {
	disk, ok := env.Cluster.(fault.Disk)
	if !ok {
		return fmt.Errorf("disk faults: %w", fault.ErrUnsupported)
	}
	op, err := env.operator()
	if err != nil {
		return err
	}
	nodes, err := disk.DiskNodes(ctx)
	if err != nil {
		return err
	}
	if len(nodes) == 0 {
		return fmt.Errorf("no node has a small data disk of its own to fill (scripts/cluster.sh up --small-disk): %w", fault.ErrUnsupported)
	}
	victim := nodes[0]
	name := fmt.Sprintf("fill the data disk of %s", victim)
	env.start(name)
	if err := disk.FillDisk(ctx, victim, fullDisk); err != nil {
		cctx, cancel := cleanup()
		defer cancel()
		env.stop(name)
		return errors.Join(fmt.Errorf("%s: %w", name, err), disk.FreeDisk(cctx, victim))
	}
	// Waited for and held on a context that outlives the phase: the
	// point is to see the node degrade and recover, whatever the phase.
	hold := context.WithoutCancel(ctx)
	degraded := env.waitStatus(hold, op, env.T.Degrade, victim+" degraded",
		nodeWith(victim, func(n fault.NodeStatus) bool { return n.Mode == "degraded" }))
	if degraded == nil {
		env.Logger.Info("node degraded", "node", victim)
	}
	sleep(hold, env.T.Cut)
	cctx, cancel := context.WithTimeout(hold, env.T.DiskRecover+env.T.Healthy)
	defer cancel()
	freed := disk.FreeDisk(cctx, victim)
	env.stop(name)
	if freed != nil {
		return errors.Join(degraded, fmt.Errorf("free the disk of %s: %w", victim, freed))
	}
	recovered := env.waitStatus(cctx, op, env.T.DiskRecover, victim+" back in service with every partition in sync",
		func(st fault.Status) (bool, string) {
			n, found := st.Node(victim)
			if !found {
				return false, victim + " not listed"
			}
			return n.Mode == "active" && st.UnderReplicated == 0 && st.Offline == 0, describe(n, st)
		})
	if recovered == nil {
		env.Logger.Info("node recovered from a full disk", "node", victim)
	}
	hctx, hcancel := context.WithTimeout(cctx, env.T.Healthy)
	defer hcancel()
	return errors.Join(degraded, recovered, env.Cluster.WaitHealthy(hctx))
}

// addNode starts a spare node, waits until the cluster sees it alive, and
// returns its id.
func (env *Env) addNode(ctx context.Context, op fault.Operator) (string, error) {
	id, err := op.AddNode(ctx)
	if err != nil {
		return "", fmt.Errorf("add a node: %w", err)
	}
	hctx, cancel := context.WithTimeout(ctx, env.T.Healthy)
	defer cancel()
	if err := env.Cluster.WaitHealthy(hctx); err != nil {
		return id, fmt.Errorf("after adding %s: %w", id, err)
	}
	return id, nil
}

// addNodeRebalance starts a spare node under load. With auto-rebalance
// (the servers' default) the controller moves replicas and leaderships
// onto it: the scenario waits until every live node's replica count is
// within one of the others (what docs/operations.md promises without
// racks), the new node holds some, and every partition is in sync.
func addNodeRebalance(ctx context.Context, env *Env) error {
	op, err := env.operator()
	if err != nil {
		return err
	}
	name := "add a node (auto-rebalance)"
	env.start(name)
	defer env.stop(name)
	wctx := context.WithoutCancel(ctx)
	id, err := env.addNode(wctx, op)
	if err != nil {
		return err
	}
	env.Logger.Info("node added", "node", id)
	return env.waitStatus(wctx, op, env.T.Move, fmt.Sprintf("replicas rebalanced onto %s", id), func(st fault.Status) (bool, string) {
		return balancedWith(st, id)
	})
}

// balancedWith accepts a status in which node id holds replicas, the
// alive nodes' replica counts are within one of each other, and every
// partition is in sync.
func balancedWith(st fault.Status, id string) (bool, string) {
	var counts []string
	lo, hi, mine := -1, -1, 0
	for _, n := range st.Nodes {
		if n.State != "alive" || n.Mode == "decommissioned" {
			continue
		}
		counts = append(counts, fmt.Sprintf("%s:%d/%d", n.ID, n.Replicas, n.Leaders))
		if lo < 0 || n.Replicas < lo {
			lo = n.Replicas
		}
		hi = max(hi, n.Replicas)
		if n.ID == id {
			mine = n.Replicas
		}
	}
	ok := mine > 0 && hi-lo <= 1 && st.UnderReplicated == 0 && st.Offline == 0
	return ok, fmt.Sprintf("replicas/leaderships %s; %d partitions under-replicated, %d offline",
		strings.Join(counts, " "), st.UnderReplicated, st.Offline)
}

// decommissionUnderLoad decommissions the leader of partition 0 while the
// producers run. A cluster with no node to spare (no more nodes than the
// topic's replication factor) gets one first, as an operator would add
// one: a decommission that could never finish is refused. It waits until
// the node is decommissioned, checks that no replica and no leadership is
// left on it, then stops and removes it.
func decommissionUnderLoad(ctx context.Context, env *Env) error {
	op, err := env.operator()
	if err != nil {
		return err
	}
	wctx := context.WithoutCancel(ctx)
	nodes, err := env.Cluster.Nodes(ctx)
	if err != nil {
		return err
	}
	if len(nodes) <= env.replication() {
		name := "add a node to take the replicas"
		env.start(name)
		id, err := env.addNode(wctx, op)
		env.stop(name)
		if err != nil {
			return err
		}
		env.Logger.Info("node added", "node", id)
		sleep(ctx, env.T.Settle)
	}
	victim, err := env.leaderOf(wctx, 0)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("decommission %s (leader of %s/0)", victim, env.Topic)
	env.start(name)
	defer env.stop(name)
	if err := retry(wctx, func() error { return op.Decommission(wctx, victim) }); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := env.waitStatus(wctx, op, env.T.Move, victim+" decommissioned", nodeWith(victim, func(n fault.NodeStatus) bool {
		return n.Mode == "decommissioned"
	})); err != nil {
		return err
	}
	st, err := op.Status(wctx)
	if err != nil {
		return err
	}
	n, _ := st.Node(victim)
	if n.Replicas != 0 || n.Leaders != 0 {
		return fmt.Errorf("%s decommissioned but still holds replicas: %s", victim, describe(n, st))
	}
	env.Logger.Info("node decommissioned", "node", victim)
	// What the operator does next: stop the node and take it away.
	if err := op.Remove(wctx, victim); err != nil {
		return fmt.Errorf("remove %s after its decommission: %w", victim, err)
	}
	hctx, cancel := context.WithTimeout(wctx, env.T.Healthy)
	defer cancel()
	if err := env.Cluster.WaitHealthy(hctx); err != nil {
		return fmt.Errorf("after removing %s: %w", victim, err)
	}
	return env.waitStatus(wctx, op, env.T.Healthy, "every partition in sync after the decommission", inSync)
}

// maintenanceRollingUpgrade upgrades every node in turn the way
// scripts/cluster.sh rolling-upgrade does: maintenance on (its leaderships
// move away), the container recreated from its image (the same image
// stands in for a new version), back in sync, maintenance off. A node must
// lead nothing while in maintenance, restart included. Like
// rolling-restart it runs to the end even past the phase.
func maintenanceRollingUpgrade(ctx context.Context, env *Env) error {
	op, err := env.operator()
	if err != nil {
		return err
	}
	wctx := context.WithoutCancel(ctx)
	nodes, err := env.Cluster.Nodes(ctx)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if err := env.upgrade(wctx, op, n); err != nil {
			return err
		}
		sleep(wctx, env.T.Settle)
	}
	return nil
}

func (env *Env) upgrade(ctx context.Context, op fault.Operator, node string) (err error) {
	name := fmt.Sprintf("upgrade %s (maintenance on, recreate, maintenance off)", node)
	env.start(name)
	defer env.stop(name)
	if err := retry(ctx, func() error { return op.Maintenance(ctx, node, true) }); err != nil {
		return fmt.Errorf("maintenance on %s: %w", node, err)
	}
	// Maintenance goes off whatever happens below, so that a failed
	// upgrade does not leave the rest of the run without a leader
	// candidate.
	defer func() {
		cctx, cancel := cleanup()
		defer cancel()
		if oerr := retry(cctx, func() error { return op.Maintenance(cctx, node, false) }); oerr != nil {
			err = errors.Join(err, fmt.Errorf("maintenance off %s: %w", node, oerr))
		}
	}()
	if err := op.Replace(ctx, node); err != nil {
		return fmt.Errorf("recreate %s: %w", node, err)
	}
	hctx, cancel := context.WithTimeout(ctx, env.T.Healthy)
	defer cancel()
	if err := env.Cluster.WaitHealthy(hctx); err != nil {
		return fmt.Errorf("after recreating %s: %w", node, err)
	}
	if err := env.waitStatus(ctx, op, env.T.Healthy, "every partition in sync after recreating "+node, inSync); err != nil {
		return err
	}
	// A leadership the node wins anyway (an election while it restarted)
	// is handed on within a reconcile interval (1s).
	return env.waitStatus(ctx, op, env.T.HandOn, node+" leads nothing while in maintenance",
		nodeWith(node, func(n fault.NodeStatus) bool { return n.Leaders == 0 }))
}

// retry runs an operator command up to three times: a metadata write may
// end "outcome unknown" when the meta leader changes under it, and these
// commands are idempotent, so the operator's answer is to run it again.
func retry(ctx context.Context, f func() error) error {
	var errs []error
	for range 3 {
		err := f()
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if !sleep(ctx, 2*time.Second) {
			break
		}
	}
	return errors.Join(errs...)
}

// replication is the workload topic's replication factor (3 if unset).
func (env *Env) replication() int {
	if env.Replication > 0 {
		return env.Replication
	}
	return 3
}

// NeedSmallDisk is a Scenario.Needs entry: a node whose data directory
// is a small file system of its own (scripts/cluster.sh up --small-disk).
const NeedSmallDisk = "small-disk"
