package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// TestThrottledAnswerMutesTheConnection: after an answer saying
// skiff-throttle-ms: 200, the next call waits about that long before it is
// sent, and a cancelled caller stops waiting.
func TestThrottledAnswerMutesTheConnection(t *testing.T) {
	var c connThrottle
	var sent []time.Time
	invoker := func(ms string) grpc.UnaryInvoker {
		return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			sent = append(sent, time.Now())
			for _, o := range opts {
				if h, ok := o.(grpc.HeaderCallOption); ok && ms != "" {
					*h.HeaderAddr = metadata.Pairs(throttleHeader, ms)
				}
			}
			return nil
		}
	}
	ctx := context.Background()
	if err := c.unary(ctx, "/m", nil, nil, nil, invoker("200")); err != nil {
		t.Fatal(err)
	}
	if err := c.unary(ctx, "/m", nil, nil, nil, invoker("")); err != nil {
		t.Fatal(err)
	}
	if gap := sent[1].Sub(sent[0]); gap < 190*time.Millisecond {
		t.Fatalf("second call sent %v after a 200ms throttle", gap)
	}
	if err := c.unary(ctx, "/m", nil, nil, nil, invoker("")); err != nil {
		t.Fatal(err)
	}
	if gap := sent[2].Sub(sent[1]); gap > 100*time.Millisecond {
		t.Fatalf("an unthrottled answer still delayed the next call by %v", gap)
	}

	c.observe(time.Now(), metadata.Pairs(throttleHeader, "60000"))
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := c.unary(cctx, "/m", nil, nil, nil, invoker("")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a caller whose context ended: %v, want DeadlineExceeded", err)
	}
	if len(sent) != 3 {
		t.Fatal("a call was sent while the connection was muted")
	}
}
