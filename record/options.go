package record

import (
	"errors"
	"fmt"
)

// Values the header carries when a field is unset, as in Kafka.
const (
	// NoProducerEpoch is the producerEpoch of a batch without a producer id.
	NoProducerEpoch = -1
	// NoSequence is the baseSequence of a batch without a producer id.
	NoSequence = -1
	// NoPartitionLeaderEpoch is what producers write; the broker stamps the
	// real epoch in place with SetPartitionLeaderEpoch.
	NoPartitionLeaderEpoch = -1
)

// BatchOptions are the batch-wide fields a Builder writes into the header.
//
// The zero value is valid and is what a plain producer wants: an
// uncompressed, non-idempotent batch with create-time timestamps and no
// partition leader epoch (producerId, producerEpoch, baseSequence and
// partitionLeaderEpoch are all written as -1). Setting a field never needs
// a constructor; fields whose zero would be a legitimate value (producer id
// 0, leader epoch 0) are gated by an explicit flag instead.
type BatchOptions struct {
	// Idempotent marks a batch from an idempotent producer. When false,
	// ProducerID, ProducerEpoch and BaseSequence are ignored and the batch
	// carries NoProducerID, NoProducerEpoch and NoSequence. When true they
	// are written as given and must all be non-negative.
	Idempotent bool
	// ProducerID is the id the cluster assigned to the producer.
	ProducerID int64
	// ProducerEpoch fences older instances of the same producer id.
	ProducerEpoch int16
	// BaseSequence is the sequence number of the batch's first record; the
	// records that follow take the next numbers (wrapping at MaxInt32).
	BaseSequence int32

	// Compression is the codec applied to the records section.
	// Default CompressionNone.
	Compression Compression

	// LogAppendTime sets the timestamp-type attribute: record timestamps
	// are the broker's append time, carried as the batch's maxTimestamp.
	// Default false (create time: each record keeps its own timestamp).
	LogAppendTime bool

	// HasPartitionLeaderEpoch makes the Builder write PartitionLeaderEpoch;
	// otherwise the batch carries NoPartitionLeaderEpoch. Producers leave
	// it unset; a broker building its own batches may set it.
	HasPartitionLeaderEpoch bool
	// PartitionLeaderEpoch is the leader epoch to write, see above.
	PartitionLeaderEpoch int32
}

// Validate reports whether the options can be encoded. An unknown codec
// wraps ErrUnknownCompression.
func (o BatchOptions) Validate() error {
	switch o.Compression {
	case CompressionNone, CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd:
	default:
		return fmt.Errorf("record: BatchOptions.Compression %d: %w", o.Compression, ErrUnknownCompression)
	}
	if o.Idempotent {
		// -1 in any of these would make the batch read back as
		// non-idempotent, or fail the broker's sequence checks.
		switch {
		case o.ProducerID < 0:
			return errors.New("record: BatchOptions.ProducerID must be >= 0 when Idempotent")
		case o.ProducerEpoch < 0:
			return errors.New("record: BatchOptions.ProducerEpoch must be >= 0 when Idempotent")
		case o.BaseSequence < 0:
			return errors.New("record: BatchOptions.BaseSequence must be >= 0 when Idempotent")
		}
	}
	return nil
}

// producerFields returns the producer id, epoch and base sequence to write.
func (o BatchOptions) producerFields() (int64, int16, int32) {
	if !o.Idempotent {
		return NoProducerID, NoProducerEpoch, NoSequence
	}
	return o.ProducerID, o.ProducerEpoch, o.BaseSequence
}

func (o BatchOptions) leaderEpoch() int32 {
	if !o.HasPartitionLeaderEpoch {
		return NoPartitionLeaderEpoch
	}
	return o.PartitionLeaderEpoch
}

func (o BatchOptions) attributes() int16 {
	a := int16(o.Compression) & attrCompressionMask
	if o.LogAppendTime {
		a |= attrLogAppendTime
	}
	return a
}

// BatchOptions returns the options that rebuild a batch like h: same
// producer fields, codec, timestamp type and leader epoch. A broker that
// must re-encode a batch (to change its codec, say) starts from these.
// The transactional and control bits have no option and are not carried.
func (h BatchHeader) BatchOptions() BatchOptions {
	o := BatchOptions{
		Compression:             h.Compression(),
		LogAppendTime:           h.LogAppendTime(),
		HasPartitionLeaderEpoch: h.PartitionLeaderEpoch != NoPartitionLeaderEpoch,
		PartitionLeaderEpoch:    h.PartitionLeaderEpoch,
	}
	if h.ProducerID != NoProducerID {
		o.Idempotent = true
		o.ProducerID = h.ProducerID
		o.ProducerEpoch = h.ProducerEpoch
		o.BaseSequence = h.BaseSequence
	}
	return o
}
