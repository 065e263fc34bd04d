package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names of the cluster CA inside a certificate directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// CACommonName is the subject CN of a CA that Create makes.
const CACommonName = "Skiff cluster CA"

// DefaultValidity is how long certificates Create issues stay valid.
const DefaultValidity = 365 * 24 * time.Hour

// clockSkew backdates NotBefore so that a peer whose clock is a little
// behind does not reject a certificate issued a moment ago.
const clockSkew = 5 * time.Minute

// CreateOptions says what Create writes.
type CreateOptions struct {
	// Dir receives the files; it is created (mode 0700) when missing.
	Dir string
	// Nodes are node ids: each gets <id>.crt and <id>.key.
	Nodes []string
	// Hosts are extra names and addresses every node certificate is valid
	// for: IP addresses become IP SANs, anything else a DNS SAN. The node
	// id, localhost, 127.0.0.1 and ::1 are always included.
	Hosts []string
	// Clients are client names (principals): each gets <name>.crt and
	// <name>.key.
	Clients []string
	// Validity is the lifetime of new certificates, the CA's included, and
	// is cut to the CA's remaining lifetime for leaves of a reused CA.
	// Default DefaultValidity (one year).
	Validity time.Duration
	// Force replaces existing node and client files. The CA is never
	// replaced: certificates already issued by it would stop verifying.
	Force bool
}

// Paths returns where Create puts the certificate and key of a node or
// client called name in dir.
func Paths(dir, name string) (cert, key string) {
	return filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
}

// validName accepts node ids and client names: they become file names and
// URI path segments, so no separators, no spaces, no empty names.
func validName(name string) error {
	if len(name) == 0 || len(name) > 64 {
		return fmt.Errorf("%q: want 1 to 64 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q: want only letters, digits, '.', '_' and '-'", name)
		}
	}
	return nil
}

// validate reports every invalid option.
func (o CreateOptions) validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("certs: no directory given"))
	}
	if o.Validity < 0 {
		errs = append(errs, fmt.Errorf("certs: validity %v: must be positive", o.Validity))
	}
	seen := map[string]string{}
	check := func(kind, name string) {
		if err := validName(name); err != nil {
			errs = append(errs, fmt.Errorf("certs: %s name %w", kind, err))
			return
		}
		// "ca" would overwrite the CA's own files.
		if base := strings.TrimSuffix(CACertFile, ".crt"); strings.EqualFold(name, base) {
			errs = append(errs, fmt.Errorf("certs: %s name %q is taken by the CA's files; choose another", kind, name))
			return
		}
		if prev, dup := seen[strings.ToLower(name)]; dup {
			errs = append(errs, fmt.Errorf("certs: %s name %q given twice (also as a %s): names share one directory", kind, name, prev))
			return
		}
		seen[strings.ToLower(name)] = kind
	}
	for _, n := range o.Nodes {
		check("node", n)
	}
	for _, c := range o.Clients {
		check("client", c)
	}
	for _, h := range o.Hosts {
		if h == "" || strings.ContainsAny(h, " /\t") || (net.ParseIP(h) == nil && strings.Contains(h, ":")) {
			errs = append(errs, fmt.Errorf("certs: host %q: want a DNS name or an IP address, without a port", h))
		}
	}
	return errors.Join(errs...)
}

// Create writes a cluster CA (or reuses the one in opts.Dir when both its
// files exist) and the node and client certificates opts names, signed by
// it. It refuses to replace an existing node or client file unless
// opts.Force, and checks everything before writing anything.
func Create(opts CreateOptions) error {
	if err := opts.validate(); err != nil {
		return err
	}
	if opts.Validity == 0 {
		opts.Validity = DefaultValidity
	}
	if !opts.Force {
		var exist []string
		for _, name := range slices.Concat(opts.Nodes, opts.Clients) {
			crt, key := Paths(opts.Dir, name)
			for _, p := range []string{crt, key} {
				if _, err := os.Stat(p); err == nil {
					exist = append(exist, p)
				}
			}
		}
		if len(exist) > 0 {
			return fmt.Errorf("certs: %s already exist(s): remove them, or replace them with --force (CreateOptions.Force)", strings.Join(exist, ", "))
		}
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	now := time.Now()
	ca, caKey, err := loadOrCreateCA(opts.Dir, now, opts.Validity)
	if err != nil {
		return err
	}
	notAfter := now.Add(opts.Validity)
	if notAfter.After(ca.NotAfter) {
		// A leaf outliving its CA would look valid but fail to verify.
		notAfter = ca.NotAfter
	}
	dnsNames := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	for _, h := range opts.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if !slices.Contains(dnsNames, h) {
			dnsNames = append(dnsNames, h)
		}
	}
	for _, id := range opts.Nodes {
		tmpl := &x509.Certificate{
			Subject:     pkix.Name{CommonName: id},
			NotBefore:   now.Add(-clockSkew),
			NotAfter:    notAfter,
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			URIs:        []*url.URL{NodeURI(id)},
			DNSNames:    withFirst(id, dnsNames),
			IPAddresses: ips,
		}
		if err := issue(opts.Dir, id, tmpl, ca, caKey); err != nil {
			return fmt.Errorf("certs: node %s: %w", id, err)
		}
	}
	for _, name := range opts.Clients {
		tmpl := &x509.Certificate{
			Subject:     pkix.Name{CommonName: name},
			NotBefore:   now.Add(-clockSkew),
			NotAfter:    notAfter,
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if err := issue(opts.Dir, name, tmpl, ca, caKey); err != nil {
			return fmt.Errorf("certs: client %s: %w", name, err)
		}
	}
	return nil
}

// withFirst returns name followed by the names of rest other than it.
func withFirst(name string, rest []string) []string {
	out := []string{name}
	for _, r := range rest {
		if r != name {
			out = append(out, r)
		}
	}
	return out
}

// loadOrCreateCA reuses dir's CA when both of its files exist, so that
// certificates for new nodes or clients can be issued later and still
// verify against the ca.crt every node already trusts.
func loadOrCreateCA(dir string, now time.Time, validity time.Duration) (*x509.Certificate, crypto.Signer, error) {
	crtPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	_, crtErr := os.Stat(crtPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case crtErr == nil && keyErr == nil:
		return loadCA(crtPath, keyPath, now)
	case crtErr == nil || keyErr == nil:
		// Never mint a new CA over half of an old one: the missing half is
		// more likely misplaced than unwanted.
		return nil, nil, fmt.Errorf("certs: only one of %s and %s exists: restore the other, or move both away to create a new CA", crtPath, keyPath)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: CACommonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		// The CA signs leaves only, never intermediate CAs.
		MaxPathLenZero: true,
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	// The key first: a ca.crt on disk then always has its key beside it.
	if err := writeKey(keyPath, key); err != nil {
		return nil, nil, err
	}
	if err := writeCert(crtPath, der); err != nil {
		return nil, nil, err
	}
	return ca, key, nil
}

// loadCA reads an existing CA and checks that it can still sign.
func loadCA(crtPath, keyPath string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	ca, err := readCert(crtPath)
	if err != nil {
		return nil, nil, err
	}
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, nil, fmt.Errorf("certs: %s is not a CA certificate: move it away to create a new CA", crtPath)
	}
	if now.After(ca.NotAfter) {
		return nil, nil, fmt.Errorf("certs: CA %s expired on %s: move ca.crt and ca.key away to create a new CA (and reissue every certificate)",
			crtPath, ca.NotAfter.Format(time.DateOnly))
	}
	key, err := readKey(keyPath)
	if err != nil {
		return nil, nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(ca.PublicKey) {
		return nil, nil, fmt.Errorf("certs: %s is not the key of %s: restore the matching pair", keyPath, crtPath)
	}
	return ca, key, nil
}

// issue signs tmpl with the CA for a new key and writes name's files.
func issue(dir, name string, tmpl, ca *x509.Certificate, caKey crypto.Signer) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	crtPath, keyPath := Paths(dir, name)
	if err := writeKey(keyPath, key); err != nil {
		return err
	}
	return writeCert(crtPath, der)
}

// newSerial returns a random 128-bit serial number: unique without a
// counter to keep, as RFC 5280 asks (and at most 20 octets).
func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("certs: serial number: %w", err)
	}
	return serial, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("certs: encode key: %w", err)
	}
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

func writeCert(path string, der []byte) error {
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// writeFileAtomic writes data to a temporary file in path's directory,
// syncs it and renames it over path: readers (a node reloading its
// certificate) see the old file or the new one, never a torn one. The
// temporary file is created with perm, so a key is never readable by
// others, not even for a moment.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// CreateTemp makes 0600 files; certificates are opened up afterwards.
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}

// readCert parses the first certificate of a PEM file.
func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("certs: %s holds no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", path, err)
	}
	return cert, nil
}

// readKey parses a PEM private key, SEC 1 ("EC PRIVATE KEY") or PKCS #8
// ("PRIVATE KEY"), so that keys made by openssl work too.
func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("certs: %s holds no PEM private key", path)
	}
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certs: %s: %w", path, err)
		}
		return key, nil
	case "PRIVATE KEY":
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certs: %s: %w", path, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("certs: %s: a %T cannot sign", path, key)
		}
		return signer, nil
	default:
		return nil, fmt.Errorf("certs: %s holds a %q block, want a private key", path, block.Type)
	}
}
