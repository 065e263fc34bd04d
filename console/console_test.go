package console

import (
	"net/url"
	"strconv"
	"testing"
	"time"
)

func TestShowPicksTextOrHex(t *testing.T) {
	for _, tc := range []struct {
		in     []byte
		format string
		want   shown
	}{
		{[]byte("total=30"), "auto", shown{Text: "total=30", Bytes: 8}},
		{[]byte{0, 1, 0xff}, "auto", shown{Text: "0001ff", Hex: true, Bytes: 3}},
		{[]byte("héllo\n"), "auto", shown{Text: "héllo\n", Bytes: 7}},
		{[]byte("ab"), "hex", shown{Text: "6162", Hex: true, Bytes: 2}},
		{[]byte{0xff, 'a'}, "text", shown{Text: "\uFFFDa", Bytes: 2}},
		{nil, "auto", shown{Null: true}},
		{[]byte{}, "auto", shown{Text: "", Bytes: 0}},
	} {
		if got := show(tc.in, tc.format); got != tc.want {
			t.Errorf("show(%q, %s) = %+v, want %+v", tc.in, tc.format, got, tc.want)
		}
	}
}

func TestParseFrom(t *testing.T) {
	for _, ok := range []string{"earliest", "latest", "0", "42", "@2026-01-02T15:04:05Z", "@2026-01-02T15:04", "@2026-01-02"} {
		if _, err := parseFrom(ok); err != nil {
			t.Errorf("parseFrom(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-1", "first", "@yesterday", "1e3"} {
		if _, err := parseFrom(bad); err == nil {
			t.Errorf("parseFrom(%q) accepted", bad)
		}
	}
}

func TestActionTokenIsBoundToUserActionTargetsAndTime(t *testing.T) {
	c, err := New(Config{Brokers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := time.Unix(1_800_000_000, 0)
	form := func() url.Values {
		return url.Values{"group": {"workers"}, "action": {"redrive"}, "topic": {"jobs"}, "offsets": {"3,4"}, "all": {""}}
	}
	signed := func(user string) url.Values {
		f := form()
		exp := now.Add(actionTTL).Unix()
		f.Set("expires", strconv.FormatInt(exp, 10))
		f.Set("token", c.actionToken(user, f, exp))
		return f
	}
	if err := c.checkToken("alice", signed("alice"), now); err != nil {
		t.Fatalf("a fresh token of the same user: %v", err)
	}
	if err := c.checkToken("bob", signed("alice"), now); err == nil {
		t.Error("alice's token accepted for bob")
	}
	for field, v := range map[string]string{"action": "discard", "topic": "other", "offsets": "3,4,5", "all": "1", "group": "other"} {
		f := signed("alice")
		f.Set(field, v)
		if err := c.checkToken("alice", f, now); err == nil {
			t.Errorf("token accepted with %s changed to %q", field, v)
		}
	}
	if err := c.checkToken("alice", signed("alice"), now.Add(actionTTL+time.Second)); err == nil {
		t.Error("an expired token accepted")
	}
	other, err := New(Config{Brokers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.checkToken("alice", signed("alice"), now); err == nil {
		t.Error("a token of another console (another key) accepted")
	}
}
