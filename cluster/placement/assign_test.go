package placement

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

func TestAssignTopicThreeNodesTwelvePartitionsEachLeadsFour(t *testing.T) {
	nodes := nodesN(3)
	got, err := AssignTopic(nodes, Load{}, 12, 3)
	if err != nil {
		t.Fatal(err)
	}
	replicas, leaders := counts(got)
	for _, n := range nodes {
		if leaders[n.ID] != 4 || replicas[n.ID] != 12 {
			t.Errorf("%s: leads %d, holds %d; want 4 and 12", n.ID, leaders[n.ID], replicas[n.ID])
		}
	}
}

func TestAssignTopicShapes(t *testing.T) {
	tests := []struct {
		name         string
		nodes        int
		partitions   int
		rf           int
		wantReplicas int // per node, exactly
		wantLeaders  int
	}{
		{"single node", 1, 5, 1, 5, 5},
		{"rf1 spreads", 4, 8, 1, 2, 2},
		{"rf2 on four nodes", 4, 4, 2, 2, 1},
		{"rf3 on six nodes", 6, 12, 3, 6, 2},
		{"rf equals nodes", 5, 10, 5, 10, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nodes := nodesN(tc.nodes)
			got, err := AssignTopic(nodes, Load{}, tc.partitions, tc.rf)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.partitions {
				t.Fatalf("got %d partitions, want %d", len(got), tc.partitions)
			}
			for p, r := range got {
				if len(r) != tc.rf || !distinct(r) {
					t.Errorf("partition %d: replicas %v, want %d distinct", p, r, tc.rf)
				}
			}
			replicas, leaders := counts(got)
			for _, n := range nodes {
				if replicas[n.ID] != tc.wantReplicas || leaders[n.ID] != tc.wantLeaders {
					t.Errorf("%s: %d replicas, %d leaderships; want %d and %d", n.ID, replicas[n.ID], leaders[n.ID], tc.wantReplicas, tc.wantLeaders)
				}
			}
		})
	}
}

func TestAssignTopicRejects(t *testing.T) {
	tests := []struct {
		name       string
		nodes      []Node
		partitions int
		rf         int
		notEnough  *NotEnoughNodesError
	}{
		{"rf above nodes", nodesN(2), 3, 3, &NotEnoughNodesError{Want: 3, Have: 2}},
		{"no nodes", nil, 1, 1, &NotEnoughNodesError{Want: 1, Have: 0}},
		{"zero partitions", nodesN(3), 0, 1, nil},
		{"zero rf", nodesN(3), 1, 0, nil},
		{"duplicate node", []Node{{ID: "a"}, {ID: "a"}}, 1, 1, nil},
		{"empty id", []Node{{ID: ""}}, 1, 1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AssignTopic(tc.nodes, Load{}, tc.partitions, tc.rf)
			if err == nil {
				t.Fatalf("got %v, want an error", got)
			}
			var ne *NotEnoughNodesError
			if tc.notEnough != nil {
				if !errors.As(err, &ne) || *ne != *tc.notEnough {
					t.Fatalf("err = %v, want %+v", err, tc.notEnough)
				}
			} else if errors.As(err, &ne) {
				t.Fatalf("err = %v, want a plain argument error", err)
			}
		})
	}
}

func TestAssignTopicSpreadsRacks(t *testing.T) {
	// Three racks of two: every partition of RF 3 must use all three.
	var nodes []Node
	for r := range 3 {
		for i := range 2 {
			nodes = append(nodes, Node{ID: fmt.Sprintf("r%dn%d", r, i), Rack: fmt.Sprintf("rack%d", r)})
		}
	}
	got, err := AssignTopic(nodes, Load{}, 12, 3)
	if err != nil {
		t.Fatal(err)
	}
	dom := domainsOf(nodes)
	for p, r := range got {
		if n := countDistinct(r, func(id string) string { return dom[id] }); n != 3 {
			t.Errorf("partition %d: %v spans %d racks, want 3", p, r, n)
		}
	}
	replicas, leaders := counts(got)
	if spread(replicas, nodes) > 1 || spread(leaders, nodes) > 1 {
		t.Errorf("unbalanced: replicas %v leaders %v", replicas, leaders)
	}
}

func TestAssignTopicLoneRackGetsEveryPartition(t *testing.T) {
	// Rack spread wins over balance, like Kafka: with racks {a} and {b,c,d}
	// and RF 2, the node alone in its rack holds a replica of everything.
	nodes := []Node{{ID: "a", Rack: "x"}, {ID: "b", Rack: "y"}, {ID: "c", Rack: "y"}, {ID: "d", Rack: "y"}}
	got, err := AssignTopic(nodes, Load{}, 6, 2)
	if err != nil {
		t.Fatal(err)
	}
	for p, r := range got {
		if r[0] != "a" && r[1] != "a" {
			t.Errorf("partition %d: %v lacks the lone rack's node", p, r)
		}
	}
}

func TestAssignTopicPrefersIdleNodes(t *testing.T) {
	nodes := nodesN(4)
	load := Load{
		Replicas: map[string]int{"n00": 50, "n01": 50, "n02": 0, "n03": 0, "gone": 99},
		Leaders:  map[string]int{"n00": 25, "n01": 25, "gone": 99},
	}
	got, err := AssignTopic(nodes, load, 6, 2)
	if err != nil {
		t.Fatal(err)
	}
	for p, r := range got {
		for _, id := range r {
			if id != "n02" && id != "n03" {
				t.Errorf("partition %d: %v uses busy node %s", p, r, id)
			}
		}
	}
	_, leaders := counts(got)
	if leaders["n02"] != 3 || leaders["n03"] != 3 {
		t.Errorf("leaders %v, want 3 each on the idle nodes", leaders)
	}
}

func TestAssignTopicIgnoresNodeOrder(t *testing.T) {
	a := []Node{{ID: "c", Rack: "1"}, {ID: "a", Rack: "2"}, {ID: "b", Rack: "1"}, {ID: "d"}}
	b := []Node{a[3], a[1], a[0], a[2]}
	x, err := AssignTopic(a, Load{}, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	y, err := AssignTopic(b, Load{}, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(x, y) {
		t.Fatalf("node order changed the result:\n%v\n%v", x, y)
	}
}
