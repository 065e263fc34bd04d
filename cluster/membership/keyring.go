package membership

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

// Keyring operations. memberlist's keyring is local to one process: these
// change this node only, and a cluster-wide rotation is the caller's job
// (install the new key everywhere, then use it everywhere, then remove the
// old one everywhere; serf's key manager does the same). Each change is
// persisted to Config.KeyringFile before it takes effect, so a crash never
// leaves a node restarting with keys older than the ones it gossiped with.

var (
	// ErrEncryptionDisabled means the node was started without gossip keys.
	// A keyring cannot be switched on live: the first key installed would
	// start encrypting at once and cut this node off from the others.
	ErrEncryptionDisabled = errors.New("gossip encryption is not enabled on this node: start every node with --gossip-key-file to use gossip keys")
	// ErrRemovePrimary refuses removing the key that encrypts.
	ErrRemovePrimary = errors.New("the primary gossip key cannot be removed: `use` another key first")
	// ErrKeyNotInstalled refuses using a key the keyring does not hold.
	ErrKeyNotInstalled = errors.New("gossip key is not installed: `install` it first")
)

// KeyringState is a snapshot of the keyring.
type KeyringState struct {
	// Keys are every installed key, the primary first.
	Keys [][]byte
}

// Primary is the key that encrypts.
func (s KeyringState) Primary() []byte {
	if len(s.Keys) == 0 {
		return nil
	}
	return s.Keys[0]
}

// Encrypted reports whether this node gossips encrypted.
func (m *Membership) Encrypted() bool { return m.keyring != nil }

// Keyring returns the installed keys, primary first. ErrEncryptionDisabled
// when the node has none.
func (m *Membership) Keyring() (KeyringState, error) {
	if m.keyring == nil {
		return KeyringState{}, ErrEncryptionDisabled
	}
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	return KeyringState{Keys: m.keysLocked()}, nil
}

// keysLocked copies the key list: memberlist's GetKeys returns its internal
// slice. Caller holds keyMu.
func (m *Membership) keysLocked() [][]byte {
	return slices.Clone(m.keyring.GetKeys())
}

// InstallKey adds a key that this node then accepts; it keeps encrypting
// with the primary key. Installing a key already held does nothing.
func (m *Membership) InstallKey(key []byte) error {
	if err := m.checkKey(key); err != nil {
		return err
	}
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	keys := m.keysLocked()
	if slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, key) }) {
		return nil
	}
	if err := m.persistLocked(append(keys, bytes.Clone(key))); err != nil {
		return err
	}
	if err := m.keyring.AddKey(bytes.Clone(key)); err != nil {
		return fmt.Errorf("membership: install gossip key: %w", err)
	}
	m.log.Info("gossip key installed", "keys", len(keys)+1)
	return nil
}

// UseKey makes an installed key the primary one: from now on this node
// encrypts with it. Every peer must hold it already (InstallKey), or they
// stop understanding this node.
func (m *Membership) UseKey(key []byte) error {
	if err := m.checkKey(key); err != nil {
		return err
	}
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	keys := m.keysLocked()
	i := slices.IndexFunc(keys, func(k []byte) bool { return bytes.Equal(k, key) })
	switch {
	case i < 0:
		return ErrKeyNotInstalled
	case i == 0:
		return nil
	}
	next := append([][]byte{keys[i]}, slices.Delete(slices.Clone(keys), i, i+1)...)
	if err := m.persistLocked(next); err != nil {
		return err
	}
	if err := m.keyring.UseKey(keys[i]); err != nil {
		return fmt.Errorf("membership: use gossip key: %w", err)
	}
	m.log.Info("gossip primary key changed")
	return nil
}

// RemoveKey drops a key this node no longer needs to decrypt with.
// Removing the primary key is refused (ErrRemovePrimary); removing a key
// that is not installed does nothing, so a retried cluster-wide removal
// succeeds where it already happened.
func (m *Membership) RemoveKey(key []byte) error {
	if err := m.checkKey(key); err != nil {
		return err
	}
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	keys := m.keysLocked()
	i := slices.IndexFunc(keys, func(k []byte) bool { return bytes.Equal(k, key) })
	switch {
	case i < 0:
		return nil
	case i == 0:
		return ErrRemovePrimary
	}
	if err := m.persistLocked(slices.Delete(slices.Clone(keys), i, i+1)); err != nil {
		return err
	}
	// memberlist v0.6.0's RemoveKey deletes in place (append(keys[:i],
	// keys[i+1:]...)), shifting later keys down inside the very slice that
	// GetKeys handed to goroutines decrypting packets right now: a data
	// race. Removing the last key shifts nothing, so the keys after this
	// one are taken off from the end first and put back afterwards (AddKey
	// builds fresh slices). In the usual rotation the old key is last and
	// nothing moves; otherwise those keys are missing for microseconds,
	// during which a packet encrypted with one of them could be dropped and
	// is then retransmitted by gossip.
	trailing := keys[i+1:]
	for j := len(trailing) - 1; j >= 0; j-- {
		if err := m.keyring.RemoveKey(trailing[j]); err != nil {
			return fmt.Errorf("membership: remove gossip key: %w", err)
		}
	}
	if err := m.keyring.RemoveKey(keys[i]); err != nil {
		return fmt.Errorf("membership: remove gossip key: %w", err)
	}
	for _, k := range trailing {
		if err := m.keyring.AddKey(k); err != nil {
			return fmt.Errorf("membership: remove gossip key: %w", err)
		}
	}
	m.log.Info("gossip key removed", "keys", len(keys)-1)
	return nil
}

func (m *Membership) checkKey(key []byte) error {
	if m.keyring == nil {
		return ErrEncryptionDisabled
	}
	if len(key) != KeySize {
		return fieldErr("key", fmt.Errorf("%d bytes, want %d (AES-256)", len(key), KeySize))
	}
	if m.isClosed() {
		return ErrClosed
	}
	return nil
}

// persistLocked writes the keyring that is about to be live. Caller holds
// keyMu, so files are written in the same order as keyrings change.
func (m *Membership) persistLocked(keys [][]byte) error {
	if m.cfg.KeyringFile == "" {
		return nil
	}
	if err := WriteKeyFile(m.cfg.KeyringFile, keys); err != nil {
		return fmt.Errorf("membership: persist keyring (the keyring is unchanged): %w", err)
	}
	return nil
}
