package certs

import (
	"bytes"
	"crypto/x509"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// mustCreate runs Create and fails the test on error.
func mustCreate(t *testing.T, opts CreateOptions) {
	t.Helper()
	if err := Create(opts); err != nil {
		t.Fatalf("Create: %v", err)
	}
}

func mustReadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	cert, err := readCert(path)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func caPool(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(mustReadCert(t, filepath.Join(dir, CACertFile)))
	return pool
}

func TestNodeCertificateVerifiesForServerAndClientAndNamesItsNode(t *testing.T) {
	dir := t.TempDir()
	mustCreate(t, CreateOptions{Dir: dir, Nodes: []string{"n1", "n2"}, Hosts: []string{"skiff-1", "10.0.0.7", "fd00::7"}})

	ca := mustReadCert(t, filepath.Join(dir, CACertFile))
	if ca.Subject.CommonName != CACommonName || !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("CA: CN %q IsCA %v usage %v", ca.Subject.CommonName, ca.IsCA, ca.KeyUsage)
	}
	crt, _ := Paths(dir, "n2")
	n2 := mustReadCert(t, crt)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := n2.Verify(x509.VerifyOptions{Roots: caPool(t, dir), KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("verify with usage %v: %v", usage, err)
		}
	}
	for _, host := range []string{"n2", "localhost", "skiff-1", "127.0.0.1", "::1", "10.0.0.7", "fd00::7"} {
		if err := n2.VerifyHostname(host); err != nil {
			t.Errorf("VerifyHostname(%s): %v", host, err)
		}
	}
	if slices.Contains(n2.DNSNames, "10.0.0.7") {
		t.Errorf("an IP host became a DNS SAN: %v", n2.DNSNames)
	}
	if n2.Subject.CommonName != "n2" {
		t.Errorf("CN %q, want n2", n2.Subject.CommonName)
	}
	if len(n2.URIs) != 1 || n2.URIs[0].String() != "skiff://node/n2" {
		t.Errorf("URIs %v, want [skiff://node/n2]", n2.URIs)
	}
	if id, ok := NodeID(n2); !ok || id != "n2" {
		t.Errorf("NodeID = %q, %v; want n2, true", id, ok)
	}
	if n2.SerialNumber.BitLen() < 64 {
		t.Errorf("serial %v is not random-looking", n2.SerialNumber)
	}
	n1 := mustReadCert(t, filepath.Join(dir, "n1.crt"))
	if n1.SerialNumber.Cmp(n2.SerialNumber) == 0 {
		t.Errorf("n1 and n2 share serial %v", n1.SerialNumber)
	}
	if d := n2.NotAfter.Sub(n2.NotBefore); d < DefaultValidity || d > DefaultValidity+time.Hour {
		t.Errorf("validity %v, want about a year", d)
	}
}

func TestClientCertificateIsClientOnlyAndNamesNoNode(t *testing.T) {
	dir := t.TempDir()
	mustCreate(t, CreateOptions{Dir: dir, Clients: []string{"admin"}})
	admin := mustReadCert(t, filepath.Join(dir, "admin.crt"))
	if id, ok := NodeID(admin); ok {
		t.Fatalf("client certificate names node %q", id)
	}
	if len(admin.URIs) != 0 || admin.Subject.CommonName != "admin" {
		t.Fatalf("URIs %v CN %q", admin.URIs, admin.Subject.CommonName)
	}
	pool := caPool(t, dir)
	if _, err := admin.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify as client: %v", err)
	}
	if _, err := admin.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("a client certificate verified as a server certificate")
	}
}

func TestCertificateFromAnotherCADoesNotVerify(t *testing.T) {
	ours, theirs := t.TempDir(), t.TempDir()
	mustCreate(t, CreateOptions{Dir: ours, Nodes: []string{"n1"}})
	mustCreate(t, CreateOptions{Dir: theirs, Nodes: []string{"n1"}})
	foreign := mustReadCert(t, filepath.Join(theirs, "n1.crt"))
	_, err := foreign.Verify(x509.VerifyOptions{Roots: caPool(t, ours), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("verify against another CA: %v, want UnknownAuthorityError", err)
	}
}

func TestSecondRunReusesTheCAAndItsCertificatesStillVerify(t *testing.T) {
	dir := t.TempDir()
	mustCreate(t, CreateOptions{Dir: dir, Nodes: []string{"n1"}})
	caBefore, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, CreateOptions{Dir: dir, Nodes: []string{"n4"}, Clients: []string{"alice"}})
	caAfter, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(caBefore, caAfter) {
		t.Fatal("second run replaced ca.crt")
	}
	pool := caPool(t, dir)
	for _, name := range []string{"n1", "n4", "alice"} {
		c := mustReadCert(t, filepath.Join(dir, name+".crt"))
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestRefusesToOverwriteUnlessForced(t *testing.T) {
	dir := t.TempDir()
	mustCreate(t, CreateOptions{Dir: dir, Nodes: []string{"n1"}})
	before, _ := os.ReadFile(filepath.Join(dir, "n1.key"))

	err := Create(CreateOptions{Dir: dir, Nodes: []string{"n2", "n1"}})
	if err == nil || !strings.Contains(err.Error(), "n1.crt") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("Create over n1: %v, want an error naming n1.crt and --force", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "n2.crt")); !os.IsNotExist(err) {
		t.Error("a refused run still wrote n2.crt: it must check before writing")
	}
	mustCreate(t, CreateOptions{Dir: dir, Nodes: []string{"n1"}, Force: true})
	after, _ := os.ReadFile(filepath.Join(dir, "n1.key"))
	if bytes.Equal(before, after) {
		t.Error("Force did not replace n1.key")
	}
}

func TestFileModesAndPEMTypes(t *testing.T) {
	dir := t.TempDir()
	mustCreate(t, CreateOptions{Dir: dir, Nodes: []string{"n1"}, Clients: []string{"admin"}})
	for name, want := range map[string]os.FileMode{
		"ca.key": 0o600, "n1.key": 0o600, "admin.key": 0o600,
		"ca.crt": 0o644, "n1.crt": 0o644, "admin.crt": 0o644,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), want)
		}
		data, _ := os.ReadFile(filepath.Join(dir, name))
		wantType := "-----BEGIN CERTIFICATE-----"
		if strings.HasSuffix(name, ".key") {
			wantType = "-----BEGIN EC PRIVATE KEY-----"
		}
		if !strings.HasPrefix(string(data), wantType) {
			t.Errorf("%s starts %.30q, want %s", name, data, wantType)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 6 {
		t.Errorf("dir holds %d entries, want 6 (no temporary files left)", len(entries))
	}
}

func TestValidityIsConfigurableAndCutToTheCA(t *testing.T) {
	dir := t.TempDir()
	mustCreate(t, CreateOptions{Dir: dir, Nodes: []string{"n1"}, Validity: 48 * time.Hour})
	n1 := mustReadCert(t, filepath.Join(dir, "n1.crt"))
	if d := time.Until(n1.NotAfter); d > 48*time.Hour || d < 47*time.Hour {
		t.Fatalf("n1 valid for %v more, want about 48h", d)
	}
	mustCreate(t, CreateOptions{Dir: dir, Nodes: []string{"n2"}, Validity: 1000 * time.Hour})
	ca := mustReadCert(t, filepath.Join(dir, CACertFile))
	n2 := mustReadCert(t, filepath.Join(dir, "n2.crt"))
	if n2.NotAfter.After(ca.NotAfter) {
		t.Fatalf("n2 (%v) outlives its CA (%v)", n2.NotAfter, ca.NotAfter)
	}
}

func TestCreateRejectsBadInputBeforeWriting(t *testing.T) {
	tests := []struct {
		name string
		opts CreateOptions
		want string
	}{
		{"no dir", CreateOptions{Nodes: []string{"n1"}}, "no directory"},
		{"slash in node", CreateOptions{Nodes: []string{"../n1"}}, `"../n1"`},
		{"empty client", CreateOptions{Clients: []string{""}}, "1 to 64"},
		{"too long", CreateOptions{Nodes: []string{strings.Repeat("n", 65)}}, "1 to 64"},
		{"ca name", CreateOptions{Nodes: []string{"ca"}}, "taken by the CA"},
		{"node and client alike", CreateOptions{Nodes: []string{"n1"}, Clients: []string{"n1"}}, "given twice"},
		{"host with port", CreateOptions{Nodes: []string{"n1"}, Hosts: []string{"skiff-1:9400"}}, "without a port"},
		{"negative validity", CreateOptions{Nodes: []string{"n1"}, Validity: -time.Hour}, "validity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certs")
			if tt.opts.Dir == "" && tt.name != "no dir" {
				tt.opts.Dir = dir
			}
			err := Create(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want one containing %q", err, tt.want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("a rejected run created %s", dir)
			}
		})
	}
}

func TestHalfACAIsAnErrorNotANewCA(t *testing.T) {
	dir := t.TempDir()
	mustCreate(t, CreateOptions{Dir: dir})
	if err := os.Remove(filepath.Join(dir, CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	err := Create(CreateOptions{Dir: dir, Nodes: []string{"n1"}})
	if err == nil || !strings.Contains(err.Error(), "only one of") {
		t.Fatalf("err %v, want one saying only one CA file exists", err)
	}
}

func TestNodeID(t *testing.T) {
	cert := func(uris ...string) *x509.Certificate {
		c := &x509.Certificate{}
		for _, u := range uris {
			parsed, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			c.URIs = append(c.URIs, parsed)
		}
		return c
	}
	tests := []struct {
		name   string
		cert   *x509.Certificate
		wantID string
		wantOK bool
	}{
		{"node", cert("skiff://node/n1"), "n1", true},
		{"NodeURI round trip", &x509.Certificate{URIs: []*url.URL{NodeURI("node-7.a_b")}}, "node-7.a_b", true},
		{"no URI", cert(), "", false},
		{"nil", nil, "", false},
		{"other scheme", cert("spiffe://node/n1"), "", false},
		{"nested path", cert("skiff://node/n1/x"), "", false},
		{"empty id", cert("skiff://node/"), "", false},
		{"same node twice", cert("skiff://node/n1", "skiff://node/n1"), "n1", true},
		{"two nodes", cert("skiff://node/n1", "skiff://node/n2"), "", false},
		{"other URI beside", cert("https://example.com/", "skiff://node/n3"), "n3", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := NodeID(tt.cert)
			if id != tt.wantID || ok != tt.wantOK {
				t.Fatalf("NodeID = %q, %v; want %q, %v", id, ok, tt.wantID, tt.wantOK)
			}
		})
	}
	if got := NodeURI("n1").String(); got != NodeURIPrefix+"n1" {
		t.Fatalf("NodeURI(n1) = %s", got)
	}
}
