package nemesis

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/chaos/fault"
	"github.com/skiff-mq/skiff/chaos/history"
)

// fakeOps is fakeCluster with disk faults and operator commands over a
// model of the nodes' status; its flags make it misbehave the way each
// scenario must catch.
type fakeOps struct {
	*fakeCluster
	mu    sync.Mutex // guards nodes
	nodes []fault.NodeStatus

	neverDegrade      bool // a full disk goes unnoticed
	keepReplicas      bool // a decommissioned node keeps replicas
	leadInMaintenance bool // a recreated node leads although in maintenance, for good
	noRebalance       bool // a new node gets no replica
}

var (
	_ fault.Disk     = (*fakeOps)(nil)
	_ fault.Operator = (*fakeOps)(nil)
)

func newFakeOps() *fakeOps {
	f := &fakeOps{fakeCluster: &fakeCluster{}}
	for _, id := range []string{"n1", "n2", "n3"} {
		f.nodes = append(f.nodes, fault.NodeStatus{ID: id, State: "alive", Mode: "active", Replicas: 6, Leaders: 2})
	}
	return f
}

func (f *fakeOps) set(id string, change func(*fault.NodeStatus)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.nodes {
		if f.nodes[i].ID == id {
			change(&f.nodes[i])
		}
	}
}

func (f *fakeOps) Nodes(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for _, n := range f.nodes {
		ids = append(ids, n.ID)
	}
	return ids, nil
}

func (f *fakeOps) DiskNodes(context.Context) ([]string, error) { return []string{"n3"}, nil }

func (f *fakeOps) FillDisk(_ context.Context, n string, leave int64) error {
	if !f.neverDegrade {
		f.set(n, func(s *fault.NodeStatus) { s.Mode, s.Leaders = "degraded", 0 })
	}
	return f.do("fill %s", n)
}

func (f *fakeOps) FreeDisk(_ context.Context, n string) error {
	f.set(n, func(s *fault.NodeStatus) { s.Mode = "active" })
	return f.do("free %s", n)
}

func (f *fakeOps) AddNode(context.Context) (string, error) {
	f.mu.Lock()
	id := "n4"
	share := 5
	if f.noRebalance {
		share = 0
	}
	f.nodes = append(f.nodes, fault.NodeStatus{ID: id, State: "alive", Mode: "active", Replicas: share})
	for i := range f.nodes[:3] {
		if !f.noRebalance {
			f.nodes[i].Replicas = 4 + i%2
		}
	}
	f.mu.Unlock()
	return id, f.do("add %s", id)
}

func (f *fakeOps) Decommission(_ context.Context, n string) error {
	f.set(n, func(s *fault.NodeStatus) {
		s.Mode, s.Replicas, s.Leaders = "decommissioned", 0, 0
		if f.keepReplicas {
			s.Replicas = 2
		}
	})
	return f.do("decommission %s", n)
}

func (f *fakeOps) Maintenance(_ context.Context, n string, on bool) error {
	f.set(n, func(s *fault.NodeStatus) {
		s.Maintenance = on
		if on {
			s.Leaders = 0
		}
	})
	state := "off"
	if on {
		state = "on"
	}
	return f.do("maintenance %s %s", n, state)
}

func (f *fakeOps) Remove(_ context.Context, n string) error {
	f.mu.Lock()
	f.nodes = slices.DeleteFunc(f.nodes, func(s fault.NodeStatus) bool { return s.ID == n })
	f.mu.Unlock()
	return f.do("remove %s", n)
}

func (f *fakeOps) Replace(_ context.Context, n string) error {
	if f.leadInMaintenance {
		f.set(n, func(s *fault.NodeStatus) { s.Leaders = 1 })
	}
	return f.do("replace %s", n)
}

func (f *fakeOps) Status(context.Context) (fault.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fault.Status{Nodes: slices.Clone(f.nodes)}, nil
}

func fastTimings() Timings {
	return Timings{Down: 10 * time.Millisecond, Pause: 10 * time.Millisecond, Cut: 10 * time.Millisecond,
		Settle: time.Millisecond, Healthy: 100 * time.Millisecond,
		Degrade: 50 * time.Millisecond, DiskRecover: 50 * time.Millisecond, Move: 50 * time.Millisecond, HandOn: 50 * time.Millisecond, Poll: 5 * time.Millisecond}
}

func TestOperationScenarios(t *testing.T) {
	tests := []struct {
		scenario string
		setup    func(*fakeOps)
		want     []string // every call, in order
		wantErr  string   // "" for success
	}{
		{scenario: "disk-full", want: []string{"fill n3", "free n3"}},
		{scenario: "disk-full", setup: func(f *fakeOps) { f.neverDegrade = true },
			want: []string{"fill n3", "free n3"}, wantErr: "n3 degraded: not within"},
		// Three nodes and RF 3: a node must be added before one can go.
		{scenario: "decommission-under-load", want: []string{"add n4", "decommission n1", "remove n1"}},
		{scenario: "decommission-under-load", setup: func(f *fakeOps) { f.keepReplicas = true },
			want: []string{"add n4", "decommission n1"}, wantErr: "still holds replicas"},
		{scenario: "add-node-rebalance", want: []string{"add n4"}},
		{scenario: "add-node-rebalance", setup: func(f *fakeOps) { f.noRebalance = true },
			want: []string{"add n4"}, wantErr: "replicas rebalanced onto n4: not within"},
		{scenario: "maintenance-rolling-upgrade", want: []string{
			"maintenance n1 on", "replace n1", "maintenance n1 off",
			"maintenance n2 on", "replace n2", "maintenance n2 off",
			"maintenance n3 on", "replace n3", "maintenance n3 off"}},
		// Maintenance goes off again even when the upgrade fails.
		{scenario: "maintenance-rolling-upgrade", setup: func(f *fakeOps) { f.leadInMaintenance = true },
			want: []string{"maintenance n1 on", "replace n1", "maintenance n1 off"}, wantErr: "n1 leads nothing while in maintenance: not within"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario+"/"+strings.ReplaceAll(tt.wantErr, " ", "_"), func(t *testing.T) {
			sc, err := Lookup(tt.scenario)
			if err != nil {
				t.Fatal(err)
			}
			f := newFakeOps()
			if tt.setup != nil {
				tt.setup(f)
			}
			var mu sync.Mutex
			var faults []history.Event
			env := &Env{Cluster: f, Topic: "t", Partitions: 3, Replication: 3,
				Record: func(e history.Event) { mu.Lock(); faults = append(faults, e); mu.Unlock() },
				T:      fastTimings(),
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			err = sc.Run(ctx, env)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Run = %v, want success", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Run = %v, want an error containing %q", err, tt.wantErr)
			}
			if !slices.Equal(f.calls, tt.want) {
				t.Fatalf("calls %q, want %q", f.calls, tt.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(faults) == 0 || len(faults)%2 != 0 {
				t.Fatalf("%d fault events, want start/stop pairs", len(faults))
			}
			if faults[0].Value != history.FaultStart || faults[len(faults)-1].Value != history.FaultStop {
				t.Fatalf("fault events %+v: want a start first and a stop last", faults)
			}
		})
	}
}

// A backend without disk faults or operator commands skips these
// scenarios, as it skips network faults it cannot inject.
func TestOperationScenariosUnsupported(t *testing.T) {
	for _, name := range []string{"disk-full", "decommission-under-load", "add-node-rebalance", "maintenance-rolling-upgrade"} {
		t.Run(name, func(t *testing.T) {
			sc, err := Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			env := &Env{Cluster: &fakeCluster{}, Topic: "t", Partitions: 1, Record: func(history.Event) {}, T: fastTimings()}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := sc.Run(ctx, env); !errors.Is(err, fault.ErrUnsupported) {
				t.Fatalf("Run = %v, want ErrUnsupported", err)
			}
		})
	}
}

func TestBalancedWith(t *testing.T) {
	node := func(id string, replicas int) fault.NodeStatus {
		return fault.NodeStatus{ID: id, State: "alive", Mode: "active", Replicas: replicas}
	}
	tests := []struct {
		name string
		st   fault.Status
		want bool
	}{
		{"even", fault.Status{Nodes: []fault.NodeStatus{node("a", 5), node("b", 6), node("n", 5)}}, true},
		{"new node empty", fault.Status{Nodes: []fault.NodeStatus{node("a", 7), node("b", 7), node("n", 0)}}, false},
		{"uneven", fault.Status{Nodes: []fault.NodeStatus{node("a", 7), node("b", 5), node("n", 5)}}, false},
		{"under-replicated", fault.Status{Nodes: []fault.NodeStatus{node("a", 5), node("b", 5), node("n", 5)}, UnderReplicated: 1}, false},
		{"dead node ignored", fault.Status{Nodes: []fault.NodeStatus{node("a", 5), node("b", 5), node("n", 5),
			{ID: "d", State: "dead", Mode: "active", Replicas: 0}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, why := balancedWith(tt.st, "n"); got != tt.want {
				t.Fatalf("balancedWith = %v (%s), want %v", got, why, tt.want)
			}
		})
	}
}
