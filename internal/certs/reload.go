package certs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Files names the PEM files a node serves TLS with.
type Files struct {
	// CertFile and KeyFile are the node's certificate (chain) and key.
	CertFile, KeyFile string
	// CAFile holds the cluster CA certificate(s): peers' node certificates
	// and clients' certificates must chain to one of them.
	CAFile string
}

// Enabled reports whether any file is named.
func (f Files) Enabled() bool { return f.CertFile != "" || f.KeyFile != "" || f.CAFile != "" }

// Validate reports a partial set: a node with TLS needs all three files
// (the CA is what peers are checked against).
func (f Files) Validate() error {
	if !f.Enabled() {
		return nil
	}
	var missing []string
	if f.CertFile == "" {
		missing = append(missing, "--tls-cert-file")
	}
	if f.KeyFile == "" {
		missing = append(missing, "--tls-key-file")
	}
	if f.CAFile == "" {
		missing = append(missing, "--tls-ca-file")
	}
	if len(missing) > 0 {
		return fmt.Errorf("tls: %v missing: a node with TLS needs its certificate, its key and the cluster CA (skiff certs create writes all three)", missing)
	}
	return nil
}

// DefaultPollInterval is how often a Reloader looks for changed files.
const DefaultPollInterval = 2 * time.Second

// Reloader holds a node's current certificate and CA pool and reloads them
// from disk on SIGHUP and when the files change, so certificates rotate
// without a restart. Every tls.Config it hands out reads the current
// material at each handshake; connections already open keep theirs.
//
// A reload that fails (a half-written file, a key that does not match)
// keeps the previous material and is retried on the next change or signal.
type Reloader struct {
	files  Files
	logger *slog.Logger

	mu     sync.RWMutex // guards the fields below
	cert   *tls.Certificate
	pool   *x509.CertPool
	digest [32]byte // of the three files' bytes, to skip no-op reloads
	nodeID string   // the node id the certificate names, if any

	reloads  atomic.Int64
	failures atomic.Int64
}

// NewReloader loads files once; an unusable set is an error.
func NewReloader(files Files, logger *slog.Logger) (*Reloader, error) {
	if !files.Enabled() {
		return nil, errors.New("tls: no certificate files given")
	}
	if err := files.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{files: files, logger: logger}
	if _, err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// NodeID is the node id the current certificate names (skiff://node/<id>),
// or "" when it names none.
func (r *Reloader) NodeID() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.nodeID
}

// NotAfter is when the current certificate expires.
func (r *Reloader) NotAfter() time.Time {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.cert == nil || r.cert.Leaf == nil {
		return time.Time{}
	}
	return r.cert.Leaf.NotAfter
}

// Reloads counts successful reloads that changed something; Failures
// counts reloads that were refused.
func (r *Reloader) Reloads() int64  { return r.reloads.Load() }
func (r *Reloader) Failures() int64 { return r.failures.Load() }

// Reload reads the files again. It reports whether anything changed; on
// error the previous material stays in use.
func (r *Reloader) Reload() (bool, error) {
	certPEM, err := os.ReadFile(r.files.CertFile)
	if err != nil {
		return false, r.fail(fmt.Errorf("tls: read certificate %s: %w", r.files.CertFile, err))
	}
	keyPEM, err := os.ReadFile(r.files.KeyFile)
	if err != nil {
		return false, r.fail(fmt.Errorf("tls: read key %s: %w", r.files.KeyFile, err))
	}
	caPEM, err := os.ReadFile(r.files.CAFile)
	if err != nil {
		return false, r.fail(fmt.Errorf("tls: read CA %s: %w", r.files.CAFile, err))
	}
	h := sha256.New()
	for _, b := range [][]byte{certPEM, keyPEM, caPEM} {
		h.Write(b)
		h.Write([]byte{0})
	}
	var digest [32]byte
	copy(digest[:], h.Sum(nil))
	r.mu.RLock()
	same := r.cert != nil && bytes.Equal(digest[:], r.digest[:])
	r.mu.RUnlock()
	if same {
		return false, nil
	}

	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, r.fail(fmt.Errorf("tls: certificate %s with key %s: %w", r.files.CertFile, r.files.KeyFile, err))
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return false, r.fail(fmt.Errorf("tls: parse certificate %s: %w", r.files.CertFile, err))
	}
	cert.Leaf = leaf
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return false, r.fail(fmt.Errorf("tls: CA %s holds no PEM certificate", r.files.CAFile))
	}
	// A certificate that the cluster's own CA does not sign would be
	// refused by every peer: say so now rather than at the first handshake.
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return false, r.fail(fmt.Errorf("tls: certificate %s is not signed by the CA in %s: %w", r.files.CertFile, r.files.CAFile, err))
	}
	id, _ := NodeID(leaf)

	r.mu.Lock()
	first := r.cert == nil
	r.cert, r.pool, r.digest, r.nodeID = &cert, pool, digest, id
	r.mu.Unlock()
	if !first {
		r.reloads.Add(1)
		r.logger.Info("tls: certificates reloaded", "cert", r.files.CertFile, "not_after", leaf.NotAfter.Format(time.RFC3339))
	}
	return true, nil
}

func (r *Reloader) fail(err error) error {
	r.failures.Add(1)
	return err
}

// Run reloads on SIGHUP and whenever the files' contents change (checked
// every poll interval; 0 means DefaultPollInterval) until ctx ends.
func (r *Reloader) Run(ctx context.Context, poll time.Duration) {
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		case <-t.C:
		}
		if _, err := r.Reload(); err != nil {
			r.logger.Warn("tls: reload refused; the previous certificates stay in use", "error", err)
		}
	}
}

func (r *Reloader) current() (*tls.Certificate, *x509.CertPool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cert, r.pool
}

// ServerConfig is for listeners that clients reach (gRPC, HTTP): the
// node's certificate, and a client certificate checked against the CA when
// one is presented (client authentication builds on it). nextProtos are
// the ALPN protocols to offer (gRPC needs "h2").
func (r *Reloader) ServerConfig(nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     nextProtos,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { c, _ := r.current(); return c, nil },
		// The CA is checked in VerifyPeerCertificate rather than through
		// ClientCAs so that a reloaded CA applies to the next handshake.
		ClientAuth: tls.RequestClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return nil
			}
			_, err := r.verify(raw, x509.ExtKeyUsageClientAuth)
			return err
		},
	}
}

// PeerServerConfig is for the node-to-node listener: the peer must present
// a certificate from the cluster CA that names a node (skiff://node/<id>).
func (r *Reloader) PeerServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { c, _ := r.current(); return c, nil },
		ClientAuth:     tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := r.verify(raw, x509.ExtKeyUsageClientAuth)
			if err != nil {
				return err
			}
			if _, ok := NodeID(leaf); !ok {
				return fmt.Errorf("tls: peer certificate %q names no node (no %s<id> URI): a client certificate cannot reach the node-to-node port", leaf.Subject.CommonName, NodeURIPrefix)
			}
			return nil
		},
	}
}

// PeerClientConfig is for dialing other nodes: it presents this node's
// certificate and accepts only a server certificate from the cluster CA
// that names a node. Peers are dialed by address, so the node URI, not the
// host name, is what identifies them.
func (r *Reloader) PeerClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { c, _ := r.current(); return c, nil },
		// Verification happens in VerifyConnection against the current CA;
		// host names are not what identifies a node.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, c := range cs.PeerCertificates {
				raw[i] = c.Raw
			}
			leaf, err := r.verify(raw, x509.ExtKeyUsageServerAuth)
			if err != nil {
				return err
			}
			if _, ok := NodeID(leaf); !ok {
				return fmt.Errorf("tls: server certificate %q names no node (no %s<id> URI)", leaf.Subject.CommonName, NodeURIPrefix)
			}
			return nil
		},
	}
}

// verify checks a presented chain against the current CA pool for usage.
func (r *Reloader) verify(raw [][]byte, usage x509.ExtKeyUsage) (*x509.Certificate, error) {
	if len(raw) == 0 {
		return nil, errors.New("tls: no certificate presented")
	}
	leaf, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return nil, fmt.Errorf("tls: parse peer certificate: %w", err)
	}
	inter := x509.NewCertPool()
	for _, der := range raw[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("tls: parse peer chain: %w", err)
		}
		inter.AddCert(c)
	}
	_, pool := r.current()
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return nil, fmt.Errorf("tls: certificate %q not trusted by the cluster CA: %w", leaf.Subject.CommonName, err)
	}
	return leaf, nil
}

// PeerNodeID is the node id of a verified peer connection's certificate.
func PeerNodeID(cs tls.ConnectionState) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("tls: peer presented no certificate")
	}
	id, ok := NodeID(cs.PeerCertificates[0])
	if !ok {
		return "", fmt.Errorf("tls: peer certificate %q names no node", cs.PeerCertificates[0].Subject.CommonName)
	}
	return id, nil
}
