package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/rpc"
)

// serverLimits are the limits that protect a node from one client and are
// not part of cluster.Config: the gRPC server's and its listener's.
type serverLimits struct {
	maxRequestBytes      int
	maxConcurrentStreams int
	maxConnectionsPerIP  int // 0 = unlimited
}

func defaultServerLimits() serverLimits {
	d := rpc.DefaultConfig()
	return serverLimits{
		maxRequestBytes:      d.MaxRecvMsgBytes,
		maxConcurrentStreams: d.MaxConcurrentStreams,
		maxConnectionsPerIP:  rpc.DefaultMaxConnectionsPerIP,
	}
}

// addLimitFlags registers the limit flags of `skiff server` (each also set
// by SKIFF_<FLAG>, see applyEnv): the server's into lim, the cluster's
// into cfg (checked by cluster.Config.Validate). README's "Limits" table
// lists them.
func addLimitFlags(f *pflag.FlagSet, lim *serverLimits, cfg *cluster.Config) {
	f.IntVar(&lim.maxRequestBytes, "max-request-bytes", lim.maxRequestBytes,
		fmt.Sprintf("largest request message accepted, in bytes; topics may not have a max.message.bytes above it minus %d bytes of envelope (in [%d, %d]; set the same on every node)",
			rpc.RequestEnvelopeBytes, rpc.MinMaxRequestBytes, rpc.MaxRequestBytesCeiling))
	f.IntVar(&lim.maxConcurrentStreams, "max-concurrent-streams", lim.maxConcurrentStreams,
		"calls in flight on one client connection; further calls wait for a slot")
	f.IntVar(&lim.maxConnectionsPerIP, "max-connections-per-ip", lim.maxConnectionsPerIP,
		"open gRPC connections per client IP; further ones are closed at accept (0 = unlimited)")
	f.IntVar(&cfg.Limits.MaxTopics, "max-topics", cfg.Limits.MaxTopics,
		"topics the cluster may hold, internal ones included; creating more fails (set the same on every node)")
	f.IntVar(&cfg.Limits.MaxTotalPartitions, "max-partitions", cfg.Limits.MaxTotalPartitions,
		"partitions all topics together may have, internal ones included; a topic that would pass it is refused (set the same on every node)")
	f.IntVar(&cfg.Groups.MaxGroupMembers, "max-group-members", cfg.Groups.MaxGroupMembers,
		"members of one consumer or share group; further joins fail until members leave or time out")
}

// validate reports a limit out of range, naming its flag, before anything
// is bound or started.
func (l serverLimits) validate(cfg cluster.Config) error {
	if err := l.rpcConfig().Validate(); err != nil {
		return err
	}
	if err := cfg.Limits.Validate(); err != nil {
		return err
	}
	if cfg.Groups.MaxGroupMembers < 1 {
		return fmt.Errorf("--max-group-members %d: must be at least 1", cfg.Groups.MaxGroupMembers)
	}
	if l.maxConnectionsPerIP < 0 {
		return fmt.Errorf("--max-connections-per-ip %d: must be 0 (unlimited) or more", l.maxConnectionsPerIP)
	}
	return nil
}

// rpcConfig is the gRPC server's Config with these limits.
func (l serverLimits) rpcConfig() rpc.Config {
	c := rpc.DefaultConfig()
	c.MaxRecvMsgBytes = l.maxRequestBytes
	c.MaxConcurrentStreams = l.maxConcurrentStreams
	return c
}
