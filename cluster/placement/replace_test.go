package placement

import (
	"errors"
	"reflect"
	"testing"
)

func TestReplace(t *testing.T) {
	abc := []Node{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}}
	tests := []struct {
		name        string
		current     []string
		alive       []Node
		load        Load
		want        []string
		wantChanged bool
		wantErr     *NotEnoughNodesError
	}{
		{
			name: "all alive", current: []string{"b", "a"}, alive: abc,
			want: []string{"b", "a"},
		},
		{
			name: "dead follower goes to least loaded", current: []string{"a", "x", "b"}, alive: abc,
			load: Load{Replicas: map[string]int{"c": 5, "d": 2}},
			want: []string{"a", "d", "b"}, wantChanged: true,
		},
		{
			name: "dead leader replaced in slot 0 by the node leading least", current: []string{"x", "a"}, alive: abc,
			load: Load{Replicas: map[string]int{"c": 1, "d": 9}, Leaders: map[string]int{"b": 3, "c": 2}},
			want: []string{"d", "a"}, wantChanged: true,
		},
		{
			name: "duplicate is replaced", current: []string{"a", "a"}, alive: abc,
			want: []string{"a", "b"}, wantChanged: true,
		},
		{
			name:    "rack of survivors is avoided",
			current: []string{"a", "x"},
			alive:   []Node{{ID: "a", Rack: "1"}, {ID: "b", Rack: "1"}, {ID: "c", Rack: "2"}},
			load:    Load{Replicas: map[string]int{"c": 10}},
			want:    []string{"a", "c"}, wantChanged: true,
		},
		{
			name: "too few nodes gives the best partial list", current: []string{"x", "a", "y"}, alive: abc[:2],
			want: []string{"b", "a", "y"}, wantChanged: true, wantErr: &NotEnoughNodesError{Want: 3, Have: 2},
		},
		{
			name: "too few nodes and nothing possible", current: []string{"a", "y"}, alive: abc[:1],
			want: []string{"a", "y"}, wantErr: &NotEnoughNodesError{Want: 2, Have: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, changed, err := Replace(tc.current, tc.alive, tc.load)
			if !reflect.DeepEqual(got, tc.want) || changed != tc.wantChanged {
				t.Errorf("got %v changed=%v, want %v changed=%v", got, changed, tc.want, tc.wantChanged)
			}
			var ne *NotEnoughNodesError
			switch {
			case tc.wantErr == nil && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.wantErr != nil && (!errors.As(err, &ne) || *ne != *tc.wantErr):
				t.Errorf("err = %v, want %+v", err, tc.wantErr)
			}
		})
	}
}

func TestHealSpreadsADeadNodesReplicas(t *testing.T) {
	alive := nodesN(4) // n00..n03; "dead" held a replica of every partition
	var parts []Partition
	load := Load{}
	for p := range 8 {
		r := []string{alive[p%4].ID, "dead"}
		parts = append(parts, Partition{Topic: "t", Partition: int32(p), Replicas: r})
		load.Add(r, 1)
	}
	moves, err := Heal(parts, alive, load)
	if err != nil {
		t.Fatal(err)
	}
	if len(moves) != 8 {
		t.Fatalf("%d moves, want 8", len(moves))
	}
	after := map[string]int{}
	for _, m := range moves {
		if m.Replicas[1] == m.Replicas[0] || m.Replicas[1] == "dead" {
			t.Fatalf("bad move %+v", m)
		}
		after[m.Replicas[1]]++
	}
	for _, n := range alive {
		if after[n.ID] != 2 {
			t.Errorf("%s received %d replicas, want 2 (all: %v)", n.ID, after[n.ID], after)
		}
	}
}

func TestHealReportsTheLargestShortfall(t *testing.T) {
	parts := []Partition{
		{Topic: "a", Partition: 0, Replicas: []string{"n00", "x"}},
		{Topic: "b", Partition: 0, Replicas: []string{"n00", "x", "y"}},
	}
	moves, err := Heal(parts, nodesN(2), Load{})
	var ne *NotEnoughNodesError
	if !errors.As(err, &ne) || *ne != (NotEnoughNodesError{Want: 3, Have: 2}) {
		t.Fatalf("err = %v", err)
	}
	// Both partitions got n01: partial healing is reported too.
	if len(moves) != 2 {
		t.Fatalf("moves %+v", moves)
	}
}

func TestBalanceLeadersUsesChains(t *testing.T) {
	// a leads p0 and p1, c leads nothing, and no partition holds both a and
	// c: only the chain a→b (p1), b→c (p2) evens it out.
	parts := []Partition{
		{Topic: "t", Partition: 0, Replicas: []string{"a"}},
		{Topic: "t", Partition: 1, Replicas: []string{"a", "b"}},
		{Topic: "t", Partition: 2, Replicas: []string{"b", "c"}},
	}
	moves, err := BalanceLeaders(parts, []Node{{ID: "a"}, {ID: "b"}, {ID: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Move{
		{Topic: "t", Partition: 1, Replicas: []string{"b", "a"}},
		{Topic: "t", Partition: 2, Replicas: []string{"c", "b"}},
	}
	if !reflect.DeepEqual(moves, want) {
		t.Fatalf("moves %+v, want %+v", moves, want)
	}
}

func TestBalanceLeadersLeavesDeadLeadersAlone(t *testing.T) {
	parts := []Partition{
		{Topic: "t", Partition: 0, Replicas: []string{"dead", "a"}},
		{Topic: "t", Partition: 1, Replicas: []string{"dead", "a"}},
	}
	moves, err := BalanceLeaders(parts, []Node{{ID: "a"}, {ID: "b"}})
	if err != nil || len(moves) != 0 {
		t.Fatalf("moves %+v, err %v; want none", moves, err)
	}
}
