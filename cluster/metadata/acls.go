package metadata

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/skiff-mq/skiff/internal/acl"
)

// MaxACLs bounds the bindings a cluster holds: every node keeps them all
// in memory and scans them per request.
const MaxACLs = 10000

// CreateACLs adds bindings (1..1000 per command); ones already present are
// kept once. Result.Count says how many were new.
type CreateACLs struct {
	Bindings []acl.Binding `json:"bindings"`
}

// DeleteACLs removes bindings equal to any given; Result.Count says how many
// were removed (none is not an error, as in Kafka).
type DeleteACLs struct {
	Bindings []acl.Binding `json:"bindings"`
}

func (CreateACLs) Type() CommandType { return TypeCreateACLs }
func (DeleteACLs) Type() CommandType { return TypeDeleteACLs }

func validateBindings(bs []acl.Binding) error {
	if len(bs) == 0 || len(bs) > 1000 {
		return &InvalidArgumentError{Field: "bindings", Reason: fmt.Sprintf("%d bindings: want 1..1000 per request", len(bs))}
	}
	for i, b := range bs {
		if err := b.Validate(); err != nil {
			return &InvalidArgumentError{Field: fmt.Sprintf("bindings[%d]", i), Reason: err.Error()}
		}
	}
	return nil
}

func compareBindings(a, b acl.Binding) int {
	return cmp.Or(cmp.Compare(a.Principal, b.Principal), cmp.Compare(a.Type, b.Type), cmp.Compare(a.Pattern, b.Pattern),
		cmp.Compare(a.Name, b.Name), cmp.Compare(a.Operation, b.Operation), cmp.Compare(a.Permission, b.Permission), cmp.Compare(a.Host, b.Host))
}

func (c CreateACLs) apply(s *State, _ uint64, res *Result) error {
	if err := validateBindings(c.Bindings); err != nil {
		return err
	}
	out := slices.Clone(s.ACLs)
	added := 0
	for _, b := range c.Bindings {
		if _, found := slices.BinarySearchFunc(out, b, compareBindings); found {
			continue
		}
		i, _ := slices.BinarySearchFunc(out, b, compareBindings)
		out = slices.Insert(out, i, b)
		added++
	}
	if len(out) > MaxACLs {
		return &InvalidArgumentError{Field: "bindings", Reason: fmt.Sprintf("%d ACL bindings would exceed the cluster's limit of %d: remove some first", len(out), MaxACLs)}
	}
	s.ACLs = out
	res.Count = int64(added)
	return nil
}

func (c DeleteACLs) apply(s *State, _ uint64, res *Result) error {
	if err := validateBindings(c.Bindings); err != nil {
		return err
	}
	out := slices.Clone(s.ACLs)
	removed := 0
	for _, b := range c.Bindings {
		if i, found := slices.BinarySearchFunc(out, b, compareBindings); found {
			out = slices.Delete(out, i, i+1)
			removed++
		}
	}
	s.ACLs = out
	res.Count = int64(removed)
	return nil
}

// validateACLs checks a replayed snapshot's bindings: valid, sorted, unique.
func validateACLs(bs []acl.Binding) error {
	for i, b := range bs {
		if err := b.Validate(); err != nil {
			return fmt.Errorf("acl %d: %w", i, err)
		}
		if i > 0 && compareBindings(bs[i-1], b) >= 0 {
			return fmt.Errorf("acl %d: bindings not sorted or duplicated", i)
		}
	}
	return nil
}
