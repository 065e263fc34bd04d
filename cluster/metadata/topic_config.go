package metadata

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-mq/skiff/log"
)

// Values of TopicConfig.Durability and TopicConfig.CleanupPolicy.
const (
	DurabilityFsync      = "fsync"
	DurabilityReplicated = "replicated"
	CleanupDelete        = "delete"
	CleanupCompact       = "compact"
)

// Defaults and bounds of the topic configuration keys.
const (
	DefaultRetentionMs = int64(7 * 24 * time.Hour / time.Millisecond) // 604800000
	// MaxRetentionMs keeps retention.ms convertible to a time.Duration
	// (about 292 years).
	MaxRetentionMs = math.MaxInt64 / int64(time.Millisecond)

	DefaultSegmentBytes = 128 << 20
	// MinSegmentBytes is Kafka 4's minimum (KIP-1030): smaller segments
	// only multiply files and index overhead.
	MinSegmentBytes = 1 << 20
	MaxSegmentBytes = 1 << 30

	// DefaultMaxMessageBytes is Kafka's default for max.message.bytes
	// (1 MiB + 12 bytes of legacy log overhead).
	DefaultMaxMessageBytes = 1048588
	MinMaxMessageBytes     = 1 << 10
	// MaxMaxMessageBytes matches the largest batch a partition replica's
	// log accepts at all (partition.maxRaftBatch, 64 MiB).
	MaxMaxMessageBytes = 64 << 20
)

// TopicConfig holds the per-topic settings, each under its Kafka-style key.
// Start from DefaultTopicConfig; ParseTopicConfig applies key=value
// overrides; Map lists every key with its value.
type TopicConfig struct {
	// RetentionMs ("retention.ms"): sealed segments whose newest record is
	// older than this are deleted. -1 = unlimited, else at least 1.
	// Default 604800000 (7 days).
	RetentionMs int64 `json:"retention.ms"`
	// RetentionBytes ("retention.bytes"): the oldest sealed segments are
	// deleted while each partition would still hold at least this many
	// bytes without them. -1 = unlimited (default), else at least 0.
	RetentionBytes int64 `json:"retention.bytes"`
	// SegmentBytes ("segment.bytes"): size at which a partition's active
	// segment rolls. Default 128 MiB; in [1 MiB, 1 GiB].
	SegmentBytes int64 `json:"segment.bytes"`
	// MaxMessageBytes ("max.message.bytes"): the largest record batch a
	// producer may send, checked before Raft (the FSM of a partition never
	// rejects a committed batch for its size). Default 1048588, like
	// Kafka; in [1 KiB, 64 MiB].
	MaxMessageBytes int `json:"max.message.bytes"`
	// Durability ("durability"): "fsync" (default; acknowledged writes are
	// fsynced on a majority) or "replicated" (held in memory by a majority,
	// like Kafka's default). See partition.Durability.
	Durability string `json:"durability"`
	// CleanupPolicy ("cleanup.policy"): "delete" (default) or "compact".
	// "compact" is accepted and stored so that topics can be declared for
	// it now, but compaction is not implemented yet: such topics are
	// retained like "delete" ones.
	CleanupPolicy string `json:"cleanup.policy"`
}

// DefaultTopicConfig returns the documented defaults.
func DefaultTopicConfig() TopicConfig {
	return TopicConfig{
		RetentionMs:     DefaultRetentionMs,
		RetentionBytes:  -1,
		SegmentBytes:    DefaultSegmentBytes,
		MaxMessageBytes: DefaultMaxMessageBytes,
		Durability:      DurabilityFsync,
		CleanupPolicy:   CleanupDelete,
	}
}

// configKey describes one key: how to print it and how to parse and check a
// value for it. set reports a problem as the reason of an
// InvalidArgumentError.
type configKey struct {
	name string
	get  func(TopicConfig) string
	set  func(*TopicConfig, string) (reason string)
}

// configKeys returns the table of keys, sorted by name, which fixes the
// order keys are checked in and therefore which error a request with
// several bad keys gets. (A function rather than a package variable: the
// package holds no global state.)
func configKeys() []configKey {
	return []configKey{
		{
			name: "cleanup.policy",
			get:  func(c TopicConfig) string { return c.CleanupPolicy },
			set: func(c *TopicConfig, v string) string {
				if v != CleanupDelete && v != CleanupCompact {
					return "want delete or compact"
				}
				c.CleanupPolicy = v
				return ""
			},
		},
		{
			name: "durability",
			get:  func(c TopicConfig) string { return c.Durability },
			set: func(c *TopicConfig, v string) string {
				if v != DurabilityFsync && v != DurabilityReplicated {
					return "want fsync or replicated"
				}
				c.Durability = v
				return ""
			},
		},
		{
			name: "max.message.bytes",
			get:  func(c TopicConfig) string { return strconv.Itoa(c.MaxMessageBytes) },
			set: func(c *TopicConfig, v string) string {
				n, reason := parseInt(v, MinMaxMessageBytes, MaxMaxMessageBytes, false)
				c.MaxMessageBytes = int(n)
				return reason
			},
		},
		{
			name: "retention.bytes",
			get:  func(c TopicConfig) string { return strconv.FormatInt(c.RetentionBytes, 10) },
			set: func(c *TopicConfig, v string) string {
				n, reason := parseInt(v, 0, math.MaxInt64, true)
				c.RetentionBytes = n
				return reason
			},
		},
		{
			name: "retention.ms",
			get:  func(c TopicConfig) string { return strconv.FormatInt(c.RetentionMs, 10) },
			set: func(c *TopicConfig, v string) string {
				// 0 is refused rather than taken as "delete at once": the log
				// reads a zero retention age as unlimited, and a user who
				// means unlimited says -1.
				n, reason := parseInt(v, 1, MaxRetentionMs, true)
				c.RetentionMs = n
				return reason
			},
		},
		{
			name: "segment.bytes",
			get:  func(c TopicConfig) string { return strconv.FormatInt(c.SegmentBytes, 10) },
			set: func(c *TopicConfig, v string) string {
				n, reason := parseInt(v, MinSegmentBytes, MaxSegmentBytes, false)
				c.SegmentBytes = n
				return reason
			},
		},
	}
}

// parseInt parses a decimal integer in [lo, hi], or -1 when unlimited is
// allowed.
func parseInt(v string, lo, hi int64, unlimited bool) (int64, string) {
	n, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err != nil:
		return 0, strconv.Quote(v) + " is not an integer"
	case unlimited && n == -1:
		return n, ""
	case n < lo || n > hi:
		if unlimited {
			return 0, v + " out of range: want -1 (unlimited) or [" + strconv.FormatInt(lo, 10) + ", " + strconv.FormatInt(hi, 10) + "]"
		}
		return 0, v + " out of range: want [" + strconv.FormatInt(lo, 10) + ", " + strconv.FormatInt(hi, 10) + "]"
	}
	return n, ""
}

func findConfigKey(name string) (configKey, bool) {
	for _, k := range configKeys() {
		if k.name == name {
			return k, true
		}
	}
	return configKey{}, false
}

// ConfigKeys returns the known configuration keys, sorted.
func ConfigKeys() []string {
	keys := configKeys()
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.name
	}
	return out
}

// ParseTopicConfig returns base with the key=value overrides of kv applied.
// An unknown key or a bad value fails the whole call with an
// *InvalidArgumentError whose Field is "config.<key>"; keys are checked in
// sorted order, so the same bad request always gets the same error.
func ParseTopicConfig(base TopicConfig, kv map[string]string) (TopicConfig, error) {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	c := base
	for _, k := range keys {
		ck, ok := findConfigKey(k)
		if !ok {
			return base, invalid("config."+k, "unknown configuration key (known: %s)", strings.Join(ConfigKeys(), ", "))
		}
		if reason := ck.set(&c, kv[k]); reason != "" {
			return base, invalid("config."+k, "%s", reason)
		}
	}
	return c, nil
}

// Map returns every key with its value, in the form ParseTopicConfig reads.
func (c TopicConfig) Map() map[string]string {
	m := make(map[string]string)
	for _, k := range configKeys() {
		m[k.name] = k.get(c)
	}
	return m
}

// Validate checks every field against the same rules as ParseTopicConfig;
// the error names the first bad key.
func (c TopicConfig) Validate() error {
	for _, k := range configKeys() {
		var scratch TopicConfig
		if reason := k.set(&scratch, k.get(c)); reason != "" {
			return invalid("config."+k.name, "%s", reason)
		}
	}
	return nil
}

// LogConfig returns base with the topic's segment and retention settings,
// for a partition replica's log (partition.Config.Log, Replica.SetLogConfig).
// Durability maps with partition.ParseDurability; MaxMessageBytes is the
// produce-time limit and deliberately not the log's MaxBatchBytes, which
// must never shrink below a batch already written.
func (c TopicConfig) LogConfig(base log.Config) log.Config {
	base.SegmentBytes = c.SegmentBytes
	base.RetentionBytes = c.RetentionBytes
	if c.RetentionMs < 0 {
		base.RetentionAge = 0 // unlimited for the log
	} else {
		base.RetentionAge = time.Duration(c.RetentionMs) * time.Millisecond
	}
	return base
}
