package rpc

import "time"

// throttle is a token bucket, the pure core of quota enforcement: no clock
// of its own, no locking; the caller passes the time and serializes calls.
//
// It refills at rate tokens a second up to a burst of one second's worth.
// A charge always succeeds and may leave the bucket in debt; the delay it
// returns is how long until the debt is repaid, which is how Kafka
// throttles: the request is served, its answer is held back. A client that
// waits out every delay before its next request is admitted at rate on
// average, plus at most one burst.
type throttle struct {
	rate   float64   // tokens a second, > 0
	tokens float64   // may be negative: the debt
	last   time.Time // when tokens was last refilled
}

func newThrottle(rate int64, now time.Time) *throttle {
	return &throttle{rate: float64(rate), tokens: float64(rate), last: now}
}

// refill adds the tokens earned since last, up to the burst. A clock that
// went backwards earns nothing.
func (t *throttle) refill(now time.Time) {
	if d := now.Sub(t.last); d > 0 {
		t.tokens = min(t.rate, t.tokens+d.Seconds()*t.rate)
		t.last = now
	}
}

// Charge takes cost tokens at now and returns how long until the bucket is
// back to zero (0 if it is not in debt).
func (t *throttle) Charge(now time.Time, cost int64) time.Duration {
	t.refill(now)
	t.tokens -= float64(cost)
	if t.tokens >= 0 {
		return 0
	}
	return time.Duration(-t.tokens / t.rate * float64(time.Second))
}

// SetRate changes the rate (a quota changed), keeping the debt; tokens
// beyond the new burst are dropped.
func (t *throttle) SetRate(now time.Time, rate int64) {
	t.refill(now)
	t.rate = float64(rate)
	t.tokens = min(t.tokens, t.rate)
}

// Full reports whether the bucket would be full at now: such a bucket is
// the same as a new one, so forgetting it changes nothing.
func (t *throttle) Full(now time.Time) bool {
	return t.tokens+now.Sub(t.last).Seconds()*t.rate >= t.rate
}
