package rpc

import (
	"net"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxConnectionsPerIP is the default of `skiff server
// --max-connections-per-ip`.
const DefaultMaxConnectionsPerIP = 256

// ConnLimitListener is a listener that holds at most a fixed number of
// open connections per client IP: one client (or one misbehaving pool)
// cannot take every file descriptor of the node. A connection beyond the
// limit is closed as soon as it is accepted, before any TLS or HTTP/2
// work, and counted in skiff_rpc_connections_refused_total{reason="per_ip"};
// the client sees the connection reset (UNAVAILABLE) and retries later.
// Accept never returns an error for a refused connection, so gRPC's Serve
// keeps serving the others.
type ConnLimitListener struct {
	net.Listener
	max int // per IP; 0 = unlimited

	mu   sync.Mutex
	open map[string]int // open connections by IP; guarded by mu

	refused    prometheus.Counter
	openGauge  prometheus.Gauge
	reg        prometheus.Registerer
	registered []prometheus.Collector
	closeOnce  sync.Once
}

// LimitConnectionsPerIP wraps ln so that at most max connections per
// client IP are open at once (max 0: unlimited, only counted). Its metrics
// are registered on reg (nil: not exported) and unregistered by Close.
func LimitConnectionsPerIP(ln net.Listener, max int, reg prometheus.Registerer) *ConnLimitListener {
	l := &ConnLimitListener{
		Listener: ln,
		max:      max,
		open:     map[string]int{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "rpc", Name: "connections_refused_total",
			Help: "Client connections closed at accept, by reason (per_ip: the client IP already holds --max-connections-per-ip)."},
			[]string{"reason"}).WithLabelValues("per_ip"),
		openGauge: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "skiff", Subsystem: "rpc", Name: "connections_open",
			Help: "Client connections open on the gRPC listener."}),
		reg: reg,
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{l.refused, l.openGauge} {
			if err := reg.Register(c); err == nil {
				l.registered = append(l.registered, c)
			}
		}
	}
	return l
}

// Accept returns the next connection within the limit, closing those
// beyond it.
func (l *ConnLimitListener) Accept() (net.Conn, error) { return l.accept(l.Listener) }

// Also wraps another listener of the same server under the same per-IP
// budget and metrics (a node with several named client listeners).
func (l *ConnLimitListener) Also(ln net.Listener) net.Listener {
	return &sharedLimitListener{Listener: ln, limit: l}
}

type sharedLimitListener struct {
	net.Listener
	limit *ConnLimitListener
}

func (s *sharedLimitListener) Accept() (net.Conn, error) { return s.limit.accept(s.Listener) }

func (l *ConnLimitListener) accept(from net.Listener) (net.Conn, error) {
	for {
		c, err := from.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		l.mu.Lock()
		if l.max > 0 && l.open[ip] >= l.max {
			l.mu.Unlock()
			l.refused.Inc()
			c.Close()
			continue
		}
		l.open[ip]++
		l.mu.Unlock()
		l.openGauge.Inc()
		return &limitedConn{Conn: c, release: func() { l.release(ip) }}, nil
	}
}

func (l *ConnLimitListener) release(ip string) {
	l.mu.Lock()
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
	}
	l.mu.Unlock()
	l.openGauge.Dec()
}

// Open returns the number of open connections from ip.
func (l *ConnLimitListener) Open(ip string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[ip]
}

// Close closes the listener (connections already accepted stay open) and
// unregisters the metrics.
func (l *ConnLimitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() {
		for _, c := range l.registered {
			l.reg.Unregister(c)
		}
	})
	return err
}

// limitedConn gives its slot back on the first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// remoteIP is the IP part of the connection's remote address (the whole
// address if it has no port, as for a Unix socket).
func remoteIP(c net.Conn) string {
	addr := c.RemoteAddr()
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	if host, _, err := net.SplitHostPort(addr.String()); err == nil && host != "" {
		return host
	}
	return addr.String()
}
