package main

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/cluster/metadata"
)

// listenerSpec is one `--listener NAME=BIND[,ADVERTISED]`.
type listenerSpec struct {
	name, bind, advertised string
}

// listenerSpecs is the repeatable --listener flag.
type listenerSpecs []listenerSpec

func (l *listenerSpecs) String() string {
	var parts []string
	for _, s := range *l {
		p := s.name + "=" + s.bind
		if s.advertised != "" {
			p += "," + s.advertised
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

func (l *listenerSpecs) Type() string { return "NAME=BIND[,ADVERTISED]" }

func (l *listenerSpecs) Set(v string) error {
	s, err := parseListener(v, ",")
	if err != nil {
		return err
	}
	for _, have := range *l {
		if have.name == s.name {
			return fmt.Errorf("listener %q given twice", s.name)
		}
	}
	*l = append(*l, s)
	return nil
}

// parseListener reads NAME=BIND[<sep>ADVERTISED].
func parseListener(v, sep string) (listenerSpec, error) {
	name, rest, ok := strings.Cut(strings.TrimSpace(v), "=")
	if !ok || rest == "" {
		return listenerSpec{}, fmt.Errorf("listener %q: want NAME=BIND_ADDR[%sADVERTISED_ADDR]", v, sep)
	}
	if err := metadata.ValidateListenerName(name); err != nil {
		return listenerSpec{}, err
	}
	bind, advertised, _ := strings.Cut(rest, sep)
	if _, _, err := net.SplitHostPort(bind); err != nil {
		return listenerSpec{}, fmt.Errorf("listener %s: bind address %q: want host:port", name, bind)
	}
	if advertised != "" {
		if host, _, err := net.SplitHostPort(advertised); err != nil || host == "" {
			return listenerSpec{}, fmt.Errorf("listener %s: advertised address %q: want host:port with a host clients can reach", name, advertised)
		}
	}
	return listenerSpec{name: name, bind: bind, advertised: advertised}, nil
}

// listenersFromEnv reads SKIFF_LISTENERS ("name=bind|advertised;...").
func listenersFromEnv(l *listenerSpecs) error {
	v, ok := os.LookupEnv("SKIFF_LISTENERS")
	if !ok || strings.TrimSpace(v) == "" {
		return nil
	}
	for _, item := range strings.Split(v, ";") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		s, err := parseListener(item, "|")
		if err != nil {
			return fmt.Errorf("SKIFF_LISTENERS: %w", err)
		}
		for _, have := range *l {
			if have.name == s.name {
				return fmt.Errorf("SKIFF_LISTENERS: listener %q given twice", s.name)
			}
		}
		*l = append(*l, s)
	}
	return nil
}

func addListenerFlags(f *pflag.FlagSet, l *listenerSpecs) {
	f.Var(l, "listener", "a named client listener, repeatable: NAME=BIND_ADDR[,ADVERTISED_ADDR] (e.g. internal=:9400,skiff-1:9400 "+
		"and external=:9410,127.0.0.1:9410); clients get the addresses of the listener they connected on. "+
		"Replaces --grpc-addr; the first is the node's main address. Env: SKIFF_LISTENERS=\"name=bind|advertised;...\"")
}

// boundListener is a listener of the node, bound.
type boundListener struct {
	name string
	ln   net.Listener
}

// bindListeners binds the client listeners: the --listener ones, or the
// one on --grpc-addr. It sets cfg.GRPCAddr (and AdvertiseGRPCAddr) to the
// main listener and cfg.Listeners to every named one's advertised address.
func bindListeners(cfg *cluster.Config, specs listenerSpecs, grpcAddrSet bool) ([]boundListener, error) {
	if len(specs) == 0 {
		ln, err := net.Listen("tcp", cfg.GRPCAddr)
		if err != nil {
			return nil, fmt.Errorf("listen grpc %s: %w", cfg.GRPCAddr, err)
		}
		cfg.GRPCAddr = ln.Addr().String()
		return []boundListener{{name: "", ln: ln}}, nil
	}
	if grpcAddrSet || cfg.AdvertiseGRPCAddr != "" {
		return nil, fmt.Errorf("--listener replaces --grpc-addr and --advertise-grpc-addr: declare every client listener with --listener")
	}
	var out []boundListener
	closeAll := func() {
		for _, b := range out {
			b.ln.Close()
		}
	}
	cfg.Listeners = map[string]string{}
	for i, s := range specs {
		ln, err := net.Listen("tcp", s.bind)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("listen %s (listener %s): %w", s.bind, s.name, err)
		}
		advertised := s.advertised
		if advertised == "" {
			advertised = cfg.Advertised(ln.Addr().String())
		}
		cfg.Listeners[s.name] = advertised
		if i == 0 {
			cfg.GRPCAddr, cfg.AdvertiseGRPCAddr = ln.Addr().String(), advertised
		}
		out = append(out, boundListener{name: s.name, ln: ln})
	}
	return out, nil
}
