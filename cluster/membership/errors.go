package membership

import (
	"errors"
)

var (
	// ErrClosed is returned by methods called after Leave or Shutdown.
	ErrClosed = errors.New("membership: closed")

	// ErrMetaTooLarge means the encoded Meta would exceed memberlist's
	// 512-byte node meta limit (memberlist panics rather than truncating, so
	// the limit is checked before anything is advertised).
	ErrMetaTooLarge = errors.New("encoded meta exceeds the 512-byte gossip limit")
)

// FieldError reports an invalid configuration or Meta field. Field names the
// field the way a user writes it in Go ("Meta.ID", "BindAddr", "Join[1]").
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return "membership: " + e.Field + ": " + e.Err.Error() }

// Unwrap lets callers test the cause, e.g. errors.Is(err, ErrMetaTooLarge).
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field string, err error) error { return &FieldError{Field: field, Err: err} }
