package workload

import (
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{Brokers: []string{"127.0.0.1:9400"}, Topic: "t"}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"no brokers", func(c *Config) { c.Brokers = nil }, "Brokers"},
		{"no topic", func(c *Config) { c.Topic = "" }, "Topic"},
		{"too many producers", func(c *Config) { c.Producers = 1000 }, "Producers"},
		{"no readers", func(c *Config) { c.NoReaders = true }, ""},
		{"group reader kind", func(c *Config) { c.ReaderKind = "group" }, "GroupConsumers"},
		{"too many group consumers", func(c *Config) { c.GroupConsumers = 100 }, "GroupConsumers"},
		{"no group consumers", func(c *Config) { c.NoGroupConsumers = true }, ""},
		{"unknown reader kind", func(c *Config) { c.ReaderKind = "x" }, "ReaderKind"},
		{"negative timeout", func(c *Config) { c.DrainTimeout = -1 }, "DrainTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
}
