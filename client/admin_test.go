package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/client"
)

func TestAdminTopicLifecycle(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	created, err := cl.CreateTopic(ctx, "admin-lifecycle", 3, 3, map[string]string{"retention.ms": "3600000"})
	if err != nil {
		t.Fatal(err)
	}
	if created.Name != "admin-lifecycle" || len(created.Partitions) != 3 {
		t.Fatalf("created %+v", created)
	}
	for _, p := range created.Partitions {
		if len(p.Replicas) != 3 {
			t.Fatalf("partition %d replicas %v, want 3", p.Partition, p.Replicas)
		}
	}
	if _, err := cl.CreateTopic(ctx, "admin-lifecycle", 3, 3, nil); !errors.Is(err, client.ErrTopicExists) {
		t.Fatalf("second create: %v, want ErrTopicExists", err)
	}

	createTopic(t, cl, "admin-described", 2, 3) // waits for leaders
	// A new partition's first leader soon hands over to its preferred
	// replica, and a describe during the handover shows no leader: wait
	// for a description of the settled topic.
	described := func() (client.TopicInfo, bool) {
		ti, err := cl.DescribeTopic(ctx, "admin-described")
		if err != nil {
			return ti, false
		}
		for _, p := range ti.Partitions {
			if p.Leader == "" || p.LeaderAddr == "" || len(p.InSync) == 0 || p.HighWatermark != 0 || p.LogStartOffset != 0 {
				return ti, false
			}
		}
		return ti, true
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ti, ok := described()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions %+v", ti.Partitions)
		}
		time.Sleep(50 * time.Millisecond)
	}

	topics, err := cl.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, tp := range topics {
		names[tp.Name] = true
	}
	if !names["admin-lifecycle"] || !names["admin-described"] {
		t.Fatalf("ListTopics lacks the new topics: %v", names)
	}

	altered, err := cl.AlterTopicConfig(ctx, "admin-lifecycle", map[string]string{"retention.ms": "7200000"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if altered.Configs["retention.ms"] != "7200000" {
		t.Fatalf("after alter: configs %v", altered.Configs)
	}
	altered, err = cl.AlterTopicConfig(ctx, "admin-lifecycle", nil, []string{"retention.ms"})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := altered.Configs["retention.ms"]; ok && v == "7200000" {
		t.Fatalf("after delete-config: retention.ms still %q", v)
	}

	if err := cl.DeleteTopic(ctx, "admin-lifecycle"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.DescribeTopic(ctx, "admin-lifecycle"); !errors.Is(err, client.ErrUnknownTopic) {
		t.Fatalf("describe after delete: %v, want ErrUnknownTopic", err)
	}
	if err := cl.DeleteTopic(ctx, "admin-lifecycle"); !errors.Is(err, client.ErrUnknownTopic) {
		t.Fatalf("second delete: %v, want ErrUnknownTopic", err)
	}
}

func TestAdminRejectsBadInputWithTheField(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name       string
		topic      string
		partitions int
		rf         int
	}{
		{"bad name", "no/slashes", 1, 1},
		{"dot name", "..", 1, 1},
		{"zero partitions", "admin-bad-partitions", 0, 1},
		{"replication above the nodes", "admin-bad-rf", 1, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cl.CreateTopic(ctx, tc.topic, tc.partitions, tc.rf, nil)
			var ia *client.InvalidArgumentError
			if !errors.As(err, &ia) || ia.Field == "" {
				t.Fatalf("got %v (%T), want *InvalidArgumentError naming the field", err, err)
			}
		})
	}
}

func TestDescribeCluster(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A loaded machine can have the meta group between leaders for a
	// moment (no controller): ask again until it has one.
	var ci client.ClusterInfo
	for {
		var err error
		ci, err = cl.DescribeCluster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ci.ControllerID != "" || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(ci.Brokers) != 3 || ci.ControllerID == "" {
		t.Fatalf("cluster %+v", ci)
	}
	for _, b := range ci.Brokers {
		if b.ID == "" || b.Addr == "" || b.State != "alive" {
			t.Fatalf("broker %+v", b)
		}
	}
}

func TestNewFailsWithoutABroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.New(ctx, client.Config{Brokers: []string{"127.0.0.1:1"}, DialTimeout: time.Second}); err == nil {
		t.Fatal("New succeeded with no broker listening")
	}
	if _, err := client.New(ctx, client.Config{}); err == nil {
		t.Fatal("New succeeded without brokers")
	}
}
