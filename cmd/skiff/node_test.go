package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestNodeDecommissionFollowsProgressToTheEnd takes one node of four out
// through the CLI: the command shows progress until the node holds nothing
// and has left the metadata group.
func TestNodeDecommissionFollowsProgressToTheEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a dev cluster")
	}
	c := startDevClusterOf(t, 4)
	c.mustRun(t, "", "topic", "create", "cli-decom", "--partitions", "6", "--replication", "3")
	out := c.mustRun(t, "", "node", "decommission", "node-3", "--interval", "200ms", "--wait-timeout", "120s", "--timeout", "150s")
	if !strings.Contains(out, "replicas left") || !strings.Contains(out, "node-3: decommissioned: no replicas left, out of the metadata group") {
		t.Fatalf("decommission said:\n%s", out)
	}
	var nodes []nodeJSON
	if err := json.Unmarshal([]byte(c.mustRun(t, "", "node", "list", "-o", "json")), &nodes); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.ID == "node-3" && (n.Mode != "decommissioned" || n.Replicas != 0 || n.Meta != "") {
			t.Fatalf("after decommission: %+v", n)
		}
	}
	var ti topicJSON
	if err := json.Unmarshal([]byte(c.mustRun(t, "", "topic", "describe", "cli-decom", "-o", "json")), &ti); err != nil {
		t.Fatal(err)
	}
	for _, p := range ti.Partitions {
		for _, r := range p.Replicas {
			if r == "node-3" || len(p.Replicas) != 3 {
				t.Fatalf("partition %+v", p)
			}
		}
	}
	// Running it again reports the end at once; recommission brings it back.
	if out := c.mustRun(t, "", "node", "decommission", "node-3"); !strings.Contains(out, "decommissioned") {
		t.Fatalf("second decommission said %q", out)
	}
	if out := c.mustRun(t, "", "node", "recommission", "node-3"); !strings.Contains(out, "node-3: active") {
		t.Fatalf("recommission said %q", out)
	}
	var dry rebalanceJSON
	if err := json.Unmarshal([]byte(c.mustRun(t, "", "cluster", "rebalance", "--dry-run", "-o", "json")), &dry); err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || dry.Applying || len(dry.Moves) == 0 {
		t.Fatalf("a recommissioned empty node needs replicas: %+v", dry)
	}
	if out := c.mustRun(t, "", "cluster", "rebalance"); !strings.Contains(out, "applying in the background") {
		t.Fatalf("rebalance said %q", out)
	}
}
