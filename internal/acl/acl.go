// Package acl decides who may do what, with Kafka's model so that
// operators feel at home: a binding allows or denies one principal (or
// every user, User:*) from one host (or *) an operation on a resource
// (a topic, a group or the cluster) named literally or by prefix. Deny
// wins over allow; no matching binding means deny. The package is a pure
// function of the bindings it is given: the metadata group stores them,
// every node decides locally.
package acl

import (
	"errors"
	"fmt"
	"strings"
)

// ResourceType is what a binding protects.
type ResourceType string

const (
	Topic   ResourceType = "topic"
	Group   ResourceType = "group"
	Cluster ResourceType = "cluster"
)

// ClusterName is the one name a cluster resource has.
const ClusterName = "skiff-cluster"

// PatternType says how a binding's name matches resource names.
type PatternType string

const (
	Literal  PatternType = "literal"  // the name itself, or "*" for every name
	Prefixed PatternType = "prefixed" // every name that starts with it
)

// Operation is what a principal does to a resource.
type Operation string

const (
	Read     Operation = "read"
	Write    Operation = "write"
	Create   Operation = "create"
	Delete   Operation = "delete"
	Alter    Operation = "alter"
	Describe Operation = "describe"
	All      Operation = "all"
)

// Operations lists every operation a binding may name.
var Operations = []Operation{Read, Write, Create, Delete, Alter, Describe, All}

// Permission is allow or deny.
type Permission string

const (
	Allow Permission = "allow"
	Deny  Permission = "deny"
)

// AnyUser is the principal that matches every principal.
const AnyUser = "User:*"

// AnyHost matches every client address.
const AnyHost = "*"

// Resource is one thing a request touches.
type Resource struct {
	Type ResourceType
	Name string
}

func (r Resource) String() string { return fmt.Sprintf("%s %q", r.Type, r.Name) }

// Binding is one ACL entry.
type Binding struct {
	Principal  string       `json:"principal"`
	Host       string       `json:"host"`
	Type       ResourceType `json:"resource_type"`
	Pattern    PatternType  `json:"pattern"`
	Name       string       `json:"name"`
	Operation  Operation    `json:"operation"`
	Permission Permission   `json:"permission"`
}

// Validate reports what is wrong with b, naming the field.
func (b Binding) Validate() error {
	var errs []error
	kind, name, ok := strings.Cut(b.Principal, ":")
	if !ok || name == "" || (kind != "User" && kind != "Node") {
		errs = append(errs, fmt.Errorf("principal %q: want User:<name>, Node:<id> or User:*", b.Principal))
	}
	if b.Host == "" {
		errs = append(errs, errors.New("host: want an IP address or *"))
	}
	switch b.Type {
	case Topic, Group:
		if b.Name == "" {
			errs = append(errs, fmt.Errorf("name: a %s binding needs a name (or * for all)", b.Type))
		}
	case Cluster:
		if b.Name != ClusterName {
			errs = append(errs, fmt.Errorf("name %q: a cluster binding names %q", b.Name, ClusterName))
		}
	default:
		errs = append(errs, fmt.Errorf("resource type %q: want topic, group or cluster", b.Type))
	}
	switch b.Pattern {
	case Literal:
	case Prefixed:
		if b.Name == "*" {
			errs = append(errs, errors.New(`pattern: "*" is a literal name; a prefixed binding names a prefix`))
		}
	default:
		errs = append(errs, fmt.Errorf("pattern %q: want literal or prefixed", b.Pattern))
	}
	if !validOperation(b.Operation) {
		errs = append(errs, fmt.Errorf("operation %q: want one of %v", b.Operation, Operations))
	}
	if b.Permission != Allow && b.Permission != Deny {
		errs = append(errs, fmt.Errorf("permission %q: want allow or deny", b.Permission))
	}
	return errors.Join(errs...)
}

func validOperation(op Operation) bool {
	for _, o := range Operations {
		if o == op {
			return true
		}
	}
	return false
}

// Request is one authorization question.
type Request struct {
	Principal string
	Host      string
	Resource  Resource
	Operation Operation
}

// Decision is an answer with the binding that decided it (none for a
// default deny).
type Decision struct {
	Allowed bool
	By      *Binding
}

// Authorize answers req from bindings: any matching deny refuses; else any
// matching allow permits; else refuse. As in Kafka, read, write, delete and
// alter each imply describe, and all implies everything.
func Authorize(bindings []Binding, req Request) Decision {
	var allow *Binding
	for i := range bindings {
		b := &bindings[i]
		if !b.matches(req) {
			continue
		}
		if b.Permission == Deny {
			return Decision{Allowed: false, By: b}
		}
		if allow == nil {
			allow = b
		}
	}
	return Decision{Allowed: allow != nil, By: allow}
}

func (b *Binding) matches(req Request) bool {
	if b.Principal != req.Principal && !(b.Principal == AnyUser && strings.HasPrefix(req.Principal, "User:")) {
		return false
	}
	if b.Host != AnyHost && b.Host != req.Host {
		return false
	}
	if b.Type != req.Resource.Type {
		return false
	}
	switch b.Pattern {
	case Literal:
		if b.Name != "*" && b.Name != req.Resource.Name {
			return false
		}
	case Prefixed:
		if !strings.HasPrefix(req.Resource.Name, b.Name) {
			return false
		}
	default:
		return false
	}
	return implies(b.Operation, req.Operation, b.Permission)
}

// implies reports whether a binding for op covers want. A deny of
// describe must not be widened to deny reads, and an allow of describe
// must not permit reads, so the implication runs one way only: an allow of
// read/write/delete/alter covers describe.
func implies(op, want Operation, perm Permission) bool {
	if op == want || op == All {
		return true
	}
	if perm == Allow && want == Describe {
		switch op {
		case Read, Write, Delete, Alter:
			return true
		}
	}
	return false
}
