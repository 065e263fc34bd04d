package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/cluster/membership"
	"github.com/skiff-mq/skiff/internal/certs"
)

// devAdmin is the client certificate `skiff dev --secure` issues for the
// shell that drives it.
const devAdmin = "admin"

// devSecurity is what `skiff dev --secure` lays under DIR/certs: a CA,
// one certificate per node, the admin client certificate and a gossip key.
// Files already there (a --dir kept across runs) are used as they are.
type devSecurity struct {
	dir    string
	noAuth bool // --auth=false: TLS without client authentication
}

func prepareDevSecurity(dir string, nodes []string) (*devSecurity, error) {
	// The printed exports must work from any directory.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, id := range nodes {
		if crt, _ := certs.Paths(dir, id); !exists(crt) {
			missing = append(missing, id)
		}
	}
	var clients []string
	if crt, _ := certs.Paths(dir, devAdmin); !exists(crt) {
		clients = append(clients, devAdmin)
	}
	if len(missing) > 0 || len(clients) > 0 {
		if err := certs.Create(certs.CreateOptions{Dir: dir, Nodes: missing, Clients: clients, Hosts: []string{"127.0.0.1", "localhost"}}); err != nil {
			return nil, fmt.Errorf("dev --secure: certificates: %w", err)
		}
	}
	keyFile := filepath.Join(dir, "gossip.key")
	if !exists(keyFile) {
		key, err := membership.GenerateKey()
		if err != nil {
			return nil, fmt.Errorf("dev --secure: gossip key: %w", err)
		}
		if err := membership.WriteKeyFile(keyFile, [][]byte{key}); err != nil {
			return nil, fmt.Errorf("dev --secure: gossip key: %w", err)
		}
	}
	return &devSecurity{dir: dir}, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// configure gives a node its certificate, the gossip key and a cluster
// name, and turns client authentication on.
func (s *devSecurity) configure(cfg *cluster.Config, logger *slog.Logger) error {
	cfg.GossipKeyFile = filepath.Join(s.dir, "gossip.key")
	cfg.ClusterName = "skiff-dev"
	crt, key := certs.Paths(s.dir, cfg.ID)
	r, err := certs.NewReloader(certs.Files{CertFile: crt, KeyFile: key, CAFile: filepath.Join(s.dir, "ca.crt")}, logger)
	if err != nil {
		return fmt.Errorf("dev --secure: %s: %w", cfg.ID, err)
	}
	cfg.TLS = r
	// The admin certificate printed for the shell is the super user, so
	// it can manage users; everyone else must authenticate.
	cfg.ClientAuth = !s.noAuth
	cfg.SuperUsers = []string{"User:" + devAdmin}
	return nil
}

// printExports writes the lines a shell evaluates to talk to the cluster.
func (s *devSecurity) printExports(out io.Writer, brokers []string) {
	crt, key := certs.Paths(s.dir, devAdmin)
	fmt.Fprintf(out, "export SKIFF_BROKERS=%s\n", strings.Join(brokers, ","))
	fmt.Fprintf(out, "export SKIFF_TLS_CA_FILE=%s\n", filepath.Join(s.dir, "ca.crt"))
	fmt.Fprintf(out, "export SKIFF_TLS_CERT_FILE=%s\n", crt)
	fmt.Fprintf(out, "export SKIFF_TLS_KEY_FILE=%s\n", key)
}
