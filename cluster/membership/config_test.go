package membership

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigWithMetaIsValid(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Meta = testMeta("n1", 1)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Config{Meta: Meta{ID: "n1"}}).Validate(); err != nil {
		t.Fatalf("zero fields should take defaults: %v", err)
	}
}

func TestValidateNamesTheInvalidField(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"missing id", func(c *Config) { c.Meta.ID = "" }, "Meta.ID"},
		{"id with space", func(c *Config) { c.Meta.ID = "node 1" }, "Meta.ID"},
		{"grpc addr without port", func(c *Config) { c.Meta.GRPCAddr = "localhost" }, "Meta.GRPCAddr"},
		{"raft addr garbage", func(c *Config) { c.Meta.RaftAddr = "::::" }, "Meta.RaftAddr"},
		{"http addr without port", func(c *Config) { c.Meta.HTTPAddr = "10.0.0.1" }, "Meta.HTTPAddr"},
		{"meta too large", func(c *Config) { c.Meta.Rack = strings.Repeat("r", 500) }, "Meta"},
		{"bind without port", func(c *Config) { c.BindAddr = "127.0.0.1" }, "BindAddr"},
		{"bind host name", func(c *Config) { c.BindAddr = "localhost:9402" }, "BindAddr"},
		{"bind port out of range", func(c *Config) { c.BindAddr = ":70000" }, "BindAddr"},
		{"advertise without host", func(c *Config) { c.AdvertiseAddr = ":9402" }, "AdvertiseAddr"},
		{"advertise unspecified", func(c *Config) { c.AdvertiseAddr = "0.0.0.0:9402" }, "AdvertiseAddr"},
		{"empty seed", func(c *Config) { c.Join = []string{"10.0.0.1:9402", ""} }, "Join[1]"},
		{"negative retry", func(c *Config) { c.JoinRetryInterval = -time.Second }, "JoinRetryInterval"},
		{"negative join timeout", func(c *Config) { c.JoinTimeout = -time.Second }, "JoinTimeout"},
		{"unknown profile", func(c *Config) { c.Profile = "wan" }, "Profile"},
		{"AES-128 key", func(c *Config) { c.Keys = [][]byte{make([]byte, 16)} }, "Keys[0]"},
		{"duplicate key", func(c *Config) { c.Keys = [][]byte{make([]byte, 32), make([]byte, 32)} }, "Keys[1]"},
		{"keyring file without keys", func(c *Config) { c.KeyringFile = "/tmp/k" }, "KeyringFile"},
		{"cluster name with space", func(c *Config) { c.ClusterName = "prod eu" }, "ClusterName"},
		{"cluster name too long", func(c *Config) { c.ClusterName = strings.Repeat("c", 256) }, "ClusterName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Meta = testMeta("n1", 1)
			tc.edit(&cfg)
			err := cfg.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("Validate() = %v, want a *FieldError for %s", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("message %q does not name %s", err, tc.field)
			}
		})
	}
}

func TestStartRejectsInvalidConfigWithoutBinding(t *testing.T) {
	cfg := testConfig(testMeta("n1", 1))
	cfg.Meta.Rack = strings.Repeat("r", 600)
	_, err := Start(context.Background(), cfg)
	if !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("Start with oversized meta = %v, want ErrMetaTooLarge", err)
	}
}

func TestAdvertiseAddrIsWhatPeersSee(t *testing.T) {
	cfg := testConfig(testMeta("n1", 1))
	cfg.AdvertiseAddr = "localhost:0" // a name, resolved at start; port 0 = bound port
	m := start(t, cfg)
	if !strings.HasPrefix(m.Addr(), "127.0.0.1:") || strings.HasSuffix(m.Addr(), ":0") {
		t.Fatalf("Addr() = %q, want 127.0.0.1 with the bound port", m.Addr())
	}
	if got := m.Local().Addr; got != m.Addr() {
		t.Fatalf("Local().Addr = %q, want %q", got, m.Addr())
	}
}
