package membership

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the length of a gossip encryption key: 32 bytes, AES-256.
// memberlist also accepts 16- and 24-byte keys; Skiff does not, so that a
// cluster's strength never depends on which key happens to be primary.
const KeySize = 32

// MaxClusterNameLen is memberlist's limit on a packet label.
const MaxClusterNameLen = 255

// ParseKey decodes one base64 (standard alphabet, padded) AES-256 key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty key: generate one with `skiff cluster gossip-keys install` or `openssl rand -base64 32`")
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("key is not valid base64 (generate one with `openssl rand -base64 32`): %w", err)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("key decodes to %d bytes, want %d (AES-256): generate one with `openssl rand -base64 32`", len(key), KeySize)
	}
	return key, nil
}

// EncodeKey is the base64 form ParseKey reads.
func EncodeKey(key []byte) string { return base64.StdEncoding.EncodeToString(key) }

// GenerateKey returns a new random AES-256 key.
func GenerateKey() ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate gossip key: %w", err)
	}
	return key, nil
}

// ParseKeyFile reads the key file format: one base64 AES-256 key per line,
// the first being the primary key (the one that encrypts) and the others
// accepted for decryption only, so a cluster can rotate keys. Blank lines
// and lines starting with '#' are ignored. At least one key is required and
// duplicates are an error (they usually mean a copy-paste mistake).
func ParseKeyFile(data []byte) ([][]byte, error) {
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, err := ParseKey(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		for _, k := range keys {
			if bytes.Equal(k, key) {
				return nil, fmt.Errorf("line %d: duplicate key", line)
			}
		}
		keys = append(keys, key)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("no key in file: put one base64 AES-256 key per line (`openssl rand -base64 32`)")
	}
	return keys, nil
}

// ReadKeyFile reads and parses a key file (see ParseKeyFile).
func ReadKeyFile(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gossip key file: %w", err)
	}
	keys, err := ParseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("gossip key file %s: %w", path, err)
	}
	return keys, nil
}

// FormatKeyFile renders keys in the key file format, primary first.
func FormatKeyFile(keys [][]byte) []byte {
	var b bytes.Buffer
	b.WriteString("# Skiff gossip keys, base64 AES-256. The first key is primary (it encrypts);\n")
	b.WriteString("# the others are accepted while a rotation is in progress.\n")
	for _, k := range keys {
		b.WriteString(EncodeKey(k))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// WriteKeyFile writes keys to path atomically with mode 0600: a temporary
// file in the same directory, fsynced, renamed over path, then the
// directory fsynced. A crash leaves either the old file or the new one,
// never a torn one, which matters because a node cannot rejoin its cluster
// without a key the cluster still uses.
func WriteKeyFile(path string, keys [][]byte) error {
	if len(keys) == 0 {
		return errors.New("write gossip key file: no keys")
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write gossip key file: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write gossip key file: %w", err)
	}
	if _, err := tmp.Write(FormatKeyFile(keys)); err != nil {
		tmp.Close()
		return fmt.Errorf("write gossip key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write gossip key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write gossip key file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write gossip key file: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write gossip key file: sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write gossip key file: sync dir: %w", err)
	}
	return nil
}

// ValidateClusterName checks a cluster name (memberlist's label): at most
// MaxClusterNameLen bytes of letters, digits, '.', '_' and '-'. Empty means
// no label. The charset is narrower than memberlist's (any bytes) so that
// names survive shells, env vars and log lines unquoted.
func ValidateClusterName(name string) error {
	if len(name) > MaxClusterNameLen {
		return fmt.Errorf("cluster name is %d bytes long, at most %d allowed", len(name), MaxClusterNameLen)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return fmt.Errorf("cluster name %q: only letters, digits, '.', '_' and '-' are allowed", name)
		}
	}
	return nil
}
