package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// Client is a connection to a Skiff cluster. It is safe for concurrent use;
// build producers and consumers from it, and Close it when done.
type Client struct {
	cfg     Config
	log     *slog.Logger
	meta    *metadataCache
	streams *produceStreams
	coords  coordinators

	// ctx is the client's lifetime; streams derive from it.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex // guards the fields below
	conns     map[string]*grpc.ClientConn
	preferred string // the broker that last answered an admin call
	// silent holds brokers that let a request run into its deadline
	// without an answer (paused, cut off, or dead without a reset), with
	// when that was seen; any answer from one clears it (suspects.go).
	silent map[string]time.Time
	closed bool
}

// New connects to the cluster: it asks the brokers of cfg in turn for the
// cluster's metadata until one answers, and fails if none does before ctx
// ends or DialTimeout passes for each.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{
		cfg:   cfg,
		log:   cfg.Logger,
		conns: make(map[string]*grpc.ClientConn),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.meta = newMetadataCache(c, cfg.Brokers, cfg.MetadataMaxAge)
	c.streams = newProduceStreams(c)
	var errs []error
	for _, addr := range cfg.Brokers {
		dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
		resp, err := c.metadataFrom(dctx, addr, nil)
		cancel()
		if err == nil {
			c.meta.storeBrokers(resp)
			c.mu.Lock()
			c.preferred = addr
			c.mu.Unlock()
			return c, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	c.Close()
	return nil, fmt.Errorf("client: no broker answered: %w", errors.Join(errs...))
}

// Close closes every connection. Producers and consumers built from the
// client must be closed first; their calls fail with ErrClosed afterwards.
func (c *Client) Close() error {
	c.cancel()
	c.streams.close()
	c.mu.Lock()
	conns := c.conns
	c.conns, c.closed = nil, true
	c.mu.Unlock()
	var errs []error
	for _, cc := range conns {
		errs = append(errs, cc.Close())
	}
	return errors.Join(errs...)
}

// conn returns the connection to addr, opening it on first use. Opening
// does not block: gRPC connects in the background and the first call waits
// for it (up to DialTimeout as the minimum connect timeout).
func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("client: %w", ErrClosed)
	}
	if cc := c.conns[addr]; cc != nil {
		return cc, nil
	}
	bo := backoff.DefaultConfig
	// A restarted broker should be found again within a second or two, not
	// after gRPC's default two-minute backoff ceiling.
	bo.BaseDelay, bo.MaxDelay = 100*time.Millisecond, 2*time.Second
	creds := insecure.NewCredentials()
	if c.cfg.TLS != nil {
		creds = credentials.NewTLS(c.cfg.TLS)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if c.cfg.Password != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(passwordCreds{user: c.cfg.User, password: c.cfg.Password}))
	}
	throttle := &connThrottle{}
	cc, err := grpc.NewClient(addr, append(opts,
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: c.cfg.DialTimeout}),
		// A broker whose host or container died sends no RST: without
		// pings, calls in flight to it would wait out their whole timeout
		// before going to the new leader.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
		// Honour quotas: after a throttled answer, wait before the next
		// request on this connection (throttle.go).
		grpc.WithChainUnaryInterceptor(throttle.unary),
		grpc.WithChainStreamInterceptor(throttle.stream),
	)...)
	if err != nil {
		return nil, fmt.Errorf("client: broker %s: %w", addr, err)
	}
	c.conns[addr] = cc
	return cc, nil
}

// Connection liveness pings: a dead broker is noticed within about
// keepaliveTime+keepaliveTimeout. The server allows pings this frequent
// (rpc.Server's keepalive enforcement).
const (
	keepaliveTime    = 500 * time.Millisecond
	keepaliveTimeout = 500 * time.Millisecond
)

// requestContext bounds one request by RequestTimeout unless ctx ends
// earlier.
func (c *Client) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.RequestTimeout)
}

// metadataFrom asks the broker at addr for the metadata of topics (all
// topics when empty).
func (c *Client) metadataFrom(ctx context.Context, addr string, topics []string) (*skiffpb.MetadataResponse, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	rctx, cancel := c.requestContext(ctx)
	defer cancel()
	resp, err := skiffpb.NewAdminClient(cc).Metadata(rctx, &skiffpb.MetadataRequest{Topics: topics})
	return resp, fromStatus(err)
}

// brokerOrder lists broker addresses to try for a request any broker can
// serve: the one that answered last, then every known broker, then the
// configured seeds.
func (c *Client) brokerOrder() []string {
	c.mu.Lock()
	preferred := c.preferred
	c.mu.Unlock()
	var addrs []string
	if preferred != "" {
		addrs = append(addrs, preferred)
	}
	for _, a := range append(c.meta.brokerAddrs(), c.cfg.Brokers...) {
		if a != "" && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	// Brokers that went silent are asked last: a paused one would use up
	// an attempt's whole timeout before the next broker is tried.
	var answering, silent []string
	for _, a := range addrs {
		if _, ok := c.silentSince(a); ok {
			silent = append(silent, a)
		} else {
			answering = append(answering, a)
		}
	}
	return append(answering, silent...)
}

// anyBroker runs call against one broker after another until one answers
// with something other than "unavailable", and retries whole rounds with
// backoff until RequestTimeout passes or ctx ends. It serves metadata and
// admin requests, which every broker accepts (writes are forwarded to the
// controller by the broker).
func (c *Client) anyBroker(ctx context.Context, call func(ctx context.Context, cc *grpc.ClientConn) error) error {
	ctx, cancel := c.requestContext(ctx)
	defer cancel()
	bo := newBackoff()
	for {
		var last error
		for _, addr := range c.brokerOrder() {
			cc, err := c.conn(addr)
			if err != nil {
				return err
			}
			// One attempt may not use up the whole request: a paused or
			// cut-off broker must leave time to ask the next one.
			actx, acancel := context.WithTimeout(ctx, c.attemptTimeout())
			err = fromStatus(call(actx, cc))
			acancel()
			c.observe(addr, err)
			if err == nil {
				c.answered(addr)
				return nil
			}
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				err = fmt.Errorf("no answer within %v: %w", c.attemptTimeout(), ErrUnavailable)
			}
			if !errors.Is(err, ErrUnavailable) {
				return err
			}
			last = c.unavailable(addr, err)
			if ctx.Err() != nil {
				return last
			}
		}
		if last == nil {
			return fmt.Errorf("client: no broker known: %w", ErrUnavailable)
		}
		if err := bo.wait(ctx); err != nil {
			return last
		}
	}
}

// anyBrokerOnce is anyBroker for a write that is not safe to repeat once
// a broker may have applied it (CreateUser: a second create of the same
// user fails). An attempt has the whole request, not attemptTimeout: its
// broker may need seconds for the work (a memory-hard password hash), and
// an attempt abandoned at a per-try timeout has not failed, it may still
// be applied, so that the repeat elsewhere fails as if someone else had
// written first. As etcd's client does with mutations, the next broker is
// tried only after an answer of "unavailable"; uncertain reports that such
// an attempt may have reached its broker and been applied (gRPC cannot
// tell a call that never left from one whose answer was lost), so that the
// caller reads a later refusal in that light.
func (c *Client) anyBrokerOnce(ctx context.Context, call func(ctx context.Context, cc *grpc.ClientConn) error) (uncertain bool, err error) {
	ctx, cancel := c.requestContext(ctx)
	defer cancel()
	bo := newBackoff()
	for {
		var last error
		for _, addr := range c.brokerOrder() {
			cc, err := c.conn(addr)
			if err != nil {
				return uncertain, err
			}
			err = fromStatus(call(ctx, cc))
			if err == nil {
				c.answered(addr)
				return uncertain, nil
			}
			if !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
				return uncertain, err
			}
			uncertain = true
			last = c.unavailable(addr, err)
		}
		if last == nil {
			return uncertain, fmt.Errorf("client: no broker known: %w", ErrUnavailable)
		}
		if err := bo.wait(ctx); err != nil {
			return uncertain, last
		}
	}
}

// answered makes addr the broker asked first next time.
func (c *Client) answered(addr string) {
	c.mu.Lock()
	c.preferred = addr
	c.mu.Unlock()
}

// unavailable drops addr as the preferred broker after it answered
// "unavailable" with err, and returns err naming it.
func (c *Client) unavailable(addr string, err error) error {
	c.mu.Lock()
	if c.preferred == addr {
		c.preferred = ""
	}
	c.mu.Unlock()
	c.log.Debug("broker unavailable, trying the next", "broker", addr, "err", err)
	return fmt.Errorf("%s: %w", addr, err)
}

// attemptTimeout bounds one broker's attempt in anyBroker: half the
// request timeout, between 500ms and 5s.
func (c *Client) attemptTimeout() time.Duration {
	return min(max(c.cfg.RequestTimeout/2, 500*time.Millisecond), 5*time.Second)
}

// retryBackoff is an exponential retry delay: 50ms doubling up to maxRetryBackoff, with
// jitter so that many clients do not retry in step.
type retryBackoff struct{ next time.Duration }

// maxRetryBackoff caps retry delays: a failover ends the moment the new
// leader is known, and a client asleep for a second after that adds a
// second of unavailability (retries stay a handful per second).
const maxRetryBackoff = 300 * time.Millisecond

func newBackoff() *retryBackoff { return &retryBackoff{next: 50 * time.Millisecond} }

// delay returns the next delay and doubles it.
func (b *retryBackoff) delay() time.Duration {
	d := b.next
	b.next = min(2*b.next, maxRetryBackoff)
	return d/2 + time.Duration(jitter(int64(d/2)))
}

// wait sleeps for the next delay or until ctx ends.
func (b *retryBackoff) wait(ctx context.Context) error { return sleepCtx(ctx, b.delay()) }
