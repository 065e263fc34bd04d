package rpc

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/internal/acl"
)

// authorizer enforces the ACLs in the metadata on every call, through the
// one table of access rules (acl_rules.go), when authentication is on. It
// runs after the authenticator, which put the principal in the context.
type authorizer struct {
	enabled bool
	rules   map[string]accessRule
	state   func() *metadata.State
}

func newAuthorizer(enabled bool, state func() *metadata.State) *authorizer {
	return &authorizer{enabled: enabled, rules: accessRules(), state: state}
}

func (z *authorizer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := z.check(ctx, info.FullMethod, req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// stream checks every message the client sends: a server stream's one
// request arrives through RecvMsg like a client stream's many.
func (z *authorizer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !z.enabled || exempt(info.FullMethod) {
		return handler(srv, ss)
	}
	if _, ok := z.rules[info.FullMethod]; !ok {
		return z.check(ss.Context(), info.FullMethod, nil)
	}
	return handler(srv, &authorizedStream{ServerStream: ss, z: z, method: info.FullMethod})
}

type authorizedStream struct {
	grpc.ServerStream
	z      *authorizer
	method string
}

func (s *authorizedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.z.check(s.Context(), s.method, m)
}

// check answers whether the call's principal may make req: super users
// may do anything; everyone else needs, for each check of the method's
// rule, an allowing binding for every resource the request names. The
// error names the principal, the operation and the resource the request
// itself named, never other resources.
func (z *authorizer) check(ctx context.Context, method string, req any) error {
	if !z.enabled || exempt(method) {
		return nil
	}
	p, _ := PrincipalFrom(ctx)
	rule, ok := z.rules[method]
	if !ok {
		// Fail closed: a method without a rule is a bug, not an opening.
		return &permissionError{Principal: p, Operation: "call " + method, Why: "the method has no access rule"}
	}
	if p.Super {
		return nil
	}
	bindings := z.state().ACLs
	host := clientHost(ctx)
	for _, c := range rule.checks {
		for _, name := range c.names(req) {
			d := acl.Authorize(bindings, acl.Request{Principal: p.String(), Host: host, Resource: acl.Resource{Type: c.res, Name: name}, Operation: c.op})
			if !d.Allowed {
				why := "no ACL allows it (skiff acl add)"
				if d.By != nil {
					why = "an ACL denies it"
				}
				return &permissionError{Principal: p, Operation: fmt.Sprintf("%s %s %q", c.op, c.res, name), Why: why}
			}
		}
	}
	return nil
}

// mayDescribe says whether the call's principal may see a resource in a
// filtered listing (Metadata, ListTopics, ListGroups).
func (z *authorizer) mayDescribe(ctx context.Context, typ acl.ResourceType, name string) bool {
	if !z.enabled {
		return true
	}
	p, _ := PrincipalFrom(ctx)
	if p.Super {
		return true
	}
	return acl.Authorize(z.state().ACLs, acl.Request{Principal: p.String(), Host: clientHost(ctx), Resource: acl.Resource{Type: typ, Name: name}, Operation: acl.Describe}).Allowed
}

// filterNames keeps the names of typ the principal may describe; one
// metadata snapshot serves the whole list.
func (z *authorizer) filterNames(ctx context.Context, typ acl.ResourceType, names []string) []string {
	if !z.enabled {
		return names
	}
	p, _ := PrincipalFrom(ctx)
	if p.Super {
		return names
	}
	bindings, host := z.state().ACLs, clientHost(ctx)
	out := names[:0:0]
	for _, n := range names {
		if acl.Authorize(bindings, acl.Request{Principal: p.String(), Host: host, Resource: acl.Resource{Type: typ, Name: n}, Operation: acl.Describe}).Allowed {
			out = append(out, n)
		}
	}
	return out
}

// topicReader is the filter of topics a pattern subscription of the call's
// principal may resolve to: those it may read. Explicitly named topics are
// checked by the method's rule; a pattern names none, so without this a
// subscription such as "#" would deliver (share groups) or assign
// (consumer groups) topics the principal may not read. nil means every
// topic: authorization is off or the principal is a super user. The
// filter decides with the bindings of the moment it is made (each request
// makes its own), so revoking an ACL takes effect on the next request.
func (z *authorizer) topicReader(ctx context.Context) func(topic string) bool {
	if !z.enabled {
		return nil
	}
	p, _ := PrincipalFrom(ctx)
	if p.Super {
		return nil
	}
	bindings, host, principal := z.state().ACLs, clientHost(ctx), p.String()
	return func(topic string) bool {
		return acl.Authorize(bindings, acl.Request{Principal: principal, Host: host, Resource: acl.Resource{Type: acl.Topic, Name: topic}, Operation: acl.Read}).Allowed
	}
}

// topicDescriber says which topics the call's principal may see in an
// answer about something else (a group's members, offsets and lag): those
// it may describe. One snapshot of the bindings serves the whole answer;
// never nil.
func (z *authorizer) topicDescriber(ctx context.Context) func(topic string) bool {
	p, _ := PrincipalFrom(ctx)
	if !z.enabled || p.Super {
		return func(string) bool { return true }
	}
	bindings, host, principal := z.state().ACLs, clientHost(ctx), p.String()
	seen := map[string]bool{}
	return func(topic string) bool {
		ok, known := seen[topic]
		if !known {
			ok = acl.Authorize(bindings, acl.Request{Principal: principal, Host: host, Resource: acl.Resource{Type: acl.Topic, Name: topic}, Operation: acl.Describe}).Allowed
			seen[topic] = ok
		}
		return ok
	}
}

// clientHost is the call's client IP, for host-scoped bindings.
func clientHost(ctx context.Context) string {
	pr, ok := peer.FromContext(ctx)
	if !ok || pr.Addr == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(pr.Addr.String())
	if err != nil {
		return pr.Addr.String()
	}
	return host
}
