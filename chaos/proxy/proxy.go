// Package proxy is a TCP proxy that delays the bytes it forwards: the
// stand-in for `tc netem delay` on kernels without sch_netem. Put in front
// of a node's Raft port (scripts/faults.sh delay does, with an iptables
// REDIRECT inside the node's network namespace), it slows every link to
// that node by a fixed delay plus random jitter in each direction, while
// keeping each connection's bytes in order and its throughput (many
// chunks are in flight within one delay).
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Config configures a Proxy.
type Config struct {
	// Listen is the address to accept on (host:port; port 0 picks one).
	Listen string
	// Target is where each accepted connection is forwarded.
	Target string
	// Delay is added to every chunk of bytes in each direction.
	Delay time.Duration
	// Jitter adds a uniformly random extra delay from 0 to Jitter. Order
	// is kept: a chunk never leaves before the one read before it.
	Jitter time.Duration
	// DialTimeout bounds connecting to Target. Default 5s.
	DialTimeout time.Duration
	// MaxQueued bounds the chunks waiting per direction of a connection;
	// beyond it reading stops, like a full socket buffer. Default 1024.
	MaxQueued int
	// Logger receives connection errors. Default: discard.
	Logger *slog.Logger
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("proxy config: Listen %q: want host:port", c.Listen))
	}
	if _, _, err := net.SplitHostPort(c.Target); err != nil {
		errs = append(errs, fmt.Errorf("proxy config: Target %q: want host:port", c.Target))
	}
	if c.Delay < 0 || c.Delay > time.Minute {
		errs = append(errs, fmt.Errorf("proxy config: Delay %v: want 0 to 1m", c.Delay))
	}
	if c.Jitter < 0 || c.Jitter > time.Minute {
		errs = append(errs, fmt.Errorf("proxy config: Jitter %v: want 0 to 1m", c.Jitter))
	}
	if c.DialTimeout < 0 || c.MaxQueued < 0 {
		errs = append(errs, errors.New("proxy config: DialTimeout and MaxQueued must not be negative"))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.MaxQueued == 0 {
		c.MaxQueued = 1024
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Proxy accepts connections and forwards them, delayed, to the target.
type Proxy struct {
	cfg    Config
	ln     net.Listener
	ctx    context.Context // ends when the proxy closes
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and every connection's goroutines

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
}

// Start listens and serves until Close.
func Start(cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("proxy: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{cfg: cfg, ln: ln, ctx: ctx, cancel: cancel, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address the proxy accepts on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.cancel()
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() == nil {
				p.cfg.Logger.Warn("proxy: accept", "err", err)
			}
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve forwards one connection until either side closes.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	if !p.track(client) {
		return
	}
	defer p.untrack(client)
	d := net.Dialer{Timeout: p.cfg.DialTimeout}
	target, err := d.DialContext(p.ctx, "tcp", p.cfg.Target)
	if err != nil {
		p.cfg.Logger.Warn("proxy: dial target", "target", p.cfg.Target, "err", err)
		return
	}
	if !p.track(target) {
		return
	}
	defer p.untrack(target)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(target, client) }()
	go func() { defer wg.Done(); p.pipe(client, target) }()
	wg.Wait()
}

// chunk is bytes read from one side, due to be written to the other.
type chunk struct {
	b   []byte
	due time.Time
}

// pipe copies src to dst, each chunk delayed. When either side fails, both
// are closed, which ends the opposite pipe too.
func (p *Proxy) pipe(dst, src net.Conn) {
	q := make(chan chunk, p.cfg.MaxQueued)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			if wait := time.Until(c.due); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-p.ctx.Done():
					t.Stop()
					return
				}
			}
			if _, err := dst.Write(c.b); err != nil {
				src.Close()
				return
			}
		}
		// src ended: pass the end on, as a half close when possible.
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		} else {
			dst.Close()
		}
	}()
	var last time.Time
	for {
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		if n > 0 {
			due := time.Now().Add(p.delay())
			if due.Before(last) {
				due = last // keep order under jitter
			}
			last = due
			select {
			case q <- chunk{b: buf[:n], due: due}:
			case <-done:
				close(q)
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				p.cfg.Logger.Debug("proxy: read", "err", err)
			}
			close(q)
			<-done
			return
		}
	}
}

func (p *Proxy) delay() time.Duration {
	d := p.cfg.Delay
	if p.cfg.Jitter > 0 {
		d += rand.N(p.cfg.Jitter + 1)
	}
	return d
}
