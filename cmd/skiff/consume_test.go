package main

import (
	"strings"
	"testing"
)

func testUnknownTopicExitCodes(t *testing.T, c *cli) {
	for _, args := range [][]string{
		{"consume", "cli-no-such-topic"},
		{"produce", "cli-no-such-topic"},
		{"topic", "describe", "cli-no-such-topic"},
		{"topic", "delete", "cli-no-such-topic"},
		{"topic", "alter", "cli-no-such-topic", "--config", "retention.ms=1"},
	} {
		_, stderr, code := c.run(t, "x\n", args...)
		if code == 0 {
			t.Errorf("skiff %v: exit 0", args)
			continue
		}
		if !strings.HasPrefix(stderr, "skiff: ") || !strings.Contains(stderr, "cli-no-such-topic") ||
			strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("skiff %v: stderr %q, want one line naming the topic", args, stderr)
		}
	}
}

func TestParseFrom(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"earliest", "earliest"},
		{"latest", "latest"},
		{"42", "offset 42"},
		{"@1700000000000", "time 2023-11-14T22:13:20Z"},
		{"@2024-05-01T12:00:00Z", "time 2024-05-01T12:00:00Z"},
	} {
		got, err := parseFrom(tc.in)
		if err != nil || got.String() != tc.want {
			t.Errorf("parseFrom(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "-1", "first", "@yesterday"} {
		if _, err := parseFrom(bad); err == nil {
			t.Errorf("parseFrom(%q) accepted", bad)
		}
	}
}

func TestTextOrBase64(t *testing.T) {
	if s, b64 := textOrBase64(nil); s != nil || b64 {
		t.Fatal("nil is not null")
	}
	if s, b64 := textOrBase64([]byte("héllo")); *s != "héllo" || b64 {
		t.Fatal("UTF-8 not kept as text")
	}
	if s, b64 := textOrBase64([]byte{0xff}); *s != "/w==" || !b64 {
		t.Fatal("binary not base64")
	}
}
