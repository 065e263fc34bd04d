// Package rpc serves Skiff's gRPC API on top of a cluster node. Today it
// carries the standard grpc.health.v1 service, SERVING once the node is
// ready; the produce, fetch and admin services land in this package next.
package rpc

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// ReadyChecker is what the server needs from a node.
type ReadyChecker interface {
	Ready() bool
}

// Server is the node's gRPC server.
type Server struct {
	grpc   *grpc.Server
	health *health.Server
	node   ReadyChecker
	stop   chan struct{}
	done   chan struct{}

	serving atomic.Bool // what the health service last said
}

// NewServer builds the gRPC server for node.
func NewServer(node ReadyChecker) *Server {
	s := &Server{grpc: grpc.NewServer(), health: health.NewServer(), node: node, stop: make(chan struct{}), done: make(chan struct{})}
	healthpb.RegisterHealthServer(s.grpc, s.health)
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

// Stop stops serving: in-flight calls get until ctx ends, then are cut.
func (s *Server) Stop(ctx context.Context) {
	close(s.stop)
	<-s.done
	s.health.Shutdown()
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.grpc.Stop()
	}
}
