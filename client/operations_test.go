package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/client"
)

func TestCreatePartitionsIsPickedUpByGroupsAndNeverShrinks(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	createTopic(t, cl, "growing", 1, 3)
	d := newDeliveries()
	startMember(t, cl, "a", client.GroupConsumerConfig{Group: "growing-g", Topics: []string{"growing"}, AutoOffsetReset: "earliest"}, d)
	startMember(t, cl, "b", client.GroupConsumerConfig{Group: "growing-g", Topics: []string{"growing"}, AutoOffsetReset: "earliest"}, d)
	produceN(t, cl, "growing", 0, 20)
	d.waitDistinct(t, 20, 30*time.Second)
	if got := assignedCounts(waitStable(t, cl, "growing-g", 2)); got[0]+got[1] != 1 {
		t.Fatalf("assigned %v before growing, want 1 partition in all", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ti, err := cl.CreatePartitions(ctx, "growing", 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(ti.Partitions) != 4 {
		t.Fatalf("after growing: %d partitions", len(ti.Partitions))
	}
	// Both members share the four partitions once they heartbeat.
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := assignedCounts(waitStable(t, cl, "growing-g", 2))
		if got[0] == 2 && got[1] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("assigned %v after growing to 4 partitions, want 2 and 2", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Records keyed onto the new partitions reach the group.
	produceN(t, cl, "growing", 20, 200)
	d.waitDistinct(t, 220, 60*time.Second)
	d.mu.Lock()
	onNew := 0
	for k := range d.seen {
		if !strings.HasPrefix(k, "growing/0/") {
			onNew++
		}
	}
	d.mu.Unlock()
	if onNew == 0 {
		t.Fatal("no record delivered from the new partitions")
	}

	var ia *client.InvalidArgumentError
	if _, err := cl.CreatePartitions(ctx, "growing", 2); !errors.As(err, &ia) || ia.Field != "partitions" || !strings.Contains(ia.Reason, "never removed") {
		t.Fatalf("shrink: %v", err)
	}
	if _, err := cl.CreatePartitions(ctx, "growing", 4); !errors.As(err, &ia) || !strings.Contains(ia.Reason, "already has 4") {
		t.Fatalf("same count: %v", err)
	}
	if _, err := cl.CreatePartitions(ctx, "growing", 0); !errors.As(err, &ia) {
		t.Fatalf("zero: %v", err)
	}
	if _, err := cl.CreatePartitions(ctx, "no-such-topic", 3); !errors.Is(err, client.ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
	if _, err := cl.CreatePartitions(ctx, "__consumer_offsets", 64); !errors.Is(err, client.ErrInternalTopic) {
		t.Fatalf("internal topic: %v", err)
	}
}

func TestNodeOperationsRefuseWhatCannotBeDone(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	createTopic(t, cl, "ops-rf3", 2, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes, err := cl.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 3 {
		t.Fatalf("nodes %+v", nodes)
	}
	for _, n := range nodes {
		if n.Mode != "active" || n.State != "alive" || n.Replicas < 2 || n.Meta != "voter" || n.Addr == "" {
			t.Fatalf("node %+v", n)
		}
	}
	victim := nodes[1].ID
	// Every node holds a replica of a three-replica topic: none can go.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cl.SetNodeMode(ctx, victim, client.Recommission)
	})
	if _, err := cl.SetNodeMode(ctx, victim, client.Decommission); !errors.Is(err, client.ErrRefused) || !strings.Contains(err.Error(), "only 2 other nodes") {
		t.Fatalf("decommission: %v", err)
	}
	if _, err := cl.SetNodeMode(ctx, "no-such-node", client.MaintenanceOn); !errors.Is(err, client.ErrUnknownNode) {
		t.Fatalf("unknown node: %v", err)
	}
	if _, err := cl.SetNodeMode(ctx, victim, client.NodeModeChange(99)); err == nil {
		t.Fatal("an unknown change was accepted")
	}
	// A replica cannot be moved to a node that does not exist.
	if _, err := cl.ReassignPartition(ctx, "ops-rf3", 0, []string{nodes[0].ID, "no-such-node"}); !errors.Is(err, client.ErrRefused) || !strings.Contains(err.Error(), "unknown") {
		t.Fatalf("reassign to an unknown node: %v", err)
	}
	ni, err := cl.SetNodeMode(ctx, victim, client.Recommission)
	if err != nil || ni.Mode != "active" {
		t.Fatalf("recommission of an active node: %+v %v", ni, err)
	}
}
