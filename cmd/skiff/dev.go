package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/rpc"
)

// devOptions are `skiff dev`'s flags.
type devOptions struct {
	nodes    int
	dir      string
	basePort int
	logLevel string
	secure   bool
	auth     bool
}

func newDevCommand() *cobra.Command {
	o := &devOptions{}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local cluster in one process (the quickest way to try Skiff)",
		Long: "Starts --nodes nodes on 127.0.0.1; node i listens at base+10*i (gRPC), +1 (Raft), +2 (gossip), +3 (HTTP).\n" +
			"Prints one line `brokers: ...` when the cluster is ready, runs until interrupted, then shuts down cleanly.\n" +
			"Data lives in a fresh temporary directory, removed on exit, unless --dir keeps it across runs.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return err
			}
			return runDev(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.nodes, "nodes", 3, "number of nodes")
	f.StringVar(&o.dir, "dir", "", "data directory kept across runs (default: a temporary one, removed on exit)")
	f.IntVar(&o.basePort, "base-port", 9400, "gRPC port of node 0; node i uses base+10*i .. base+10*i+3")
	f.StringVar(&o.logLevel, "log-level", "warn", "debug, info, warn or error")
	f.BoolVar(&o.auth, "auth", true, "with --secure: require client authentication, with User:admin (the printed certificate) as super user; --auth=false leaves TLS on and authentication off")
	f.BoolVar(&o.secure, "secure", false, "TLS on every port, mTLS between nodes and encrypted gossip; certificates and the gossip key go under DIR/certs, and the `export SKIFF_...` lines a shell needs are printed")
	return cmd
}

func (o *devOptions) validate() error {
	if o.nodes < 1 || o.nodes > 9 {
		return fmt.Errorf("--nodes %d: want 1 to 9", o.nodes)
	}
	if o.basePort < 1 || o.basePort+10*o.nodes > 65535 {
		return fmt.Errorf("--base-port %d: ports up to %d must be valid", o.basePort, o.basePort+10*o.nodes)
	}
	return nil
}

func runDev(ctx context.Context, o *devOptions, out interface{ Write([]byte) (int, error) }) error {
	if err := o.validate(); err != nil {
		return err
	}
	logger, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "skiff-dev-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	addr := func(i, off int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(o.basePort+10*i+off)) }
	var gossip, brokers, ids []string
	for i := 0; i < o.nodes; i++ {
		gossip = append(gossip, addr(i, 2))
		brokers = append(brokers, addr(i, 0))
		ids = append(ids, fmt.Sprintf("node-%d", i))
	}
	var sec *devSecurity
	if o.secure {
		if sec, err = prepareDevSecurity(filepath.Join(dir, "certs"), ids); err != nil {
			return err
		}
		sec.noAuth = !o.auth
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		nodes []devNode
		errs  = make(chan error, o.nodes)
	)
	for i := 0; i < o.nodes; i++ {
		cfg := cluster.DefaultConfig()
		cfg.ID = fmt.Sprintf("node-%d", i)
		cfg.DataDir = fmt.Sprintf("%s/node-%d", dir, i)
		cfg.GRPCAddr, cfg.RaftAddr, cfg.GossipAddr, cfg.HTTPAddr = addr(i, 0), addr(i, 1), addr(i, 2), addr(i, 3)
		cfg.Join = gossip
		cfg.BootstrapExpect = o.nodes
		cfg.MetaVoters = min(3, o.nodes)
		if cfg.MetaVoters == 2 {
			cfg.MetaVoters = 1
		}
		cfg.Logger = logger
		if sec != nil {
			if err := sec.configure(&cfg, logger); err != nil {
				return err
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := runNode(ctx, cfg, defaultServerLimits(), func(n *cluster.Node, srv *rpc.Server) {
				mu.Lock()
				nodes = append(nodes, devNode{n, srv})
				mu.Unlock()
			})
			if err != nil {
				errs <- fmt.Errorf("%s: %w", cfg.ID, err)
				cancel()
			}
		}()
	}
	ready := make(chan struct{})
	go func() {
		if waitDevReady(ctx, o.nodes, func() []devNode { mu.Lock(); defer mu.Unlock(); return append([]devNode(nil), nodes...) }) == nil {
			close(ready)
		}
	}()
	select {
	case <-ready:
		fmt.Fprintf(out, "brokers: %s\n", strings.Join(brokers, ","))
		if sec != nil {
			sec.printExports(out, brokers)
		}
	case <-ctx.Done():
	}
	<-ctx.Done()
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

type devNode struct {
	node *cluster.Node
	srv  *rpc.Server
}

// waitDevReady waits until every node runs, is ready, sees all others and
// answers health checks with SERVING.
func waitDevReady(ctx context.Context, count int, nodes func() []devNode) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		ns := nodes()
		ok := len(ns) == count
		for _, n := range ns {
			if !n.node.Ready() || len(n.node.Metadata().Brokers) != count || !n.srv.Serving() {
				ok = false
			}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
