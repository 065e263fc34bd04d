package client

import (
	"context"
	"errors"
	"time"
)

// Brokers that go silent.
//
// A broker that is paused, frozen or cut off by a firewall that drops
// packets neither answers nor resets the connection, and gRPC's keepalive
// cannot notice it sooner than in 10 s (grpc-go's floor for client pings).
// The first sign is a request that runs into its deadline. From then on,
// until the broker answers anything, the client asks other brokers first
// for metadata, and a request whose cached leader is that broker first
// refreshes the metadata fetched before the silence: during a failover the
// cluster names the new leader long before the old one comes back, and a
// retry sent to the silent one would wait out another whole deadline.

// silentFor bounds how long a silence counts without a new one.
const silentFor = 10 * time.Second

// observe updates the silent set with the outcome of a request to addr: an
// answer of any kind clears it, a deadline with no answer marks it.
func (c *Client) observe(addr string, err error) {
	switch {
	case err == nil || answeredWith(err):
		c.mu.Lock()
		delete(c.silent, addr)
		c.mu.Unlock()
	case errors.Is(err, context.DeadlineExceeded):
		c.mu.Lock()
		if c.silent == nil {
			c.silent = make(map[string]time.Time)
		}
		if _, ok := c.silent[addr]; !ok {
			c.log.Debug("broker went silent", "broker", addr)
		}
		c.silent[addr] = time.Now()
		c.mu.Unlock()
	}
}

// answeredWith reports whether err is a broker's own answer, as opposed to
// a failure to get one (deadline, cancellation, transport error).
func answeredWith(err error) bool {
	return !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && !errors.Is(err, ErrUnavailable)
}

// silentSince returns when addr last let a request run into its deadline,
// if that was within silentFor and nothing answered since.
func (c *Client) silentSince(addr string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.silent[addr]
	if !ok {
		return time.Time{}, false
	}
	if time.Since(at) > silentFor {
		delete(c.silent, addr)
		return time.Time{}, false
	}
	return at, true
}
