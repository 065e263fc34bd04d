package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// Overflow is what a bounded partition does with a batch that would take it
// past one of its Bounds.
type Overflow uint8

const (
	// OverflowReject refuses the batch before it enters Raft (*FullError);
	// nothing is written.
	OverflowReject Overflow = iota
	// OverflowDropOldest appends the batch and advances the log start past
	// the oldest records until the partition is within its bounds again,
	// like a ring buffer. Readers behind the new start get
	// *log.OffsetOutOfRangeError with it.
	OverflowDropOldest
	// OverflowRejectUnacked refuses the batch (*FullError) when the share
	// group that has done the least of the partition would have more than
	// MaxMessages records not done (ShareBacklog): a queue whose workers
	// stall pushes back on its producers. MaxBytes still bounds the bytes
	// held, as with OverflowReject.
	OverflowRejectUnacked
)

// Bounds limit how much a partition holds: a bounded topic's max.messages
// and max.bytes with its overflow.policy. The zero value is unbounded.
type Bounds struct {
	// Topic names the topic in errors ("topic orders is full ...").
	Topic string
	// MaxMessages is the most records (offsets from the log start to the
	// end) the partition holds; 0 = unbounded.
	MaxMessages int64
	// MaxBytes is the most record-batch bytes the partition holds, counted
	// from the batch that holds the log start; 0 = unbounded.
	MaxBytes int64
	Overflow Overflow
}

func (b Bounds) bounded() bool { return b.MaxMessages > 0 || b.MaxBytes > 0 }

// ErrFull is matched by *FullError.
var ErrFull = errors.New("partition is full")

// FullError says a batch was refused because the partition would exceed a
// bound (overflow.policy reject), or because the batch alone exceeds it.
type FullError struct {
	Topic string
	Limit string // "max.messages" or "max.bytes"
	Max   int64
	// Batch is set when the batch by itself is larger than the bound, which
	// no amount of consuming or dropping can make room for.
	Batch int64
	// Unacked is set when the records counted were those not yet done by
	// share group Group (overflow.policy reject-unacked).
	Unacked bool
	Group   string
}

func (e *FullError) Error() string {
	name := "partition"
	if e.Topic != "" {
		name = "topic " + e.Topic
	}
	if e.Batch > 0 {
		return fmt.Sprintf("%s cannot take a batch of %d (%s=%d): send smaller batches", name, e.Batch, e.Limit, e.Max)
	}
	if e.Unacked && e.Group != "" {
		return fmt.Sprintf("%s is full (%s=%d): share group %s has not acknowledged them; speed up or add its consumers", name, e.Limit, e.Max, e.Group)
	}
	return fmt.Sprintf("%s is full (%s=%d)", name, e.Limit, e.Max)
}

// Is makes errors.Is(err, ErrFull) true.
func (e *FullError) Is(target error) bool { return target == ErrFull }

// SetBounds sets the partition's bounds; they apply to batches produced
// from now on. The leader checks them before a batch enters Raft; a
// drop-oldest bound travels inside the Raft entry, so every replica drops
// exactly the same records whatever bounds it has been told of.
func (r *Replica) SetBounds(b Bounds) error {
	if b.MaxMessages < 0 || b.MaxBytes < 0 {
		return fmt.Errorf("partition %s: negative bound (max.messages %d, max.bytes %d)", r.cfg.Group, b.MaxMessages, b.MaxBytes)
	}
	if b.Overflow != OverflowReject && b.Overflow != OverflowDropOldest && b.Overflow != OverflowRejectUnacked {
		return fmt.Errorf("partition %s: unknown overflow policy %d", r.cfg.Group, b.Overflow)
	}
	r.bounds.Store(&b)
	return nil
}

// Bounds returns the bounds set by SetBounds.
func (r *Replica) Bounds() Bounds {
	if b := r.bounds.Load(); b != nil {
		return *b
	}
	return Bounds{}
}

// inflight counts the records and bytes this replica, as leader in term,
// handed to Raft that its log has not taken yet. With the log's own counts
// it tells exactly how full the partition will be once everything queued
// is applied, so concurrent producers cannot together overshoot a reject
// bound.
//
// Every batch the leader queues is reserved (bounded or not: the bound may
// be set while batches are in flight), and the FSM settles each opAppend
// entry of the leader's term in the same critical section in which it
// appends it, so the sum never counts a batch twice or not at all. Entries
// that never reach the log (Raft refused them) are released by Wait; those
// lost with a leadership change are forgotten when the next term starts.
type inflight struct {
	mu      sync.Mutex
	term    uint64 // guarded by mu
	records int64  // guarded by mu
	bytes   int64  // guarded by mu
}

// reserveLocked counts a batch queued in term. mu is held.
func (f *inflight) reserveLocked(term uint64, records, bytes int64) {
	if f.term != term {
		f.term, f.records, f.bytes = term, 0, 0
	}
	f.records += records
	f.bytes += bytes
}

// settleLocked uncounts a batch of term that the log took or that will never
// reach it. mu is held.
func (f *inflight) settleLocked(term uint64, records, bytes int64) {
	if f.term != term {
		return
	}
	f.records = max(f.records-records, 0)
	f.bytes = max(f.bytes-bytes, 0)
}

// admit checks a batch of records records against the partition's bounds
// and reserves it in term; it returns the Raft command to queue. The caller
// releases the reservation if Raft refuses the entry.
//
// An idempotent batch that does not fit may be the retry of one that was
// written just before the partition filled up: it goes to Raft as an
// opAppendIfDuplicate (reserved as nothing, since it appends nothing), and
// full is the refusal to return unless the state machine recognises it.
func (r *Replica) admit(term uint64, batch []byte, records int64) (cmd []byte, full *FullError, err error) {
	cmd, err = r.admitBatch(term, batch, records)
	var fe *FullError
	if errors.As(err, &fe) && fe.Batch == 0 {
		if h, herr := record.ParseHeader(batch); herr == nil && h.ProducerID >= 0 {
			c := make([]byte, 1+len(batch))
			c[0] = opAppendIfDuplicate
			copy(c[1:], batch)
			return c, fe, nil
		}
	}
	return cmd, nil, err
}

func (r *Replica) admitBatch(term uint64, batch []byte, records int64) ([]byte, error) {
	if r.compactionConfig().Enabled {
		if err := checkKeys(batch); err != nil {
			return nil, err
		}
	}
	b := r.Bounds()
	size := int64(len(batch))
	if b.MaxMessages > 0 && records > b.MaxMessages {
		return nil, &FullError{Topic: b.Topic, Limit: "max.messages", Max: b.MaxMessages, Batch: records}
	}
	if b.MaxBytes > 0 && size > b.MaxBytes {
		return nil, &FullError{Topic: b.Topic, Limit: "max.bytes", Max: b.MaxBytes, Batch: size}
	}
	f := &r.fsm.inflight
	f.mu.Lock()
	defer f.mu.Unlock()
	if b.bounded() && (b.Overflow == OverflowReject || b.Overflow == OverflowRejectUnacked) {
		lg := r.fsm.log()
		if f.term != term {
			f.term, f.records, f.bytes = term, 0, 0
		}
		if b.MaxMessages > 0 {
			held, group := lg.NextOffset()-lg.LogStartOffset(), ""
			if b.Overflow == OverflowRejectUnacked {
				held, group = r.backlog.undone(lg.LogStartOffset(), lg.NextOffset(), time.Now())
			}
			if held+f.records+records > b.MaxMessages {
				return nil, &FullError{Topic: b.Topic, Limit: "max.messages", Max: b.MaxMessages, Unacked: group != "", Group: group}
			}
		}
		if b.MaxBytes > 0 {
			held, err := lg.HeldBytes()
			if err != nil {
				return nil, err
			}
			if held+f.bytes+size > b.MaxBytes {
				return nil, &FullError{Topic: b.Topic, Limit: "max.bytes", Max: b.MaxBytes}
			}
		}
	}
	f.reserveLocked(term, records, size)
	if b.bounded() && b.Overflow == OverflowDropOldest {
		return encodeBoundedAppend(b.MaxMessages, b.MaxBytes, batch), nil
	}
	return encodeAppend(batch), nil
}

// release undoes a reservation of a batch Raft refused.
func (r *Replica) release(term uint64, records, bytes int64) {
	f := &r.fsm.inflight
	f.mu.Lock()
	f.settleLocked(term, records, bytes)
	f.mu.Unlock()
}

// encodeBoundedAppend is an opAppend whose replicas keep the partition
// within maxMessages and maxBytes (0 = unbounded) by dropping its oldest
// records: type byte, the two bounds as uvarints, then the batch.
func encodeBoundedAppend(maxMessages, maxBytes int64, batch []byte) []byte {
	cmd := make([]byte, 1, 1+2*binary.MaxVarintLen64+len(batch))
	cmd[0] = opAppendDropOldest
	cmd = binary.AppendUvarint(cmd, uint64(maxMessages))
	cmd = binary.AppendUvarint(cmd, uint64(maxBytes))
	return append(cmd, batch...)
}

// decodeBoundedAppend splits an opAppendDropOldest payload (after the type
// byte).
func decodeBoundedAppend(p []byte) (maxMessages, maxBytes int64, batch []byte, err error) {
	m, n := binary.Uvarint(p)
	if n <= 0 || m > 1<<62 {
		return 0, 0, nil, fmt.Errorf("%w: bad max.messages in drop-oldest append", ErrInvalidBatch)
	}
	p = p[n:]
	by, n := binary.Uvarint(p)
	if n <= 0 || by > 1<<62 {
		return 0, 0, nil, fmt.Errorf("%w: bad max.bytes in drop-oldest append", ErrInvalidBatch)
	}
	return int64(m), int64(by), p[n:], nil
}
