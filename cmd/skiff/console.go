package main

import (
	"net"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/console"
)

// mountConsole serves the web console under /ui/ on the node's HTTP port.
// It reaches the API on the node's own first client listener (grpcAddr)
// as the browser's user: with TLS it verifies the node against the
// cluster CA and presents no certificate, so no call ever carries the
// node's identity.
func mountConsole(node *cluster.Node, cfg cluster.Config, grpcAddr net.Addr) (*console.Console, error) {
	ccfg := console.Config{Brokers: []string{dialable(grpcAddr)}, Auth: cfg.ClientAuth, Logger: cfg.Logger}
	if cfg.TLS != nil {
		t := cfg.TLS.PeerClientConfig()
		t.GetClientCertificate = nil
		ccfg.TLS = t
	}
	ui, err := console.New(ccfg)
	if err != nil {
		return nil, err
	}
	node.HandleHTTP("/ui/", ui)
	return ui, nil
}

// dialable turns a bound address into one to dial: a wildcard host
// becomes the loopback address.
func dialable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
