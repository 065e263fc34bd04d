package metadata

import (
	"strings"
	"testing"
)

func TestBrokerListeners(t *testing.T) {
	plain := Broker{ID: "n1", GRPCAddr: "10.0.0.1:9400"}
	named := Broker{ID: "n2", GRPCAddr: "skiff-2:9400", Listeners: map[string]string{"internal": "skiff-2:9400", "external": "127.0.0.1:9410"}}
	for _, tc := range []struct {
		b        Broker
		listener string
		addr     string
		ok       bool
	}{
		{plain, "", "10.0.0.1:9400", true},
		{plain, DefaultListener, "10.0.0.1:9400", true},
		{plain, "external", "", false},
		{named, "", "skiff-2:9400", true},
		{named, "external", "127.0.0.1:9410", true},
		{named, "internal", "skiff-2:9400", true},
		{named, DefaultListener, "", false},
	} {
		if addr, ok := tc.b.ClientAddr(tc.listener); addr != tc.addr || ok != tc.ok {
			t.Errorf("%s on %q: %q %v, want %q %v", tc.b.ID, tc.listener, addr, ok, tc.addr, tc.ok)
		}
	}
	if !named.Equal(Broker{ID: "n2", GRPCAddr: "skiff-2:9400", Listeners: map[string]string{"external": "127.0.0.1:9410", "internal": "skiff-2:9400"}}) ||
		named.Equal(Broker{ID: "n2", GRPCAddr: "skiff-2:9400"}) || !plain.Equal(Broker{ID: "n1", GRPCAddr: "10.0.0.1:9400", Listeners: map[string]string{}}) {
		t.Error("Equal compares listeners by content")
	}
	if err := ValidateBroker(named); err != nil {
		t.Fatal(err)
	}
	many := map[string]string{}
	for i := range MaxListeners + 1 {
		many[strings.Repeat("l", i+1)] = "h:1"
	}
	for _, bad := range []map[string]string{
		{"Upper": "h:1"}, {"": "h:1"}, {"ok": ""}, {"ok": "no-port"}, {strings.Repeat("x", 33): "h:1"}, many,
	} {
		if err := ValidateBroker(Broker{ID: "n3", Listeners: bad}); err == nil {
			t.Errorf("listeners %v accepted", bad)
		}
	}
}
