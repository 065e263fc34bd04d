package rpc

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/internal/certs"
)

// Client authentication (DESIGN 6a). With AuthConfig.Enabled, every call
// but the gRPC health service's must carry an identity:
//
//   - a client certificate the TLS handshake verified against the cluster
//     CA: principal User:<CN>, or Node:<id> for a node certificate
//     (skiff://node/<id> URI); or
//   - a user name and password in the "authorization" metadata as
//     "Basic base64(user:password)" (RFC 7617), over TLS only, checked
//     against the argon2id hash in this node's copy of the metadata.
//
// A password, when sent, decides: a wrong one fails even if the
// connection also carries a valid certificate, so a client never runs as
// an identity it did not ask for.

// AuthorizationKey is the gRPC metadata key carrying a user's password.
const AuthorizationKey = "authorization"

// Principal types.
const (
	PrincipalUser = "User"
	PrincipalNode = "Node"
)

// Principal is the identity a call runs as.
type Principal struct {
	Type string // PrincipalUser or PrincipalNode
	Name string
	// Super is set for principals listed in AuthConfig.SuperUsers: they
	// may manage users and will bypass ACLs.
	Super bool
}

// Anonymous is the principal of every call when authentication is off.
var Anonymous = Principal{Type: PrincipalUser, Name: "ANONYMOUS"}

func (p Principal) String() string { return p.Type + ":" + p.Name }

// ParsePrincipal parses "User:<name>" or "Node:<id>".
func ParsePrincipal(s string) (Principal, error) {
	typ, name, ok := strings.Cut(s, ":")
	if !ok || name == "" || (typ != PrincipalUser && typ != PrincipalNode) {
		return Principal{}, fmt.Errorf("principal %q: want User:<name> or Node:<id>", s)
	}
	return Principal{Type: typ, Name: name}, nil
}

type principalKey struct{}

// PrincipalFrom returns the principal a call runs as (Anonymous when
// authentication is off). ok is false outside a served call.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

func withPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// AuthConfig configures client authentication. Zero fields take the
// defaults documented on them.
type AuthConfig struct {
	// Enabled requires an identity on every call (skiff server --auth).
	// Default false: every call runs as Anonymous.
	Enabled bool
	// SuperUsers are principals ("User:admin", "Node:n1") that may manage
	// users and will bypass ACLs (skiff server --super-users).
	SuperUsers []string
	// PasswordCacheTTL is how long a verified user and password are
	// trusted without hashing again. A changed or deleted credential ends
	// it at once. Default 1m.
	PasswordCacheTTL time.Duration
	// PasswordHash are the argon2id parameters for new passwords (existing
	// hashes keep the parameters they were made with). Default
	// metadata.DefaultArgon2Params.
	PasswordHash metadata.Argon2Params
	// MaxConcurrentHashes bounds password hashes computed at once, so that
	// a flood of wrong passwords costs a few cores, not all of them (and
	// not 64 MiB per call in flight). Default GOMAXPROCS.
	MaxConcurrentHashes int
}

// Validate checks the super users and hash parameters.
func (c AuthConfig) Validate() error {
	var errs []error
	for _, s := range c.SuperUsers {
		if _, err := ParsePrincipal(s); err != nil {
			errs = append(errs, fmt.Errorf("super users: %w", err))
		}
	}
	if c.PasswordHash != (metadata.Argon2Params{}) {
		if err := c.PasswordHash.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("password hash parameters: %w", err))
		}
	}
	if c.PasswordCacheTTL < 0 || c.MaxConcurrentHashes < 0 {
		errs = append(errs, errors.New("auth config: cache TTL and concurrent hashes must not be negative"))
	}
	return errors.Join(errs...)
}

func (c AuthConfig) withDefaults() AuthConfig {
	if c.PasswordCacheTTL <= 0 {
		c.PasswordCacheTTL = time.Minute
	}
	if c.PasswordHash == (metadata.Argon2Params{}) {
		c.PasswordHash = metadata.DefaultArgon2Params()
	}
	if c.MaxConcurrentHashes <= 0 {
		c.MaxConcurrentHashes = runtime.GOMAXPROCS(0)
	}
	return c
}

// WithAuth sets Config.Auth.
func WithAuth(cfg AuthConfig) Option { return func(c *Config) { c.Auth = cfg } }

// unauthenticatedError refuses a call without a (valid) identity; the
// message says how to authenticate. toStatus maps it to UNAUTHENTICATED.
type unauthenticatedError struct{ msg string }

func (e *unauthenticatedError) Error() string { return e.msg }

var (
	errNoIdentity = &unauthenticatedError{"authentication required: present a client certificate issued by the cluster CA " +
		"(--tls-cert-file/--tls-key-file, client.Config.TLS) or a user name and password over TLS (--user/--password, client.Config.User/Password)"}
	errPasswordPlaintext = &unauthenticatedError{"passwords travel only over TLS: connect with TLS (--tls-ca-file) or authenticate with a client certificate"}
	errBadAuthorization  = &unauthenticatedError{`malformed "authorization" metadata: want "Basic " + base64("user:password")`}
)

// permissionError refuses an operation to an authenticated principal.
// toStatus maps it to PERMISSION_DENIED.
type permissionError struct {
	Principal Principal
	Operation string // "create users"
	Why       string
}

func (e *permissionError) Error() string {
	return fmt.Sprintf("principal %s may not %s: %s", e.Principal, e.Operation, e.Why)
}

// authenticator decides the principal of each call.
type authenticator struct {
	cfg AuthConfig
	// super holds the parsed SuperUsers by String().
	super map[string]bool
	// certsVerified says the TLS configuration checks every client
	// certificate presented, so that one can be trusted as an identity.
	certsVerified bool
	state         func() *metadata.State
	now           func() time.Time
	hashSlots     chan struct{}
	// cacheKey is a per-process HMAC key for the cache's keys: a memory
	// dump then shows no fast hash of any password.
	cacheKey [32]byte

	mu    sync.Mutex
	cache map[[32]byte]cachedLogin // guarded by mu

	// decoy is verified in place of an unknown user's credential, so that
	// an unknown user costs the same hash as a wrong password and the
	// answer's timing does not tell which users exist. Made on first use:
	// a node without password users never pays for it.
	decoyOnce sync.Once
	decoy     metadata.UserCredential

	failures  *prometheus.CounterVec // reason
	cacheUses *prometheus.CounterVec // result
}

// maxCachedLogins bounds the cache; only verified passwords enter it, so
// it holds at most one entry per user and recent password.
const maxCachedLogins = 4096

type cachedLogin struct {
	cred    metadata.UserCredential
	expires time.Time
}

func newAuthenticator(cfg AuthConfig, serverTLS *tls.Config, state func() *metadata.State, m *metrics) *authenticator {
	cfg = cfg.withDefaults()
	a := &authenticator{
		cfg:       cfg,
		super:     map[string]bool{},
		state:     state,
		now:       time.Now,
		hashSlots: make(chan struct{}, cfg.MaxConcurrentHashes),
		cache:     map[[32]byte]cachedLogin{},
		failures:  m.authFailures,
		cacheUses: m.passwordCache,
	}
	for _, s := range cfg.SuperUsers {
		if p, err := ParsePrincipal(s); err == nil {
			a.super[p.String()] = true
		}
	}
	a.certsVerified = serverTLS != nil && (serverTLS.ClientAuth >= tls.VerifyClientCertIfGiven ||
		serverTLS.VerifyPeerCertificate != nil || serverTLS.VerifyConnection != nil)
	if _, err := rand.Read(a.cacheKey[:]); err != nil {
		panic(fmt.Sprintf("rpc: random cache key: %v", err)) // crypto/rand never fails on supported platforms
	}
	return a
}

// exempt reports whether a method needs no identity: the health service,
// which load balancers and orchestrators call without credentials.
func exempt(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/")
}

func (a *authenticator) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if exempt(info.FullMethod) {
		return handler(ctx, req)
	}
	p, err := a.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	return handler(withPrincipal(ctx, p), req)
}

func (a *authenticator) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if exempt(info.FullMethod) {
		return handler(srv, ss)
	}
	p, err := a.authenticate(ss.Context())
	if err != nil {
		return err
	}
	return handler(srv, &principalStream{ServerStream: ss, ctx: withPrincipal(ss.Context(), p)})
}

type principalStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *principalStream) Context() context.Context { return s.ctx }

// authenticate returns the call's principal, or an *unauthenticatedError.
func (a *authenticator) authenticate(ctx context.Context) (Principal, error) {
	p, reason, err := a.identify(ctx)
	if err != nil && reason != "" {
		a.failures.WithLabelValues(reason).Inc()
	}
	return p, err
}

// Reasons for skiff_rpc_authentication_failures_total.
const (
	failMalformed  = "malformed"   // an authorization header that does not parse
	failPlaintext  = "plaintext"   // a password sent without TLS
	failPassword   = "password"    // unknown user or wrong password (one reason: the metric must not tell them apart either)
	failNoIdentity = "no_identity" // neither a password nor a usable client certificate
)

// identify finds the call's principal; on failure reason says why, for
// the metrics ("" when the call gave up, say on its deadline).
func (a *authenticator) identify(ctx context.Context) (Principal, string, error) {
	if !a.cfg.Enabled {
		return Anonymous, "", nil
	}
	tlsInfo, onTLS := connTLS(ctx)
	user, password, sent, err := passwordFrom(ctx)
	if err != nil {
		return Principal{}, failMalformed, err
	}
	if sent {
		if !onTLS {
			return Principal{}, failPlaintext, errPasswordPlaintext
		}
		if err := a.checkPassword(ctx, user, password); err != nil {
			var failed *unauthenticatedError
			if errors.As(err, &failed) {
				return Principal{}, failPassword, err
			}
			return Principal{}, "", err
		}
		return a.principal(PrincipalUser, user), "", nil
	}
	if onTLS && a.certsVerified && len(tlsInfo.State.PeerCertificates) > 0 {
		leaf := tlsInfo.State.PeerCertificates[0]
		if id, ok := certs.NodeID(leaf); ok {
			return a.principal(PrincipalNode, id), "", nil
		}
		if cn := leaf.Subject.CommonName; cn != "" {
			return a.principal(PrincipalUser, cn), "", nil
		}
	}
	return Principal{}, failNoIdentity, errNoIdentity
}

func (a *authenticator) principal(typ, name string) Principal {
	p := Principal{Type: typ, Name: name}
	p.Super = a.super[p.String()]
	return p
}

// connTLS returns the call's TLS state, if its connection is TLS.
func connTLS(ctx context.Context) (credentials.TLSInfo, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return credentials.TLSInfo{}, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	return info, ok
}

// passwordFrom reads "authorization: Basic base64(user:password)". sent is
// false when the call carries no such metadata.
func passwordFrom(ctx context.Context) (user, password string, sent bool, err error) {
	md, _ := grpcmd.FromIncomingContext(ctx)
	vals := md.Get(AuthorizationKey)
	if len(vals) == 0 {
		return "", "", false, nil
	}
	if len(vals) > 1 {
		return "", "", true, errBadAuthorization
	}
	enc, ok := strings.CutPrefix(vals[0], "Basic ")
	if !ok {
		return "", "", true, errBadAuthorization
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", "", true, errBadAuthorization
	}
	// User names cannot hold ':' (metadata.ValidateUserName); passwords may.
	user, password, ok = strings.Cut(string(raw), ":")
	if !ok {
		return "", "", true, errBadAuthorization
	}
	return user, password, true, nil
}

// checkPassword verifies user's password against this node's metadata,
// through the cache. Unknown users and wrong passwords get the same
// answer, so that the answer does not tell which users exist.
func (a *authenticator) checkPassword(ctx context.Context, user, password string) error {
	failed := &unauthenticatedError{fmt.Sprintf("authentication failed for user %q: unknown user or wrong password", user)}
	if len(password) > metadata.MaxPasswordLen {
		return failed
	}
	cred, known := a.state().User(user)
	if !known {
		// The same hash a known user costs, then the same answer.
		decoy, err := a.decoyCredential()
		if err != nil {
			return err
		}
		if err := a.acquireHash(ctx); err != nil {
			return err
		}
		decoy.Verify(password)
		a.releaseHash()
		return failed
	}
	key := a.loginKey(user, password)
	now := a.now()
	a.mu.Lock()
	hit, cached := a.cache[key]
	a.mu.Unlock()
	// A cached login counts only while the stored credential is the one
	// it was verified against: a password change or a delete and
	// re-create ends it as soon as this node applies the change.
	if cached && now.Before(hit.expires) && hit.cred.Same(cred) {
		a.cacheUses.WithLabelValues("hit").Inc()
		return nil
	}
	a.cacheUses.WithLabelValues("miss").Inc()
	if err := a.acquireHash(ctx); err != nil {
		return err
	}
	ok := cred.Verify(password)
	a.releaseHash()
	if !ok {
		return failed
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= maxCachedLogins {
		for k, v := range a.cache {
			if !now.Before(v.expires) {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= maxCachedLogins {
			clear(a.cache)
		}
	}
	a.cache[key] = cachedLogin{cred: cred, expires: now.Add(a.cfg.PasswordCacheTTL)}
	return nil
}

// decoyCredential is a credential of a random password, hashed with the
// parameters new passwords get.
func (a *authenticator) decoyCredential() (metadata.UserCredential, error) {
	var err error
	a.decoyOnce.Do(func() {
		var pw [24]byte
		if _, err = rand.Read(pw[:]); err != nil {
			return
		}
		a.decoy, err = metadata.NewCredential(base64.RawStdEncoding.EncodeToString(pw[:]), a.cfg.PasswordHash)
	})
	if err != nil {
		return metadata.UserCredential{}, fmt.Errorf("decoy credential: %w", err)
	}
	return a.decoy, nil
}

// acquireHash takes one of the MaxConcurrentHashes slots; releaseHash
// gives it back.
func (a *authenticator) acquireHash(ctx context.Context) error {
	select {
	case a.hashSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for a password hash slot: %w", ctx.Err())
	}
}

func (a *authenticator) releaseHash() { <-a.hashSlots }

func (a *authenticator) loginKey(user, password string) [32]byte {
	m := hmac.New(sha256.New, a.cacheKey[:])
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var k [32]byte
	m.Sum(k[:0])
	return k
}
