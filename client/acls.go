package client

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// ACLBinding is one authorization rule, in Kafka's model: Permission
// ("allow" or "deny") of Operation ("read", "write", "create", "delete",
// "alter", "describe" or "all") on the ResourceType ("topic", "group" or
// "cluster") called Name, matched literally ("literal"; "*" names every
// resource) or as a prefix ("prefixed"), for Principal ("User:<name>" or
// "User:*") connecting from Host (an IP, or "*"). Deny wins; when the
// cluster authenticates clients, no binding means deny. Empty Host,
// Pattern and Permission mean "*", "literal" and "allow".
type ACLBinding struct {
	Principal    string `json:"principal"`
	Host         string `json:"host"`
	ResourceType string `json:"resource_type"`
	Pattern      string `json:"pattern"`
	Name         string `json:"name"`
	Operation    string `json:"operation"`
	Permission   string `json:"permission"`
}

// ACLFilter selects bindings to list; empty fields match anything.
type ACLFilter struct {
	Principal    string
	ResourceType string
	Name         string
}

func (b ACLBinding) proto() *skiffpb.AclBinding {
	return &skiffpb.AclBinding{Principal: b.Principal, Host: b.Host, ResourceType: b.ResourceType, Pattern: b.Pattern,
		Name: b.Name, Operation: b.Operation, Permission: b.Permission}
}

func protoBindings(bs []ACLBinding) []*skiffpb.AclBinding {
	out := make([]*skiffpb.AclBinding, 0, len(bs))
	for _, b := range bs {
		out = append(out, b.proto())
	}
	return out
}

// CreateACLs adds bindings (needs alter on the cluster) and returns how
// many were new.
func (c *Client) CreateACLs(ctx context.Context, bindings ...ACLBinding) (int64, error) {
	var resp *skiffpb.CreateACLsResponse
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewAdminClient(cc).CreateACLs(ctx, &skiffpb.CreateACLsRequest{Bindings: protoBindings(bindings)})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("create ACLs: %w", err)
	}
	return resp.GetCreated(), nil
}

// DeleteACLs removes bindings equal to the ones given and returns how many
// were removed.
func (c *Client) DeleteACLs(ctx context.Context, bindings ...ACLBinding) (int64, error) {
	var resp *skiffpb.DeleteACLsResponse
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewAdminClient(cc).DeleteACLs(ctx, &skiffpb.DeleteACLsRequest{Bindings: protoBindings(bindings)})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete ACLs: %w", err)
	}
	return resp.GetDeleted(), nil
}

// ListACLs returns the bindings matching f.
func (c *Client) ListACLs(ctx context.Context, f ACLFilter) ([]ACLBinding, error) {
	var resp *skiffpb.ListACLsResponse
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewAdminClient(cc).ListACLs(ctx, &skiffpb.ListACLsRequest{Principal: f.Principal, ResourceType: f.ResourceType, Name: f.Name})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list ACLs: %w", err)
	}
	out := make([]ACLBinding, 0, len(resp.GetBindings()))
	for _, b := range resp.GetBindings() {
		out = append(out, ACLBinding{Principal: b.GetPrincipal(), Host: b.GetHost(), ResourceType: b.GetResourceType(),
			Pattern: b.GetPattern(), Name: b.GetName(), Operation: b.GetOperation(), Permission: b.GetPermission()})
	}
	return out, nil
}
