package partition

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// Errors of idempotent produce. Both are definite: the batch was not
// appended, and retrying the same bytes cannot succeed.
var (
	// ErrOutOfOrderSequence means a batch's sequence number is not the one
	// the partition expects from its producer: a gap (a lost batch), a new
	// or unknown producer not starting at 0, or a retry of a batch older
	// than the retained window. The producer must reset its sequence by
	// bumping its epoch (or taking a new producer ID).
	ErrOutOfOrderSequence = errors.New("out of order sequence number")
	// ErrProducerFenced means a batch carries an epoch older than one the
	// partition has already accepted from the same producer ID: a newer
	// instance of the producer has taken over, and this one must stop.
	ErrProducerFenced = errors.New("producer fenced by a newer epoch")
)

const (
	// producerBatchesRetained is how many of a producer's newest batches are
	// remembered for duplicate detection. It equals Kafka's
	// NUM_BATCHES_TO_RETAIN, which is why Kafka producers with idempotence
	// may have at most 5 requests in flight: any retry then falls within the
	// window.
	producerBatchesRetained = 5

	// defaultProducerExpiry is 7 days, longer than Kafka's 1 day
	// (producer.id.expiration.ms, KIP-854). Skiff is stricter than Kafka
	// about unknown producers (a non-zero sequence from a producer it does
	// not know is an error, where Kafka accepts it and can then let a
	// duplicate through), so forgetting an idle but live producer costs that
	// producer an error and an epoch bump. A week covers producers that
	// write daily or over a weekend; MaxProducers bounds the memory that the
	// longer window could otherwise cost under producer churn.
	defaultProducerExpiry = 7 * 24 * time.Hour

	// defaultMaxProducers caps the producers tracked per partition. At about
	// 200 bytes each (the state, its map entry and list links; measured) the
	// cap costs at most ~20 MB per partition, reached only by that many
	// distinct producers writing to one partition within the expiry.
	defaultMaxProducers = 100_000
)

// producerConfig bounds the memory of a partition's producer state.
// Zero fields mean the defaults. Every replica of a partition must use the
// same values, or their producer states (and so their answers to retried
// batches) diverge.
type producerConfig struct {
	// Expiry is how long after its last append a producer is forgotten.
	// Default 7 days.
	Expiry time.Duration
	// MaxProducers caps the producers tracked; above it the least recently
	// appended producer is forgotten. Default 100,000.
	MaxProducers int
}

// defaultProducerConfig returns the documented defaults.
func defaultProducerConfig() producerConfig {
	return producerConfig{Expiry: defaultProducerExpiry, MaxProducers: defaultMaxProducers}
}

// validate rejects negative bounds; zero means the default.
func (c producerConfig) validate() error {
	if c.Expiry < 0 {
		return fmt.Errorf("producer expiry %v: must not be negative", c.Expiry)
	}
	if c.MaxProducers < 0 {
		return fmt.Errorf("max producers %d: must not be negative", c.MaxProducers)
	}
	return nil
}

// withDefaults replaces unset (non-positive) bounds by the defaults.
func (c producerConfig) withDefaults() producerConfig {
	d := defaultProducerConfig()
	if c.Expiry <= 0 {
		c.Expiry = d.Expiry
	}
	if c.MaxProducers <= 0 {
		c.MaxProducers = d.MaxProducers
	}
	return c
}

// appendedBatch is what the partition remembers of one appended batch of an
// idempotent producer: enough to recognise a retry of it and to ack the retry
// with the original offsets.
type appendedBatch struct {
	firstSeq   int32
	lastSeq    int32
	baseOffset int64
	lastOffset int64
}

// producerState is one producer ID's state. It is also a node of the
// table's recency list.
type producerState struct {
	id    int64
	epoch int16
	// batches is a ring of the newest batches of the current epoch, oldest
	// at head. n >= 1 for every producer in a table: a producer enters the
	// table with its first batch, and an epoch bump replaces the batches by
	// the batch that bumped it.
	batches [producerBatchesRetained]appendedBatch
	head, n uint8
	// lastAppend is the (clamped) time of the producer's last append, in
	// Unix nanoseconds: an integer, so that the snapshot encodes exactly
	// what the replicas compare.
	lastAppend int64
	// prev and next link the table's recency list.
	prev, next *producerState
}

// batch returns the i-th retained batch, 0 being the oldest.
func (p *producerState) batch(i int) appendedBatch {
	return p.batches[(int(p.head)+i)%producerBatchesRetained]
}

// newest returns the newest retained batch.
func (p *producerState) newest() appendedBatch { return p.batch(int(p.n) - 1) }

// push appends b to the ring, evicting the oldest when full.
func (p *producerState) push(b appendedBatch) {
	if p.n < producerBatchesRetained {
		p.batches[(int(p.head)+int(p.n))%producerBatchesRetained] = b
		p.n++
		return
	}
	p.batches[p.head] = b
	p.head = (p.head + 1) % producerBatchesRetained
}

// producerTable is the idempotent-producer state of one partition: Kafka's
// broker-side idempotence (ProducerStateManager), minus transactions.
//
// It is part of the partition's replicated state machine, so every method is
// a deterministic function of the table and its arguments: time comes from
// the caller (the Raft entry's AppendedAt, stamped by the leader and
// replicated), never from the local clock.
//
// Memory is bounded two ways, both enforced lazily by record so that an
// append costs O(1) amortised: producers idle for cfg.Expiry are dropped, and
// above cfg.MaxProducers the least recently appended producer is dropped.
//
// Time is clamped to be monotonic: an append's time is the later of the
// caller's time and the table's newest append. So a leader whose clock steps
// back cannot make producers look older than they are, the recency list is
// also sorted by time (which makes expiry a pop from its front), and
// check/record agree on who is expired without scanning.
//
// A producerTable is not safe for concurrent use; its owner (the FSM)
// serialises access.
type producerTable struct {
	cfg  producerConfig
	byID map[int64]*producerState
	// oldest and newest are the ends of the recency list, in order of last
	// append (so lastAppend is non-decreasing from oldest to newest). The
	// list is part of the state: it decides which producer the cap evicts,
	// and the snapshot stores producers in its order.
	oldest, newest *producerState
}

// newProducerTable returns an empty table. Non-positive bounds in cfg mean
// the defaults.
func newProducerTable(cfg producerConfig) *producerTable {
	return &producerTable{cfg: cfg.withDefaults(), byID: make(map[int64]*producerState)}
}

// len is the number of producers tracked, expired ones not yet swept
// included.
func (t *producerTable) len() int { return len(t.byID) }

// check decides whether the batch with header h may be appended at time now.
//
//   - (nil, nil): append it, then call record.
//   - (dup, nil): the batch is a retry of one already appended; do not
//     append it, ack it with dup's offsets.
//   - an error wrapping ErrProducerFenced or ErrOutOfOrderSequence: reject.
//
// Batches without a producer ID always pass. check does not modify the
// table, so it is safe for a leader to pre-check a batch before proposing
// it, as long as the FSM checks again when it applies the entry: only the
// FSM's answer is authoritative.
//
// A retry of a batch older than the retained five gets ErrOutOfOrderSequence,
// as in Kafka since DUPLICATE_SEQUENCE_NUMBER was retired: the partition can
// no longer tell a retry of an old batch from a bad sequence, and must not
// append it a second time. Idempotent producers keep at most five batches in
// flight, so a well-behaved producer never hits this.
func (t *producerTable) check(h record.BatchHeader, now time.Time) (*appendedBatch, error) {
	if h.ProducerID < 0 {
		return nil, nil
	}
	if h.BaseSequence < 0 {
		return nil, fmt.Errorf("producer %d epoch %d: batch has no sequence number (%d): %w",
			h.ProducerID, h.ProducerEpoch, h.BaseSequence, ErrOutOfOrderSequence)
	}
	p := t.lookup(h.ProducerID, t.clamp(now))
	if p == nil {
		if h.BaseSequence != 0 {
			return nil, fmt.Errorf("producer %d epoch %d: unknown (or expired) producer must start at sequence 0, got %d: %w",
				h.ProducerID, h.ProducerEpoch, h.BaseSequence, ErrOutOfOrderSequence)
		}
		return nil, nil
	}
	switch {
	case h.ProducerEpoch < p.epoch:
		return nil, fmt.Errorf("producer %d: epoch %d is older than current epoch %d: %w",
			h.ProducerID, h.ProducerEpoch, p.epoch, ErrProducerFenced)
	case h.ProducerEpoch > p.epoch:
		// A new epoch restarts the sequence; the old epoch's batches are
		// no longer duplicates of anything.
		if h.BaseSequence != 0 {
			return nil, fmt.Errorf("producer %d: new epoch %d (current %d) must start at sequence 0, got %d: %w",
				h.ProducerID, h.ProducerEpoch, p.epoch, h.BaseSequence, ErrOutOfOrderSequence)
		}
		return nil, nil
	}
	first, last := h.BaseSequence, h.LastSequence()
	for i := 0; i < int(p.n); i++ {
		if b := p.batch(i); b.firstSeq == first && b.lastSeq == last {
			return &b, nil
		}
	}
	if want := nextProducerSequence(p.newest().lastSeq); first != want {
		return nil, fmt.Errorf("producer %d epoch %d: expected sequence %d, got %d..%d (a gap, or a retry older than the last %d batches): %w",
			h.ProducerID, h.ProducerEpoch, want, first, last, producerBatchesRetained, ErrOutOfOrderSequence)
	}
	return nil, nil
}

// record updates the table after the batch with header h was appended at
// baseOffset (its last offset is baseOffset+h.LastOffsetDelta) at time now.
// It performs no checks: whatever was appended is the truth. Batches
// without a producer ID are ignored.
func (t *producerTable) record(h record.BatchHeader, baseOffset int64, now time.Time) {
	if h.ProducerID < 0 {
		return
	}
	at := t.clamp(now)
	t.expire(at)
	p := t.byID[h.ProducerID]
	if p == nil {
		p = &producerState{id: h.ProducerID, epoch: h.ProducerEpoch}
		t.byID[p.id] = p
	} else {
		t.unlink(p)
	}
	if p.epoch != h.ProducerEpoch {
		p.epoch, p.head, p.n = h.ProducerEpoch, 0, 0
	}
	p.push(appendedBatch{
		firstSeq:   h.BaseSequence,
		lastSeq:    h.LastSequence(),
		baseOffset: baseOffset,
		lastOffset: baseOffset + int64(h.LastOffsetDelta),
	})
	p.lastAppend = at
	t.pushNewest(p)
	for len(t.byID) > t.cfg.MaxProducers {
		t.remove(t.oldest)
	}
}

// observe replays a batch read back from the log (h.BaseOffset set), in
// offset order, to rebuild the table after a restart. appendedAt must be the
// time the batch was first applied with (its Raft entry's AppendedAt), or
// the rebuilt table expires producers differently from the other replicas.
func (t *producerTable) observe(h record.BatchHeader, appendedAt time.Time) {
	t.record(h, h.BaseOffset, appendedAt)
}

// lookup returns the producer's state, or nil when it is unknown or expired
// at time at.
func (t *producerTable) lookup(id int64, at int64) *producerState {
	p := t.byID[id]
	if p == nil || t.expired(p, at) {
		return nil
	}
	return p
}

// clamp converts now to the table's clock: never earlier than the newest
// append (see producerTable).
func (t *producerTable) clamp(now time.Time) int64 {
	at := producerUnixNanos(now)
	if t.newest != nil && t.newest.lastAppend > at {
		return t.newest.lastAppend
	}
	return at
}

// expired reports whether p's last append is at least cfg.Expiry before at.
// at >= p.lastAppend always holds (at is clamped), and the unsigned
// difference cannot overflow even for times at the ends of int64.
func (t *producerTable) expired(p *producerState, at int64) bool {
	return uint64(at)-uint64(p.lastAppend) >= uint64(t.cfg.Expiry)
}

// expire drops every producer expired at time at. Since the recency list is
// sorted by time, they are a prefix of it; each producer is dropped once per
// record that added it, so the cost is O(1) amortised per append.
func (t *producerTable) expire(at int64) {
	for t.oldest != nil && t.expired(t.oldest, at) {
		t.remove(t.oldest)
	}
}

// remove drops p from the table.
func (t *producerTable) remove(p *producerState) {
	t.unlink(p)
	delete(t.byID, p.id)
}

// unlink takes p out of the recency list.
func (t *producerTable) unlink(p *producerState) {
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		t.oldest = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	} else {
		t.newest = p.prev
	}
	p.prev, p.next = nil, nil
}

// pushNewest appends p, unlinked, at the newest end of the recency list.
func (t *producerTable) pushNewest(p *producerState) {
	p.prev = t.newest
	if t.newest != nil {
		t.newest.next = p
	} else {
		t.oldest = p
	}
	t.newest = p
}

// nextProducerSequence is the sequence that follows s: sequences wrap from
// MaxInt32 to 0, as in Kafka.
func nextProducerSequence(s int32) int32 {
	if s == math.MaxInt32 {
		return 0
	}
	return s + 1
}

// producerUnixNanos is t in Unix nanoseconds, saturated at the ends of int64
// instead of overflowing (time.Time.UnixNano is undefined out of range, and
// a zero AppendedAt is year 1).
func producerUnixNanos(t time.Time) int64 {
	const limit = math.MaxInt64/int64(time.Second) - 1
	switch s := t.Unix(); {
	case s < -limit:
		return math.MinInt64
	case s > limit:
		return math.MaxInt64
	}
	return t.UnixNano()
}
