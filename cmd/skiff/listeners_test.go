package main

import (
	"strings"
	"testing"

	"github.com/skiff-mq/skiff/cluster"
)

func TestListenerFlagsAndEnv(t *testing.T) {
	var l listenerSpecs
	for _, v := range []string{"internal=127.0.0.1:0,skiff-1:9400", "external=127.0.0.1:0"} {
		if err := l.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.String(); got != "internal=127.0.0.1:0,skiff-1:9400 external=127.0.0.1:0" {
		t.Fatalf("parsed %q", got)
	}
	for _, bad := range []string{"internal=127.0.0.1:1", "Bad=1.2.3.4:5", "x", "x=", "x=nohost", "x=h:1,noport", "x=h:1,:9"} {
		if err := l.Set(bad); err == nil {
			t.Errorf("--listener %s accepted", bad)
		}
	}

	t.Setenv("SKIFF_LISTENERS", "a=127.0.0.1:0|a-host:1;b=127.0.0.1:0")
	var env listenerSpecs
	if err := listenersFromEnv(&env); err != nil {
		t.Fatal(err)
	}
	if len(env) != 2 || env[0] != (listenerSpec{"a", "127.0.0.1:0", "a-host:1"}) || env[1] != (listenerSpec{"b", "127.0.0.1:0", ""}) {
		t.Fatalf("SKIFF_LISTENERS parsed as %+v", env)
	}

	cfg := cluster.DefaultConfig()
	bound, err := bindListeners(&cfg, l, false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, b := range bound {
			b.ln.Close()
		}
	}()
	if len(bound) != 2 || bound[0].name != "internal" || cfg.GRPCAddr != bound[0].ln.Addr().String() ||
		cfg.AdvertiseGRPCAddr != "skiff-1:9400" || cfg.Listeners["internal"] != "skiff-1:9400" ||
		cfg.Listeners["external"] != bound[1].ln.Addr().String() {
		t.Fatalf("bound %v; config grpc %s advertised %s listeners %v", bound, cfg.GRPCAddr, cfg.AdvertiseGRPCAddr, cfg.Listeners)
	}
	cfg2 := cluster.DefaultConfig()
	if _, err := bindListeners(&cfg2, l, true); err == nil || !strings.Contains(err.Error(), "--grpc-addr") {
		t.Fatalf("--listener with --grpc-addr: %v", err)
	}
}
