package metadata

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/log"
)

func TestDefaultTopicConfigIsValidAndDocumented(t *testing.T) {
	c := DefaultTopicConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"retention.ms":      "604800000",
		"retention.bytes":   "-1",
		"segment.bytes":     "134217728",
		"max.message.bytes": "1048588",
		"durability":        "fsync",
		"cleanup.policy":    "delete",
		"max.messages":      "-1",
		"max.bytes":         "-1",
		"overflow.policy":   "reject",

		"delete.retention.ms":       "86400000",
		"min.compaction.lag.ms":     "0",
		"max.compaction.lag.ms":     "-1",
		"min.cleanable.dirty.ratio": "0.5",
		"segment.ms":                "604800000",
	}
	if got := c.Map(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Map() = %v, want %v", got, want)
	}
}

func TestParseTopicConfig(t *testing.T) {
	tests := []struct {
		name      string
		kv        map[string]string
		want      func(*TopicConfig)
		wantField string // "" = no error
	}{
		{name: "empty", kv: nil, want: func(*TopicConfig) {}},
		{name: "unlimited retention", kv: map[string]string{"retention.ms": "-1", "retention.bytes": "-1"}, want: func(c *TopicConfig) { c.RetentionMs = -1 }},
		{name: "retention bytes zero", kv: map[string]string{"retention.bytes": "0"}, want: func(c *TopicConfig) { c.RetentionBytes = 0 }},
		{name: "all keys", kv: map[string]string{
			"retention.ms": "1000", "retention.bytes": "1073741824", "segment.bytes": "1048576",
			"max.message.bytes": "67108864", "durability": "replicated", "cleanup.policy": "delete",
			"max.messages": "100000", "max.bytes": "1048576", "overflow.policy": "drop-oldest",
		}, want: func(c *TopicConfig) {
			*c = TopicConfig{RetentionMs: 1000, RetentionBytes: 1 << 30, SegmentBytes: 1 << 20, MaxMessageBytes: 64 << 20, Durability: "replicated", CleanupPolicy: "delete",
				MaxMessages: 100000, MaxBytes: 1 << 20, OverflowPolicy: "drop-oldest"}
		}},
		{name: "bounds back to unbounded", kv: map[string]string{"max.messages": "-1", "max.bytes": "-1", "overflow.policy": "reject"}, want: func(*TopicConfig) {}},
		{name: "max.messages zero", kv: map[string]string{"max.messages": "0"}, wantField: "config.max.messages"},
		{name: "max.bytes not a number", kv: map[string]string{"max.bytes": "1MB"}, wantField: "config.max.bytes"},
		{name: "overflow.policy reject-unacked", kv: map[string]string{"max.messages": "500", "overflow.policy": "reject-unacked"}, want: func(c *TopicConfig) {
			c.MaxMessages, c.OverflowPolicy = 500, "reject-unacked"
		}},
		{name: "overflow.policy unknown", kv: map[string]string{"overflow.policy": "drop-newest"}, wantField: "config.overflow.policy"},
		{name: "compacted", kv: map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "1000", "min.compaction.lag.ms": "5",
			"max.compaction.lag.ms": "60000", "min.cleanable.dirty.ratio": "0.25"}, want: func(c *TopicConfig) {
			c.CleanupPolicy, c.DeleteRetentionMs, c.MinCompactionLagMs, c.MaxCompactionLagMs, c.MinCleanableDirtyRatio = "compact", 1000, 5, 60000, "0.25"
		}},
		{name: "compaction defaults stored as absent", kv: map[string]string{"cleanup.policy": "compact,delete", "delete.retention.ms": "86400000",
			"max.compaction.lag.ms": "-1", "min.cleanable.dirty.ratio": "0.50"}, want: func(c *TopicConfig) { c.CleanupPolicy = "compact,delete" }},
		{name: "segment.ms", kv: map[string]string{"segment.ms": "60000"}, want: func(c *TopicConfig) { c.SegmentMs = 60000 }},
		{name: "segment.ms below a second", kv: map[string]string{"segment.ms": "999"}, wantField: "config.segment.ms"},
		{name: "delete.retention.ms zero", kv: map[string]string{"delete.retention.ms": "0"}, wantField: "config.delete.retention.ms"},
		{name: "dirty ratio above 1", kv: map[string]string{"min.cleanable.dirty.ratio": "1.5"}, wantField: "config.min.cleanable.dirty.ratio"},
		{name: "dirty ratio NaN", kv: map[string]string{"min.cleanable.dirty.ratio": "NaN"}, wantField: "config.min.cleanable.dirty.ratio"},
		{name: "compacted and bounded", kv: map[string]string{"cleanup.policy": "compact", "max.messages": "10"}, wantField: "config.cleanup.policy"},
		{name: "unknown key", kv: map[string]string{"retention.hours": "1"}, wantField: "config.retention.hours"},
		{name: "retention.ms zero", kv: map[string]string{"retention.ms": "0"}, wantField: "config.retention.ms"},
		{name: "retention.ms below -1", kv: map[string]string{"retention.ms": "-2"}, wantField: "config.retention.ms"},
		{name: "retention.ms overflows a duration", kv: map[string]string{"retention.ms": "9223372036854775807"}, wantField: "config.retention.ms"},
		{name: "retention.ms not a number", kv: map[string]string{"retention.ms": "7d"}, wantField: "config.retention.ms"},
		{name: "retention.bytes below -1", kv: map[string]string{"retention.bytes": "-5"}, wantField: "config.retention.bytes"},
		{name: "segment.bytes too small", kv: map[string]string{"segment.bytes": "1048575"}, wantField: "config.segment.bytes"},
		{name: "segment.bytes too large", kv: map[string]string{"segment.bytes": "1073741825"}, wantField: "config.segment.bytes"},
		{name: "segment.bytes unlimited refused", kv: map[string]string{"segment.bytes": "-1"}, wantField: "config.segment.bytes"},
		{name: "max.message.bytes too small", kv: map[string]string{"max.message.bytes": "1023"}, wantField: "config.max.message.bytes"},
		{name: "max.message.bytes too large", kv: map[string]string{"max.message.bytes": "67108865"}, wantField: "config.max.message.bytes"},
		{name: "durability unknown", kv: map[string]string{"durability": "FSYNC"}, wantField: "config.durability"},
		{name: "cleanup.policy unknown", kv: map[string]string{"cleanup.policy": "compacted"}, wantField: "config.cleanup.policy"},
		{name: "first bad key in sorted order", kv: map[string]string{"segment.bytes": "x", "durability": "x"}, wantField: "config.durability"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := DefaultTopicConfig()
			got, err := ParseTopicConfig(base, tc.kv)
			if tc.wantField != "" {
				var ia *InvalidArgumentError
				if !errors.As(err, &ia) || ia.Field != tc.wantField || !errors.Is(err, ErrInvalidArgument) {
					t.Fatalf("err = %v, want field %s", err, tc.wantField)
				}
				if got != base {
					t.Fatalf("returned %+v on error, want base", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := DefaultTopicConfig()
			tc.want(&want)
			if got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestTopicConfigMapRoundTrips(t *testing.T) {
	c := TopicConfig{RetentionMs: -1, RetentionBytes: 5, SegmentBytes: 2 << 20, MaxMessageBytes: 2048, Durability: "replicated", CleanupPolicy: "delete",
		MaxMessages: 7, MaxBytes: 4096, OverflowPolicy: "drop-oldest", DeleteRetentionMs: 5, MinCompactionLagMs: 6, MaxCompactionLagMs: 7, MinCleanableDirtyRatio: "0.1"}
	got, err := ParseTopicConfig(TopicConfig{}, c.Map())
	if err != nil || got != c {
		t.Fatalf("got %+v, %v; want %+v", got, err, c)
	}
}

func TestCompactOnlyTopicsAreNotDeletedByRetention(t *testing.T) {
	c := DefaultTopicConfig()
	c.RetentionMs, c.RetentionBytes = 1000, 4096
	for policy, wantAge := range map[string]time.Duration{CleanupCompact: 0, CleanupCompactDelete: time.Second, CleanupDelete: time.Second} {
		c.CleanupPolicy = policy
		lc := c.LogConfig(log.DefaultConfig())
		if lc.RetentionAge != wantAge || (policy == CleanupCompact) != (lc.RetentionBytes == -1) {
			t.Errorf("%s: retention %v / %d bytes", policy, lc.RetentionAge, lc.RetentionBytes)
		}
	}
}

func TestTopicConfigValidateNamesTheField(t *testing.T) {
	c := DefaultTopicConfig()
	c.SegmentBytes = 0
	var ia *InvalidArgumentError
	if err := c.Validate(); !errors.As(err, &ia) || ia.Field != "config.segment.bytes" {
		t.Fatalf("err = %v", err)
	}
	if err := (TopicConfig{}).Validate(); err == nil {
		t.Fatal("zero TopicConfig validated")
	}
}

func TestTopicConfigLogConfig(t *testing.T) {
	c := DefaultTopicConfig()
	c.RetentionBytes = 10 << 20
	c.SegmentBytes = 2 << 20
	got := c.LogConfig(log.DefaultConfig())
	if got.SegmentBytes != 2<<20 || got.RetentionBytes != 10<<20 || got.RetentionAge != 7*24*time.Hour {
		t.Fatalf("got %+v", got)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	c.RetentionMs = -1
	if got := c.LogConfig(log.DefaultConfig()); got.RetentionAge > 0 {
		t.Fatalf("unlimited retention.ms gave RetentionAge %v, want <= 0 (unlimited)", got.RetentionAge)
	}
}
