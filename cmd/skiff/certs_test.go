package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-mq/skiff/internal/certs"
)

// execute runs the root command in process with args and returns its
// stdout and error.
func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCommand()
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func readCertFile(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestCertsCreateWritesWhatItPrints(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	out, err := execute(t, "certs", "create", "--dir", dir, "--nodes", "n1,n2,n3", "--hosts", "skiff-1,10.1.2.3",
		"--clients", "admin,alice", "--days", "30", "-o", "json")
	if err != nil {
		t.Fatalf("certs create: %v", err)
	}
	var got certsCreateJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if got.Dir != dir || got.CA != filepath.Join(dir, "ca.crt") || got.CAReused {
		t.Fatalf("dir %q ca %q reused %v", got.Dir, got.CA, got.CAReused)
	}
	if len(got.Nodes) != 3 || len(got.Clients) != 2 {
		t.Fatalf("nodes %v clients %v", got.Nodes, got.Clients)
	}
	for _, n := range got.Nodes {
		cert := readCertFile(t, n.Cert)
		if id, ok := certs.NodeID(cert); !ok || id != n.ID {
			t.Errorf("%s names node %q, want %q", n.Cert, id, n.ID)
		}
		if err := cert.VerifyHostname("10.1.2.3"); err != nil {
			t.Errorf("%s: %v", n.Cert, err)
		}
		if d := cert.NotAfter.Sub(cert.NotBefore).Hours() / 24; d < 30 || d > 31 {
			t.Errorf("%s valid for %.1f days, want 30", n.Cert, d)
		}
		if _, err := os.Stat(n.Key); err != nil {
			t.Error(err)
		}
	}
	if got.Clients[1].ID != "alice" || got.Clients[1].Cert != filepath.Join(dir, "alice.crt") {
		t.Fatalf("client %+v", got.Clients[1])
	}
	if _, ok := certs.NodeID(readCertFile(t, got.Clients[1].Cert)); ok {
		t.Fatal("a client certificate names a node")
	}

	// Adding a client later reuses the CA; repeating a node is refused.
	out, err = execute(t, "certs", "create", "--dir", dir, "--clients", "bob")
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if !strings.Contains(out, "(reused)") || !strings.Contains(out, filepath.Join(dir, "bob.crt")) {
		t.Fatalf("second run printed %q, want the reused CA and bob.crt", out)
	}
	if _, err := execute(t, "certs", "create", "--dir", dir, "--nodes", "n1"); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("re-creating n1: %v, want a refusal naming --force", err)
	}
	if _, err := execute(t, "certs", "create", "--dir", dir, "--nodes", "n1", "--force"); err != nil {
		t.Fatalf("re-creating n1 with --force: %v", err)
	}
}

func TestCertsCreateRejectsBadFlags(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--nodes", "n1"}, "--dir is required"},
		{[]string{"--dir", dir}, "pass --nodes"},
		{[]string{"--dir", dir, "--nodes", "n1", "--days", "0"}, "--days"},
		{[]string{"--dir", dir, "--nodes", "n/1"}, `"n/1"`},
	}
	for _, tt := range tests {
		_, err := execute(t, append([]string{"certs", "create"}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("certs create %v: %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}
