package membership

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKeyFile(t *testing.T) {
	k1 := bytes.Repeat([]byte{1}, 32)
	k2 := bytes.Repeat([]byte{2}, 32)
	b64 := base64.StdEncoding.EncodeToString
	for _, tc := range []struct {
		name    string
		file    string
		want    [][]byte
		wantErr string // substring; "" means success
	}{
		{"one key", b64(k1) + "\n", [][]byte{k1}, ""},
		{"no trailing newline", b64(k1), [][]byte{k1}, ""},
		{"primary first, comments and blanks skipped",
			"# rotated 2024-05\n\n  " + b64(k2) + "  \n# old key, kept for rotation\n" + b64(k1) + "\r\n\n",
			[][]byte{k2, k1}, ""},
		{"empty file", "", nil, "no key in file"},
		{"only comments", "# nothing\n\n   \n", nil, "no key in file"},
		{"bad base64", b64(k1) + "\nnot*base64!\n", nil, "line 2: key is not valid base64"},
		{"AES-128 key", b64(k1[:16]), nil, "line 1: key decodes to 16 bytes, want 32"},
		{"too long", b64(append(k1, 0)), nil, "decodes to 33 bytes"},
		{"duplicate", b64(k1) + "\n" + b64(k1), nil, "line 2: duplicate key"},
		{"url alphabet is not accepted", base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), nil, "not valid base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKeyFile([]byte(tc.file))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseKeyFile = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d keys, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tc.want[i]) {
					t.Fatalf("key %d differs", i)
				}
			}
		})
	}
}

func TestWriteKeyFileRoundTripsWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gossip-keyring")
	keys := [][]byte{bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{8}, 32)}
	for range 2 { // the second write replaces the first
		if err := WriteKeyFile(path, keys); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !bytes.Equal(got[0], keys[0]) || !bytes.Equal(got[1], keys[1]) {
		t.Fatalf("round trip gave %d keys", len(got))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestValidateClusterName(t *testing.T) {
	for _, ok := range []string{"", "prod", "prod-eu.1_a", strings.Repeat("x", 255)} {
		if err := ValidateClusterName(ok); err != nil {
			t.Errorf("ValidateClusterName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"prod eu", "prod/eu", "é", strings.Repeat("x", 256), "a\x00b"} {
		if err := ValidateClusterName(bad); err == nil {
			t.Errorf("ValidateClusterName(%q) accepted", bad)
		}
	}
}
