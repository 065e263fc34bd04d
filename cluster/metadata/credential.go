package metadata

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// MechanismArgon2id names the only password hash there is so far. The
// mechanism is stored with each credential so another can be added
// without rewriting old ones.
const MechanismArgon2id = "argon2id"

// Password length bounds. The upper bound keeps one hash cheap to refuse.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 1024
)

// Bounds on stored hash parameters: a credential outside them is refused
// by the FSM and by Restore, so that no entry can make every node spend
// gigabytes (or nothing) verifying a password.
const (
	saltLen          = 16
	hashLen          = 32
	maxArgonTime     = 16
	maxArgonMemoryKB = 1 << 20 // 1 GiB
	minArgonMemoryKB = 8       // argon2's own minimum is 8*threads KiB
	maxArgonThreads  = 64
)

// Argon2Params are the cost parameters of an argon2id hash.
type Argon2Params struct {
	// Time is the number of passes over the memory.
	Time uint32 `json:"time"`
	// MemoryKB is the memory used, in KiB.
	MemoryKB uint32 `json:"memory_kb"`
	// Threads is the parallelism.
	Threads uint8 `json:"threads"`
}

// DefaultArgon2Params are RFC 9106's second recommended choice (t=3,
// m=64 MiB, p=4): about 50-100 ms per hash on a server core, which is paid
// once per user and password on each node and then cached by the rpc
// layer.
func DefaultArgon2Params() Argon2Params {
	return Argon2Params{Time: 3, MemoryKB: 64 << 10, Threads: 4}
}

// Validate checks the parameters against the bounds every node accepts.
func (p Argon2Params) Validate() error {
	switch {
	case p.Time < 1 || p.Time > maxArgonTime:
		return invalid("credential.time", "%d: must be in [1, %d]", p.Time, maxArgonTime)
	case p.Threads < 1 || p.Threads > maxArgonThreads:
		return invalid("credential.threads", "%d: must be in [1, %d]", p.Threads, maxArgonThreads)
	case p.MemoryKB < minArgonMemoryKB*uint32(p.Threads) || p.MemoryKB > maxArgonMemoryKB:
		return invalid("credential.memory_kb", "%d: must be in [%d, %d]", p.MemoryKB, minArgonMemoryKB*uint32(p.Threads), maxArgonMemoryKB)
	}
	return nil
}

// UserCredential is what the metadata keeps of a password: a salted
// argon2id hash and the parameters it was made with. The password itself
// never enters the meta log (the node receiving it hashes it first).
type UserCredential struct {
	Mechanism string `json:"mechanism"`
	Argon2Params
	Salt []byte `json:"salt"`
	Hash []byte `json:"hash"`
}

// NewCredential hashes password with a fresh random salt.
func NewCredential(password string, p Argon2Params) (UserCredential, error) {
	if err := ValidatePassword(password); err != nil {
		return UserCredential{}, err
	}
	if err := p.Validate(); err != nil {
		return UserCredential{}, err
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return UserCredential{}, fmt.Errorf("password salt: %w", err)
	}
	return UserCredential{
		Mechanism:    MechanismArgon2id,
		Argon2Params: p,
		Salt:         salt,
		Hash:         argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKB, p.Threads, hashLen),
	}, nil
}

// Verify reports whether password matches, comparing in constant time.
// It costs one hash with the stored parameters.
func (c UserCredential) Verify(password string) bool {
	if c.validate() != nil || len(password) > MaxPasswordLen {
		return false
	}
	got := argon2.IDKey([]byte(password), c.Salt, c.Time, c.MemoryKB, c.Threads, uint32(len(c.Hash)))
	return subtle.ConstantTimeCompare(got, c.Hash) == 1
}

// Same reports whether c and o are the same stored credential (same salt
// and hash): a cache of verified passwords uses it to notice a change.
func (c UserCredential) Same(o UserCredential) bool {
	return c.Mechanism == o.Mechanism && c.Argon2Params == o.Argon2Params &&
		subtle.ConstantTimeCompare(c.Salt, o.Salt) == 1 && subtle.ConstantTimeCompare(c.Hash, o.Hash) == 1
}

func (c UserCredential) validate() error {
	if c.Mechanism != MechanismArgon2id {
		return invalid("credential.mechanism", "%q: this version knows only %q", c.Mechanism, MechanismArgon2id)
	}
	if err := c.Argon2Params.Validate(); err != nil {
		return err
	}
	if len(c.Salt) != saltLen {
		return invalid("credential.salt", "%d bytes: want %d", len(c.Salt), saltLen)
	}
	if len(c.Hash) != hashLen {
		return invalid("credential.hash", "%d bytes: want %d", len(c.Hash), hashLen)
	}
	return nil
}

// ValidatePassword checks a password's length (MinPasswordLen..MaxPasswordLen
// bytes).
func ValidatePassword(password string) error {
	if len(password) < MinPasswordLen || len(password) > MaxPasswordLen {
		return invalid("password", "%d bytes: must be %d to %d", len(password), MinPasswordLen, MaxPasswordLen)
	}
	return nil
}
