package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/skiff-mq/skiff/client"
)

// clientOptions are the flags of every verb that talks to a cluster
// (topic, produce, consume, cluster): where the cluster is and how long to
// wait for it.
type clientOptions struct {
	g       *globalOptions
	brokers []string
	timeout time.Duration
	tls     tlsOptions
	login   loginOptions
}

// newClientCommands registers --brokers, --timeout and the --tls-* flags
// on the root's persistent flags and returns the verbs that use them.
// (Being the root's, the --tls-* flags reach health and chaos run too.)
func newClientCommands(persistent *pflag.FlagSet, g *globalOptions) []*cobra.Command {
	o := &clientOptions{g: g}
	persistent.StringSliceVar(&o.brokers, "brokers", []string{"127.0.0.1:9400"}, "gRPC addresses of any cluster nodes (host:port,...)")
	persistent.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long a command (or each request of produce) may take")
	registerTLSFlags(persistent, &o.tls)
	registerLoginFlags(persistent, &o.login)
	return []*cobra.Command{newTopicCommand(o), newACLCommand(o), newQuotaCommand(o), newProduceCommand(o), newConsumeCommand(o), newGroupCommand(o), newShareCommand(o), newDLQCommand(o), newClusterCommand(o), newNodeCommand(o), newBenchCommand(o), newUserCommand(o), newDemoCommand(o)}
}

// prepare applies SKIFF_* environment variables (SKIFF_BROKERS, ...) to
// the flags left unset and checks the global ones.
func (o *clientOptions) prepare(cmd *cobra.Command) error {
	if err := applyEnv(cmd.Flags()); err != nil {
		return err
	}
	return o.g.validate()
}

// connect opens a client to the cluster.
func (o *clientOptions) connect(ctx context.Context) (*client.Client, error) {
	if o.timeout <= 0 {
		return nil, fmt.Errorf("--timeout %v: must be positive", o.timeout)
	}
	cfg := client.Config{
		Brokers:        splitList(o.brokers),
		DialTimeout:    min(5*time.Second, o.timeout),
		RequestTimeout: o.timeout,
	}
	if len(cfg.Brokers) == 0 {
		return nil, fmt.Errorf("--brokers: no address given")
	}
	var err error
	if cfg.TLS, err = o.tls.config(); err != nil {
		return nil, err
	}
	if cfg.User, cfg.Password, err = o.login.credentials(cfg.TLS != nil); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	cl, err := client.New(ctx, cfg)
	return cl, o.tls.explain(err)
}

// run connects, runs fn within --timeout, and closes the client: the shape
// of every admin verb.
func (o *clientOptions) run(cmd *cobra.Command, fn func(ctx context.Context, cl *client.Client) error) error {
	if err := o.prepare(cmd); err != nil {
		return err
	}
	cl, err := o.connect(cmd.Context())
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	return fn(ctx, cl)
}

func newClusterCommand(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect the cluster",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Show the nodes, the controller and partition health",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				ci, err := cl.DescribeCluster(ctx)
				if err != nil {
					return err
				}
				if o.g.output == "json" {
					return writeJSON(cmd.OutOrStdout(), clusterJSON(ci))
				}
				return printCluster(cmd.OutOrStdout(), ci)
			})
		},
	})
	cmd.AddCommand(newGossipKeysCommand(o), newRebalanceCommand(o))
	return cmd
}

type rebalanceMoveJSON struct {
	Topic      string   `json:"topic"`
	Partition  int32    `json:"partition"`
	From       []string `json:"from"`
	To         []string `json:"to"`
	LeaderOnly bool     `json:"leader_only"`
}

type rebalanceJSON struct {
	DryRun   bool                `json:"dry_run"`
	Applying bool                `json:"applying"`
	Moves    []rebalanceMoveJSON `json:"moves"`
}

func newRebalanceCommand(o *clientOptions) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "rebalance",
		Short: "Even replicas and leaders over the live nodes",
		Long: "Computes a plan that evens replicas, then preferred leaders, over the live nodes that may\n" +
			"hold replicas (not dead, not being decommissioned): rack-aware (a partition never ends on\n" +
			"fewer racks), with few moves (one replica at a time from the most to the least loaded node).\n" +
			"Without --dry-run the node applies it in the background, a few partitions catching up at a\n" +
			"time (skiff server --max-concurrent-moves); skiff node list shows the load as it evens out.\n" +
			"A node that joins triggers the same when the servers run with --auto-rebalance (default).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				moves, applying, err := cl.Rebalance(ctx, dryRun)
				if err != nil {
					return err
				}
				if o.g.output == "json" {
					out := rebalanceJSON{DryRun: dryRun, Applying: applying, Moves: []rebalanceMoveJSON{}}
					for _, m := range moves {
						out.Moves = append(out.Moves, rebalanceMoveJSON{Topic: m.Topic, Partition: m.Partition, From: nonNil(m.From), To: nonNil(m.To), LeaderOnly: m.LeaderOnly})
					}
					return writeJSON(cmd.OutOrStdout(), out)
				}
				return printRebalance(cmd.OutOrStdout(), moves, dryRun, applying)
			})
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show the plan without applying it")
	return cmd
}

func printRebalance(w io.Writer, moves []client.RebalanceMove, dryRun, applying bool) error {
	if len(moves) == 0 {
		_, err := fmt.Fprintln(w, "balanced: nothing to move")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "TOPIC\tPARTITION\tFROM\tTO\tKIND\n")
	replicas := 0
	for _, m := range moves {
		kind := "replicas"
		if m.LeaderOnly {
			kind = "leader"
		} else {
			replicas++
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", m.Topic, m.Partition, strings.Join(m.From, ","), strings.Join(m.To, ","), kind)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	state := "dry run: nothing applied"
	if !dryRun && applying {
		state = "applying in the background (skiff node list shows progress)"
	}
	_, err := fmt.Fprintf(w, "\n%d partitions: %d replica moves, %d leader changes; %s\n", len(moves), replicas, len(moves)-replicas, state)
	return err
}

type clusterStatusJSON struct {
	ControllerID              string       `json:"controller"`
	Brokers                   []brokerJSON `json:"brokers"`
	Topics                    int          `json:"topics"`
	Partitions                int          `json:"partitions"`
	UnderReplicatedPartitions int          `json:"under_replicated_partitions"`
	OfflinePartitions         int          `json:"offline_partitions"`
}

type brokerJSON struct {
	ID    string `json:"id"`
	Addr  string `json:"addr"`
	Rack  string `json:"rack,omitempty"`
	State string `json:"state"`
	Mode  string `json:"mode,omitempty"`
}

func clusterJSON(ci client.ClusterInfo) clusterStatusJSON {
	out := clusterStatusJSON{
		ControllerID: ci.ControllerID, Brokers: []brokerJSON{}, Topics: ci.Topics, Partitions: ci.Partitions,
		UnderReplicatedPartitions: ci.UnderReplicatedPartitions, OfflinePartitions: ci.OfflinePartitions,
	}
	for _, b := range ci.Brokers {
		out.Brokers = append(out.Brokers, brokerJSON{ID: b.ID, Addr: b.Addr, Rack: b.Rack, State: b.State, Mode: b.Mode})
	}
	return out
}

func printCluster(w io.Writer, ci client.ClusterInfo) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "NODE\tADDRESS\tRACK\tSTATE\tMODE\tCONTROLLER\n")
	for _, b := range ci.Brokers {
		controller := ""
		if b.ID == ci.ControllerID {
			controller = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.Addr, dash(b.Rack), b.State, dash(b.Mode), controller)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\ncontroller: %s\ntopics: %d, partitions: %d, under-replicated: %d, offline: %d\n",
		dash(ci.ControllerID), ci.Topics, ci.Partitions, ci.UnderReplicatedPartitions, ci.OfflinePartitions)
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
