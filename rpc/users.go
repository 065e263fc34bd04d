package rpc

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// userManager is what the user RPCs need from the node. It is asserted at
// call time rather than added to Node so test fakes need not implement it;
// *cluster.Node does.
type userManager interface {
	UpsertUser(ctx context.Context, cmd metadata.UpsertUser) error
	DeleteUser(ctx context.Context, name string) error
}

var _ userManager = (*cluster.Node)(nil)

func (a *adminService) users() (userManager, error) {
	m, ok := a.s.node.(userManager)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this server does not manage users")
	}
	return m, nil
}

// UpsertUser hashes the password here, so that only the hash travels to
// the meta leader and into the Raft log.
func (a *adminService) UpsertUser(ctx context.Context, req *skiffpb.UpsertUserRequest) (*skiffpb.UpsertUserResponse, error) {
	op := map[skiffpb.UpsertUserMode]string{
		skiffpb.UpsertUserMode_UPSERT_USER_MODE_ANY:    "set users' passwords",
		skiffpb.UpsertUserMode_UPSERT_USER_MODE_CREATE: "create users",
		skiffpb.UpsertUserMode_UPSERT_USER_MODE_UPDATE: "change users' passwords",
	}[req.Mode]
	if op == "" {
		return nil, invalid("mode", "%v is not ANY, CREATE or UPDATE", req.Mode)
	}
	m, err := a.users()
	if err != nil {
		return nil, err
	}
	if err := metadata.ValidateUserName(req.Name); err != nil {
		return nil, err
	}
	if err := metadata.ValidatePassword(req.Password); err != nil {
		return nil, err
	}
	if err := a.s.auth.acquireHash(ctx); err != nil {
		return nil, err
	}
	cred, err := metadata.NewCredential(req.Password, a.s.auth.cfg.PasswordHash)
	a.s.auth.releaseHash()
	if err != nil {
		return nil, err
	}
	cmd := metadata.UpsertUser{Name: req.Name, Credential: cred,
		Create: req.Mode == skiffpb.UpsertUserMode_UPSERT_USER_MODE_CREATE,
		Update: req.Mode == skiffpb.UpsertUserMode_UPSERT_USER_MODE_UPDATE}
	if err := m.UpsertUser(ctx, cmd); err != nil {
		return nil, err
	}
	return &skiffpb.UpsertUserResponse{}, nil
}

// DeleteUser removes a user.
func (a *adminService) DeleteUser(ctx context.Context, req *skiffpb.DeleteUserRequest) (*skiffpb.DeleteUserResponse, error) {
	m, err := a.users()
	if err != nil {
		return nil, err
	}
	if err := metadata.ValidateUserName(req.Name); err != nil {
		return nil, err
	}
	if err := m.DeleteUser(ctx, req.Name); err != nil {
		return nil, err
	}
	return &skiffpb.DeleteUserResponse{}, nil
}

// ListUsers lists names and mechanisms from this node's metadata; hashes
// never leave the node.
func (a *adminService) ListUsers(ctx context.Context, _ *skiffpb.ListUsersRequest) (*skiffpb.ListUsersResponse, error) {
	st := a.s.node.Metadata()
	resp := &skiffpb.ListUsersResponse{}
	for _, name := range st.UserNames() {
		resp.Users = append(resp.Users, &skiffpb.UserInfo{Name: name, Mechanism: st.Users[name].Mechanism})
	}
	return resp, nil
}
