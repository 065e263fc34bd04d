package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-mq/skiff/client"
)

func newNodeCommand(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "List nodes; decommission, recommission, or put a node in maintenance",
	}
	cmd.AddCommand(newNodeListCommand(o), newNodeDecommissionCommand(o), newNodeRecommissionCommand(o), newNodeMaintenanceCommand(o))
	return cmd
}

type nodeJSON struct {
	ID          string `json:"id"`
	Addr        string `json:"addr"`
	Rack        string `json:"rack,omitempty"`
	State       string `json:"state"`
	Mode        string `json:"mode"`
	Maintenance bool   `json:"maintenance"`
	Replicas    int    `json:"replicas"`
	Leaders     int    `json:"leaders"`
	Meta        string `json:"meta"`
	Blocked     string `json:"blocked,omitempty"`
}

func nodeJSONOf(n client.NodeInfo) nodeJSON {
	return nodeJSON{ID: n.ID, Addr: n.Addr, Rack: n.Rack, State: n.State, Mode: n.Mode, Maintenance: n.Maintenance,
		Replicas: n.Replicas, Leaders: n.Leaders, Meta: n.Meta, Blocked: n.Blocked}
}

func newNodeListCommand(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the nodes with their state, mode, replicas and leaderships",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				nodes, err := cl.ListNodes(ctx)
				if err != nil {
					return err
				}
				if o.g.output == "json" {
					out := []nodeJSON{}
					for _, n := range nodes {
						out = append(out, nodeJSONOf(n))
					}
					return writeJSON(cmd.OutOrStdout(), out)
				}
				return printNodes(cmd.OutOrStdout(), nodes)
			})
		},
	}
}

func printNodes(w io.Writer, nodes []client.NodeInfo) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "NODE\tADDRESS\tRACK\tSTATE\tMODE\tREPLICAS\tLEADERS\tMETA\n")
	for _, n := range nodes {
		mode := n.Mode
		if n.Maintenance && mode != "maintenance" {
			mode += "+maintenance"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", n.ID, dash(n.Addr), dash(n.Rack), n.State, mode, n.Replicas, n.Leaders, dash(n.Meta))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range nodes {
		if n.Blocked != "" {
			if _, err := fmt.Fprintf(w, "%s: decommission blocked: %s\n", n.ID, n.Blocked); err != nil {
				return err
			}
		}
	}
	return nil
}

// watchOptions bound how long a verb follows a change it started.
type watchOptions struct {
	wait     bool
	deadline time.Duration
	interval time.Duration
}

func (w *watchOptions) register(cmd *cobra.Command, what string, wait bool, deadline time.Duration) {
	cmd.Flags().BoolVar(&w.wait, "wait", wait, "wait until "+what+", showing progress")
	cmd.Flags().DurationVar(&w.deadline, "wait-timeout", deadline, "how long --wait may take (the change goes on after it)")
	cmd.Flags().DurationVar(&w.interval, "interval", 2*time.Second, "how often --wait checks progress")
}

func (w *watchOptions) validate() error {
	if w.deadline <= 0 {
		return fmt.Errorf("--wait-timeout %v: must be positive", w.deadline)
	}
	if w.interval <= 0 {
		return fmt.Errorf("--interval %v: must be positive", w.interval)
	}
	return nil
}

// follow polls the node until done says so, printing each new progress
// line (progress returns "" when nothing new is worth saying).
func (w *watchOptions) follow(cmd *cobra.Command, cl *client.Client, id string, progress func(client.NodeInfo) string, done func(client.NodeInfo) bool) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), w.deadline)
	defer cancel()
	last := ""
	for {
		n, err := nodeByID(ctx, cl, id)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if err == nil {
			if line := progress(n); line != "" && line != last {
				fmt.Fprintln(cmd.OutOrStdout(), line)
				last = line
			}
			if done(n) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s: still in progress after %v (%s); the cluster carries on: run the command again to keep watching", id, w.deadline, last)
		case <-time.After(w.interval):
		}
	}
}

func nodeByID(ctx context.Context, cl *client.Client, id string) (client.NodeInfo, error) {
	nodes, err := cl.ListNodes(ctx)
	if err != nil {
		return client.NodeInfo{}, err
	}
	for _, n := range nodes {
		if n.ID == id {
			return n, nil
		}
	}
	return client.NodeInfo{}, fmt.Errorf("node %s: %w", id, client.ErrUnknownNode)
}

func newNodeDecommissionCommand(o *clientOptions) *cobra.Command {
	var w watchOptions
	cmd := &cobra.Command{
		Use:   "decommission ID",
		Short: "Move every replica off a node, then remove it from the metadata group",
		Long: "Marks the node for decommission: the controller moves its replicas to other nodes, a few\n" +
			"partitions at a time, then removes it from the metadata group; the node can then be stopped.\n" +
			"Running the command again for the same node resumes watching. A move that cannot be made\n" +
			"(too few other nodes) is shown with the reason. `skiff node recommission ID` cancels.\n" +
			"Refused when no other node could hold the node's replicas.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := w.validate(); err != nil {
				return err
			}
			id := args[0]
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				n, err := cl.SetNodeMode(ctx, id, client.Decommission)
				if err != nil {
					return err
				}
				if o.g.output == "json" && !w.wait {
					return writeJSON(cmd.OutOrStdout(), nodeJSONOf(n))
				}
				if !w.wait {
					_, err := fmt.Fprintf(cmd.OutOrStdout(), "decommissioning %s: %d replicas to move (skiff node list shows progress)\n", id, n.Replicas)
					return err
				}
				err = w.follow(cmd, cl, id, func(n client.NodeInfo) string {
					if n.Blocked != "" {
						return fmt.Sprintf("%s: %d replicas left; blocked: %s", id, n.Replicas, n.Blocked)
					}
					if n.Mode == "decommissioned" {
						return fmt.Sprintf("%s: decommissioned: no replicas left, out of the metadata group; the node can be stopped", id)
					}
					return fmt.Sprintf("%s: %d replicas left, %d leaderships, metadata group: %s", id, n.Replicas, n.Leaders, dash(n.Meta))
				}, func(n client.NodeInfo) bool { return n.Mode == "decommissioned" || n.Mode == "active" })
				if err != nil {
					return err
				}
				if o.g.output == "json" {
					n, err := nodeByID(cmd.Context(), cl, id)
					if err != nil {
						return err
					}
					return writeJSON(cmd.OutOrStdout(), nodeJSONOf(n))
				}
				return nil
			})
		},
	}
	w.register(cmd, "every replica has moved off", true, 30*time.Minute)
	return cmd
}

func newNodeRecommissionCommand(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "recommission ID",
		Short: "Cancel a decommission: the node may hold replicas again and rejoins the metadata group",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				n, err := cl.SetNodeMode(ctx, args[0], client.Recommission)
				if err != nil {
					return err
				}
				if o.g.output == "json" {
					return writeJSON(cmd.OutOrStdout(), nodeJSONOf(n))
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: %s; replicas moved off stay where they are\n", n.ID, n.Mode)
				return err
			})
		},
	}
}

func newNodeMaintenanceCommand(o *clientOptions) *cobra.Command {
	var w watchOptions
	cmd := &cobra.Command{
		Use:   "maintenance on|off ID",
		Short: "Drain partition and metadata leadership off a node (for an upgrade) and keep it off",
		Long: "`maintenance on ID` hands every partition the node leads, and the metadata group if it\n" +
			"leads it, to other replicas, and keeps leadership off the node until `maintenance off ID`.\n" +
			"The node keeps its replicas and stays in sync, so it can be restarted without an election\n" +
			"on any partition. With --wait (default) `on` returns once the node leads nothing.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var change client.NodeModeChange
			switch args[0] {
			case "on":
				change = client.MaintenanceOn
			case "off":
				change = client.MaintenanceOff
			default:
				return fmt.Errorf("maintenance %q: want on or off", args[0])
			}
			if err := w.validate(); err != nil {
				return err
			}
			id := args[1]
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				n, err := cl.SetNodeMode(ctx, id, change)
				if err != nil {
					return err
				}
				if change == client.MaintenanceOn && w.wait {
					err = w.follow(cmd, cl, id, func(n client.NodeInfo) string {
						return fmt.Sprintf("%s: maintenance: %d leaderships left", id, n.Leaders)
					}, func(n client.NodeInfo) bool { return n.Leaders == 0 && !isController(cmd.Context(), cl, id) })
					if err != nil {
						return err
					}
					if n, err = nodeByID(cmd.Context(), cl, id); err != nil {
						return err
					}
				}
				if o.g.output == "json" {
					return writeJSON(cmd.OutOrStdout(), nodeJSONOf(n))
				}
				if change == client.MaintenanceOn {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: maintenance on; leads %d partitions\n", id, n.Leaders)
				} else {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: maintenance off; leadership returns to it as preferred leader\n", id)
				}
				return err
			})
		},
	}
	w.register(cmd, "the node leads nothing (on only)", true, 5*time.Minute)
	return cmd
}

// isController reports whether id leads the metadata group; an error
// counts as yes, so that waiting goes on.
func isController(ctx context.Context, cl *client.Client, id string) bool {
	ci, err := cl.DescribeCluster(ctx)
	if err != nil {
		return !errors.Is(err, context.Canceled)
	}
	return ci.ControllerID == id
}
