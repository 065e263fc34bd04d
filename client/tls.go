package client

import (
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Causes of a connection failure that come from TLS, matched with
// errors.Is beside ErrUnavailable. gRPC reports them all as "unavailable"
// with a transport message, which tells a user little about what to
// change; the client recognises the messages of Go's TLS stack and says.
var (
	// ErrBrokerWantsTLS means a plaintext connection (Config.TLS nil) was
	// closed before the broker sent a word, which is what a TLS listener
	// does with plaintext. Set Config.TLS. (A broker that died at that
	// very moment looks the same, hence the question in the text.)
	ErrBrokerWantsTLS = errors.New("the broker closed the plaintext connection: is it using TLS?")
	// ErrBrokerNotTLS means the broker answered the TLS handshake in
	// plaintext: leave Config.TLS nil for it, or enable TLS on the broker.
	ErrBrokerNotTLS = errors.New("the broker does not speak TLS")
	// ErrClientCertRefused means the broker refused the client's
	// certificate, or its absence: put a certificate of the cluster CA in
	// Config.TLS.Certificates. Under TLS 1.3 the refusal arrives after
	// the client's first write and may be lost to a reset connection,
	// which is then only ErrUnavailable.
	ErrClientCertRefused = errors.New("the broker refused the client certificate (it requires one issued by the cluster CA)")
	// ErrBrokerCertRejected means the client did not accept the broker's
	// certificate: another CA than Config.TLS.RootCAs, expired, or not
	// valid for the name dialled (set Config.TLS.ServerName, or reissue
	// the node certificate with that host).
	ErrBrokerCertRejected = errors.New("the broker's certificate did not verify")
)

// TLSCause returns the TLS cause of err (one of ErrBrokerWantsTLS,
// ErrBrokerNotTLS, ErrClientCertRefused, ErrBrokerCertRejected), or nil.
// err may come from the client or straight from a gRPC call on a
// connection of the caller's own (a health check), so that both can say
// what to change.
func TLSCause(err error) error {
	for _, cause := range []error{ErrBrokerWantsTLS, ErrBrokerNotTLS, ErrClientCertRefused, ErrBrokerCertRejected} {
		if errors.Is(err, cause) {
			return cause
		}
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
		return tlsCause(st.Message())
	}
	return nil
}

// tlsCause returns the TLS cause of a transport failure's message, or nil.
// The substrings are those of crypto/tls, crypto/x509 and grpc-go's
// transport, which wrap the underlying error into the status text.
func tlsCause(msg string) error {
	switch {
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return ErrBrokerNotTLS
	case strings.Contains(msg, "remote error: tls:"):
		// The broker's alert: certificate required, bad or unknown
		// certificate, expired certificate.
		return ErrClientCertRefused
	case strings.Contains(msg, "x509:") || strings.Contains(msg, "tls: failed to verify certificate"):
		return ErrBrokerCertRejected
	case strings.Contains(msg, "error reading server preface: EOF"),
		// A TLS server that read the plaintext preface as a bad record may
		// close with those bytes unread, which the kernel turns into a reset.
		strings.Contains(msg, "error reading server preface") && strings.Contains(msg, "connection reset by peer"):
		return ErrBrokerWantsTLS
	}
	return nil
}

// tlsError is a connection failure with a TLS cause. It still matches
// ErrUnavailable, so that what is retried does not change; the cause is
// added to the text and to the chain.
type tlsError struct {
	cause error
	msg   string
}

func (e *tlsError) Error() string   { return "unavailable: " + e.msg + ": " + e.cause.Error() }
func (e *tlsError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }
