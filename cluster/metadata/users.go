package metadata

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
)

// Sentinels of the user commands (the rpc layer maps them to NOT_FOUND and
// ALREADY_EXISTS).
var (
	ErrUnknownUser = errors.New("unknown user")
	ErrUserExists  = errors.New("user already exists")
)

var userNameRE = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

// ValidateUserName checks a user name: 1 to 64 of A-Z a-z 0-9 . _ @ -.
// (No ':' so that "User:<name>" parses back unambiguously.)
func ValidateUserName(name string) error {
	if !userNameRE.MatchString(name) {
		return invalid("name", "%q: a user name is 1 to 64 characters of A-Z a-z 0-9 . _ @ -", name)
	}
	return nil
}

// UpsertUser creates a user or replaces its credential. The credential is
// a hash computed by the node that received the password (NewCredential).
// With Create set it fails with ErrUserExists if the user exists; with
// Update set, with ErrUnknownUser if it does not: the FSM decides, so two
// racing creates cannot both succeed.
type UpsertUser struct {
	Name       string         `json:"name"`
	Credential UserCredential `json:"credential"`
	Create     bool           `json:"create,omitempty"`
	Update     bool           `json:"update,omitempty"`
}

// DeleteUser removes a user. Fails with ErrUnknownUser.
type DeleteUser struct {
	Name string `json:"name"`
}

func (UpsertUser) Type() CommandType { return TypeUpsertUser }
func (DeleteUser) Type() CommandType { return TypeDeleteUser }

func (c UpsertUser) apply(s *State, _ uint64, _ *Result) error {
	if err := ValidateUserName(c.Name); err != nil {
		return err
	}
	if c.Create && c.Update {
		return invalid("create", "create and update are exclusive")
	}
	if err := c.Credential.validate(); err != nil {
		return err
	}
	_, exists := s.Users[c.Name]
	if c.Create && exists {
		return fmt.Errorf("%w: %q", ErrUserExists, c.Name)
	}
	if c.Update && !exists {
		return fmt.Errorf("%w: %q", ErrUnknownUser, c.Name)
	}
	s.Users[c.Name] = c.Credential
	return nil
}

func (c DeleteUser) apply(s *State, _ uint64, _ *Result) error {
	if err := ValidateUserName(c.Name); err != nil {
		return err
	}
	if _, ok := s.Users[c.Name]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownUser, c.Name)
	}
	delete(s.Users, c.Name)
	return nil
}

// UserNames returns the names of all users, sorted.
func (s *State) UserNames() []string {
	return slices.Sorted(maps.Keys(s.Users))
}

// User returns a user's credential.
func (s *State) User(name string) (UserCredential, bool) {
	c, ok := s.Users[name]
	return c, ok
}

func (s *State) validateUsers() error {
	for _, name := range s.UserNames() {
		if err := ValidateUserName(name); err != nil {
			return fmt.Errorf("metadata state: user: %w", err)
		}
		if err := s.Users[name].validate(); err != nil {
			return fmt.Errorf("metadata state: user %q: %w", name, err)
		}
	}
	return nil
}
