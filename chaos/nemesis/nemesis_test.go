package nemesis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/chaos/fault"
	"github.com/skiff-mq/skiff/chaos/history"
)

// fakeCluster records the faults asked of it; n1 leads everything and n3
// is the controller.
type fakeCluster struct {
	mu          sync.Mutex
	calls       []string
	unsupported bool
}

var _ fault.Cluster = (*fakeCluster)(nil)

func (f *fakeCluster) do(format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	return nil
}

func (f *fakeCluster) net(format string, args ...any) error {
	if f.unsupported {
		return fault.ErrUnsupported
	}
	return f.do(format, args...)
}

func (f *fakeCluster) Nodes(context.Context) ([]string, error) {
	return []string{"n1", "n2", "n3"}, nil
}
func (f *fakeCluster) Kill(_ context.Context, n string) error  { return f.do("kill %s", n) }
func (f *fakeCluster) Stop(_ context.Context, n string) error  { return f.do("stop %s", n) }
func (f *fakeCluster) Start(_ context.Context, n string) error { return f.do("start %s", n) }
func (f *fakeCluster) Pause(_ context.Context, n string) error { return f.net("pause %s", n) }
func (f *fakeCluster) Resume(_ context.Context, n string) error {
	return f.net("resume %s", n)
}
func (f *fakeCluster) Isolate(_ context.Context, n string) error { return f.net("isolate %s", n) }
func (f *fakeCluster) Partition(_ context.Context, a, b []string) error {
	return f.net("partition %s|%s", strings.Join(a, ","), strings.Join(b, ","))
}
func (f *fakeCluster) Loss(_ context.Context, n string, p float64) error {
	return f.net("loss %s %v", n, p)
}
func (f *fakeCluster) Delay(_ context.Context, n string, d, j time.Duration) error {
	return f.net("delay %s %v %v", n, d, j)
}
func (f *fakeCluster) Heal(context.Context) error        { return f.do("heal") }
func (f *fakeCluster) StartAll(context.Context) error    { return f.do("start-all") }
func (f *fakeCluster) WaitHealthy(context.Context) error { return nil }
func (f *fakeCluster) LeaderOf(context.Context, string, int32) (string, error) {
	return "n1", nil
}
func (f *fakeCluster) Controller(context.Context) (string, error) { return "n3", nil }

func TestScenariosInjectAndHealTheirFaults(t *testing.T) {
	tests := []struct {
		scenario string
		want     []string // the first calls, in order
	}{
		{"leader-kill", []string{"kill n1", "start n1"}},
		{"follower-kill", []string{"kill n2", "start n2"}},
		{"controller-kill", []string{"kill n3", "start n3"}},
		{"pause-leader", []string{"pause n1", "resume n1"}},
		{"isolate-leader", []string{"isolate n1", "heal"}},
		{"minority-partition", []string{"partition n2|n1,n3", "heal"}},
		{"majority-partition", []string{"partition n1|n2,n3", "heal"}},
		{"flaky-network", []string{"delay n1 20ms 20ms", "loss n1 5", "delay n2 20ms 20ms"}},
		{"rolling-restart", []string{"stop n1", "start n1", "stop n2", "start n2", "stop n3", "start n3"}},
		{"kill-all-restart", []string{"kill n1", "kill n2", "kill n3", "start-all"}},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			sc, err := Lookup(tt.scenario)
			if err != nil {
				t.Fatal(err)
			}
			f := &fakeCluster{}
			var mu sync.Mutex
			var faults []history.Event
			env := &Env{Cluster: f, Topic: "t", Partitions: 3,
				Record: func(e history.Event) { mu.Lock(); faults = append(faults, e); mu.Unlock() },
				T:      Timings{Down: 10 * time.Millisecond, Pause: 10 * time.Millisecond, Cut: 10 * time.Millisecond, Settle: time.Millisecond},
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if err := sc.Run(ctx, env); err != nil {
				t.Fatal(err)
			}
			if len(f.calls) < len(tt.want) || !slices.Equal(f.calls[:len(tt.want)], tt.want) {
				t.Fatalf("calls %q, want them to start with %q", f.calls, tt.want)
			}
			if len(faults) == 0 || len(faults)%2 != 0 {
				t.Fatalf("%d fault events, want start/stop pairs", len(faults))
			}
			if faults[0].Value != history.FaultStart || faults[len(faults)-1].Value != history.FaultStop {
				t.Fatalf("fault events %+v: want a start first and a stop last", faults)
			}
		})
	}
}

func TestScenarioReportsUnsupportedFault(t *testing.T) {
	sc, err := Lookup("pause-leader")
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Cluster: &fakeCluster{unsupported: true}, Topic: "t", Partitions: 1, Record: func(history.Event) {}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := sc.Run(ctx, env); !errors.Is(err, fault.ErrUnsupported) {
		t.Fatalf("Run = %v, want ErrUnsupported", err)
	}
}

func TestLookup(t *testing.T) {
	if _, err := Lookup("no-such"); err == nil {
		t.Fatal("Lookup of an unknown scenario succeeded")
	}
	names := Names()
	if len(names) != 14 || names[0] != "leader-kill" {
		t.Fatalf("Names() = %v", names)
	}
}
