package workload

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Reader kinds (Config.ReaderKind).
const (
	// PartitionReaders assign every partition explicitly and read it from
	// the start (client.Consumer with Assign and Poll).
	PartitionReaders = "partition"
)

// Config configures a workload. Zero fields take the defaults documented
// on them (DefaultConfig); Brokers and Topic are required.
type Config struct {
	// Brokers lists gRPC addresses of cluster nodes.
	Brokers []string
	// TLS is the clients' TLS configuration (client.Config.TLS); nil for
	// a plaintext cluster.
	TLS *tls.Config
	// Topic is written and read; created when missing with Partitions and
	// ReplicationFactor.
	Topic string
	// Partitions of a topic the workload creates. Default 6.
	Partitions int
	// ReplicationFactor of a topic the workload creates. Default 3.
	ReplicationFactor int
	// Producers is how many idempotent producers write, each with its own
	// producer id. Default 3.
	Producers int
	// Readers is how many consumers read every partition while the
	// workload runs. Default 2; 0 is allowed with NoReaders.
	Readers int
	// NoReaders runs no reader (only the final read sees the log).
	NoReaders bool
	// ReaderKind is how readers consume: PartitionReaders (the default
	// and the only kind; consumers in a group are GroupConsumers).
	ReaderKind string
	// GroupConsumers is how many members of one consumer group read the
	// topic (client.GroupConsumer, from the earliest offset, committing
	// after every poll), recording every poll, assignment change and
	// commit. Default 2; 0 is allowed with NoGroupConsumers.
	GroupConsumers int
	// NoGroupConsumers runs no group consumer.
	NoGroupConsumers bool
	// Group names the consumer group. Default: <Topic>-chaos-<unix nanos>,
	// a new group per run.
	Group string
	// Keys is how many distinct keys the producers use; keys pick
	// partitions with the client's murmur2 partitioner. Default 64.
	Keys int
	// Rate is the sends per second of each producer. Default 200.
	Rate int
	// MaxPending bounds each producer's records sent and not yet
	// acknowledged or failed; the producer waits beyond it. Default 500.
	MaxPending int
	// DeliveryTimeout bounds how long a record may wait for its ack,
	// retries included, before its outcome is recorded as indeterminate.
	// Default 20s.
	DeliveryTimeout time.Duration
	// RequestTimeout bounds one request of the client. Default 5s.
	RequestTimeout time.Duration
	// DrainTimeout bounds waiting for outstanding sends when the workload
	// stops; what is still unresolved then is recorded as indeterminate.
	// Default 30s.
	DrainTimeout time.Duration
	// FinalReadTimeout bounds the final read of every partition.
	// Default 60s.
	FinalReadTimeout time.Duration
	// Logger receives progress and client logs. Default: discard.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default filled in; callers set
// Brokers and Topic.
func DefaultConfig() Config {
	return Config{
		Partitions:        6,
		ReplicationFactor: 3,
		Producers:         3,
		Readers:           2,
		GroupConsumers:    2,
		ReaderKind:        PartitionReaders,
		Keys:              64,
		Rate:              200,
		MaxPending:        500,
		DeliveryTimeout:   20 * time.Second,
		RequestTimeout:    5 * time.Second,
		DrainTimeout:      30 * time.Second,
		FinalReadTimeout:  60 * time.Second,
	}
}

// withDefaults fills zero fields with the defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&c.Partitions, d.Partitions)
	setInt(&c.ReplicationFactor, d.ReplicationFactor)
	setInt(&c.Producers, d.Producers)
	if !c.NoReaders {
		setInt(&c.Readers, d.Readers)
	} else {
		c.Readers = 0
	}
	if !c.NoGroupConsumers {
		setInt(&c.GroupConsumers, d.GroupConsumers)
	} else {
		c.GroupConsumers = 0
	}
	if c.ReaderKind == "" {
		c.ReaderKind = d.ReaderKind
	}
	setInt(&c.Keys, d.Keys)
	setInt(&c.Rate, d.Rate)
	setInt(&c.MaxPending, d.MaxPending)
	setDur(&c.DeliveryTimeout, d.DeliveryTimeout)
	setDur(&c.RequestTimeout, d.RequestTimeout)
	setDur(&c.DrainTimeout, d.DrainTimeout)
	setDur(&c.FinalReadTimeout, d.FinalReadTimeout)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every invalid field (after defaults are applied).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("workload config: Brokers is required"))
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("workload config: Topic is required"))
	}
	bounded := func(name string, v, lo, hi int) {
		if v < lo || v > hi {
			errs = append(errs, fmt.Errorf("workload config: %s %d: want %d to %d", name, v, lo, hi))
		}
	}
	bounded("Partitions", c.Partitions, 1, 1024)
	bounded("ReplicationFactor", c.ReplicationFactor, 1, 7)
	bounded("Producers", c.Producers, 1, 64)
	bounded("Readers", c.Readers, 0, 64)
	bounded("GroupConsumers", c.GroupConsumers, 0, 64)
	bounded("Keys", c.Keys, 1, 1<<20)
	bounded("Rate", c.Rate, 1, 100000)
	bounded("MaxPending", c.MaxPending, 1, 1<<20)
	switch c.ReaderKind {
	case PartitionReaders:
	case "group":
		errs = append(errs, errors.New("workload config: ReaderKind group: group members are GroupConsumers, readers are partition readers"))
	default:
		errs = append(errs, fmt.Errorf("workload config: ReaderKind %q: want %s", c.ReaderKind, PartitionReaders))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"DeliveryTimeout", c.DeliveryTimeout}, {"RequestTimeout", c.RequestTimeout},
		{"DrainTimeout", c.DrainTimeout}, {"FinalReadTimeout", c.FinalReadTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("workload config: %s %v must not be negative", d.name, d.v))
		}
	}
	return errors.Join(errs...)
}
