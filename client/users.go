package client

import (
	"context"
	"encoding/base64"
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
func (c *Client) CreateUser(ctx context.Context, name, password string) error {
	return c.upsertUser(ctx, "create user", name, password, skiffpb.UpsertUserMode_UPSERT_USER_MODE_CREATE)
}

// SetUserPassword changes an existing user's password (ErrUnknownUser if
// there is none). Clients authenticated with the old password are refused
// from the next call on each node that has applied the change.
func (c *Client) SetUserPassword(ctx context.Context, name, password string) error {
	return c.upsertUser(ctx, "set password of user", name, password, skiffpb.UpsertUserMode_UPSERT_USER_MODE_UPDATE)
}

func (c *Client) upsertUser(ctx context.Context, what, name, password string, mode skiffpb.UpsertUserMode) error {
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := skiffpb.NewAdminClient(cc).UpsertUser(ctx, &skiffpb.UpsertUserRequest{Name: name, Password: password, Mode: mode})
		return err
	})
	if err != nil {
		return fmt.Errorf("%s %q: %w", what, name, err)
	}
	return nil
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
