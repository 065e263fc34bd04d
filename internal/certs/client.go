package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ClientFiles names the PEM files a client presents and trusts.
type ClientFiles struct {
	// CAFile is the cluster CA certificate (ca.crt) the server's
	// certificate must chain to. Required.
	CAFile string
	// CertFile and KeyFile are the client's own certificate and key, for
	// servers that require client certificates (mTLS). Both or neither.
	CertFile string
	KeyFile  string
	// ServerName overrides the name the server's certificate must carry;
	// empty means the host part of the address dialled (gRPC fills it in).
	ServerName string
}

// ClientTLS returns the TLS configuration of a client: trust only the
// cluster CA (not the system roots: a Skiff cluster is its own authority,
// and a certificate from a public CA for the same host name must not
// pass), present the client certificate when given, TLS 1.2 at least.
func ClientTLS(files ClientFiles) (*tls.Config, error) {
	if files.CAFile == "" {
		return nil, errors.New("certs: no CA file given: name the cluster CA certificate (ca.crt of `skiff certs create`) to verify the server")
	}
	pemCA, err := os.ReadFile(files.CAFile)
	if err != nil {
		return nil, fmt.Errorf("certs: read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		return nil, fmt.Errorf("certs: CA file %s holds no PEM certificate: name the cluster's ca.crt", files.CAFile)
	}
	cfg := &tls.Config{
		RootCAs:    pool,
		ServerName: files.ServerName,
		MinVersion: tls.VersionTLS12,
	}
	switch {
	case files.CertFile == "" && files.KeyFile == "":
	case files.CertFile == "":
		return nil, fmt.Errorf("certs: key file %s given without its certificate: name the certificate file too", files.KeyFile)
	case files.KeyFile == "":
		return nil, fmt.Errorf("certs: certificate file %s given without its key: name the key file too", files.CertFile)
	default:
		pair, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("certs: client certificate %s with key %s: %w (both must be PEM, and the key must match the certificate)",
				files.CertFile, files.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
