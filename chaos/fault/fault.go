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
