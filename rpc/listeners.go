package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc/peer"
)

// ErrListenerNotFound: a broker has no listener of the name a client
// connected on, so no address of it can be given to that client.
var ErrListenerNotFound = errors.New("listener not found")

// listenerNotFoundError names the broker and the listener.
type listenerNotFoundError struct {
	Broker, Listener string
}

func (e *listenerNotFoundError) Error() string {
	return fmt.Sprintf("node %s has no listener %q (the listener this client connected on): give every node the same --listener names", e.Broker, e.Listener)
}

func (e *listenerNotFoundError) Is(target error) bool { return target == ErrListenerNotFound }

// listenerAddr is the local address of a connection accepted on a named
// listener: gRPC hands a connection's LocalAddr to every call on it
// (peer.Peer), through TLS too, so the name reaches the handlers without
// matching addresses.
type listenerAddr struct {
	net.Addr
	name string
}

type namedListener struct {
	net.Listener
	name string
}

func (l *namedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &namedConn{Conn: c, local: listenerAddr{Addr: c.LocalAddr(), name: l.name}}, nil
}

type namedConn struct {
	net.Conn
	local net.Addr
}

func (c *namedConn) LocalAddr() net.Addr { return c.local }

// ServeListener is Serve for the listener called name (skiff server
// --listener): the addresses this server gives its clients (metadata,
// not-leader redirects, coordinators) are those advertised for name.
func (s *Server) ServeListener(name string, ln net.Listener) error {
	return s.grpc.Serve(&namedListener{Listener: ln, name: name})
}

// listenerOf names the listener the call came in on ("" for Serve).
func listenerOf(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok {
		if la, ok := p.LocalAddr.(listenerAddr); ok {
			return la.name
		}
	}
	return ""
}

// brokerAddr is the address of broker id for the caller: on the listener
// the call came in on. "" and no error when the broker is unknown.
func (s *Server) brokerAddr(ctx context.Context, id string) (string, error) {
	b, ok := s.node.Metadata().Brokers[id]
	if !ok {
		return "", nil
	}
	name := listenerOf(ctx)
	addr, ok := b.ClientAddr(name)
	if !ok {
		return "", &listenerNotFoundError{Broker: id, Listener: name}
	}
	return addr, nil
}
