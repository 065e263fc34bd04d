package rpc

import (
	"context"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// unaryInterceptor wraps every unary call: it turns a panic into INTERNAL,
// maps the handler's error to a status (toStatus, the one place) and
// records the call's code and latency.
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	method := methodName(info.FullMethod)
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, s.recovered(method, p)
		}
		err = s.statusErr(ctx, method, err)
		s.metrics.observe(method, status.Code(err), time.Since(start))
	}()
	return handler(ctx, req)
}

// streamInterceptor does for streams what unaryInterceptor does for unary
// calls; the latency recorded is the stream's lifetime.
func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	method := methodName(info.FullMethod)
	defer func() {
		if p := recover(); p != nil {
			err = s.recovered(method, p)
		}
		err = s.statusErr(ss.Context(), method, err)
		s.metrics.observe(method, status.Code(err), time.Since(start))
	}()
	return handler(srv, ss)
}

// recoverTo is deferred by goroutines a handler starts (the interceptors
// only see the handler's own goroutine): a panic becomes *errp.
func (s *Server) recoverTo(method string, errp *error) {
	if p := recover(); p != nil {
		*errp = s.recovered(method, p)
	}
}

func (s *Server) recovered(method string, p any) error {
	s.metrics.panics.Inc()
	s.logger.Error("panic in gRPC handler; answered INTERNAL", "method", method, "panic", p, "stack", string(debug.Stack()))
	return &panicError{Value: p}
}

// status maps err (see toStatus) for a call that came in with ctx: a
// leader it names is given at the address of the caller's listener.
func (s *Server) status(ctx context.Context, err error) *status.Status {
	return toStatus(err, func(id string) (string, error) { return s.brokerAddr(ctx, id) })
}

// statusErr maps err and logs the errors nobody classified.
func (s *Server) statusErr(ctx context.Context, method string, err error) error {
	if err == nil {
		return nil
	}
	st := s.status(ctx, err)
	if st.Code() == codes.Unknown {
		s.logger.Warn("gRPC call failed with an unclassified error", "method", method, "error", err)
	}
	return st.Err()
}

// methodName turns "/skiff.v1.Producer/Produce" into "skiff.v1.Producer/Produce".
func methodName(full string) string { return strings.TrimPrefix(full, "/") }
