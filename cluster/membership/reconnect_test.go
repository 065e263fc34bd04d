package membership

import (
	"context"
	"testing"
	"time"
)

// TestFailedMemberIsReconnected: once the others have declared a member
// dead, memberlist alone never contacts it again. The member here comes
// back at its old address with no seeds of its own, like one side of a
// healed partition that has given the other up: only the others'
// reconnect loop can merge the cluster again.
func TestFailedMemberIsReconnected(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, "rc", 3, func(c *Config) { c.ReconnectInterval = 500 * time.Millisecond })
	a, c := nodes[0], nodes[2]
	addr, meta := c.Addr(), c.Local().Meta
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitView(t, a, failureBound, "rc2 dead", hasState("rc2", StateDead))

	cfg := testConfig(meta) // no seeds
	cfg.BindAddr = addr
	back, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { back.Shutdown() })
	waitView(t, a, 30*time.Second, "rc2 alive again", hasState("rc2", StateAlive))
	// The returned node learns the others from the push-pull of a reconnect,
	// or else from the periodic push-pull of either of them; on a loaded
	// machine the first can fail on its side, so allow for two more rounds.
	waitView(t, back, 60*time.Second, "the returned node sees all three", func([]Member) bool { return len(back.Alive()) == 3 })
}

func TestReconnectDisabled(t *testing.T) {
	cfg := testConfig(testMeta("x", 0))
	cfg.ReconnectInterval = -1
	if err := cfg.Validate(); err != nil {
		t.Fatalf("negative ReconnectInterval (disabled) refused: %v", err)
	}
}
