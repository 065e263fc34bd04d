package raftnet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// MuxConfig configures a Mux. Start from DefaultMuxConfig; zero values of
// optional fields mean their documented default.
type MuxConfig struct {
	// NodeID names this node to its peers: it is written into the header of
	// every connection this Mux dials, so the accepting side (its logs and
	// its AcceptHook) knows who is calling. Required; 1..MaxNameLen bytes of
	// [A-Za-z0-9._:/-].
	NodeID string

	// Advertise is the host:port peers dial to reach this Mux. Every
	// StreamLayer's Addr returns it, so it is what hashicorp/raft stores as
	// this server's address in its configuration. Set it when the listen
	// address is not what peers can reach (0.0.0.0, NAT, containers).
	// Default "": the listener's own address, which must then be a specific
	// IP, not an unspecified one.
	Advertise string

	// HeaderTimeout bounds how long an inbound connection may take to send
	// its header, and how long a routed connection waits for its group to
	// accept it. A peer that connects and stays silent is dropped after it,
	// so it cannot hold a handshake slot for ever. Default 5s.
	HeaderTimeout time.Duration

	// MaxPendingHandshakes bounds the inbound connections being routed at
	// once (header not read yet, or not yet accepted by their group);
	// connections beyond it are closed at once, so a flood of silent
	// connections costs a bounded number of goroutines. Default 1024.
	MaxPendingHandshakes int

	// Dialer opens outbound connections. Default: a zero net.Dialer's
	// DialContext. FaultNetwork plugs its fault-filtering dialer in here.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

	// AcceptHook, if set, sees every inbound connection once its header has
	// been read and its group found, with the id of the node that dialed
	// it. It may return the connection wrapped (fault injection) or refuse
	// it with an error, in which case the Mux closes it. Default: none.
	AcceptHook func(peer string, conn net.Conn) (net.Conn, error)

	// TLS, if set, runs every connection over mutually authenticated TLS:
	// the handshake comes first, the header travels inside it, and the node
	// id in the header must be the one the peer's certificate names.
	// Default nil: plaintext, where the header's node id is only a claim
	// (Authorize is then the only check).
	TLS *MuxTLS

	// Authorize, if set, decides whether the node peer may reach group,
	// after the header (and, with TLS, the certificate) has been checked.
	// An error refuses the connection. Default: everyone is let in.
	Authorize func(peer, group string) error

	// OnRefused, if set, is told of every inbound connection the Mux
	// drops, with the reason: RefusedHandshake, RefusedIdentity,
	// RefusedUnauthorized or RefusedUnknownGroup (for metrics).
	OnRefused func(reason string)

	// Logger receives debug records about dropped connections and warnings
	// about accept errors. Default: discard.
	Logger *slog.Logger
}

// Reasons passed to MuxConfig.OnRefused.
const (
	RefusedHandshake    = "handshake"     // TLS handshake or header failed
	RefusedIdentity     = "identity"      // header names another node than the certificate
	RefusedUnauthorized = "unauthorized"  // Authorize said no
	RefusedUnknownGroup = "unknown_group" // no such group here
)

// MuxTLS is the TLS side of a Mux.
type MuxTLS struct {
	// Server accepts inbound connections; it must require and verify a
	// client certificate.
	Server *tls.Config
	// Client dials peers; it must present this node's certificate and
	// verify the peer's.
	Client *tls.Config
	// PeerID returns the node id a verified connection's certificate names.
	PeerID func(tls.ConnectionState) (string, error)
}

// Defaults of MuxConfig's optional fields.
const (
	DefaultHeaderTimeout        = 5 * time.Second
	DefaultMaxPendingHandshakes = 1024
)

// DefaultMuxConfig returns a MuxConfig with every default filled in. Set
// NodeID before use.
func DefaultMuxConfig() MuxConfig {
	return MuxConfig{
		HeaderTimeout:        DefaultHeaderTimeout,
		MaxPendingHandshakes: DefaultMaxPendingHandshakes,
	}
}

// withDefaults fills zero optional fields.
func (c MuxConfig) withDefaults() MuxConfig {
	if c.HeaderTimeout == 0 {
		c.HeaderTimeout = DefaultHeaderTimeout
	}
	if c.MaxPendingHandshakes == 0 {
		c.MaxPendingHandshakes = DefaultMaxPendingHandshakes
	}
	if c.Dialer == nil {
		var d net.Dialer
		c.Dialer = d.DialContext
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every invalid field of c at once. Zero values of
// optional fields are valid (they mean the default).
func (c MuxConfig) Validate() error {
	var errs []error
	if err := validateName(c.NodeID); err != nil {
		errs = append(errs, fmt.Errorf("NodeID: %w", err))
	}
	if c.Advertise != "" {
		if err := validateAdvertise(c.Advertise); err != nil {
			errs = append(errs, fmt.Errorf("Advertise: %w", err))
		}
	}
	if c.HeaderTimeout < 0 {
		errs = append(errs, fmt.Errorf("HeaderTimeout: %v is negative", c.HeaderTimeout))
	}
	if c.TLS != nil && (c.TLS.Server == nil || c.TLS.Client == nil || c.TLS.PeerID == nil) {
		errs = append(errs, errors.New("TLS: Server, Client and PeerID are all required"))
	}
	if c.MaxPendingHandshakes < 0 {
		errs = append(errs, fmt.Errorf("MaxPendingHandshakes: %d is negative", c.MaxPendingHandshakes))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("raftnet: invalid MuxConfig: %w", err)
	}
	return nil
}

// validateAdvertise checks that addr is a host:port a peer could dial.
func validateAdvertise(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("%w: %q has no host", ErrNotAdvertisable, addr)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%w: %q", ErrNotAdvertisable, addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("%q: port %q is not in 1..65535", addr, port)
	}
	return nil
}
