package rpc

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcmd "google.golang.org/grpc/metadata"

	"github.com/skiff-mq/skiff/client"
	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/internal/certs"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// testAuth turns authentication on with cheap hashes (the parameters are
// stored with each hash, so tests need not pay production costs).
func testAuth() AuthConfig {
	return AuthConfig{Enabled: true, SuperUsers: []string{"User:admin"},
		PasswordHash: metadata.Argon2Params{Time: 1, MemoryKB: 1024, Threads: 1}}
}

// basicAuth is per-RPC credentials that, unlike the client's, also go out
// on plaintext connections: to check that the server refuses them there.
type basicAuth struct {
	header string
	tls    bool
}

func (b basicAuth) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{AuthorizationKey: b.header}, nil
}
func (b basicAuth) RequireTransportSecurity() bool { return b.tls }

func password(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// dialAs connects with creds and, when header is set, that authorization.
func dialAs(t *testing.T, addr string, creds credentials.TransportCredentials, header string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if header != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(basicAuth{header: header}))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestAuthDecidesWhoCallsAndWhoManagesUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	dir := t.TempDir()
	if err := certs.Create(certs.CreateOptions{Dir: dir, Nodes: []string{"n0"}, Clients: []string{"admin", "bob"}}); err != nil {
		t.Fatal(err)
	}
	sn := startSecureNode(t, dir, WithAuth(testAuth()))
	ctx := ctxFor(t, 60*time.Second)
	tlsAs := func(name string) credentials.TransportCredentials {
		if name == "n0" { // a node certificate presented by a client
			f := certs.ClientFiles{CAFile: filepath.Join(dir, certs.CACertFile)}
			f.CertFile, f.KeyFile = certs.Paths(dir, "n0")
			cfg, err := certs.ClientTLS(f)
			if err != nil {
				t.Fatal(err)
			}
			return credentials.NewTLS(cfg)
		}
		return credentials.NewTLS(clientTLS(t, dir, dir, name))
	}
	admin := skiffpb.NewAdminClient(dialAs(t, sn.addr, tlsAs("admin"), ""))
	if _, err := admin.UpsertUser(ctx, &skiffpb.UpsertUserRequest{Name: "alice", Password: "alice-password-1", Mode: skiffpb.UpsertUserMode_UPSERT_USER_MODE_CREATE}); err != nil {
		t.Fatalf("admin creates alice: %v", err)
	}

	cases := []struct {
		name   string
		creds  credentials.TransportCredentials
		header string
		// topics: the code of ListTopics; users: of ListUsers; msg: in the
		// first refusal's message.
		topics, users codes.Code
		msg           string
	}{
		{"no identity", tlsAs(""), "", codes.Unauthenticated, codes.Unauthenticated, "--user"},
		{"super user certificate", tlsAs("admin"), "", codes.OK, codes.OK, ""},
		{"other client certificate", tlsAs("bob"), "", codes.OK, codes.PermissionDenied, "principal User:bob may not describe cluster"},
		{"node certificate", tlsAs("n0"), "", codes.OK, codes.PermissionDenied, "principal Node:n0"},
		{"right password", tlsAs(""), password("alice", "alice-password-1"), codes.OK, codes.PermissionDenied, "principal User:alice"},
		{"wrong password", tlsAs(""), password("alice", "wrong-password"), codes.Unauthenticated, codes.Unauthenticated, "wrong password"},
		{"unknown user", tlsAs(""), password("mallory", "alice-password-1"), codes.Unauthenticated, codes.Unauthenticated, "unknown user or wrong password"},
		{"wrong password beside a good certificate", tlsAs("admin"), password("alice", "wrong-password"), codes.Unauthenticated, codes.Unauthenticated, "wrong password"},
		{"malformed header", tlsAs(""), "Bearer xyz", codes.Unauthenticated, codes.Unauthenticated, "Basic"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := dialAs(t, sn.addr, tc.creds, tc.header)
			_, err := skiffpb.NewAdminClient(conn).ListTopics(ctx, &skiffpb.ListTopicsRequest{})
			st := wantCode(t, err, tc.topics)
			_, err = skiffpb.NewAdminClient(conn).ListUsers(ctx, &skiffpb.ListUsersRequest{})
			if ust := wantCode(t, err, tc.users); tc.topics == codes.OK {
				st = ust
			}
			if tc.msg != "" && !strings.Contains(st.Message(), tc.msg) {
				t.Fatalf("message %q lacks %q", st.Message(), tc.msg)
			}
			// The health service answers everyone.
			if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatalf("health: %v", err)
			}
		})
	}

	t.Run("streams need an identity too", func(t *testing.T) {
		stream, err := skiffpb.NewProducerClient(dialAs(t, sn.addr, tlsAs(""), "")).ProduceStream(ctx)
		if err == nil {
			_, err = stream.Recv()
		}
		wantCode(t, err, codes.Unauthenticated)
	})

	t.Run("users are managed only with alter on the cluster", func(t *testing.T) {
		for _, conn := range []*grpc.ClientConn{dialAs(t, sn.addr, tlsAs("bob"), ""), dialAs(t, sn.addr, tlsAs(""), password("alice", "alice-password-1"))} {
			_, err := skiffpb.NewAdminClient(conn).UpsertUser(ctx, &skiffpb.UpsertUserRequest{Name: "eve", Password: "eve-password"})
			if st := wantCode(t, err, codes.PermissionDenied); !strings.Contains(st.Message(), `alter cluster "skiff-cluster"`) || !strings.Contains(st.Message(), "skiff acl add") {
				t.Fatalf("message %q", st.Message())
			}
			_, err = skiffpb.NewAdminClient(conn).DeleteUser(ctx, &skiffpb.DeleteUserRequest{Name: "alice"})
			wantCode(t, err, codes.PermissionDenied)
		}
	})

	t.Run("a changed or deleted password stops working at once", func(t *testing.T) {
		old := skiffpb.NewAdminClient(dialAs(t, sn.addr, tlsAs(""), password("alice", "alice-password-1")))
		if _, err := old.ListTopics(ctx, &skiffpb.ListTopicsRequest{}); err != nil {
			t.Fatal(err) // cached now
		}
		if _, err := admin.UpsertUser(ctx, &skiffpb.UpsertUserRequest{Name: "alice", Password: "alice-password-2", Mode: skiffpb.UpsertUserMode_UPSERT_USER_MODE_UPDATE}); err != nil {
			t.Fatal(err)
		}
		_, err := old.ListTopics(ctx, &skiffpb.ListTopicsRequest{})
		wantCode(t, err, codes.Unauthenticated)
		cur := skiffpb.NewAdminClient(dialAs(t, sn.addr, tlsAs(""), password("alice", "alice-password-2")))
		if _, err := cur.ListTopics(ctx, &skiffpb.ListTopicsRequest{}); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.DeleteUser(ctx, &skiffpb.DeleteUserRequest{Name: "alice"}); err != nil {
			t.Fatal(err)
		}
		_, err = cur.ListTopics(ctx, &skiffpb.ListTopicsRequest{})
		wantCode(t, err, codes.Unauthenticated)
		_, err = admin.DeleteUser(ctx, &skiffpb.DeleteUserRequest{Name: "alice"})
		wantCode(t, err, codes.NotFound)
		_, err = admin.UpsertUser(ctx, &skiffpb.UpsertUserRequest{Name: "alice", Password: "alice-password-3", Mode: skiffpb.UpsertUserMode_UPSERT_USER_MODE_UPDATE})
		wantCode(t, err, codes.NotFound)
	})

	t.Run("bad names and passwords are refused", func(t *testing.T) {
		for _, req := range []*skiffpb.UpsertUserRequest{
			{Name: "has space", Password: "long-enough"},
			{Name: "User:x", Password: "long-enough"},
			{Name: "short", Password: "1234567"},
		} {
			_, err := admin.UpsertUser(ctx, req)
			wantCode(t, err, codes.InvalidArgument)
		}
	})

	t.Run("hash parameters stored, password not in the meta log", func(t *testing.T) {
		const secret = "a-distinctive-secret-9f3e"
		if _, err := admin.UpsertUser(ctx, &skiffpb.UpsertUserRequest{Name: "carol", Password: secret}); err != nil {
			t.Fatal(err)
		}
		cred, ok := sn.node.Metadata().User("carol")
		if !ok || cred.Mechanism != metadata.MechanismArgon2id || cred.Argon2Params != testAuth().PasswordHash || len(cred.Salt) != 16 {
			t.Fatalf("stored credential %+v", cred)
		}
		// The command is in the Raft log files (its base64 hash is), the
		// password is nowhere in the data directory.
		var sawHash bool
		hash := []byte(base64.StdEncoding.EncodeToString(cred.Hash))
		err := filepath.WalkDir(sn.dataDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s holds the password", path)
			}
			sawHash = sawHash || bytes.Contains(data, hash)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !sawHash {
			t.Fatal("the UpsertUser command was not found in the data directory: the search proves nothing")
		}
		resp, err := admin.ListUsers(ctx, &skiffpb.ListUsersRequest{})
		if err != nil || len(resp.Users) != 1 || resp.Users[0].Name != "carol" || resp.Users[0].Mechanism != "argon2id" {
			t.Fatalf("list: %v %v", resp, err)
		}
	})

	t.Run("the client sends its password", func(t *testing.T) {
		cl, err := client.New(ctx, client.Config{Brokers: []string{sn.addr}, TLS: clientTLS(t, dir, "", ""),
			User: "carol", Password: "a-distinctive-secret-9f3e", RequestTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if _, err := cl.ListTopics(ctx); err != nil {
			t.Fatal(err)
		}
		if err := cl.CreateUser(ctx, "dave", "dave-password"); !errorsIs(err, client.ErrPermissionDenied) {
			t.Fatalf("carol creates a user: %v", err)
		}
	})
}

func TestPasswordsNeverTravelInPlaintext(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	sn := startPlainNode(t, WithAuth(testAuth()))
	ctx := ctxFor(t, 30*time.Second)

	// Server side: a password on a plaintext connection is refused before
	// it is looked at.
	conn := dialAs(t, sn.addr, insecure.NewCredentials(), password("alice", "alice-password"))
	_, err := skiffpb.NewAdminClient(conn).ListTopics(ctx, &skiffpb.ListTopicsRequest{})
	if st := wantCode(t, err, codes.Unauthenticated); !strings.Contains(st.Message(), "passwords travel only over TLS") {
		t.Fatalf("message %q", st.Message())
	}
	// No identity at all.
	_, err = skiffpb.NewAdminClient(dialAs(t, sn.addr, insecure.NewCredentials(), "")).ListTopics(ctx, &skiffpb.ListTopicsRequest{})
	wantCode(t, err, codes.Unauthenticated)

	// Client side: the client refuses to be configured so.
	_, err = client.New(ctx, client.Config{Brokers: []string{sn.addr}, User: "alice", Password: "alice-password"})
	if !errorsIs(err, client.ErrPasswordNeedsTLS) {
		t.Fatalf("client with a password and no TLS: %v", err)
	}
	// and gRPC, beneath it, would not send them either.
	guarded := grpc.WithPerRPCCredentials(basicAuth{header: password("alice", "alice-password"), tls: true})
	if c, err := grpc.NewClient(sn.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), guarded); err == nil {
		_, err = skiffpb.NewAdminClient(c).ListTopics(ctx, &skiffpb.ListTopicsRequest{})
		c.Close()
		if err == nil || !strings.Contains(err.Error(), "transport") {
			t.Fatalf("credentials requiring TLS went out in plaintext: %v", err)
		}
	}
}

func TestWithoutAuthEveryCallIsAnonymous(t *testing.T) {
	a := newAuthenticator(AuthConfig{SuperUsers: []string{"User:admin"}}, nil, metadata.NewState, testMetrics())
	p, err := a.authenticate(grpcmd.NewIncomingContext(context.Background(), grpcmd.Pairs(AuthorizationKey, "garbage")))
	if err != nil || p != Anonymous {
		t.Fatalf("principal %v, %v", p, err)
	}
}

func TestAuthConfigValidate(t *testing.T) {
	good := AuthConfig{Enabled: true, SuperUsers: []string{"User:admin", "Node:n1"}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []AuthConfig{
		{SuperUsers: []string{"admin"}},
		{SuperUsers: []string{"Group:x"}},
		{SuperUsers: []string{"User:"}},
		{PasswordHash: metadata.Argon2Params{Time: 1, MemoryKB: 1, Threads: 1}},
		{PasswordCacheTTL: -1},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func testMetrics() *metrics {
	return newMetrics(prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
}

// An unknown user costs the same password hash as a known one (so the
// answer's timing does not tell which users exist), and every refusal is
// counted by reason. With the only hash slot taken, a check that hashes
// must wait for it: an unknown user's check waiting out its deadline
// proves it hashes, with no clock involved.
func TestUnknownUsersCostAHashAndFailuresAreCounted(t *testing.T) {
	params := metadata.Argon2Params{Time: 1, MemoryKB: 64, Threads: 1}
	cred, err := metadata.NewCredential("alice-password", params)
	if err != nil {
		t.Fatal(err)
	}
	st := metadata.NewState()
	st.Users = map[string]metadata.UserCredential{"alice": cred}
	m := testMetrics()
	a := newAuthenticator(AuthConfig{Enabled: true, PasswordHash: params, MaxConcurrentHashes: 1},
		nil, func() *metadata.State { return st }, m)

	a.hashSlots <- struct{}{} // the one slot, taken
	for _, user := range []string{"alice", "mallory"} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := a.checkPassword(ctx, user, "wrong")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s with every hash slot taken: %v, want a wait for a slot", user, err)
		}
	}
	<-a.hashSlots

	ctx := context.Background()
	var known, unknown error
	if known = a.checkPassword(ctx, "alice", "wrong"); known == nil {
		t.Fatal("wrong password accepted")
	}
	if unknown = a.checkPassword(ctx, "mallory", "wrong"); unknown == nil {
		t.Fatal("unknown user accepted")
	}
	if strings.ReplaceAll(known.Error(), "alice", "X") != strings.ReplaceAll(unknown.Error(), "mallory", "X") {
		t.Fatalf("answers differ: %q vs %q", known, unknown)
	}
	for range 2 {
		if err := a.checkPassword(ctx, "alice", "alice-password"); err != nil {
			t.Fatal(err)
		}
	}
	if hits, misses := testutil.ToFloat64(m.passwordCache.WithLabelValues("hit")), testutil.ToFloat64(m.passwordCache.WithLabelValues("miss")); hits != 1 || misses != 3 {
		t.Fatalf("password cache: %v hits, %v misses; want 1 and 3 (alice's two wrong passwords and her first right one hash)", hits, misses)
	}

	for _, tc := range []struct {
		name   string
		md     grpcmd.MD
		reason string
	}{
		{"no credentials", grpcmd.MD{}, failNoIdentity},
		{"unreadable header", grpcmd.Pairs(AuthorizationKey, "Bearer x"), failMalformed},
		{"password without TLS", grpcmd.Pairs(AuthorizationKey, password("alice", "alice-password")), failPlaintext},
	} {
		before := testutil.ToFloat64(m.authFailures.WithLabelValues(tc.reason))
		if _, err := a.authenticate(grpcmd.NewIncomingContext(ctx, tc.md)); err == nil {
			t.Fatalf("%s: authenticated", tc.name)
		}
		if got := testutil.ToFloat64(m.authFailures.WithLabelValues(tc.reason)) - before; got != 1 {
			t.Fatalf("%s: %v failures counted as %s", tc.name, got, tc.reason)
		}
	}
}
