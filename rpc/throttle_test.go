package rpc

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestThrottleCharges(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		at    time.Duration
		cost  int64
		delay time.Duration
	}
	for _, tc := range []struct {
		name  string
		rate  int64
		steps []step
	}{
		{"the burst of one second is free", 100, []step{{0, 60, 0}, {0, 40, 0}, {0, 1, 10 * time.Millisecond}}},
		{"debt is repaid at the rate", 100, []step{{0, 300, 2 * time.Second}, {2 * time.Second, 50, 500 * time.Millisecond}}},
		{"waiting out the delay brings the next charge to its own cost", 1000, []step{{0, 1000, 0}, {0, 500, 500 * time.Millisecond}, {500 * time.Millisecond, 500, 500 * time.Millisecond}}},
		{"idle time refills, up to the burst only", 100, []step{{0, 100, 0}, {time.Hour, 100, 0}, {time.Hour, 100, time.Second}}},
		{"a clock going backwards earns nothing", 100, []step{{time.Second, 100, 0}, {0, 50, 500 * time.Millisecond}}},
		{"a zero cost never waits", 1, []step{{0, 0, 0}, {0, 0, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th := newThrottle(tc.rate, t0)
			for i, s := range tc.steps {
				if got := th.Charge(at(s.at), s.cost); got != s.delay {
					t.Fatalf("step %d: charge %d at %v: delay %v, want %v", i, s.cost, s.at, got, s.delay)
				}
			}
		})
	}
}

func TestThrottleSetRateAndFull(t *testing.T) {
	t0 := time.Unix(0, 0)
	th := newThrottle(100, t0)
	if !th.Full(t0) {
		t.Fatal("a new bucket is not full")
	}
	th.Charge(t0, 300) // 200 in debt
	if th.Full(t0.Add(2 * time.Second)) {
		t.Fatal("full while still short of the burst")
	}
	if !th.Full(t0.Add(3 * time.Second)) {
		t.Fatal("not full after the debt and the burst were earned back")
	}
	th.SetRate(t0, 1000) // the debt of 200 now takes 0.2s
	if got := th.Charge(t0, 0); got != 200*time.Millisecond {
		t.Fatalf("after raising the rate: delay %v, want 200ms", got)
	}
}

// TestThrottleAdmitsTheQuotaRate simulates clients that each send a request
// of random size, wait out the delay it earned, and send again: over a long
// simulated run the bytes admitted per second converge to the rate,
// whatever the number of clients and sizes. Clients that also think a
// random while between requests may use less, never more.
func TestThrottleAdmitsTheQuotaRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		rate := int64(1 + rng.IntN(1<<20))
		clients := 1 + rng.IntN(8)
		maxCost := 1 + rng.Int64N(rate/2+1) // up to half a second's worth per request
		busy := trial%2 == 0                // every client sends as fast as it may
		var maxThink time.Duration
		if !busy {
			maxThink = time.Duration(rng.Int64N(int64(100 * time.Millisecond)))
		}
		const run = 1000 * time.Second

		t0 := time.Unix(0, 0)
		th := newThrottle(rate, t0)
		next := make([]time.Duration, clients) // when each client sends again
		var admitted int64
		for {
			c := 0 // the client due first: the bucket sees charges in time order
			for i := range next {
				if next[i] < next[c] {
					c = i
				}
			}
			now := next[c]
			if now >= run {
				break
			}
			cost := 1 + rng.Int64N(maxCost)
			admitted += cost
			delay := th.Charge(t0.Add(now), cost)
			var think time.Duration
			if maxThink > 0 {
				think = time.Duration(rng.Int64N(int64(maxThink)))
			}
			next[c] = now + delay + think
		}
		got := float64(admitted) / run.Seconds()
		if ratio := got / float64(rate); ratio > 1.03 || busy && ratio < 0.97 {
			t.Fatalf("trial %d: rate %d, %d clients, costs up to %d: admitted %.0f/s (%.3f of the quota)", trial, rate, clients, maxCost, got, ratio)
		}
	}
}
