package consumergroup

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ShareConfigDLQTopic is the share group setting naming the dead-letter
// topic; DefaultShareDLQTopic is its default. The placeholders {topic} and
// {group} expand to the source topic and the group.
const (
	ShareConfigDLQTopic  = "dlq.topic"
	DefaultShareDLQTopic = "{topic}.dlq.{group}"
)

// shareDefaults are the share group settings a new group starts with, under
// their Kafka-style keys (documented in skiff.proto).
func shareDefaults() map[string]string {
	return map[string]string{
		"lock.timeout.ms":      "30000",
		"max.deliveries":       "5",
		"key.ordered":          "true",
		ShareConfigDLQTopic:    DefaultShareDLQTopic,
		"backoff.initial.ms":   "1000",
		"backoff.max.ms":       "3600000",
		"backoff.multiplier":   "2",
		"backoff.jitter":       "0.2",
		"dlq.flood.per.minute": "100",
		"max.inflight":         "10000",
		"auto.offset.reset":    "earliest",
	}
}

// shareConfig is a share group's parsed settings.
type shareConfig struct {
	LockTimeout    time.Duration
	MaxDeliveries  int32
	KeyOrdered     bool
	DLQTopic       string
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	BackoffMult    float64
	BackoffJitter  float64
	FloodPerMinute int
	MaxInflight    int64
	ResetEarliest  bool
}

// parseShareConfig validates a full settings map (defaults merged in).
func parseShareConfig(m map[string]string) (shareConfig, error) {
	var c shareConfig
	var errs []string
	intIn := func(key string, lo, hi int64) int64 {
		v, err := strconv.ParseInt(m[key], 10, 64)
		if err != nil || v < lo || v > hi {
			errs = append(errs, fmt.Sprintf("%s=%q: want an integer in [%d, %d]", key, m[key], lo, hi))
		}
		return v
	}
	floatIn := func(key string, lo, hi float64) float64 {
		v, err := strconv.ParseFloat(m[key], 64)
		if err != nil || v < lo || v > hi || math.IsNaN(v) {
			errs = append(errs, fmt.Sprintf("%s=%q: want a number in [%g, %g]", key, m[key], lo, hi))
		}
		return v
	}
	c.LockTimeout = time.Duration(intIn("lock.timeout.ms", 100, 12*3600*1000)) * time.Millisecond
	c.MaxDeliveries = int32(intIn("max.deliveries", 1, 1000))
	switch m["key.ordered"] {
	case "true":
		c.KeyOrdered = true
	case "false":
	default:
		errs = append(errs, fmt.Sprintf("key.ordered=%q: want true or false", m["key.ordered"]))
	}
	c.DLQTopic = m["dlq.topic"]
	switch {
	case c.DLQTopic == "":
		errs = append(errs, "dlq.topic is empty")
	case IsInternalTopic(c.DLQTopic):
		// Placeholders can still expand to an internal name ("{topic}" of
		// an internal source topic); deadLetter refuses those when it
		// writes.
		errs = append(errs, fmt.Sprintf("dlq.topic=%q: topic names starting with %q are internal to the cluster and cannot take dead letters", c.DLQTopic, internalPrefix))
	}
	c.BackoffInitial = time.Duration(intIn("backoff.initial.ms", 0, 7*24*3600*1000)) * time.Millisecond
	c.BackoffMax = time.Duration(intIn("backoff.max.ms", 0, 365*24*3600*1000)) * time.Millisecond
	c.BackoffMult = floatIn("backoff.multiplier", 1, 100)
	c.BackoffJitter = floatIn("backoff.jitter", 0, 1)
	c.FloodPerMinute = int(intIn("dlq.flood.per.minute", 0, 1_000_000))
	c.MaxInflight = intIn("max.inflight", 1, 1_000_000)
	switch m["auto.offset.reset"] {
	case "earliest":
		c.ResetEarliest = true
	case "latest":
	default:
		errs = append(errs, fmt.Sprintf("auto.offset.reset=%q: want earliest or latest", m["auto.offset.reset"]))
	}
	if len(errs) > 0 {
		return shareConfig{}, invalidf("share group config: %s", strings.Join(errs, "; "))
	}
	return c, nil
}

// mergeShareConfig applies set to base (defaults when nil), rejecting
// unknown keys.
func mergeShareConfig(base, set map[string]string) (map[string]string, error) {
	out := shareDefaults()
	maps.Copy(out, base)
	for k, v := range set {
		if _, known := out[k]; !known {
			return nil, invalidf("share group config: unknown key %q (known: %s)", k, strings.Join(slices.Sorted(maps.Keys(shareDefaults())), ", "))
		}
		out[k] = v
	}
	if _, err := parseShareConfig(out); err != nil {
		return nil, err
	}
	return out, nil
}

// dlqTopicFor names the dead-letter topic of a source topic.
func (c shareConfig) dlqTopicFor(topic, group string) string {
	return strings.NewReplacer("{topic}", topic, "{group}", group).Replace(c.DLQTopic)
}

// backoff is the release delay after the given number of deliveries:
// initial × multiplier^(deliveries-1), capped, ± jitter. u, in [0, 1),
// picks the jitter: the caller draws it, so that the core stays a pure
// function of its inputs.
func (c shareConfig) backoff(deliveries int32, u float64) time.Duration {
	d := float64(c.BackoffInitial) * math.Pow(c.BackoffMult, float64(max(deliveries-1, 0)))
	d = min(d, float64(c.BackoffMax))
	if c.BackoffJitter > 0 {
		d *= 1 + c.BackoffJitter*(2*u-1)
	}
	return time.Duration(max(d, 0))
}
