// Package rpc serves Skiff's gRPC API on top of a cluster node: the
// skiff.v1 Producer, Consumer and Admin services and the standard
// grpc.health.v1 service (SERVING once the node is ready).
//
// Errors become gRPC statuses in one place, toStatus (errors.go), which
// documents the codes and the details clients branch on.
package rpc

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// Config tunes the server. Zero (or negative) fields take their defaults.
type Config struct {
	// Logger receives the server's logs. Default: discard.
	Logger *slog.Logger
	// TLS, when set, is the server side of TLS for every client
	// connection. Default nil: plaintext.
	TLS *tls.Config
	// Auth configures client authentication (auth.go). Default: off.
	Auth AuthConfig
	// QuotaMaxThrottle caps the delay one answer is held back for
	// exceeding a quota (quota.go); a larger debt is paid over the next
	// calls. Default 30s.
	QuotaMaxThrottle time.Duration
	// MaxRecvMsgBytes bounds one request message (`skiff server
	// --max-request-bytes`); gRPC refuses a larger one with
	// RESOURCE_EXHAUSTED before it is decoded. Default
	// DefaultMaxRequestBytes (9 MiB): topics may have a max.message.bytes
	// up to 8 MiB, plus RequestEnvelopeBytes. The value bounds the
	// max.message.bytes this server lets topics be created or altered
	// with (see MaxTopicMessageBytes). In [MinMaxRequestBytes,
	// MaxRequestBytesCeiling].
	MaxRecvMsgBytes int
	// MaxConcurrentStreams bounds the calls (unary or streaming) in flight
	// on one client connection (`--max-concurrent-streams`). A client past
	// it is not refused: its new calls wait for a slot (or their
	// deadline). Default 1024; in [1, MaxConcurrentStreamsCeiling].
	MaxConcurrentStreams int
	// StreamInFlight bounds the requests of one ProduceStream read but not
	// yet answered; the stream reads no more until one is answered, so a
	// fast client is held back by gRPC flow control. Default 256.
	StreamInFlight int
	// AsyncProduceLimit bounds ACKS_NONE batches answered but not yet
	// written, per server; beyond it a request waits for room. Default 1024.
	AsyncProduceLimit int
	// AsyncProduceTimeout bounds the write of one ACKS_NONE batch.
	// Default 30s.
	AsyncProduceTimeout time.Duration
	// MaxFetchWait caps a fetch's max_wait_ms. Default 30s.
	MaxFetchWait time.Duration
	// SubscribeWait is how long Subscribe long-polls the log before it
	// polls again. Default 10s.
	SubscribeWait time.Duration
	// MetadataCacheTTL is how long partition leaders and broker states
	// gathered from the cluster are reused (for Metadata, ListTopics and
	// the NotLeader answers of nodes not hosting a partition). Default 1s.
	MetadataCacheTTL time.Duration
	// LookupTimeout bounds one gathering of partition state from the
	// nodes. Default 3s.
	LookupTimeout time.Duration
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Logger:               slog.New(slog.DiscardHandler),
		MaxRecvMsgBytes:      DefaultMaxRequestBytes,
		MaxConcurrentStreams: DefaultMaxConcurrentStreams,
		StreamInFlight:       256,
		AsyncProduceLimit:    1024,
		AsyncProduceTimeout:  30 * time.Second,
		MaxFetchWait:         30 * time.Second,
		SubscribeWait:        10 * time.Second,
		MetadataCacheTTL:     time.Second,
		LookupTimeout:        3 * time.Second,
		QuotaMaxThrottle:     30 * time.Second,
	}
}

// withDefaults fills zero and negative fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt(&c.MaxRecvMsgBytes, d.MaxRecvMsgBytes)
	setInt(&c.MaxConcurrentStreams, d.MaxConcurrentStreams)
	setInt(&c.StreamInFlight, d.StreamInFlight)
	setInt(&c.AsyncProduceLimit, d.AsyncProduceLimit)
	setDur(&c.AsyncProduceTimeout, d.AsyncProduceTimeout)
	setDur(&c.MaxFetchWait, d.MaxFetchWait)
	setDur(&c.SubscribeWait, d.SubscribeWait)
	setDur(&c.MetadataCacheTTL, d.MetadataCacheTTL)
	setDur(&c.LookupTimeout, d.LookupTimeout)
	setDur(&c.QuotaMaxThrottle, d.QuotaMaxThrottle)
	return c
}

// Option changes the server's Config.
type Option func(*Config)

// WithConfig replaces the whole Config.
func WithConfig(cfg Config) Option { return func(c *Config) { *c = cfg } }

// WithTLS serves gRPC over TLS with cfg (for example a
// certs.Reloader's ServerConfig, which rotates certificates live).
func WithTLS(cfg *tls.Config) Option { return func(c *Config) { c.TLS = cfg } }

// WithLogger sets Config.Logger.
func WithLogger(l *slog.Logger) Option { return func(c *Config) { c.Logger = l } }

// Server is the node's gRPC server.
type Server struct {
	cfg     Config
	node    Node
	logger  *slog.Logger
	grpc    *grpc.Server
	health  *health.Server
	metrics *metrics
	auth    *authenticator
	authz   *authorizer
	quota   *quotaEnforcer

	describes *ttlCache[cluster.TopicDescription]
	statuses  *ttlCache[cluster.ClusterStatus]

	// shutdown closes when Stop begins: long polls return and streams end
	// (UNAVAILABLE), so that GracefulStop need not wait for clients to hang
	// up.
	shutdown chan struct{}
	stopOnce sync.Once

	// ACKS_NONE batches: written per partition in hand-off order by async,
	// at most AsyncProduceLimit pending (asyncSlots). asyncCtx is cancelled
	// when Stop's deadline passes before they are written.
	async       *partitionFIFO
	asyncWG     sync.WaitGroup
	asyncSlots  chan struct{}
	asyncCtx    context.Context
	asyncCancel context.CancelFunc

	// readers counts ProduceStream receive goroutines; each ends once its
	// handler has returned.
	readers sync.WaitGroup

	// Health tracking: stop ends trackReadiness, which closes done.
	stop    chan struct{}
	done    chan struct{}
	serving atomic.Bool // what the health service last said
}

// NewServer builds the gRPC server for node with the Producer, Consumer,
// Admin and health services registered. Call Serve, then Stop.
func NewServer(node Node, opts ...Option) *Server {
	cfg := DefaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:        cfg,
		node:       node,
		logger:     cfg.Logger,
		health:     health.NewServer(),
		describes:  newTTLCache[cluster.TopicDescription](),
		statuses:   newTTLCache[cluster.ClusterStatus](),
		shutdown:   make(chan struct{}),
		asyncSlots: make(chan struct{}, cfg.AsyncProduceLimit),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	s.async = newPartitionFIFO(&s.asyncWG)
	s.asyncCtx, s.asyncCancel = context.WithCancel(context.Background())
	reg := node.Registry()
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.metrics = newMetrics(reg, s.logger)
	s.auth = newAuthenticator(cfg.Auth, cfg.TLS, node.Metadata, s.metrics)
	s.authz = newAuthorizer(cfg.Auth.Enabled, node.Metadata)
	s.quota = newQuotaEnforcer(node.Metadata, cfg.QuotaMaxThrottle, s.shutdown, s.metrics)
	gopts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgBytes),
		grpc.MaxConcurrentStreams(uint32(cfg.MaxConcurrentStreams)),
		// Clients ping every 500ms to notice a dead broker quickly; gRPC's
		// default policy would answer such pings with GOAWAY.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 200 * time.Millisecond, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor, s.auth.unary, s.quota.unary, s.authz.unary),
		grpc.ChainStreamInterceptor(s.streamInterceptor, s.auth.stream, s.quota.stream, s.authz.stream),
		// Stop returns only once every handler has: nothing hands work to
		// the async writer after Stop waited for it.
		grpc.WaitForHandlers(true),
	}
	if cfg.TLS != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	s.grpc = grpc.NewServer(gopts...)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	skiffpb.RegisterProducerServer(s.grpc, &producerService{s: s})
	skiffpb.RegisterConsumerServer(s.grpc, &consumerService{s: s})
	skiffpb.RegisterAdminServer(s.grpc, &adminService{s: s})
	skiffpb.RegisterGroupsServer(s.grpc, &groupsService{s: s})
	skiffpb.RegisterShareGroupsServer(s.grpc, &shareService{s: s})
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	go s.trackReadiness()
	return s
}

// trackReadiness mirrors the node's readiness into the health service, the
// way load balancers and `grpc_health_probe` expect.
func (s *Server) trackReadiness() {
	defer close(s.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		status := healthpb.HealthCheckResponse_NOT_SERVING
		ready := s.node.Ready()
		if ready {
			status = healthpb.HealthCheckResponse_SERVING
		}
		s.health.SetServingStatus("", status)
		s.serving.Store(ready)
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// Serving reports whether the health service says SERVING.
func (s *Server) Serving() bool { return s.serving.Load() }

// Serve accepts connections on ln until Stop.
func (s *Server) Serve(ln net.Listener) error { return s.grpc.Serve(ln) }

// Stop stops serving. Health turns NOT_SERVING, streams and long polls end
// (UNAVAILABLE: reconnect elsewhere), calls in flight get until ctx ends,
// then are cut; ACKS_NONE batches already answered are written while ctx
// allows. Stop may be called more than once.
func (s *Server) Stop(ctx context.Context) {
	s.stopOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.serving.Store(false)
		s.health.Shutdown()
		close(s.shutdown)
		stopped := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-ctx.Done():
			s.grpc.Stop()
			<-stopped
		}
		written := make(chan struct{})
		go func() {
			s.asyncWG.Wait()
			close(written)
		}()
		select {
		case <-written:
		case <-ctx.Done():
			s.asyncCancel()
			<-written
		}
		s.asyncCancel()
		s.readers.Wait()
		s.metrics.unregister()
	})
}

// shutdownContext returns ctx, also cancelled when the server stops: for
// calls that would otherwise wait on a client (long polls, streams).
func (s *Server) shutdownContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.shutdown:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// stopping reports whether Stop has begun.
func (s *Server) stopping() bool {
	select {
	case <-s.shutdown:
		return true
	default:
		return false
	}
}
