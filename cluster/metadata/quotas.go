package metadata

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ErrUnknownQuota is DeleteQuota's error for a principal without a quota
// (the rpc layer maps it to NOT_FOUND).
var ErrUnknownQuota = errors.New("no quota for that principal")

// DefaultQuotaPrincipal holds the quota of every user without its own, as
// in Kafka.
const DefaultQuotaPrincipal = "User:*"

// MaxQuotas bounds the quotas a cluster holds (every node keeps them all in
// memory).
const MaxQuotas = 10000

// MaxQuotaRate bounds each rate of a quota (1 TiB/s or 2^40 requests/s):
// far beyond any node, small enough that a token bucket's arithmetic
// cannot overflow.
const MaxQuotaRate = 1 << 40

// Quota is the rates one principal may use on each node. Zero means no
// limit of that kind. A principal's own quota replaces the User:* default
// as a whole, so a quota of all zeros exempts a user from the default.
type Quota struct {
	ProduceBytesPerSec int64 `json:"produce_bytes_per_sec,omitempty"`
	FetchBytesPerSec   int64 `json:"fetch_bytes_per_sec,omitempty"`
	RequestsPerSec     int64 `json:"requests_per_sec,omitempty"`
}

func (q Quota) validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{{"produce_bytes_per_sec", q.ProduceBytesPerSec}, {"fetch_bytes_per_sec", q.FetchBytesPerSec}, {"requests_per_sec", q.RequestsPerSec}} {
		if f.v < 0 || f.v > MaxQuotaRate {
			return invalid(f.name, "%d: want 0 (no limit) to %d", f.v, int64(MaxQuotaRate))
		}
	}
	return nil
}

// ValidateQuotaPrincipal checks a quota's principal: User:<name> or User:*
// (the default for users without their own quota).
func ValidateQuotaPrincipal(p string) error {
	name, ok := strings.CutPrefix(p, "User:")
	if !ok {
		return invalid("principal", "%q: want User:<name> or User:* (the default)", p)
	}
	if name == "*" {
		return nil
	}
	if err := ValidateUserName(name); err != nil {
		return invalid("principal", "%q: want User:<name> or User:* (the default): %v", p, err)
	}
	return nil
}

// SetQuota sets (creates or replaces) a principal's quota.
type SetQuota struct {
	Principal string `json:"principal"`
	Quota     Quota  `json:"quota"`
}

// DeleteQuota removes a principal's quota; the principal falls back to the
// User:* default, or to no limit. Fails with ErrUnknownQuota.
type DeleteQuota struct {
	Principal string `json:"principal"`
}

func (SetQuota) Type() CommandType    { return TypeSetQuota }
func (DeleteQuota) Type() CommandType { return TypeDeleteQuota }

func (c SetQuota) apply(s *State, _ uint64, _ *Result) error {
	if err := ValidateQuotaPrincipal(c.Principal); err != nil {
		return err
	}
	if err := c.Quota.validate(); err != nil {
		return err
	}
	if _, exists := s.Quotas[c.Principal]; !exists && len(s.Quotas) >= MaxQuotas {
		return invalid("principal", "the cluster already holds %d quotas, its limit: delete some first", MaxQuotas)
	}
	s.Quotas[c.Principal] = c.Quota
	return nil
}

func (c DeleteQuota) apply(s *State, _ uint64, _ *Result) error {
	if err := ValidateQuotaPrincipal(c.Principal); err != nil {
		return err
	}
	if _, ok := s.Quotas[c.Principal]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownQuota, c.Principal)
	}
	delete(s.Quotas, c.Principal)
	return nil
}

// QuotaFor returns the quota that applies to principal: its own, else the
// User:* default for a user, else none (ok false: no limit).
func (s *State) QuotaFor(principal string) (q Quota, ok bool) {
	if q, ok := s.Quotas[principal]; ok {
		return q, true
	}
	if strings.HasPrefix(principal, "User:") {
		q, ok := s.Quotas[DefaultQuotaPrincipal]
		return q, ok
	}
	return Quota{}, false
}

// QuotaPrincipals returns the principals with a quota, sorted.
func (s *State) QuotaPrincipals() []string {
	return slices.Sorted(maps.Keys(s.Quotas))
}

func (s *State) validateQuotas() error {
	if len(s.Quotas) > MaxQuotas {
		return fmt.Errorf("metadata state: %d quotas, more than %d", len(s.Quotas), MaxQuotas)
	}
	for _, p := range s.QuotaPrincipals() {
		if err := ValidateQuotaPrincipal(p); err != nil {
			return fmt.Errorf("metadata state: quota: %w", err)
		}
		if err := s.Quotas[p].validate(); err != nil {
			return fmt.Errorf("metadata state: quota of %q: %w", p, err)
		}
	}
	return nil
}
