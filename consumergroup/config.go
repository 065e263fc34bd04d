package consumergroup

import (
	"errors"
	"log/slog"
	"time"
)

// Config tunes the coordinator. Zero fields take the documented defaults
// (see DefaultConfig).
type Config struct {
	// SessionTimeout removes a member that has not heartbeaten for this
	// long and gives its partitions to others. Default 10s (Kafka's
	// group.consumer.session.timeout.ms is 45s; ours favours fast
	// failover).
	SessionTimeout time.Duration
	// HeartbeatInterval is what members are told to heartbeat at.
	// Default 1s. Must be below SessionTimeout.
	HeartbeatInterval time.Duration
	// RebalanceTimeout is how long a member may take to release partitions
	// it was asked to give up before it is removed from the group, when the
	// member does not send its own. Default 60s.
	RebalanceTimeout time.Duration
	// AdoptWindow is how long after becoming coordinator this node accepts
	// heartbeats from members it has never seen (members of the previous
	// coordinator), keeping their epoch and partitions. Default
	// 3×SessionTimeout.
	AdoptWindow time.Duration
	// CheckpointBytes is how many bytes of offsets log may accumulate after
	// the last checkpoint before the coordinator writes a new one (and the
	// replicas delete what it supersedes). Default 16 MiB.
	CheckpointBytes int64
	// TickInterval paces session expiry, pattern re-resolution and
	// checkpoints. Default 250ms.
	TickInterval time.Duration
	// LagInterval paces the refresh of the lag metrics. Default 5s.
	LagInterval time.Duration
	// MaxGroupMembers bounds the members of one consumer group, and of one
	// share group (`skiff server --max-group-members`); a join beyond it
	// fails with ErrLimitExceeded. Default 1000.
	MaxGroupMembers int
	// Logger receives the coordinator's logs. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		SessionTimeout:    10 * time.Second,
		HeartbeatInterval: time.Second,
		RebalanceTimeout:  60 * time.Second,
		CheckpointBytes:   16 << 20,
		TickInterval:      250 * time.Millisecond,
		LagInterval:       5 * time.Second,
		MaxGroupMembers:   1000,
		Logger:            slog.New(slog.DiscardHandler),
		Now:               time.Now,
	}
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = d.SessionTimeout
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = d.HeartbeatInterval
	}
	if c.RebalanceTimeout <= 0 {
		c.RebalanceTimeout = d.RebalanceTimeout
	}
	if c.AdoptWindow <= 0 {
		c.AdoptWindow = 3 * c.SessionTimeout
	}
	if c.CheckpointBytes <= 0 {
		c.CheckpointBytes = d.CheckpointBytes
	}
	if c.TickInterval <= 0 {
		c.TickInterval = d.TickInterval
	}
	if c.LagInterval <= 0 {
		c.LagInterval = d.LagInterval
	}
	if c.MaxGroupMembers <= 0 {
		c.MaxGroupMembers = d.MaxGroupMembers
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	return c
}

// Validate reports settings that cannot work together.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.HeartbeatInterval >= c.SessionTimeout {
		return errors.New("consumer group config: heartbeat interval must be below the session timeout")
	}
	return nil
}
