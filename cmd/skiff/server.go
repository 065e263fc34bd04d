package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/internal/certs"
	"github.com/skiff-mq/skiff/rpc"
)

func newServerCommand() *cobra.Command {
	cfg := cluster.DefaultConfig()
	var join []string
	var logLevel string
	var tlsFiles certs.Files
	var listeners listenerSpecs
	limits := defaultServerLimits()
	gcPct, idleGCPct := 100, defaultIdleGCPercent
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a Skiff node",
		Long: "Runs one node. Three nodes started with the same --bootstrap-expect 3 and --join of each other\n" +
			"form a cluster with no other step; a restarted node rejoins with its data.\n" +
			"Every flag can also be set by the environment variable SKIFF_<FLAG> (e.g. SKIFF_DATA_DIR).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("listener") {
				if err := listenersFromEnv(&listeners); err != nil {
					return err
				}
			}
			if err := applyEnv(cmd.Flags()); err != nil {
				return err
			}
			grpcAddrSet := cmd.Flags().Changed("grpc-addr")
			if err := limits.validate(cfg); err != nil {
				return err
			}
			gc, err := gcPlan(cmd.Flags().Changed("gc-percent"), gcPct, cmd.Flags().Changed("idle-gc-percent"), idleGCPct, os.LookupEnv)
			if err != nil {
				return err
			}
			defer startGCTuner(gc)()
			cfg.Join = splitList(join)
			logger, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			cfg.Logger = logger
			if tlsFiles.Enabled() {
				if cfg.TLS, err = certs.NewReloader(tlsFiles, logger); err != nil {
					return err
				}
			}
			bound, err := bindListeners(&cfg, listeners, grpcAddrSet)
			if err != nil {
				return err
			}
			return runNodeOn(cmd.Context(), cfg, bound, limits, nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ID, "id", "", "node id (default: persisted in the data dir, generated on first start)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for this node's data (required)")
	f.StringVar(&cfg.GRPCAddr, "grpc-addr", cfg.GRPCAddr, "client API address")
	f.StringVar(&cfg.RaftAddr, "raft-addr", cfg.RaftAddr, "Raft address (all partitions share it)")
	f.StringVar(&cfg.GossipAddr, "gossip-addr", cfg.GossipAddr, "gossip address (UDP and TCP)")
	f.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "HTTP address: /metrics, /healthz, /readyz, /v1/cluster, /v1/topics, the web console at /ui/")
	f.StringVar(&cfg.AdvertiseHost, "advertise-host", "", "host other nodes and clients use to reach this node (default: the bind host)")
	f.StringVar(&cfg.AdvertiseGRPCAddr, "advertise-grpc-addr", "", "client address published for this node when clients reach it differently from its peers (e.g. a published container port)")
	f.StringSliceVar(&join, "join", nil, "gossip addresses of other nodes (host:port,...)")
	f.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", 0, "number of nodes that form a new cluster together (same value on each)")
	f.DurationVar(&cfg.ReplaceAfter, "replace-after", cfg.ReplaceAfter, "how long a node may be dead before its replicas move elsewhere")
	f.BoolVar(&cfg.AutoRebalance, "auto-rebalance", cfg.AutoRebalance, "rebalance replicas and leaders when a node joins (skiff cluster rebalance)")
	f.IntVar(&cfg.MaxConcurrentMoves, "max-concurrent-moves", cfg.MaxConcurrentMoves, "partitions a decommission or rebalance moves at once")
	f.Int64Var(&cfg.MinFreeBytes, "min-free-bytes", cfg.MinFreeBytes, "free disk bytes under which the node refuses writes and new replicas and leads nothing (the smaller of this and --min-free-percent applies; 0: off)")
	f.Float64Var(&cfg.MinFreePercent, "min-free-percent", cfg.MinFreePercent, "free disk share (percent) under which the node is degraded, as --min-free-bytes (0: off)")
	f.DurationVar(&cfg.DiskCheckInterval, "disk-check-interval", cfg.DiskCheckInterval, "how often the node measures its free disk space")
	f.StringVar(&cfg.Rack, "rack", "", "rack or zone of this node; replicas of a partition spread over racks")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	addListenerFlags(f, &listeners) // --listener: listeners.go
	addServerTLSFlags(f, &tlsFiles)
	f.BoolVar(&cfg.ClientAuth, "auth", false, "require every client call to authenticate: a client certificate of the cluster CA, or --user/--password over TLS (needs the --tls-* flags)")
	f.StringSliceVar(&cfg.SuperUsers, "super-users", nil, "principals that may manage users (and will bypass ACLs), e.g. User:admin,User:ops")
	addGossipFlags(f, &cfg)         // --gossip-key-file, --cluster-name: gossipkeys.go
	addLimitFlags(f, &limits, &cfg) // --max-request-bytes, --max-connections-per-ip, ...: limits.go
	// Memory budgets shared by every partition replica of the node.
	f.Int64Var(&cfg.PartitionMemory.EntryCacheBytes, "raft-entry-cache-bytes", cfg.PartitionMemory.EntryCacheBytes, "bytes of recent Raft entries kept in memory for replication, across all partitions")
	f.Int64Var(&cfg.PartitionMemory.ProduceBytes, "produce-buffer-bytes", cfg.PartitionMemory.ProduceBytes, "bytes of produced batches in flight (handed to Raft, not yet acknowledged) across all partitions; produces wait for room")
	f.Int64Var(&cfg.PartitionMemory.CatchUpBytesPerSecond, "catchup-bytes-per-sec", cfg.PartitionMemory.CatchUpBytesPerSecond, "bytes per second this node takes in as snapshots from partition leaders (new replicas of moves and rebalances, replicas far behind), all partitions together; 0 = unthrottled")
	f.Int64Var(&cfg.PartitionMemory.FetchBytes, "fetch-buffer-bytes", cfg.PartitionMemory.FetchBytes, "bytes being read for fetches at once across all partitions (also the most one fetch reads); fetches wait for room")
	f.DurationVar(&cfg.Partition.Raft.HeartbeatTimeout, "raft-heartbeat-timeout", cfg.Partition.Raft.HeartbeatTimeout, "Raft groups (partitions and meta): a follower that hears nothing from its leader for this long (and up to twice as long, randomised) starts an election; leaders heartbeat every tenth of it. Lower fails over faster from pauses and network cuts, at more heartbeat traffic and more spurious elections on a starved CPU (a dead process is noticed at once anyway)")
	f.DurationVar(&cfg.Partition.Raft.ElectionTimeout, "raft-election-timeout", cfg.Partition.Raft.ElectionTimeout, "Raft groups: how long a candidate waits for votes before it tries again")
	f.DurationVar(&cfg.Partition.Raft.LeaderLeaseTimeout, "raft-leader-lease-timeout", cfg.Partition.Raft.LeaderLeaseTimeout, "Raft groups: a leader that has heard from no quorum for this long steps down; at most --raft-heartbeat-timeout")
	f.IntVar(&cfg.Partition.Raft.MaxAppendBytes, "raft-max-append-bytes", cfg.Partition.Raft.MaxAppendBytes, "most bytes of entries in one Raft AppendEntries RPC (larger ones are split)")
	f.IntVar(&gcPct, "gc-percent", gcPct, "Go garbage collector target (GOGC) under load: the heap may grow by this percent of the live heap between collections; -1 turns collection off (GOGC in the environment applies when neither GC flag is given)")
	f.IntVar(&idleGCPct, "idle-gc-percent", idleGCPct, "collector target while the node allocates under 32 MiB/s (idle): lower keeps an idle node's memory small at little CPU cost; 0 keeps --gc-percent always")
	f.IntVar(&cfg.Partition.Raft.MaxAppendEntries, "raft-max-append-entries", cfg.Partition.Raft.MaxAppendEntries, "most entries a partition leader loads for one AppendEntries (bounds its memory per follower)")
	return cmd
}

// addServerTLSFlags registers the node's certificate flags. With them the
// node serves gRPC, HTTP and the Raft port over TLS, and peers must present
// node certificates from the same CA; the files are reloaded on SIGHUP and
// when they change.
func addServerTLSFlags(f *pflag.FlagSet, files *certs.Files) {
	f.StringVar(&files.CertFile, "tls-cert-file", "", "this node's certificate (PEM; must name the node as skiff://node/<id>, see skiff certs create); enables TLS on every port")
	f.StringVar(&files.KeyFile, "tls-key-file", "", "the key of --tls-cert-file (PEM)")
	f.StringVar(&files.CAFile, "tls-ca-file", "", "the cluster CA (PEM) that signs node and client certificates")
}

// applyEnv sets every flag the command line left alone from SKIFF_<FLAG>.
func applyEnv(flags *pflag.FlagSet) error {
	var err error
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		name := "SKIFF_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if workerEnv[name] {
			return
		}
		if v, ok := os.LookupEnv(name); ok {
			if serr := flags.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}

// workerEnv are the variables `consume --share-group --exec` sets for its
// command: they describe the record being processed, so a skiff started
// by that command must not take them for its own flags (a `skiff produce`
// in a worker script would otherwise write to the record's partition).
var workerEnv = map[string]bool{
	"SKIFF_KEY": true, "SKIFF_KEY_BASE64": true, "SKIFF_TOPIC": true, "SKIFF_PARTITION": true,
	"SKIFF_OFFSET": true, "SKIFF_DELIVERY_COUNT": true,
}

func splitList(items []string) []string {
	var out []string
	for _, it := range items {
		for _, s := range strings.Split(it, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// runNode starts a node and its gRPC server, calls started (if given) once
// both run, and on ctx's end shuts down gracefully: leadership handed away,
// gossip left, then everything stopped in reverse order.
func runNode(ctx context.Context, cfg cluster.Config, limits serverLimits, started func(*cluster.Node, *rpc.Server)) error {
	bound, err := bindListeners(&cfg, nil, false)
	if err != nil {
		return err
	}
	return runNodeOn(ctx, cfg, bound, limits, started)
}

// runNodeOn is runNode with the client listeners bound (bindListeners); it
// closes them when it fails to start.
func runNodeOn(ctx context.Context, cfg cluster.Config, bound []boundListener, limits serverLimits, started func(*cluster.Node, *rpc.Server)) error {
	closeBound := func() {
		for _, b := range bound {
			b.ln.Close()
		}
	}
	auth := rpc.AuthConfig{Enabled: cfg.ClientAuth, SuperUsers: splitList(cfg.SuperUsers), PasswordHash: cfg.PasswordHash}
	if err := auth.Validate(); err != nil {
		closeBound()
		return fmt.Errorf("--super-users: %w", err)
	}
	if auth.Enabled && cfg.TLS == nil {
		closeBound()
		return fmt.Errorf("--auth needs TLS (--tls-cert-file, --tls-key-file, --tls-ca-file): client certificates exist only under TLS and passwords travel only over it")
	}
	node, err := cluster.Start(ctx, cfg)
	if err != nil {
		closeBound()
		return err
	}
	opts := []rpc.Option{rpc.WithConfig(limits.rpcConfig()), rpc.WithLogger(cfg.Logger), rpc.WithAuth(auth)}
	if cfg.TLS != nil {
		opts = append(opts, rpc.WithTLS(cfg.TLS.ServerConfig()))
		rctx, stopReload := context.WithCancel(ctx)
		defer stopReload()
		go cfg.TLS.Run(rctx, 0)
	}
	srv := rpc.NewServer(node, opts...)
	ui, err := mountConsole(node, cfg, bound[0].ln.Addr()) // console.go
	if err != nil {
		closeBound()
		srv.Stop(context.Background())
		node.Close(context.Background())
		return fmt.Errorf("web console: %w", err)
	}
	defer ui.Close()
	serveErr := make(chan error, len(bound))
	limit := rpc.LimitConnectionsPerIP(bound[0].ln, limits.maxConnectionsPerIP, node.Registry())
	for i, b := range bound {
		var ln net.Listener = limit
		if i > 0 {
			ln = limit.Also(b.ln) // one per-IP budget across listeners
		}
		if b.name == "" {
			go func() { serveErr <- srv.Serve(ln) }()
		} else {
			go func() { serveErr <- srv.ServeListener(b.name, ln) }()
		}
	}
	if started != nil {
		started(node, srv)
	}
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.Stop(sctx)
	if cerr := node.Close(sctx); err == nil {
		err = cerr
	}
	return err
}
