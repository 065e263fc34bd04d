package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// ShareConsumerConfig configures a ShareConsumer. Zero fields take the
// defaults documented on them.
type ShareConsumerConfig struct {
	// Group is the share group to join. Required.
	Group string
	// Topics subscribes to topics by name; Pattern subscribes to every
	// topic matching a pattern, as for GroupConsumerConfig. Exactly one of
	// them.
	Topics  []string
	Pattern string
	// ClientID names the member in DescribeShareGroup. Default: host name.
	ClientID string
	// MaxRecords caps the records one Fetch returns. Default 100, at most
	// 10000.
	MaxRecords int
	// MaxWait is how long one fetch request waits on the coordinator while
	// nothing is available; Fetch repeats requests until its context
	// ends. It must be shorter than the client's RequestTimeout. Default
	// 1s.
	MaxWait time.Duration
	// MaxBytes bounds the keys, values and headers one Fetch returns (the
	// first record is returned whatever its size). Default 1 MiB, at most
	// 64 MiB.
	MaxBytes int

	// Batched acknowledgements (AcknowledgeAsync, and the records' Async
	// methods) travel with the next Fetch, as in Kafka's share consumer;
	// acks that no Fetch took within AckInterval are sent on their own,
	// and Flush and Close send what is left. Default 100ms.
	AckInterval time.Duration
	// MaxPendingAcks sends queued acks at once (without waiting for
	// AckInterval or a Fetch) when this many are queued. Default 10000,
	// at most 20000 (a request's limit).
	MaxPendingAcks int
	// OnAckResult, if set, receives the outcome of every queued ack: nil
	// once it is committed, else an error as Acknowledge returns them
	// (ErrNotHeld, ErrLockExpired, ErrIndeterminate, ...; or the error of
	// the whole request). It runs on the goroutine that sent the ack (a
	// Fetch, the ack timer, Flush or Close): keep it short, and do not
	// call Fetch, Flush or Close from it.
	OnAckResult func(ack ShareAck, err error)
}

// Broker limits of a share fetch.
const (
	maxShareFetchRecords = 10000
	maxShareFetchBytes   = 64 << 20
	maxShareAcks         = 20000 // acknowledgements per request
)

func (c ShareConsumerConfig) withDefaults() ShareConsumerConfig {
	if c.MaxRecords == 0 {
		c.MaxRecords = 100
	}
	if c.MaxWait == 0 {
		c.MaxWait = time.Second
	}
	if c.AckInterval == 0 {
		c.AckInterval = 100 * time.Millisecond
	}
	if c.MaxPendingAcks == 0 {
		c.MaxPendingAcks = 10000
	}
	if c.ClientID == "" {
		c.ClientID, _ = os.Hostname()
	}
	return c
}

// Validate reports every invalid field.
func (c ShareConsumerConfig) Validate() error {
	var errs []error
	if c.Group == "" {
		errs = append(errs, errors.New("share consumer config: Group is required"))
	}
	if (len(c.Topics) == 0) == (c.Pattern == "") {
		errs = append(errs, errors.New("share consumer config: set exactly one of Topics and Pattern"))
	}
	for _, t := range c.Topics {
		if t == "" {
			errs = append(errs, errors.New("share consumer config: empty topic name in Topics"))
			break
		}
	}
	if c.MaxRecords < 0 || c.MaxRecords > maxShareFetchRecords {
		errs = append(errs, fmt.Errorf("share consumer config: MaxRecords %d: want 0 (default 100) to %d", c.MaxRecords, maxShareFetchRecords))
	}
	if c.MaxWait < 0 {
		errs = append(errs, fmt.Errorf("share consumer config: MaxWait %v must not be negative", c.MaxWait))
	}
	if c.MaxBytes < 0 || c.MaxBytes > maxShareFetchBytes {
		errs = append(errs, fmt.Errorf("share consumer config: MaxBytes %d: want 0 (default 1 MiB) to %d", c.MaxBytes, maxShareFetchBytes))
	}
	if c.AckInterval < 0 {
		errs = append(errs, fmt.Errorf("share consumer config: AckInterval %v must not be negative", c.AckInterval))
	}
	if c.MaxPendingAcks < 0 || c.MaxPendingAcks > maxShareAcks {
		errs = append(errs, fmt.Errorf("share consumer config: MaxPendingAcks %d: want 0 (default 10000) to %d", c.MaxPendingAcks, maxShareAcks))
	}
	return errors.Join(errs...)
}

// ShareConsumer is a member of a share group: the group's coordinator
// hands it any available record of the subscribed topics, locked to it
// until it acknowledges the record or the lock (the group's
// lock.timeout.ms) expires. In key-ordered mode (the group's default) no
// two records of one key are in flight at once, in this member or any
// other, so records of different keys may be processed in parallel while
// each key stays in order.
//
// It is safe for concurrent use: one goroutine may Fetch while workers
// acknowledge the records they were given.
type ShareConsumer struct {
	c   *Client
	cfg ShareConsumerConfig

	mu       sync.Mutex // guards the fields below
	memberID string     // the coordinator's id for us; "" until the first fetch answers
	closed   bool
	pending  []ShareAck // queued acks, not yet taken by a request
	// ackLoopRunning says the ack timer goroutine (ackLoop) was started;
	// it returns when ackStop closes (Close), closing ackDone.
	ackLoopRunning bool

	ackKick chan struct{} // capacity 1: acks were queued
	ackFull chan struct{} // capacity 1: MaxPendingAcks reached
	ackStop chan struct{}
	ackDone chan struct{}
}

// NewShareConsumer makes a member of cfg.Group. It joins on its first
// Fetch.
func (c *Client) NewShareConsumer(cfg ShareConsumerConfig) (*ShareConsumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.MaxWait >= c.cfg.RequestTimeout {
		return nil, fmt.Errorf("share consumer config: MaxWait %v must be shorter than the client's RequestTimeout %v", cfg.MaxWait, c.cfg.RequestTimeout)
	}
	return &ShareConsumer{c: c, cfg: cfg, ackKick: make(chan struct{}, 1), ackFull: make(chan struct{}, 1),
		ackStop: make(chan struct{}), ackDone: make(chan struct{})}, nil
}

// MemberID is the id the coordinator gave this member ("" before the
// first Fetch answered).
func (s *ShareConsumer) MemberID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.memberID
}

// ShareRecord is a record delivered to a share consumer, locked to it
// until LockUntil. Settle it with Ack, Release, ReleaseWithBackoff or
// Reject, or extend the lock with Renew.
type ShareRecord struct {
	Record
	// DeliveryCount is 1 on the first delivery and counts every delivery
	// since (the record goes to the dead-letter topic when it reaches the
	// group's max.deliveries without an ack).
	DeliveryCount int
	// LockUntil is when the lock expires and the record becomes available
	// to other members. Renew moves it.
	LockUntil time.Time

	s *ShareConsumer
}

// Fetch returns the next records the coordinator hands this member,
// waiting until there are some or ctx ends (then nil, ctx.Err()). Each
// request waits MaxWait on the coordinator; Fetch repeats them. When the
// DLQ flood breaker has paused the group, Fetch returns an error matching
// ErrGroupPaused, with the reason, after MaxWait: calling it again in a
// loop does not spin.
func (s *ShareConsumer) Fetch(ctx context.Context) ([]*ShareRecord, error) {
	var unknownMember *retryBackoff
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s.mu.Lock()
		closed, memberID := s.closed, s.memberID
		s.mu.Unlock()
		if closed {
			return nil, fmt.Errorf("share fetch: share consumer %w", ErrClosed)
		}
		req := &skiffpb.ShareFetchRequest{Group: s.cfg.Group, MemberId: memberID, Topics: s.cfg.Topics, Pattern: s.cfg.Pattern,
			MaxRecords: int32(s.cfg.MaxRecords), MaxWaitMs: int32(s.cfg.MaxWait / time.Millisecond), ClientId: s.cfg.ClientID,
			MaxBytes: int32(s.cfg.MaxBytes)}
		acks := s.takePending(memberID)
		if len(acks) > 0 {
			req.Acks = make([]*skiffpb.ShareAck, len(acks))
			for i, a := range acks {
				req.Acks[i], _ = a.pb() // checked when queued
			}
		}
		start := time.Now()
		var resp *skiffpb.ShareFetchResponse
		// A fetch whose outcome was lost may have locked records to us
		// that we never see: they come back when their locks expire (or
		// at once when we leave), so repeating it is safe. Its acks are
		// safe to repeat too: a repeat finds them settled (NOT_HELD),
		// which shareAckError reports as ErrIndeterminate.
		uncertain, err := s.c.shareGroupCall(ctx, s.cfg.Group, func(ctx context.Context, cc *grpc.ClientConn) error {
			var err error
			resp, err = skiffpb.NewShareGroupsClient(cc).ShareFetch(ctx, req)
			return err
		})
		if len(acks) > 0 {
			if err != nil {
				// A request that may have reached the coordinator may have
				// applied its acks.
				aerr := fmt.Errorf("share acknowledge group %s (with a fetch): %w", s.cfg.Group, err)
				if uncertain || ctx.Err() != nil || errors.Is(err, ErrUnavailable) {
					aerr = brokerErr(ErrIndeterminate, aerr.Error())
				}
				s.reportAcks(acks, nil, false, aerr)
			} else {
				s.reportAcks(acks, matchAckResults(acks, resp.GetAckResults()), uncertain, nil)
			}
		}
		switch {
		case errors.Is(err, ErrUnknownMember):
			// Our membership expired (or the coordinator moved and forgot
			// it): join again as a new member. The first retry is
			// immediate; a coordinator that keeps refusing is paced.
			s.setMemberID(memberID, "")
			if unknownMember == nil {
				unknownMember = newBackoff()
				continue
			}
			if werr := unknownMember.wait(ctx); werr != nil {
				return nil, werr
			}
			continue
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("share fetch group %s: %w", s.cfg.Group, err)
		}
		unknownMember = nil
		if id := resp.GetMemberId(); id != "" {
			s.setMemberID(memberID, id)
		}
		if resp.GetPaused() {
			// The coordinator may answer at once; wait out MaxWait so
			// that a caller's loop does not hammer a paused group.
			if werr := sleepCtx(ctx, s.cfg.MaxWait-time.Since(start)); werr != nil {
				return nil, werr
			}
			reason := resp.GetPausedReason()
			if reason == "" {
				reason = "the DLQ flood breaker paused delivery"
			}
			return nil, brokerErr(ErrGroupPaused, fmt.Sprintf("share group %s paused: %s", s.cfg.Group, reason))
		}
		if len(resp.GetRecords()) > 0 {
			out := make([]*ShareRecord, 0, len(resp.GetRecords()))
			for _, r := range resp.GetRecords() {
				out = append(out, s.fromPBShareRecord(r))
			}
			return out, nil
		}
		// Nothing available. A coordinator that answered well before
		// MaxWait (it does not long-poll, or it was woken for records
		// another member took) gets a short pause, so this loop never
		// spins; except after a request that carried acks, which the
		// coordinator answers at once: the next request, without acks,
		// long-polls.
		if len(acks) == 0 && time.Since(start) < s.cfg.MaxWait/2 {
			if werr := sleepCtx(ctx, min(50*time.Millisecond, s.cfg.MaxWait)); werr != nil {
				return nil, werr
			}
		}
	}
}

// shareGroupCall is groupCall that also repeats a call whose outcome was
// lost (ErrIndeterminate: the coordinator lost leadership while
// replicating it), until ctx ends or RequestTimeout passes. Only for
// calls that are safe to repeat; uncertain reports that an attempt's
// outcome was lost, so that the caller can read the final answer in that
// light.
func (c *Client) shareGroupCall(ctx context.Context, group string, call func(ctx context.Context, cc *grpc.ClientConn) error) (uncertain bool, err error) {
	ctx, cancel := c.requestContext(ctx)
	defer cancel()
	bo := newBackoff()
	for {
		maybe, err := c.groupCallTracked(ctx, group, call)
		uncertain = uncertain || maybe
		if !errors.Is(err, ErrIndeterminate) {
			return uncertain, err
		}
		uncertain = true
		c.log.Debug("share group call outcome unknown, repeating", "group", group, "err", err)
		if werr := bo.wait(ctx); werr != nil {
			return uncertain, err
		}
	}
}

// setMemberID replaces the member id if it is still old (a concurrent
// Fetch may have set a newer one).
func (s *ShareConsumer) setMemberID(old, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.memberID == old {
		s.memberID = id
	}
}

// sleepCtx waits d (nothing when d <= 0) or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *ShareConsumer) fromPBShareRecord(r *skiffpb.ShareRecord) *ShareRecord {
	out := &ShareRecord{
		Record: Record{Topic: r.GetTopic(), Partition: r.GetPartition(), Offset: r.GetOffset(),
			Key: nonNullBytes(r.GetKey(), r.GetKeyNull()), Value: nonNullBytes(r.GetValue(), r.GetValueNull()),
			Headers: fromPBHeaders(r.GetHeaders()), Timestamp: time.UnixMilli(r.GetTimestampMs())},
		DeliveryCount: int(r.GetDeliveryCount()),
		s:             s,
	}
	if ms := r.GetLockUntilMs(); ms > 0 {
		out.LockUntil = time.UnixMilli(ms)
	}
	return out
}

// nonNullBytes keeps the difference between null (nil) and empty that
// protobuf bytes fields lose: the message says which with a _null flag.
func nonNullBytes(b []byte, null bool) []byte {
	if null {
		return nil
	}
	if b == nil {
		return []byte{}
	}
	return b
}

func fromPBHeaders(in []*skiffpb.Header) []record.Header {
	if len(in) == 0 {
		return nil
	}
	out := make([]record.Header, len(in))
	for i, h := range in {
		out[i] = record.Header{Key: h.GetKey(), Value: h.GetValue()}
	}
	return out
}

// ShareAckType is what an acknowledgement does to a record.
type ShareAckType int

const (
	// ShareAccept marks the record processed: it is never delivered
	// again.
	ShareAccept ShareAckType = iota
	// ShareRelease hands the record back for another delivery, now, after
	// Delay, or after the group's backoff (Delay -1).
	ShareRelease
	// ShareReject sends the record to the group's dead-letter topic at
	// once.
	ShareReject
	// ShareRenew extends the record's lock by the group's lock.timeout.ms.
	ShareRenew
)

func (t ShareAckType) String() string {
	switch t {
	case ShareAccept:
		return "accept"
	case ShareRelease:
		return "release"
	case ShareReject:
		return "reject"
	case ShareRenew:
		return "renew"
	}
	return fmt.Sprintf("ShareAckType(%d)", int(t))
}

func (t ShareAckType) pb() (skiffpb.ShareAckType, error) {
	switch t {
	case ShareAccept:
		return skiffpb.ShareAckType_SHARE_ACK_ACCEPT, nil
	case ShareRelease:
		return skiffpb.ShareAckType_SHARE_ACK_RELEASE, nil
	case ShareReject:
		return skiffpb.ShareAckType_SHARE_ACK_REJECT, nil
	case ShareRenew:
		return skiffpb.ShareAckType_SHARE_ACK_RENEW, nil
	}
	return 0, &InvalidArgumentError{Field: "type", Reason: fmt.Sprintf("unknown share ack type %d", int(t))}
}

// BackoffDelay as a ShareAck's Delay releases the record after the group's
// backoff policy (exponential in the delivery count, with jitter).
const BackoffDelay time.Duration = -1

// ShareAck acknowledges one record.
type ShareAck struct {
	Topic     string
	Partition int32
	Offset    int64
	Type      ShareAckType
	// Delay of a ShareRelease: 0 redelivers now, > 0 after it,
	// BackoffDelay (-1) after the group's backoff. Millisecond precision.
	Delay time.Duration
	// Reason is why processing failed (release, reject); the group keeps
	// it as the record's last error, shown by InspectShareRecord and in
	// the dead-letter headers.
	Reason string
}

func (a ShareAck) pb() (*skiffpb.ShareAck, error) {
	typ, err := a.Type.pb()
	if err != nil {
		return nil, err
	}
	delay := a.Delay.Milliseconds()
	switch {
	case a.Delay < 0 && a.Delay != BackoffDelay:
		return nil, &InvalidArgumentError{Field: "delay", Reason: fmt.Sprintf("%v: want >= 0, or BackoffDelay (-1) for the group's backoff", a.Delay)}
	case a.Delay == BackoffDelay:
		delay = -1
	case a.Delay > 0 && delay == 0:
		delay = 1 // a sub-millisecond delay is still a delay
	}
	if a.Type != ShareRelease {
		delay = 0
	}
	return &skiffpb.ShareAck{Topic: a.Topic, Partition: a.Partition, Offset: a.Offset, Type: typ, DelayMs: delay, Error: a.Reason}, nil
}

// shareKey identifies a record in a share group.
type shareKey struct {
	topic     string
	partition int32
	offset    int64
}

func (k shareKey) String() string { return fmt.Sprintf("%s/%d@%d", k.topic, k.partition, k.offset) }

// Acknowledge sends acks in one request. The result has one entry per
// ack, in order: nil when it was applied, else an error matching
// ErrNotHeld, ErrLockExpired, ErrUnknownRecord or ErrRejected. err is for
// the call as a whole (then nothing is known to be applied).
//
// A request whose outcome was lost (the coordinator failed over while
// replicating it) is sent again. A record the repeat finds no longer held
// may have been settled by the lost attempt: its error matches
// ErrIndeterminate rather than ErrNotHeld.
func (s *ShareConsumer) Acknowledge(ctx context.Context, acks []ShareAck) ([]error, error) {
	results, uncertain, err := s.acknowledge(ctx, acks)
	if err != nil {
		return nil, err
	}
	errs := make([]error, len(results))
	for i, r := range results {
		errs[i] = shareAckError(acks[i], r, uncertain)
	}
	return errs, nil
}

// shareAckError is the error of one acknowledgement, nil when it was
// applied. uncertain says an earlier attempt of the request had an
// unknown outcome.
func shareAckError(a ShareAck, r *skiffpb.ShareAckResult, uncertain bool) error {
	err := shareAckResultError(r)
	if uncertain && a.Type != ShareRenew && errors.Is(err, ErrNotHeld) {
		return brokerErr(ErrIndeterminate, fmt.Sprintf("%s/%d@%d: %s outcome unknown: an attempt lost in a coordinator failover may have applied it (the repeat found the record no longer held)",
			a.Topic, a.Partition, a.Offset, a.Type))
	}
	return err
}

// acknowledge sends acks and returns the broker's result for each, in the
// order of acks.
func (s *ShareConsumer) acknowledge(ctx context.Context, acks []ShareAck) (results []*skiffpb.ShareAckResult, uncertain bool, err error) {
	if len(acks) == 0 {
		return nil, false, nil
	}
	s.mu.Lock()
	closed, memberID := s.closed, s.memberID
	s.mu.Unlock()
	if closed {
		return nil, false, fmt.Errorf("share acknowledge: share consumer %w", ErrClosed)
	}
	req := &skiffpb.ShareAckRequest{Group: s.cfg.Group, MemberId: memberID, Acks: make([]*skiffpb.ShareAck, len(acks))}
	for i, a := range acks {
		pa, err := a.pb()
		if err != nil {
			return nil, false, fmt.Errorf("share acknowledge %s/%d@%d: %w", a.Topic, a.Partition, a.Offset, err)
		}
		req.Acks[i] = pa
	}
	var resp *skiffpb.ShareAckResponse
	uncertain, err = s.c.shareGroupCall(ctx, s.cfg.Group, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewShareGroupsClient(cc).ShareAcknowledge(ctx, req)
		return err
	})
	if err != nil {
		return nil, uncertain, fmt.Errorf("share acknowledge group %s: %w", s.cfg.Group, err)
	}
	return matchAckResults(acks, resp.GetResults()), uncertain, nil
}

// matchAckResults orders the broker's results as the acks were sent. The
// broker answers in request order; matching by record keeps a reordered
// answer correct too, and an ack without an answer is an error rather than
// a silent success.
func matchAckResults(acks []ShareAck, results []*skiffpb.ShareAckResult) []*skiffpb.ShareAckResult {
	keyOf := func(r *skiffpb.ShareAckResult) shareKey {
		return shareKey{r.GetTopic(), r.GetPartition(), r.GetOffset()}
	}
	out := make([]*skiffpb.ShareAckResult, len(acks))
	inOrder := len(results) == len(acks)
	for i := 0; inOrder && i < len(acks); i++ {
		inOrder = keyOf(results[i]) == shareKey{acks[i].Topic, acks[i].Partition, acks[i].Offset}
	}
	if inOrder {
		copy(out, results)
		return out
	}
	byKey := make(map[shareKey][]*skiffpb.ShareAckResult, len(results))
	for _, r := range results {
		byKey[keyOf(r)] = append(byKey[keyOf(r)], r)
	}
	for i, a := range acks {
		k := shareKey{a.Topic, a.Partition, a.Offset}
		rs := byKey[k]
		if len(rs) == 0 {
			out[i] = &skiffpb.ShareAckResult{Topic: a.Topic, Partition: a.Partition, Offset: a.Offset,
				ErrorReason: "NO_RESULT", Error: "the broker sent no result for this record"}
			continue
		}
		out[i], byKey[k] = rs[0], rs[1:]
	}
	return out
}

// shareAckResultError is the error of one record's acknowledgement, nil
// when it was applied.
func shareAckResultError(r *skiffpb.ShareAckResult) error {
	if r.GetErrorReason() == "" {
		return nil
	}
	k := shareKey{r.GetTopic(), r.GetPartition(), r.GetOffset()}
	msg := r.GetError()
	if msg == "" {
		msg = r.GetErrorReason()
	}
	msg = k.String() + ": " + msg
	if err, ok := shareReasonError(r.GetErrorReason(), msg); ok {
		return err
	}
	if r.GetErrorReason() == "INVALID_ARGUMENT" {
		return &InvalidArgumentError{Field: "acks", Reason: msg}
	}
	return brokerErr(ErrRejected, msg+" ("+r.GetErrorReason()+")")
}

// settle acknowledges r alone and returns its result.
func (r *ShareRecord) settle(ctx context.Context, typ ShareAckType, delay time.Duration, reason string) (*skiffpb.ShareAckResult, error) {
	if r.s == nil {
		return nil, fmt.Errorf("share record %s/%d@%d: not delivered by a ShareConsumer", r.Topic, r.Partition, r.Offset)
	}
	ack := ShareAck{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Type: typ, Delay: delay, Reason: reason}
	results, uncertain, err := r.s.acknowledge(ctx, []ShareAck{ack})
	if err != nil {
		return nil, err
	}
	if err := shareAckError(ack, results[0], uncertain); err != nil {
		return nil, fmt.Errorf("share %s: %w", typ, err)
	}
	return results[0], nil
}

// Ack marks the record processed: it is never delivered again.
func (r *ShareRecord) Ack(ctx context.Context) error {
	_, err := r.settle(ctx, ShareAccept, 0, "")
	return err
}

// Release hands the record back for another delivery after delay (0: at
// once). Any delay length is allowed; the delay survives coordinator
// failover.
func (r *ShareRecord) Release(ctx context.Context, delay time.Duration) error {
	if delay < 0 {
		return &InvalidArgumentError{Field: "delay", Reason: fmt.Sprintf("%v must not be negative (ReleaseWithBackoff uses the group's backoff)", delay)}
	}
	_, err := r.settle(ctx, ShareRelease, delay, "")
	return err
}

// ReleaseWithBackoff hands the record back for another delivery after the
// group's backoff (backoff.* settings, growing with DeliveryCount), and
// keeps reason as its last error.
func (r *ShareRecord) ReleaseWithBackoff(ctx context.Context, reason string) error {
	_, err := r.settle(ctx, ShareRelease, BackoffDelay, reason)
	return err
}

// Reject sends the record to the group's dead-letter topic at once, with
// reason as its last error. In key-ordered mode its key waits until the
// dead letter is redriven or discarded.
func (r *ShareRecord) Reject(ctx context.Context, reason string) error {
	_, err := r.settle(ctx, ShareReject, 0, reason)
	return err
}

// Renew extends the lock by the group's lock.timeout.ms from now, and
// returns (and stores in LockUntil) the new expiry. Call it from the
// goroutine that reads LockUntil.
func (r *ShareRecord) Renew(ctx context.Context) (time.Time, error) {
	res, err := r.settle(ctx, ShareRenew, 0, "")
	if err != nil {
		return time.Time{}, err
	}
	if ms := res.GetLockUntilMs(); ms > 0 {
		r.LockUntil = time.UnixMilli(ms)
	}
	return r.LockUntil, nil
}

// Close sends the acks still queued, then leaves the group: the
// coordinator releases every record this member still holds, for
// immediate redelivery to others. Fetch and Acknowledge fail with
// ErrClosed afterwards. Closing twice does nothing.
func (s *ShareConsumer) Close(ctx context.Context) error {
	flushErr := s.Flush(ctx)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	memberID := s.memberID
	running := s.ackLoopRunning
	s.mu.Unlock()
	close(s.ackStop)
	if running {
		<-s.ackDone
	}
	// Acks queued by the timer's last round or concurrently with Close.
	s.reportAcks(s.takePending(""), nil, false, fmt.Errorf("share acknowledge: share consumer %w", ErrClosed))
	if memberID == "" {
		return flushErr
	}
	_, err := s.c.shareGroupCall(ctx, s.cfg.Group, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := skiffpb.NewShareGroupsClient(cc).ShareLeave(ctx, &skiffpb.ShareLeaveRequest{Group: s.cfg.Group, MemberId: memberID})
		return err
	})
	if err != nil && !errors.Is(err, ErrUnknownMember) {
		return fmt.Errorf("leave share group %s: %w", s.cfg.Group, err)
	}
	return flushErr
}

// AcknowledgeAsync queues acks to travel with the next Fetch (or after
// AckInterval, or at Flush or Close), so that settling records costs no
// request of its own. Outcomes go to OnAckResult. It fails at once, with
// nothing queued, when an ack is invalid or the consumer is closed.
// Acknowledge is the synchronous form, for callers that need the
// outcome before they go on.
func (s *ShareConsumer) AcknowledgeAsync(acks ...ShareAck) error {
	for _, a := range acks {
		if _, err := a.pb(); err != nil {
			return fmt.Errorf("share acknowledge %s/%d@%d: %w", a.Topic, a.Partition, a.Offset, err)
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("share acknowledge: share consumer %w", ErrClosed)
	}
	wasEmpty := len(s.pending) == 0
	s.pending = append(s.pending, acks...)
	full := len(s.pending) >= s.cfg.MaxPendingAcks
	if !s.ackLoopRunning {
		s.ackLoopRunning = true
		go s.ackLoop()
	}
	s.mu.Unlock()
	if wasEmpty {
		select {
		case s.ackKick <- struct{}{}:
		default:
		}
	}
	if full {
		select {
		case s.ackFull <- struct{}{}:
		default:
		}
	}
	return nil
}

// Flush sends the queued acks now and returns when their outcomes were
// reported to OnAckResult. The error is that of a request as a whole.
func (s *ShareConsumer) Flush(ctx context.Context) error {
	s.mu.Lock()
	memberID := s.memberID
	s.mu.Unlock()
	var first error
	for {
		acks := s.takePending(memberID)
		if len(acks) == 0 {
			return first
		}
		if err := s.sendAcks(ctx, acks); err != nil && first == nil {
			first = err
		}
	}
}

// ackLoop sends acks that waited AckInterval without a Fetch taking them,
// and sends at once when MaxPendingAcks are queued. It runs from the
// first AcknowledgeAsync until Close.
func (s *ShareConsumer) ackLoop() {
	defer close(s.ackDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Close stops a send in progress only through its context.
		select {
		case <-s.ackStop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-s.ackStop:
			return
		case <-s.ackKick:
		case <-s.ackFull:
		}
		t := time.NewTimer(s.cfg.AckInterval)
		select {
		case <-s.ackStop:
			t.Stop()
			return
		case <-t.C:
		case <-s.ackFull:
			t.Stop()
		}
		s.mu.Lock()
		memberID := s.memberID
		s.mu.Unlock()
		if acks := s.takePending(memberID); len(acks) > 0 {
			s.sendAcks(ctx, acks)
		}
		s.mu.Lock()
		more := len(s.pending) > 0
		s.mu.Unlock()
		if more {
			select {
			case s.ackKick <- struct{}{}:
			default:
			}
		}
	}
}

// takePending takes up to a request's worth of queued acks. Acks queued
// before this member had an id (or after it lost it) cannot be sent:
// they are reported as failed.
func (s *ShareConsumer) takePending(memberID string) []ShareAck {
	s.mu.Lock()
	n := min(len(s.pending), maxShareAcks)
	acks := s.pending[:n:n]
	s.pending = s.pending[n:]
	if len(s.pending) == 0 {
		s.pending = nil
	}
	s.mu.Unlock()
	if memberID == "" && len(acks) > 0 && !s.isClosed() {
		s.reportAcks(acks, nil, false, brokerErr(ErrNotHeld, "the member has no id (its membership expired): the records come back after their locks"))
		return nil
	}
	return acks
}

func (s *ShareConsumer) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// sendAcks sends acks in one request of their own and reports them.
func (s *ShareConsumer) sendAcks(ctx context.Context, acks []ShareAck) error {
	results, uncertain, err := s.acknowledge(ctx, acks)
	s.reportAcks(acks, results, uncertain, err)
	return err
}

// reportAcks hands each ack's outcome to OnAckResult: reqErr for all
// when the request failed, else each one's result.
func (s *ShareConsumer) reportAcks(acks []ShareAck, results []*skiffpb.ShareAckResult, uncertain bool, reqErr error) {
	if s.cfg.OnAckResult == nil {
		return
	}
	for i, a := range acks {
		if reqErr != nil || i >= len(results) {
			err := reqErr
			if err == nil {
				err = brokerErr(ErrIndeterminate, "no result for this acknowledgement")
			}
			s.cfg.OnAckResult(a, err)
			continue
		}
		s.cfg.OnAckResult(a, shareAckError(a, results[i], uncertain))
	}
}

// AckAsync queues an accept of the record (see AcknowledgeAsync).
func (r *ShareRecord) AckAsync() error { return r.settleAsync(ShareAccept, 0, "") }

// ReleaseAsync queues a release of the record for redelivery after delay
// (0: at once; BackoffDelay: after the group's backoff), keeping reason
// as its last error (see AcknowledgeAsync).
func (r *ShareRecord) ReleaseAsync(delay time.Duration, reason string) error {
	return r.settleAsync(ShareRelease, delay, reason)
}

// RejectAsync queues a reject of the record: to the dead-letter topic,
// with reason as its last error (see AcknowledgeAsync).
func (r *ShareRecord) RejectAsync(reason string) error { return r.settleAsync(ShareReject, 0, reason) }

func (r *ShareRecord) settleAsync(typ ShareAckType, delay time.Duration, reason string) error {
	if r.s == nil {
		return fmt.Errorf("share record %s/%d@%d: not delivered by a ShareConsumer", r.Topic, r.Partition, r.Offset)
	}
	return r.s.AcknowledgeAsync(ShareAck{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Type: typ, Delay: delay, Reason: reason})
}
