package client

import (
	"context"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// throttleHeader is the response header (trailer on streams) of a call a
// broker held back for exceeding a quota: the delay in milliseconds (the
// server's rpc.ThrottleHeader).
const throttleHeader = "skiff-throttle-ms"

// connThrottle mutes one connection after a throttled answer, as Kafka
// clients mute the channel: the next request on it waits until the delay
// the broker asked for has passed, so a client over its quota does not
// pile up requests the broker would only hold back too.
type connThrottle struct {
	mu    sync.Mutex
	until time.Time // guarded by mu: no request is sent before it
}

// wait blocks until the connection is unmuted or ctx ends.
func (c *connThrottle) wait(ctx context.Context) error {
	c.mu.Lock()
	d := time.Until(c.until)
	c.mu.Unlock()
	if d <= 0 {
		return nil
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

// observe mutes the connection for the delay md announces, counted from
// from: the broker already held the answer back for that long, so a
// request's own wait counts (muting from the answer's arrival would make
// the client pay every delay twice and run well under its quota).
func (c *connThrottle) observe(from time.Time, md metadata.MD) {
	v := md.Get(throttleHeader)
	if len(v) == 0 {
		return
	}
	ms, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil || ms <= 0 {
		return
	}
	until := from.Add(time.Duration(ms) * time.Millisecond)
	c.mu.Lock()
	if until.After(c.until) {
		c.until = until
	}
	c.mu.Unlock()
}

func (c *connThrottle) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if err := c.wait(ctx); err != nil {
		return err
	}
	var hdr metadata.MD
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Header(&hdr))...)
	c.observe(start, hdr)
	return err
}

func (c *connThrottle) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if err := c.wait(ctx); err != nil {
		return nil, err
	}
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &throttledClientStream{ClientStream: cs, c: c}, nil
}

// throttledClientStream waits before each message it sends while the
// connection is muted. Within a stream the broker throttles by reading the
// next message late, so only the stream's end (the trailer's total) mutes
// the connection, for the next call.
type throttledClientStream struct {
	grpc.ClientStream
	c *connThrottle
}

func (s *throttledClientStream) SendMsg(m any) error {
	if err := s.c.wait(s.Context()); err != nil {
		return err
	}
	return s.ClientStream.SendMsg(m)
}

func (s *throttledClientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil {
		s.c.observe(time.Now(), s.Trailer())
	}
	return err
}
