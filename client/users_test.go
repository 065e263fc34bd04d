package client

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// fakeUserBroker is a broker's Admin service that keeps users the way the
// real one does (a create refuses an existing user, an update an unknown
// one), with the costs and faults a user test needs.
type fakeUserBroker struct {
	skiffpb.UnimplementedAdminServer
	// hash is how long UpsertUser call i takes before it applies (the
	// password hash), whether or not its caller still waits, as on a real
	// broker; the last one repeats.
	hash []time.Duration
	// lose answers the first lose UpsertUsers UNAVAILABLE after applying
	// them (the broker's answer was lost).
	lose int

	mu    sync.Mutex
	users map[string]string // name -> password
	calls int
}

func (b *fakeUserBroker) Metadata(context.Context, *skiffpb.MetadataRequest) (*skiffpb.MetadataResponse, error) {
	return &skiffpb.MetadataResponse{}, nil
}

func (b *fakeUserBroker) UpsertUser(_ context.Context, req *skiffpb.UpsertUserRequest) (*skiffpb.UpsertUserResponse, error) {
	b.mu.Lock()
	i := b.calls
	b.calls++
	b.mu.Unlock()
	time.Sleep(b.hash[min(i, len(b.hash)-1)])
	b.mu.Lock()
	defer b.mu.Unlock()
	_, exists := b.users[req.Name]
	switch {
	case req.Mode == skiffpb.UpsertUserMode_UPSERT_USER_MODE_CREATE && exists:
		return nil, skiffStatus(codes.AlreadyExists, reasonUserExists, "user "+req.Name+" already exists")
	case req.Mode == skiffpb.UpsertUserMode_UPSERT_USER_MODE_UPDATE && !exists:
		return nil, skiffStatus(codes.NotFound, reasonUnknownUser, "unknown user "+req.Name)
	}
	b.users[req.Name] = req.Password
	if i < b.lose {
		return nil, status.Error(codes.Unavailable, "connection reset")
	}
	return &skiffpb.UpsertUserResponse{}, nil
}

func skiffStatus(code codes.Code, reason, msg string) error {
	st, err := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "skiff"})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// serveAdmin serves b's Admin service on a loopback port until the test ends.
func serveAdmin(t *testing.T, b skiffpb.AdminServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	skiffpb.RegisterAdminServer(srv, b)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// TestUserWritesAreNotRepeatedBlindly: a user create whose broker takes
// longer than a per-try timeout (the hash, on a loaded machine) is one
// attempt that succeeds, not a timed-out attempt that is applied anyway
// and a repeat refused with "user already exists"; a create whose answer
// was lost and whose repeat finds the user says the outcome is unknown;
// a password change, which is safe to repeat, is repeated.
func TestUserWritesAreNotRepeatedBlindly(t *testing.T) {
	const requestTimeout = 2 * time.Second // attempts of anyBroker: 1s
	cases := []struct {
		name     string
		broker   *fakeUserBroker
		write    func(c *Client, ctx context.Context) error
		wantErr  []error // all of them, or none
		calls    int     // UpsertUser calls the broker saw
		password string  // alice's in the end
	}{
		// Repeated after a per-try timeout of 1s, it would find the user the
		// first attempt created meanwhile: "user already exists".
		{name: "a slow create is one attempt",
			broker: &fakeUserBroker{hash: []time.Duration{1200 * time.Millisecond, 400 * time.Millisecond}, users: map[string]string{}},
			write:  func(c *Client, ctx context.Context) error { return c.CreateUser(ctx, "alice", "alice-password") },
			calls:  1, password: "alice-password"},
		{name: "a create whose answer was lost is indeterminate",
			broker:  &fakeUserBroker{hash: []time.Duration{0}, lose: 1, users: map[string]string{}},
			write:   func(c *Client, ctx context.Context) error { return c.CreateUser(ctx, "alice", "alice-password") },
			wantErr: []error{ErrIndeterminate, ErrUserExists},
			calls:   2, password: "alice-password"},
		{name: "someone else's user exists",
			broker:  &fakeUserBroker{hash: []time.Duration{0}, users: map[string]string{"alice": "other-password"}},
			write:   func(c *Client, ctx context.Context) error { return c.CreateUser(ctx, "alice", "alice-password") },
			wantErr: []error{ErrUserExists},
			calls:   1, password: "other-password"},
		{name: "a password change whose answer was lost is repeated",
			broker: &fakeUserBroker{hash: []time.Duration{0}, lose: 1, users: map[string]string{"alice": "old-password"}},
			write:  func(c *Client, ctx context.Context) error { return c.SetUserPassword(ctx, "alice", "alice-password") },
			calls:  2, password: "alice-password"},
		{name: "a slow password change is one attempt",
			broker: &fakeUserBroker{hash: []time.Duration{1200 * time.Millisecond, 100 * time.Millisecond}, users: map[string]string{"alice": "old-password"}},
			write:  func(c *Client, ctx context.Context) error { return c.SetUserPassword(ctx, "alice", "alice-password") },
			calls:  1, password: "alice-password"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := New(ctx, Config{Brokers: []string{serveAdmin(t, tc.broker)}, RequestTimeout: requestTimeout})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = tc.write(c, ctx)
			if len(tc.wantErr) == 0 && err != nil {
				t.Fatalf("got %v, want success", err)
			}
			if len(tc.wantErr) > 0 && err == nil {
				t.Fatalf("succeeded, want %v", tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("got %v, want %v", err, want)
				}
			}
			if !slices.Contains(tc.wantErr, ErrIndeterminate) && errors.Is(err, ErrIndeterminate) {
				t.Errorf("got %v: the outcome was known", err)
			}
			tc.broker.mu.Lock()
			defer tc.broker.mu.Unlock()
			if tc.broker.calls != tc.calls {
				t.Errorf("%d UpsertUser calls, want %d", tc.broker.calls, tc.calls)
			}
			if got := tc.broker.users["alice"]; got != tc.password {
				t.Errorf("alice's password is %q, want %q", got, tc.password)
			}
		})
	}
}
