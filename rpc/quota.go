package rpc

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/skiff-mq/skiff/cluster/metadata"
	pb "github.com/skiff-mq/skiff/rpc/skiffpb"
)

// ThrottleHeader is the response header (and, on streams, trailer) of a
// call the server held back for exceeding its principal's quota: the
// delay in milliseconds. A client should wait that long before its next
// request; the Go client does.
const ThrottleHeader = "skiff-throttle-ms"

// quotaSweepEvery is how often the enforcer forgets full buckets, which
// bounds its map by the principals active in the last sweep period.
const quotaSweepEvery = time.Minute

// quotaKind is what a quota meters.
type quotaKind int

const (
	kindProduce quotaKind = iota
	kindFetch
	kindRequests
	numQuotaKinds
)

func (k quotaKind) String() string {
	return [...]string{"produce", "fetch", "request"}[k]
}

func (k quotaKind) rate(q metadata.Quota) int64 {
	return [...]int64{q.ProduceBytesPerSec, q.FetchBytesPerSec, q.RequestsPerSec}[k]
}

type costs [numQuotaKinds]int64

type bucketKey struct {
	principal string
	kind      quotaKind
}

// quotaEnforcer throttles calls per principal, as Kafka does: each node
// meters what it serves, a call is served in full, and its answer is then
// held back until the principal's token bucket (throttle) is out of debt,
// at most maxDelay. It runs after the authenticator, which put the
// principal in the context. Principals without a quota (own or User:*)
// are never throttled.
type quotaEnforcer struct {
	state    func() *metadata.State
	maxDelay time.Duration
	now      func() time.Time
	shutdown <-chan struct{} // closes when the server stops: waits end

	throttleSeconds *prometheus.CounterVec // principal
	throttled       *prometheus.CounterVec // principal, kind
	panics          prometheus.Counter     // the server's handler panics counter

	mu        sync.Mutex
	buckets   map[bucketKey]*throttle // guarded by mu
	lastSweep time.Time               // guarded by mu
}

func newQuotaEnforcer(state func() *metadata.State, maxDelay time.Duration, shutdown <-chan struct{}, m *metrics) *quotaEnforcer {
	e := &quotaEnforcer{
		state: state, maxDelay: maxDelay, now: time.Now, shutdown: shutdown,
		buckets: map[bucketKey]*throttle{}, panics: m.panics,
		throttleSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "quota", Name: "throttle_seconds_total",
			Help: "Time answers were held back for exceeding a quota, by principal."}, []string{"principal"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "quota", Name: "throttled_requests_total",
			Help: "Calls (and stream messages) held back for exceeding a quota, by principal and kind (produce, fetch, request)."}, []string{"principal", "kind"}),
	}
	for _, c := range []prometheus.Collector{e.throttleSeconds, e.throttled} {
		if err := m.reg.Register(c); err == nil {
			m.registered = append(m.registered, c) // Stop unregisters them
		}
	}
	return e
}

// charge meters one call's costs against principal's quota and returns the
// delay its answer owes (0: not throttled).
func (e *quotaEnforcer) charge(principal string, c costs) time.Duration {
	q, limited := e.state().QuotaFor(principal)
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sweep(now)
	if !limited {
		return 0
	}
	var delay time.Duration
	for k := range numQuotaKinds {
		rate := k.rate(q)
		if rate <= 0 || c[k] <= 0 {
			continue
		}
		key := bucketKey{principal, k}
		b, ok := e.buckets[key]
		if !ok {
			b = newThrottle(rate, now)
			e.buckets[key] = b
		} else if b.rate != float64(rate) {
			b.SetRate(now, rate)
		}
		if d := b.Charge(now, c[k]); d > 0 {
			e.throttled.WithLabelValues(principal, k.String()).Inc()
			delay = max(delay, d)
		}
	}
	delay = min(delay, e.maxDelay)
	if delay > 0 {
		e.throttleSeconds.WithLabelValues(principal).Add(delay.Seconds())
	}
	return delay
}

// chargeSafely is charge for stream messages, which run outside the
// handler's panic recovery: metering must never end a stream, so a panic
// (a bug) is counted and the message goes unthrottled.
func (e *quotaEnforcer) chargeSafely(principal string, c costs) (d time.Duration) {
	defer func() {
		if p := recover(); p != nil {
			e.panics.Inc()
			d = 0
		}
	}()
	return e.charge(principal, c)
}

// sweep forgets the buckets that are full (a new one would be the same) or
// whose quota is gone. Called with mu held.
func (e *quotaEnforcer) sweep(now time.Time) {
	if now.Sub(e.lastSweep) < quotaSweepEvery {
		return
	}
	e.lastSweep = now
	st := e.state()
	for key, b := range e.buckets {
		q, ok := st.QuotaFor(key.principal)
		if !ok || key.kind.rate(q) <= 0 || b.Full(now) {
			delete(e.buckets, key)
		}
	}
}

// wait sleeps d, less if ctx ends or the server stops.
func (e *quotaEnforcer) wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-e.shutdown:
	}
}

func throttleMD(d time.Duration) grpcmd.MD {
	return grpcmd.Pairs(ThrottleHeader, strconv.FormatInt(max(1, d.Milliseconds()), 10))
}

// produceBytes and fetchBytes are the bytes a message carries in records.
func produceBytes(m any) int64 {
	r, ok := m.(*pb.ProduceRequest)
	if !ok {
		return 0
	}
	n := int64(len(r.GetBatch()))
	for _, rec := range r.GetRecords() {
		n += int64(proto.Size(rec))
	}
	return n
}

func fetchBytes(m any) int64 {
	switch r := m.(type) {
	case *pb.FetchResponse:
		return int64(len(r.GetBatches()))
	case *pb.ShareFetchResponse:
		var n int64
		for _, rec := range r.GetRecords() {
			n += int64(proto.Size(rec))
		}
		return n
	}
	return 0
}

func (e *quotaEnforcer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	p, ok := PrincipalFrom(ctx)
	if !ok || exempt(info.FullMethod) {
		return handler(ctx, req)
	}
	resp, err := handler(ctx, req)
	c := costs{kindRequests: 1, kindProduce: produceBytes(req)}
	if err == nil {
		c[kindFetch] = fetchBytes(resp)
	}
	if d := e.charge(p.String(), c); d > 0 {
		_ = grpc.SetHeader(ctx, throttleMD(d)) // fails only if the call is over
		e.wait(ctx, d)
	}
	return resp, err
}

// stream throttles per message: every message the client sends counts as
// a request (and its records as produce bytes), every message the server
// sends counts its records as fetch bytes. A throttled client message is
// served, and the next one is not read until the delay has passed (gRPC
// flow control then holds the client back); a throttled server message is
// sent, and the next one waits. The header says the first delay if it
// came before the first response; the trailer says the total.
func (e *quotaEnforcer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	p, ok := PrincipalFrom(ss.Context())
	if !ok || exempt(info.FullMethod) {
		return handler(srv, ss)
	}
	ts := &throttledStream{ServerStream: ss, e: e, principal: p.String()}
	err := handler(srv, ts)
	ts.mu.Lock()
	total := ts.total
	ts.mu.Unlock()
	if total > 0 {
		ss.SetTrailer(throttleMD(total))
	}
	return err
}

type throttledStream struct {
	grpc.ServerStream
	e         *quotaEnforcer
	principal string

	mu    sync.Mutex
	total time.Duration // guarded by mu: all delays, for the trailer
}

func (s *throttledStream) throttled(d time.Duration) {
	_ = s.ServerStream.SetHeader(throttleMD(d)) // refused once headers went out: the trailer tells
	s.mu.Lock()
	s.total += d
	s.mu.Unlock()
}

// RecvMsg hands the message on only once its debt is paid: a stream has no
// one answer per message to hold back, and owing the delay to the next
// message instead would let the last ones of every stream through free.
func (s *throttledStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if d := s.e.chargeSafely(s.principal, costs{kindRequests: 1, kindProduce: produceBytes(m)}); d > 0 {
		s.throttled(d)
		s.e.wait(s.Context(), d)
	}
	return nil
}

func (s *throttledStream) SendMsg(m any) error {
	n := fetchBytes(m)
	if n == 0 {
		return s.ServerStream.SendMsg(m)
	}
	d := s.e.chargeSafely(s.principal, costs{kindFetch: n})
	if d > 0 {
		s.throttled(d)
	}
	if err := s.ServerStream.SendMsg(m); err != nil {
		return err
	}
	if d > 0 {
		s.e.wait(s.Context(), d)
	}
	return nil
}
