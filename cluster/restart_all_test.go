package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestWholeClusterCrashKeepsEveryAckedRecord kills every node at once and
// restarts them all. Until the meta group has a leader again, each node's
// metadata is empty (or at its snapshot): reconciliation must not take
// that for "no topics" and delete the partitions' directories, which lost
// every record (found by scripts/chaos.sh kill-all-restart).
func TestWholeClusterCrashKeepsEveryAckedRecord(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c.createLedTopic(ctx, "t", 3, 3)
	a := &acked{}
	for seq := int32(0); seq < 30; seq++ {
		res, err := c.produce(ctx, "t", seq%3, batchOf(t, int64(seq%3), seq/3))
		if err != nil {
			t.Fatal(err)
		}
		a.add(fmt.Sprintf("p%d-s%d", seq%3, seq/3), seq%3, res.BaseOffset)
	}
	for _, tn := range c.nodes {
		c.stop(tn, false)
	}
	for _, tn := range c.nodes {
		c.restart(tn)
	}
	c.waitReady(30 * time.Second)
	c.waitAllLed("t", 30*time.Second)
	c.verifyAcked("t", a)
}
