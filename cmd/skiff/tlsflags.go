package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/skiff-mq/skiff/client"
	"github.com/skiff-mq/skiff/internal/certs"
)

// Names of the client TLS flags. They are persistent flags of the root, so
// every verb that dials a node (the client verbs, health, chaos run) reads
// the same four, and SKIFF_TLS_CA_FILE ... set them through applyEnv.
const (
	flagTLSCA         = "tls-ca-file"
	flagTLSCert       = "tls-cert-file"
	flagTLSKey        = "tls-key-file"
	flagTLSServerName = "tls-server-name"
)

// tlsOptions are the values of the client TLS flags.
type tlsOptions struct {
	caFile, certFile, keyFile, serverName string
}

// registerTLSFlags adds the four flags to fs, bound to t.
func registerTLSFlags(fs *pflag.FlagSet, t *tlsOptions) {
	fs.StringVar(&t.caFile, flagTLSCA, "", "cluster CA certificate (ca.crt): connect with TLS and verify nodes against it")
	fs.StringVar(&t.certFile, flagTLSCert, "", "client certificate, for clusters that require one (with --tls-key-file)")
	fs.StringVar(&t.keyFile, flagTLSKey, "", "key of --tls-cert-file")
	fs.StringVar(&t.serverName, flagTLSServerName, "", "name the nodes' certificates must carry (default: the host dialled)")
}

// tlsOptionsFrom reads the flags by name, for verbs built apart from
// newClientCommands (health, chaos run) that still see the root's
// persistent flags in their own flag set.
func tlsOptionsFrom(fs *pflag.FlagSet) tlsOptions {
	get := func(name string) string {
		if f := fs.Lookup(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	return tlsOptions{caFile: get(flagTLSCA), certFile: get(flagTLSCert), keyFile: get(flagTLSKey), serverName: get(flagTLSServerName)}
}

// given reports whether any TLS flag was set: then TLS is on.
func (t tlsOptions) given() bool {
	return t.caFile != "" || t.certFile != "" || t.keyFile != "" || t.serverName != ""
}

// config returns the client TLS configuration, nil for plaintext (no TLS
// flag given). Plaintext is never a fallback: one TLS flag means TLS, and
// a missing CA is an error rather than an unverified connection.
func (t tlsOptions) config() (*tls.Config, error) {
	if !t.given() {
		return nil, nil
	}
	switch {
	case t.caFile == "":
		return nil, fmt.Errorf("--%s is required with the other --tls-* flags: name the cluster's ca.crt (from `skiff certs create`)", flagTLSCA)
	case t.certFile != "" && t.keyFile == "":
		return nil, fmt.Errorf("--%s given without --%s: pass the client's .key file too", flagTLSCert, flagTLSKey)
	case t.keyFile != "" && t.certFile == "":
		return nil, fmt.Errorf("--%s given without --%s: pass the client's .crt file too", flagTLSKey, flagTLSCert)
	}
	cfg, err := certs.ClientTLS(certs.ClientFiles{CAFile: t.caFile, CertFile: t.certFile, KeyFile: t.keyFile, ServerName: t.serverName})
	if err != nil {
		return nil, fmt.Errorf("TLS flags: %w", err)
	}
	return cfg, nil
}

// explain adds to a failed connection what to change in the TLS flags,
// when the failure comes from TLS.
func (t tlsOptions) explain(err error) error {
	if err == nil {
		return nil
	}
	var hint string
	switch cause := client.TLSCause(err); {
	case errors.Is(cause, client.ErrBrokerWantsTLS):
		hint = fmt.Sprintf("if the cluster uses TLS, pass --%s (and --%s/--%s if it requires client certificates)", flagTLSCA, flagTLSCert, flagTLSKey)
	case errors.Is(cause, client.ErrBrokerNotTLS):
		hint = "the node is plaintext: drop the --tls-* flags (and SKIFF_TLS_* variables)"
	case errors.Is(cause, client.ErrClientCertRefused) && t.certFile == "":
		hint = fmt.Sprintf("the cluster requires a client certificate: pass --%s and --%s", flagTLSCert, flagTLSKey)
	case errors.Is(cause, client.ErrClientCertRefused):
		hint = fmt.Sprintf("--%s %s must be issued by the cluster's CA and not expired", flagTLSCert, t.certFile)
	case errors.Is(cause, client.ErrBrokerCertRejected):
		hint = fmt.Sprintf("check that --%s is the cluster's ca.crt and that the node certificates cover the address dialled "+
			"(--%s, or reissue them with `skiff certs create --hosts`)", flagTLSCA, flagTLSServerName)
	case t.given() && t.certFile == "" && errors.Is(err, client.ErrUnavailable) &&
		(strings.Contains(err.Error(), "broken pipe") || strings.Contains(err.Error(), "connection reset")):
		// Under TLS 1.3 a node refusing a missing client certificate
		// often shows only as a reset connection.
		hint = fmt.Sprintf("if the cluster requires client certificates, pass --%s and --%s", flagTLSCert, flagTLSKey)
	default:
		return err
	}
	return fmt.Errorf("%w (%s)", err, hint)
}

// applyTLSEnv sets the TLS flags of fs left unset from SKIFF_TLS_*, for a
// verb that does not apply every SKIFF_* variable (health: in a node's
// container SKIFF_TLS_CA_FILE and friends are the node's own, and the
// healthcheck should dial with them without its other flags changing).
func applyTLSEnv(fs *pflag.FlagSet) error {
	sub := pflag.NewFlagSet("tls", pflag.ContinueOnError)
	for _, name := range []string{flagTLSCA, flagTLSCert, flagTLSKey, flagTLSServerName} {
		if f := fs.Lookup(name); f != nil {
			sub.AddFlag(f)
		}
	}
	return applyEnv(sub)
}

// Names of the login flags, persistent flags of the root beside the TLS
// ones (SKIFF_USER, SKIFF_PASSWORD through applyEnv).
const (
	flagUser     = "user"
	flagPassword = "password"
)

// loginOptions are the values of --user and --password.
type loginOptions struct {
	user, password string
}

func registerLoginFlags(fs *pflag.FlagSet, l *loginOptions) {
	fs.StringVar(&l.user, flagUser, "", "user name, for clusters run with --auth (with --password; needs the --tls-* flags)")
	fs.StringVar(&l.password, flagPassword, "", "password of --user (prefer SKIFF_PASSWORD: a flag shows in the process list)")
}

// credentials checks the pair: both or neither, and never over plaintext.
func (l loginOptions) credentials(tls bool) (user, password string, err error) {
	switch {
	case l.user != "" && l.password == "":
		return "", "", fmt.Errorf("--%s given without --%s (or SKIFF_PASSWORD)", flagUser, flagPassword)
	case l.password != "" && l.user == "":
		return "", "", fmt.Errorf("--%s given without --%s (or SKIFF_USER)", flagPassword, flagUser)
	case l.password != "" && !tls:
		return "", "", fmt.Errorf("--%s: passwords travel only over TLS: pass --%s (the cluster's ca.crt) too", flagPassword, flagTLSCA)
	}
	return l.user, l.password, nil
}
