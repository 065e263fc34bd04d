package console

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"time"
)

// Config configures a Console. Zero fields take the defaults documented on
// them.
type Config struct {
	// Brokers are gRPC addresses of the cluster (usually the node's own
	// client listener). Required.
	Brokers []string
	// TLS, when set, is how the console reaches the brokers. It should
	// verify the nodes and present no client certificate of its own, so
	// that the browser's user is the only identity a call carries.
	TLS *tls.Config
	// Auth makes every request carry HTTP Basic credentials, passed to the
	// API as the user's name and password (skiff server --auth). Needs TLS
	// (the API takes passwords only over TLS).
	Auth bool
	// Refresh is how often pages refresh themselves in the browser.
	// Default 5s; negative: never.
	Refresh time.Duration
	// RequestTimeout bounds the API calls behind one page. Default 10s.
	RequestTimeout time.Duration
	// MaxSessions bounds the API clients kept for different users (each
	// holds connections to the brokers); the least recently used is closed
	// beyond it. Default 32.
	MaxSessions int
	// Logger receives the console's logs. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Refresh == 0 {
		c.Refresh = 5 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 32
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("console: no broker address"))
	}
	if c.Auth && c.TLS == nil {
		errs = append(errs, errors.New("console: authentication needs TLS (passwords travel only over TLS)"))
	}
	return errors.Join(errs...)
}
