package log

import (
	"math"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// SyncPolicy says when the log fsyncs appended data on its own.
type SyncPolicy int

const (
	// SyncNever leaves fsync to the caller (Log.Sync). The partition layer
	// uses it: it syncs once per group of Raft entries, not once per batch.
	SyncNever SyncPolicy = iota
	// SyncEveryAppend fsyncs data and journal before Append returns.
	SyncEveryAppend
	// SyncInterval fsyncs from a background goroutine every Config.SyncInterval
	// (wall-clock time, not Config.Now) when something was appended since the
	// last sync.
	SyncInterval
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncNever:
		return "never"
	case SyncEveryAppend:
		return "every-append"
	case SyncInterval:
		return "interval"
	}
	return "unknown"
}

// Defaults used by DefaultConfig.
const (
	DefaultSegmentBytes       = 128 << 20
	DefaultSegmentMaxAge      = 7 * 24 * time.Hour
	DefaultIndexIntervalBytes = 4096
	// DefaultMaxBatchBytes is 1 MiB plus 1 KiB of slack, so that a batch
	// carrying one record of exactly 1 MiB (the default max message size of a
	// topic) still fits with its 61-byte batch header and the record's own
	// framing (length, attributes, deltas and key/header lengths as varints).
	DefaultMaxBatchBytes = 1<<20 + 1<<10
	DefaultRetentionAge  = 7 * 24 * time.Hour
	DefaultSyncInterval  = time.Second
)

// Limits enforced by Validate. They keep every file position and relative
// offset inside a segment within 32 bits, which is what the index formats
// store.
const (
	// MaxSegmentBytes bounds Config.SegmentBytes (Kafka's segment.bytes is an
	// int32 as well).
	MaxSegmentBytes = math.MaxInt32
	// MaxMaxBatchBytes bounds Config.MaxBatchBytes.
	MaxMaxBatchBytes = 1 << 30
)

// Config tunes a Log. Start from DefaultConfig and change what you need.
type Config struct {
	// SegmentBytes rolls the active segment when the next batch would push it
	// past this size (a single batch larger than this gets a segment of its
	// own). Default 128 MiB; at most MaxSegmentBytes.
	SegmentBytes int64
	// SegmentMaxAge rolls the active segment when its first batch was appended
	// longer ago than this, by Now. It uses the append time recorded in the
	// segment's journal, not the producer's record timestamps, so a producer
	// with a skewed clock cannot make the log roll on every append.
	// Default 7 days; 0 disables age-based rolling.
	SegmentMaxAge time.Duration
	// IndexIntervalBytes is the number of data bytes between two entries of the
	// sparse offset and time indexes. Smaller means faster lookups and more
	// memory (8+12 bytes per entry). Default 4096.
	IndexIntervalBytes int
	// MaxBatchBytes is the largest batch (header included) Append accepts.
	// Recovery also treats a length field above it as corruption (a torn or
	// garbage length must not make it read gigabytes), so raise it freely but
	// lower it only if no larger batch was ever written: a larger batch in a
	// segment that recovery scans would end the log there.
	// Default DefaultMaxBatchBytes (1 MiB + 1 KiB); at most MaxMaxBatchBytes.
	MaxBatchBytes int
	// RetentionBytes deletes the oldest sealed segments while the log would
	// still hold at least this many bytes without them. Negative means
	// unlimited; the default is -1.
	RetentionBytes int64
	// RetentionAge deletes sealed segments whose newest record timestamp
	// (the largest MaxTimestamp of their batches) is older than this, by Now.
	// Zero or negative means unlimited. Default 7 days.
	RetentionAge time.Duration
	// Sync is the fsync policy; default SyncNever.
	Sync SyncPolicy
	// SyncInterval is the period of the background fsync under SyncInterval.
	// Default 1s.
	SyncInterval time.Duration
	// Now is the clock for rolling by age and retention by age. Tests inject a
	// fake one. nil means time.Now.
	Now func() time.Time
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:       DefaultSegmentBytes,
		SegmentMaxAge:      DefaultSegmentMaxAge,
		IndexIntervalBytes: DefaultIndexIntervalBytes,
		MaxBatchBytes:      DefaultMaxBatchBytes,
		RetentionBytes:     -1,
		RetentionAge:       DefaultRetentionAge,
		Sync:               SyncNever,
		SyncInterval:       DefaultSyncInterval,
		Now:                time.Now,
	}
}

// Validate reports the first field that holds an unusable value, as a
// *ConfigError (errors.Is(err, ErrInvalidConfig)).
func (c Config) Validate() error {
	switch {
	case c.SegmentBytes <= 0 || c.SegmentBytes > MaxSegmentBytes:
		return &ConfigError{Field: "SegmentBytes", Reason: "must be in [1, MaxSegmentBytes]"}
	case c.SegmentMaxAge < 0:
		return &ConfigError{Field: "SegmentMaxAge", Reason: "must not be negative (0 disables)"}
	case c.IndexIntervalBytes <= 0 || c.IndexIntervalBytes > math.MaxInt32:
		return &ConfigError{Field: "IndexIntervalBytes", Reason: "must be positive and fit in int32"}
	case c.MaxBatchBytes < record.HeaderSize || c.MaxBatchBytes > MaxMaxBatchBytes:
		return &ConfigError{Field: "MaxBatchBytes", Reason: "must be in [61, MaxMaxBatchBytes]"}
	case c.Sync < SyncNever || c.Sync > SyncInterval:
		return &ConfigError{Field: "Sync", Reason: "unknown sync policy"}
	case c.Sync == SyncInterval && c.SyncInterval <= 0:
		return &ConfigError{Field: "SyncInterval", Reason: "must be positive with SyncInterval"}
	}
	return nil
}

// normalized fills in defaults that have a natural zero meaning.
func (c Config) normalized() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
