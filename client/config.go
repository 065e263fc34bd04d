package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Config configures a Client. Only Brokers is required; zero fields take
// the defaults documented on them.
type Config struct {
	// Brokers lists host:port gRPC addresses of any nodes of the cluster.
	// One live node is enough: the client learns the others from it.
	Brokers []string
	// DialTimeout bounds establishing a connection to one broker.
	// Default 5s.
	DialTimeout time.Duration
	// RequestTimeout bounds one request to a broker (a produce, a fetch
	// beyond its long-poll wait, an admin call) when the caller's context
	// has no earlier deadline. Default 30s.
	RequestTimeout time.Duration
	// MetadataMaxAge is how long cached partition leaders are trusted
	// before they are fetched again. They are also refreshed at once when
	// a broker answers "not leader" or is unavailable. Default 30s.
	MetadataMaxAge time.Duration
	// Logger receives the client's logs (retries, leader changes).
	// Default: discard.
	Logger *slog.Logger
	// TLS, when set, makes every connection to a broker TLS with this
	// configuration: RootCAs holding the cluster CA, and Certificates
	// holding the client's certificate when the cluster requires client
	// certificates (internal/certs.ClientTLS builds one from PEM files).
	// Leave ServerName empty to check each broker's certificate against
	// the host of its address. Nil: plaintext, for clusters without TLS.
	TLS *tls.Config
	// User and Password authenticate the client to a cluster started with
	// --auth (as principal User:<User>). They are sent with every call,
	// and only over TLS: Validate refuses a Password without TLS. Empty:
	// the client certificate in TLS, if any, is the identity.
	User     string
	Password string
}

// DefaultConfig returns a Config with every default filled in; callers set
// Brokers.
func DefaultConfig() Config {
	return Config{
		DialTimeout:    5 * time.Second,
		RequestTimeout: 30 * time.Second,
		MetadataMaxAge: 30 * time.Second,
	}
}

// withDefaults fills zero fields with the defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.DialTimeout == 0 {
		c.DialTimeout = d.DialTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.MetadataMaxAge == 0 {
		c.MetadataMaxAge = d.MetadataMaxAge
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("client config: Brokers is required (host:port of any node)"))
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			errs = append(errs, fmt.Errorf("client config: broker %q: want host:port", b))
		}
	}
	if (c.User == "") != (c.Password == "") {
		errs = append(errs, errors.New("client config: set both User and Password, or neither"))
	}
	if c.Password != "" && c.TLS == nil {
		errs = append(errs, ErrPasswordNeedsTLS)
	}
	if c.DialTimeout < 0 || c.RequestTimeout < 0 || c.MetadataMaxAge < 0 {
		errs = append(errs, errors.New("client config: timeouts must not be negative"))
	}
	return errors.Join(errs...)
}
