package client

import (
	"errors"
	"fmt"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// Acks says when a broker acknowledges a batch.
type Acks int

const (
	// AcksAll: once a majority of the partition's replicas committed the
	// batch (and fsynced it, with the topic's default durability). The
	// default.
	AcksAll Acks = iota
	// AcksNone: once the leader accepted the request; the write may still
	// be lost, and no offsets are learned. Implies no idempotence.
	AcksNone
)

func (a Acks) String() string {
	switch a {
	case AcksAll:
		return "all"
	case AcksNone:
		return "none"
	}
	return fmt.Sprintf("Acks(%d)", int(a))
}

// maxInFlightIdempotent is the most batches per partition an idempotent
// producer may have in flight: partitions remember their producers' last
// five batches for duplicate detection (Kafka's NUM_BATCHES_TO_RETAIN), so
// a retry of any batch in flight is still recognized.
const maxInFlightIdempotent = 5

// ProducerConfig configures a Producer. Zero fields take the defaults
// documented on them.
type ProducerConfig struct {
	// Partitioner picks each record's partition. Default KeyPartitioner():
	// murmur2 of the key as in Kafka, sticky spreading for nil keys.
	Partitioner Partitioner
	// Linger is how long a partition's batch waits for more records before
	// it is sent. Default 5ms; a negative value sends at once.
	Linger time.Duration
	// MaxBatchBytes closes a batch once it reaches this size (before
	// compression). Default 1 MiB; a single larger record goes alone.
	MaxBatchBytes int
	// MaxInFlightPerPartition bounds the batches of one partition sent and
	// not yet acknowledged. Default 5, also the maximum with idempotence.
	MaxInFlightPerPartition int
	// MaxBufferedBytes bounds the records accepted and not yet
	// acknowledged; Produce blocks (within its context) beyond it.
	// Default 64 MiB.
	MaxBufferedBytes int
	// Compression is the codec for batches. Default none.
	Compression record.Compression
	// DisableIdempotence turns off producer ids and sequence numbers.
	// With idempotence (the default) the producer asks the cluster for a
	// producer id and numbers each partition's batches; a retried batch
	// carries its original numbers, so a retry after an indeterminate
	// outcome is never written twice and batches are never reordered.
	DisableIdempotence bool
	// Acks is when brokers acknowledge a batch. Default AcksAll.
	Acks Acks
	// DeliveryTimeout bounds how long a record may wait for its
	// acknowledgement, retries included; then its callback gets an error
	// matching ErrDeliveryTimeout. Default 2 minutes.
	DeliveryTimeout time.Duration
}

func (c ProducerConfig) withDefaults() ProducerConfig {
	if c.Partitioner == nil {
		c.Partitioner = KeyPartitioner()
	}
	if c.Linger == 0 {
		c.Linger = 5 * time.Millisecond
	} else if c.Linger < 0 {
		c.Linger = 0
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = 1 << 20
	}
	if c.MaxInFlightPerPartition == 0 {
		c.MaxInFlightPerPartition = maxInFlightIdempotent
	}
	if c.MaxBufferedBytes == 0 {
		c.MaxBufferedBytes = 64 << 20
	}
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = 2 * time.Minute
	}
	if c.Acks == AcksNone {
		c.DisableIdempotence = true
	}
	return c
}

// Validate reports every invalid field (after defaults are applied).
func (c ProducerConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.MaxBatchBytes < 0 {
		errs = append(errs, errors.New("producer config: MaxBatchBytes must not be negative"))
	}
	if c.MaxInFlightPerPartition < 0 {
		errs = append(errs, errors.New("producer config: MaxInFlightPerPartition must not be negative"))
	}
	if !c.DisableIdempotence && c.MaxInFlightPerPartition > maxInFlightIdempotent {
		errs = append(errs, fmt.Errorf("producer config: MaxInFlightPerPartition %d: at most %d with idempotence",
			c.MaxInFlightPerPartition, maxInFlightIdempotent))
	}
	if c.MaxBufferedBytes < 0 {
		errs = append(errs, errors.New("producer config: MaxBufferedBytes must not be negative"))
	}
	if c.DeliveryTimeout < 0 {
		errs = append(errs, errors.New("producer config: DeliveryTimeout must not be negative"))
	}
	if c.Acks != AcksAll && c.Acks != AcksNone {
		errs = append(errs, fmt.Errorf("producer config: unknown %v", c.Acks))
	}
	if err := (record.BatchOptions{Compression: c.Compression}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("producer config: %w", err))
	}
	return errors.Join(errs...)
}
