package cluster

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestSimultaneousCloseIsPrompt closes every node at once, as `skiff dev`
// does on Ctrl-C: nodes must not wait out timeouts on peers that are
// themselves going away, one partition after another.
func TestSimultaneousCloseIsPrompt(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.anyNode().CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 12, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	c.waitAllLed("t", 30*time.Second)
	start := time.Now()
	var wg sync.WaitGroup
	for _, tn := range c.nodes {
		n := tn.node()
		tn.cur.Store(nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			n.Close(cctx)
		}()
	}
	wg.Wait()
	// Reported, not asserted: wall-clock bounds belong in benchmarks.
	t.Logf("three nodes with 36 replicas closed together in %v", time.Since(start))
}
