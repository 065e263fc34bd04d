package rpc

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/skiff-mq/skiff/internal/acl"
	pb "github.com/skiff-mq/skiff/rpc/skiffpb"
)

// aclStore is what the ACL admin calls need beyond Node; *cluster.Node has
// it.
type aclStore interface {
	CreateACLs(ctx context.Context, bindings []acl.Binding) (int64, error)
	DeleteACLs(ctx context.Context, bindings []acl.Binding) (int64, error)
}

// bindingFromProto fills the defaults (host *, literal, allow) and
// validates; field names the request field in errors.
func bindingFromProto(field string, b *pb.AclBinding) (acl.Binding, error) {
	out := acl.Binding{
		Principal: b.GetPrincipal(), Host: b.GetHost(), Type: acl.ResourceType(b.GetResourceType()),
		Pattern: acl.PatternType(b.GetPattern()), Name: b.GetName(), Operation: acl.Operation(b.GetOperation()),
		Permission: acl.Permission(b.GetPermission()),
	}
	if out.Host == "" {
		out.Host = acl.AnyHost
	}
	if out.Pattern == "" {
		out.Pattern = acl.Literal
	}
	if out.Permission == "" {
		out.Permission = acl.Allow
	}
	if out.Type == acl.Cluster && out.Name == "" {
		out.Name = acl.ClusterName
	}
	if err := out.Validate(); err != nil {
		return acl.Binding{}, invalid(field, "%v", err)
	}
	return out, nil
}

func bindingToProto(b acl.Binding) *pb.AclBinding {
	return &pb.AclBinding{Principal: b.Principal, Host: b.Host, ResourceType: string(b.Type), Pattern: string(b.Pattern),
		Name: b.Name, Operation: string(b.Operation), Permission: string(b.Permission)}
}

func bindingsFromProto(bs []*pb.AclBinding) ([]acl.Binding, error) {
	if len(bs) == 0 {
		return nil, invalid("bindings", "no binding given")
	}
	out := make([]acl.Binding, 0, len(bs))
	for i, b := range bs {
		ab, err := bindingFromProto(fmt.Sprintf("bindings[%d]", i), b)
		if err != nil {
			return nil, err
		}
		out = append(out, ab)
	}
	return out, nil
}

func (a *adminService) aclStore() (aclStore, error) {
	st, ok := a.s.node.(aclStore)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this server does not manage ACLs")
	}
	return st, nil
}

// changeACLs validates bindings and applies them with op (the store's
// CreateACLs or DeleteACLs), returning how many changed.
func (a *adminService) changeACLs(ctx context.Context, bindings []*pb.AclBinding, op func(aclStore, context.Context, []acl.Binding) (int64, error)) (int64, error) {
	st, err := a.aclStore()
	if err != nil {
		return 0, err
	}
	bs, err := bindingsFromProto(bindings)
	if err != nil {
		return 0, err
	}
	return op(st, ctx, bs)
}

// CreateACLs adds bindings; existing ones are kept once.
func (a *adminService) CreateACLs(ctx context.Context, req *pb.CreateACLsRequest) (*pb.CreateACLsResponse, error) {
	n, err := a.changeACLs(ctx, req.Bindings, aclStore.CreateACLs)
	if err != nil {
		return nil, err
	}
	return &pb.CreateACLsResponse{Created: n}, nil
}

// DeleteACLs removes bindings equal to the ones given.
func (a *adminService) DeleteACLs(ctx context.Context, req *pb.DeleteACLsRequest) (*pb.DeleteACLsResponse, error) {
	n, err := a.changeACLs(ctx, req.Bindings, aclStore.DeleteACLs)
	if err != nil {
		return nil, err
	}
	return &pb.DeleteACLsResponse{Deleted: n}, nil
}

// ListACLs lists the bindings matching the filter, from this node's
// metadata.
func (a *adminService) ListACLs(ctx context.Context, req *pb.ListACLsRequest) (*pb.ListACLsResponse, error) {
	resp := &pb.ListACLsResponse{}
	for _, b := range a.s.node.Metadata().ACLs {
		if req.Principal != "" && b.Principal != req.Principal ||
			req.ResourceType != "" && string(b.Type) != req.ResourceType ||
			req.Name != "" && b.Name != req.Name {
			continue
		}
		resp.Bindings = append(resp.Bindings, bindingToProto(b))
	}
	return resp, nil
}
