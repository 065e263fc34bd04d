package client

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// passwordCreds sends Config.User and Config.Password with every call as
// "authorization: Basic base64(user:password)" (what the broker's --auth
// reads). RequireTransportSecurity makes gRPC itself refuse to send them
// on a plaintext connection, behind Config.Validate's check.
type passwordCreds struct{ user, password string }

var _ credentials.PerRPCCredentials = passwordCreds{}

func (p passwordCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(p.user+":"+p.password))}, nil
}

func (passwordCreds) RequireTransportSecurity() bool { return true }

// UserInfo describes a user; hashes never leave the cluster.
type UserInfo struct {
	Name string
	// Mechanism is how the password is hashed ("argon2id").
	Mechanism string
}

// CreateUser creates a user with a password (8 to 1024 bytes). An existing
// user is ErrUserExists. With --auth, only super users may manage users
// (ErrPermissionDenied).
//
// The broker hashes the password, which may take seconds, so the call is
// not cut short and repeated on another broker after a per-try timeout: a
// repeat of a create that was applied would fail. When a broker became
// unavailable during an attempt and the next one finds the user, that
// attempt may have created it, or someone else may have: the error is then
// both ErrIndeterminate and ErrUserExists, and SetUserPassword makes sure
// of the password.
func (c *Client) CreateUser(ctx context.Context, name, password string) error {
	uncertain, err := c.upsertUser(ctx, name, password, skiffpb.UpsertUserMode_UPSERT_USER_MODE_CREATE)
	switch {
	case err == nil:
		return nil
	case uncertain && errors.Is(err, ErrUserExists):
		return fmt.Errorf("create user %q: %w: an earlier attempt was cut off by an unavailable broker and may have created it; whether it has this password is unknown (set it with SetUserPassword, skiff user passwd): %w",
			name, ErrIndeterminate, err)
	}
	return fmt.Errorf("create user %q: %w", name, err)
}

// SetUserPassword changes an existing user's password (ErrUnknownUser if
// there is none). Clients authenticated with the old password are refused
// from the next call on each node that has applied the change. Setting a
// password twice is setting it once, so an attempt cut off by an
// unavailable broker is repeated on another.
func (c *Client) SetUserPassword(ctx context.Context, name, password string) error {
	if _, err := c.upsertUser(ctx, name, password, skiffpb.UpsertUserMode_UPSERT_USER_MODE_UPDATE); err != nil {
		return fmt.Errorf("set password of user %q: %w", name, err)
	}
	return nil
}

// upsertUser sends one UpsertUser through anyBrokerOnce: each attempt has
// the whole request deadline, since the broker's hashing may take seconds
// (and far longer on a loaded machine) and a timed-out attempt may still
// be applied.
func (c *Client) upsertUser(ctx context.Context, name, password string, mode skiffpb.UpsertUserMode) (uncertain bool, err error) {
	return c.anyBrokerOnce(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := skiffpb.NewAdminClient(cc).UpsertUser(ctx, &skiffpb.UpsertUserRequest{Name: name, Password: password, Mode: mode})
		return err
	})
}

// DeleteUser deletes a user (ErrUnknownUser if there is none).
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := skiffpb.NewAdminClient(cc).DeleteUser(ctx, &skiffpb.DeleteUserRequest{Name: name})
		return err
	})
	if err != nil {
		return fmt.Errorf("delete user %q: %w", name, err)
	}
	return nil
}

// ListUsers lists the users, sorted by name.
func (c *Client) ListUsers(ctx context.Context) ([]UserInfo, error) {
	var resp *skiffpb.ListUsersResponse
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewAdminClient(cc).ListUsers(ctx, &skiffpb.ListUsersRequest{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	users := make([]UserInfo, 0, len(resp.GetUsers()))
	for _, u := range resp.GetUsers() {
		users = append(users, UserInfo{Name: u.GetName(), Mechanism: u.GetMechanism()})
	}
	return users, nil
}
