// Package fault is the vocabulary of faults a chaos scenario injects into a
// Skiff cluster, with backends that inject them: Docker (the compose
// cluster, through scripts/faults.sh) here, and in-process nodes in
// package chaos/fault/inproc, so that Go tests run scenarios without
// Docker. A backend that cannot inject a fault returns ErrUnsupported and
// scenarios needing it are skipped there.
package fault

import (
	"context"
	"errors"
	"time"
)

// ErrUnsupported means the backend cannot inject this fault.
var ErrUnsupported = errors.New("fault not supported by this backend")

// Injector injects and heals faults. Nodes are named by node id (which is
// also the container name in the compose cluster).
type Injector interface {
	// Nodes lists the cluster's nodes, running or not, in order.
	Nodes(ctx context.Context) ([]string, error)
	// Kill stops a node at once, as a crash (SIGKILL) would.
	Kill(ctx context.Context, node string) error
	// Stop stops a node gracefully (it hands its leaderships away).
	Stop(ctx context.Context, node string) error
	// Start starts a stopped or killed node on its old data.
	Start(ctx context.Context, node string) error
	// Pause freezes a node (SIGSTOP); Resume thaws it.
	Pause(ctx context.Context, node string) error
	Resume(ctx context.Context, node string) error
	// Isolate cuts a node from every peer and client.
	Isolate(ctx context.Context, node string) error
	// Partition cuts every node of a from every node of b, both ways.
	Partition(ctx context.Context, a, b []string) error
	// Loss drops percent (0-100) of a node's packets in each direction.
	Loss(ctx context.Context, node string, percent float64) error
	// Delay adds latency (plus random jitter up to jitter) to the Raft
	// traffic reaching a node, each direction.
	Delay(ctx context.Context, node string, latency, jitter time.Duration) error
	// Heal removes every network fault and resumes paused nodes; nodes
	// that are down stay down.
	Heal(ctx context.Context) error
	// StartAll heals and starts every node that is down.
	StartAll(ctx context.Context) error
	// WaitHealthy waits until every node is up and sees the whole cluster
	// with a controller, or ctx ends.
	WaitHealthy(ctx context.Context) error
}

// Locator finds who leads what, as the majority of reachable nodes sees
// it. Scenarios use it to aim faults at leaders.
type Locator interface {
	// LeaderOf returns the node leading a partition ("" and an error while
	// none is known).
	LeaderOf(ctx context.Context, topic string, partition int32) (string, error)
	// Controller returns the node leading the metadata group.
	Controller(ctx context.Context) (string, error)
}

// Cluster is what scenarios drive: faults plus leader lookups.
type Cluster interface {
	Injector
	Locator
}

// Disk fills and frees a node's data disk. Backends offer it only on nodes
// whose data directory is a small file system of its own (the compose
// cluster's docker-compose.smalldisk.yml puts one node's on a tmpfs), so
// that filling it can never fill the machine's disk.
type Disk interface {
	// DiskNodes lists the nodes whose disk may be filled ("none" is an
	// empty list, not an error).
	DiskNodes(ctx context.Context) ([]string, error)
	// FillDisk writes a filler file into the node's data file system
	// until fewer than leave bytes are free (0: until it is full).
	FillDisk(ctx context.Context, node string, leave int64) error
	// FreeDisk removes what FillDisk wrote.
	FreeDisk(ctx context.Context, node string) error
}

// Operator runs the day-2 operations of docs/operations.md, as an operator
// would, while the workload runs.
type Operator interface {
	// AddNode starts a spare node that joins the running cluster and
	// returns its id; from then on Nodes lists it too.
	AddNode(ctx context.Context) (string, error)
	// Decommission starts moving every replica off node; it returns
	// once the cluster accepted it (Status shows the progress).
	Decommission(ctx context.Context, node string) error
	// Maintenance turns a node's maintenance mode on (it hands its
	// leaderships away; returns once it leads nothing) or off.
	Maintenance(ctx context.Context, node string, on bool) error
	// Remove stops a node for good, gracefully, and forgets it: Nodes no
	// longer lists it (what follows a decommission).
	Remove(ctx context.Context, node string) error
	// Replace recreates a node from its image on its old data, as an
	// upgrade in place does: a graceful stop, then a new process.
	Replace(ctx context.Context, node string) error
	// Status is the cluster's view of its nodes and partitions.
	Status(ctx context.Context) (Status, error)
}

// Status is what Operator.Status reports.
type Status struct {
	Nodes []NodeStatus `json:"nodes"`
	// UnderReplicated and Offline count partitions with fewer in-sync
	// replicas than assigned, and without a leader.
	UnderReplicated int `json:"under_replicated"`
	Offline         int `json:"offline"`
}

// NodeStatus is one node as `skiff node list` shows it.
type NodeStatus struct {
	ID          string `json:"id"`
	State       string `json:"state"` // gossip: alive, suspect, dead, left
	Mode        string `json:"mode"`  // active, maintenance, degraded, decommissioning, decommissioned
	Maintenance bool   `json:"maintenance"`
	Replicas    int    `json:"replicas"`
	Leaders     int    `json:"leaders"`
	Blocked     string `json:"blocked,omitempty"` // why a decommission cannot go on
}

// Node returns the status of node id.
func (s Status) Node(id string) (NodeStatus, bool) {
	for _, n := range s.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return NodeStatus{}, false
}
