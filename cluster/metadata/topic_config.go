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
	// CleanupCompactDelete is Kafka's "compact,delete": compacted, and
	// old segments deleted by retention as well.
	CleanupCompactDelete = "compact,delete"
)

// Values of TopicConfig.OverflowPolicy: what a bounded topic (max.messages,
// max.bytes) does when a batch would take it past a bound.
const (
	// OverflowReject refuses the batch (RESOURCE_EXHAUSTED), writing nothing.
	OverflowReject = "reject"
	// OverflowDropOldest advances the log start past the oldest records,
	// like a ring buffer.
	OverflowDropOldest = "drop-oldest"
	// OverflowRejectUnacked refuses the batch when max.messages counts
	// the records not yet done by a share group of the topic (the one
	// furthest behind), not the records held: a queue whose workers stall
	// pushes back on producers. max.bytes still counts bytes held.
	OverflowRejectUnacked = "reject-unacked"
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
	// CleanupPolicy ("cleanup.policy"): "delete" (default: segments go by
	// retention.ms and retention.bytes), "compact" (each partition keeps at
	// least the latest record of every key, and no retention deletes) or
	// "compact,delete" (both). Compacted topics refuse records without a
	// key. See docs/compaction.md.
	CleanupPolicy string `json:"cleanup.policy"`
	// MaxMessages ("max.messages"): the most records a partition holds,
	// counted from its log start to its end; 0 = unbounded (the key reads
	// and accepts -1 for that). What happens at the bound is
	// OverflowPolicy. Default unbounded.
	MaxMessages int64 `json:"max.messages,omitempty"`
	// MaxBytes ("max.bytes"): the most record-batch bytes a partition
	// holds; 0 = unbounded (shown as -1). Default unbounded.
	MaxBytes int64 `json:"max.bytes,omitempty"`
	// OverflowPolicy ("overflow.policy"): "reject" (default; "" means it)
	// "drop-oldest" or "reject-unacked".
	OverflowPolicy string `json:"overflow.policy,omitempty"`

	// The compaction settings below matter only for compacted topics. Each
	// is stored as 0 or "" when at its default, so topics that do not set
	// them are encoded exactly as by versions without them.

	// DeleteRetentionMs ("delete.retention.ms"): a tombstone (null value)
	// is removed by compaction once older than this. Default 86400000 (1
	// day); at least 1.
	DeleteRetentionMs int64 `json:"delete.retention.ms,omitempty"`
	// MinCompactionLagMs ("min.compaction.lag.ms"): records younger than
	// this are not compacted. Default 0.
	MinCompactionLagMs int64 `json:"min.compaction.lag.ms,omitempty"`
	// MaxCompactionLagMs ("max.compaction.lag.ms"): a partition holding
	// obsolete records older than this is compacted whatever its dirty
	// ratio. 0 = unlimited (shown as -1, the default).
	MaxCompactionLagMs int64 `json:"max.compaction.lag.ms,omitempty"`
	// MinCleanableDirtyRatio ("min.cleanable.dirty.ratio"): a partition
	// is compacted when at least this share of its records is obsolete.
	// Default 0.5 (stored as ""); in [0, 1].
	MinCleanableDirtyRatio string `json:"min.cleanable.dirty.ratio,omitempty"`
	// SegmentMs ("segment.ms"): the active segment rolls once its first
	// batch is this old (checked at the next append), so compaction and
	// retention can reach recent records. 0 = the default, 604800000 (7
	// days, like Kafka); at least 1000.
	SegmentMs int64 `json:"segment.ms,omitempty"`
}

// DefaultSegmentMs is segment.ms's default (Kafka's: 7 days).
const DefaultSegmentMs = int64(7 * 24 * time.Hour / time.Millisecond)

// Defaults of the compaction settings.
const (
	DefaultDeleteRetentionMs      = int64(24 * time.Hour / time.Millisecond)
	DefaultMinCleanableDirtyRatio = 0.5
)

// Compacted reports whether cleanup.policy includes compact.
func (c TopicConfig) Compacted() bool {
	return c.CleanupPolicy == CleanupCompact || c.CleanupPolicy == CleanupCompactDelete
}

// DeleteRetention is delete.retention.ms as a duration.
func (c TopicConfig) DeleteRetention() time.Duration {
	if c.DeleteRetentionMs <= 0 {
		return time.Duration(DefaultDeleteRetentionMs) * time.Millisecond
	}
	return time.Duration(c.DeleteRetentionMs) * time.Millisecond
}

// MinCompactionLag is min.compaction.lag.ms as a duration.
func (c TopicConfig) MinCompactionLag() time.Duration {
	return time.Duration(c.MinCompactionLagMs) * time.Millisecond
}

// MaxCompactionLag is max.compaction.lag.ms as a duration; 0 = unlimited.
func (c TopicConfig) MaxCompactionLag() time.Duration {
	return time.Duration(c.MaxCompactionLagMs) * time.Millisecond
}

// DirtyRatio is min.cleanable.dirty.ratio.
func (c TopicConfig) DirtyRatio() float64 {
	if v, err := strconv.ParseFloat(c.MinCleanableDirtyRatio, 64); err == nil {
		return v
	}
	return DefaultMinCleanableDirtyRatio
}

// Overflow returns the overflow policy, "reject" when unset.
func (c TopicConfig) Overflow() string {
	if c.OverflowPolicy == "" {
		return OverflowReject
	}
	return c.OverflowPolicy
}

// Bounded reports whether max.messages or max.bytes is set.
func (c TopicConfig) Bounded() bool { return c.MaxMessages > 0 || c.MaxBytes > 0 }

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
				if v != CleanupDelete && v != CleanupCompact && v != CleanupCompactDelete {
					return "want delete, compact or compact,delete"
				}
				c.CleanupPolicy = v
				return ""
			},
		},
		{
			name: "delete.retention.ms",
			get:  func(c TopicConfig) string { return strconv.FormatInt(c.DeleteRetention().Milliseconds(), 10) },
			set: func(c *TopicConfig, v string) string {
				n, reason := parseInt(v, 1, MaxRetentionMs, false)
				if n == DefaultDeleteRetentionMs {
					n = 0
				}
				c.DeleteRetentionMs = n
				return reason
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
			name: "max.bytes",
			get:  func(c TopicConfig) string { return formatBound(c.MaxBytes) },
			set: func(c *TopicConfig, v string) string {
				n, reason := parseBound(v)
				c.MaxBytes = n
				return reason
			},
		},
		{
			name: "max.compaction.lag.ms",
			get:  func(c TopicConfig) string { return formatBound(c.MaxCompactionLagMs) },
			set: func(c *TopicConfig, v string) string {
				n, reason := parseInt(v, 1, MaxRetentionMs, true)
				c.MaxCompactionLagMs = max(n, 0)
				return reason
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
			name: "max.messages",
			get:  func(c TopicConfig) string { return formatBound(c.MaxMessages) },
			set: func(c *TopicConfig, v string) string {
				n, reason := parseBound(v)
				c.MaxMessages = n
				return reason
			},
		},
		{
			name: "min.cleanable.dirty.ratio",
			get:  func(c TopicConfig) string { return strconv.FormatFloat(c.DirtyRatio(), 'g', -1, 64) },
			set: func(c *TopicConfig, v string) string {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil || !(f >= 0 && f <= 1) {
					return strconv.Quote(v) + " is not a ratio: want a number in [0, 1]"
				}
				c.MinCleanableDirtyRatio = strconv.FormatFloat(f, 'g', -1, 64)
				if f == DefaultMinCleanableDirtyRatio {
					c.MinCleanableDirtyRatio = ""
				}
				return ""
			},
		},
		{
			name: "min.compaction.lag.ms",
			get:  func(c TopicConfig) string { return strconv.FormatInt(c.MinCompactionLagMs, 10) },
			set: func(c *TopicConfig, v string) string {
				n, reason := parseInt(v, 0, MaxRetentionMs, false)
				c.MinCompactionLagMs = n
				return reason
			},
		},
		{
			name: "overflow.policy",
			get:  func(c TopicConfig) string { return c.Overflow() },
			set: func(c *TopicConfig, v string) string {
				switch v {
				case OverflowReject:
					c.OverflowPolicy = "" // the default, stored as absent
				case OverflowDropOldest, OverflowRejectUnacked:
					c.OverflowPolicy = v
				default:
					return "want reject, drop-oldest or reject-unacked"
				}
				return ""
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
			name: "segment.ms",
			get: func(c TopicConfig) string {
				if c.SegmentMs <= 0 {
					return strconv.FormatInt(DefaultSegmentMs, 10)
				}
				return strconv.FormatInt(c.SegmentMs, 10)
			},
			set: func(c *TopicConfig, v string) string {
				n, reason := parseInt(v, 1000, MaxRetentionMs, false)
				if n == DefaultSegmentMs {
					n = 0
				}
				c.SegmentMs = n
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

// parseBound parses a max.messages or max.bytes value: -1 (unbounded,
// stored as 0) or a positive integer.
func parseBound(v string) (int64, string) {
	n, reason := parseInt(v, 1, math.MaxInt64, true)
	if reason != "" || n == -1 {
		return 0, reason
	}
	return n, ""
}

func formatBound(n int64) string {
	if n <= 0 {
		return "-1"
	}
	return strconv.FormatInt(n, 10)
}

// notBuilt refuses values, among those a request sets (kv), that name a
// feature this version does not have (a setting the server accepts must do
// what it says), and combinations that do not fit together.
func notBuilt(c TopicConfig, kv map[string]string) error {
	if c.Compacted() && c.Bounded() {
		return invalid("config.cleanup.policy", "a compacted topic cannot also be bounded: max.messages and max.bytes count offsets, which compaction leaves as gaps; unset them or use cleanup.policy=delete")
	}
	return nil
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
	if err := notBuilt(c, kv); err != nil {
		return base, err
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
	base.SegmentMaxAge = time.Duration(DefaultSegmentMs) * time.Millisecond
	if c.SegmentMs > 0 {
		base.SegmentMaxAge = time.Duration(c.SegmentMs) * time.Millisecond
	}
	if c.CleanupPolicy == CleanupCompact {
		// Compaction alone: nothing is deleted by age or size.
		base.RetentionAge, base.RetentionBytes = 0, -1
	}
	return base
}
