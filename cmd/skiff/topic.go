package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/skiff-mq/skiff/client"
)

func newTopicCommand(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, alter and delete topics",
	}
	cmd.AddCommand(newTopicCreateCommand(o), newTopicListCommand(o), newTopicDescribeCommand(o),
		newTopicAlterCommand(o), newTopicDeleteCommand(o), newTopicReassignCommand(o))
	return cmd
}

func newTopicCreateCommand(o *clientOptions) *cobra.Command {
	var (
		partitions, replication int
		configs                 []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Long: "Creates a topic. --replication defaults to 3, or to the number of live nodes when fewer.\n" +
			"--config sets topic configs (retention.ms, durability, max.message.bytes, ...), repeatable.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfgs, err := parseKeyValues("--config", configs)
			if err != nil {
				return err
			}
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				rf := replication
				if !cmd.Flags().Changed("replication") {
					if rf, err = defaultReplication(ctx, cl); err != nil {
						return err
					}
				}
				ti, err := cl.CreateTopic(ctx, args[0], partitions, rf, cfgs)
				if err != nil {
					return err
				}
				if o.g.output == "json" {
					return writeJSON(cmd.OutOrStdout(), topicJSONOf(ti))
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "created topic %s: %d partitions, replication %d\n", ti.Name, len(ti.Partitions), rf)
				return err
			})
		},
	}
	cmd.Flags().IntVar(&partitions, "partitions", 1, "number of partitions")
	cmd.Flags().IntVar(&replication, "replication", 3, "replicas per partition")
	cmd.Flags().StringArrayVar(&configs, "config", nil, "topic config key=value (repeatable)")
	return cmd
}

// defaultReplication is 3, or the number of live nodes of a smaller cluster.
func defaultReplication(ctx context.Context, cl *client.Client) (int, error) {
	ci, err := cl.DescribeCluster(ctx)
	if err != nil {
		return 0, err
	}
	alive := 0
	for _, b := range ci.Brokers {
		if b.State == "alive" {
			alive++
		}
	}
	return max(1, min(3, alive)), nil
}

func newTopicListCommand(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List topics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				topics, err := cl.ListTopics(ctx)
				if err != nil {
					return err
				}
				if o.g.output == "json" {
					out := []topicJSON{}
					for _, ti := range topics {
						out = append(out, topicJSONOf(ti))
					}
					return writeJSON(cmd.OutOrStdout(), out)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintf(tw, "TOPIC\tPARTITIONS\tREPLICATION\tINTERNAL\n")
				for _, ti := range topics {
					rf := 0
					if len(ti.Partitions) > 0 {
						rf = len(ti.Partitions[0].Replicas)
					}
					fmt.Fprintf(tw, "%s\t%d\t%d\t%v\n", ti.Name, len(ti.Partitions), rf, ti.Internal)
				}
				return tw.Flush()
			})
		},
	}
}

func newTopicDescribeCommand(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a topic's configs and, per partition, leader, replicas, in-sync replicas and offsets",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				ti, err := cl.DescribeTopic(ctx, args[0])
				if err != nil {
					return err
				}
				if o.g.output == "json" {
					return writeJSON(cmd.OutOrStdout(), topicJSONOf(ti))
				}
				return printTopic(cmd.OutOrStdout(), ti)
			})
		},
	}
}

func newTopicAlterCommand(o *clientOptions) *cobra.Command {
	var (
		set, del   []string
		partitions int
	)
	cmd := &cobra.Command{
		Use:   "alter NAME",
		Short: "Change a topic's configs or add partitions",
		Long: "Changes a topic's configs (--config, --delete-config) and/or grows it to --partitions N.\n" +
			"Partitions are only ever added: a count at or below the current one is refused. Keys map\n" +
			"to partitions by count, so records of a key written after the change may land on another\n" +
			"partition than before. Consumer groups pick the new partitions up by themselves.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfgs, err := parseKeyValues("--config", set)
			if err != nil {
				return err
			}
			grow := cmd.Flags().Changed("partitions")
			if grow && partitions < 1 {
				return fmt.Errorf("--partitions %d: must be at least 1 (and more than the topic has)", partitions)
			}
			if len(cfgs) == 0 && len(del) == 0 && !grow {
				return fmt.Errorf("nothing to change: give --partitions N, --config key=value or --delete-config key")
			}
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				var ti client.TopicInfo
				var msgs []string
				if grow {
					before, err := cl.DescribeTopic(ctx, args[0])
					if err != nil {
						return err
					}
					if ti, err = cl.CreatePartitions(ctx, args[0], partitions); err != nil {
						return err
					}
					msgs = append(msgs, fmt.Sprintf("partitions: %d -> %d", len(before.Partitions), len(ti.Partitions)))
				}
				if len(cfgs) > 0 || len(del) > 0 {
					if ti, err = cl.AlterTopicConfig(ctx, args[0], cfgs, del); err != nil {
						return err
					}
					msgs = append(msgs, "configs: "+dash(formatConfigs(ti.Configs)))
				}
				if o.g.output == "json" {
					return writeJSON(cmd.OutOrStdout(), topicJSONOf(ti))
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "altered topic %s; %s\n", ti.Name, strings.Join(msgs, "; "))
				return err
			})
		},
	}
	cmd.Flags().StringArrayVar(&set, "config", nil, "config key=value to set (repeatable)")
	cmd.Flags().StringArrayVar(&del, "delete-config", nil, "config key to reset to its default (repeatable)")
	cmd.Flags().IntVar(&partitions, "partitions", 0, "grow the topic to this many partitions (never shrinks)")
	return cmd
}

func newTopicReassignCommand(o *clientOptions) *cobra.Command {
	var (
		partition int32
		replicas  []string
	)
	cmd := &cobra.Command{
		Use:   "reassign NAME --partition P --replicas n1,n2,n3",
		Short: "Move one partition's replicas to the nodes given",
		Long: "Replaces a partition's replicas by the nodes given (the first becomes its preferred leader).\n" +
			"The leader adds the new replicas, waits for them to catch up, then drops the old ones;\n" +
			"the partition stays writable throughout. Watch the move with `skiff topic describe NAME`.\n" +
			"A dead, unknown or decommissioning node is refused.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("partition") {
				return fmt.Errorf("--partition is required")
			}
			ids := splitList(replicas)
			if len(ids) == 0 {
				return fmt.Errorf("--replicas is required: node ids, comma-separated (see skiff node list)")
			}
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				ti, err := cl.ReassignPartition(ctx, args[0], partition, ids)
				if err != nil {
					return err
				}
				if o.g.output == "json" {
					return writeJSON(cmd.OutOrStdout(), topicJSONOf(ti))
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "reassigned %s/%d to %s; the move completes in the background (skiff topic describe %s)\n",
					ti.Name, partition, strings.Join(ids, ","), ti.Name)
				return err
			})
		},
	}
	cmd.Flags().Int32Var(&partition, "partition", 0, "the partition to move")
	cmd.Flags().StringSliceVar(&replicas, "replicas", nil, "node ids to hold the partition, the preferred leader first")
	return cmd
}

func newTopicDeleteCommand(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a topic and all its records",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				if err := cl.DeleteTopic(ctx, args[0]); err != nil {
					return err
				}
				if o.g.output == "json" {
					return writeJSON(cmd.OutOrStdout(), map[string]string{"deleted": args[0]})
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "deleted topic %s\n", args[0])
				return err
			})
		},
	}
}

// parseKeyValues parses repeated key=value flag values.
func parseKeyValues(flag string, items []string) (map[string]string, error) {
	out := map[string]string{}
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want key=value", flag, it)
		}
		out[k] = v
	}
	return out, nil
}

func formatConfigs(cfgs map[string]string) string {
	keys := make([]string, 0, len(cfgs))
	for k := range cfgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + cfgs[k]
	}
	return strings.Join(parts, ", ")
}

type topicJSON struct {
	Name       string            `json:"name"`
	ID         uint64            `json:"id"`
	Internal   bool              `json:"internal"`
	Configs    map[string]string `json:"configs"`
	Partitions []partitionJSON   `json:"partitions"`
	// Bounds is set for a bounded topic (max.messages or max.bytes).
	Bounds *boundsJSON `json:"bounds,omitempty"`
}

// boundsJSON is a bounded topic's limits; 0 = that bound is unset.
type boundsJSON struct {
	MaxMessages    int64  `json:"max_messages"`
	MaxBytes       int64  `json:"max_bytes"`
	OverflowPolicy string `json:"overflow_policy"`
}

// topicBounds reads the bounds from a topic's configs; nil when unbounded.
func topicBounds(configs map[string]string) *boundsJSON {
	b := &boundsJSON{OverflowPolicy: configs["overflow.policy"]}
	b.MaxMessages, _ = strconv.ParseInt(configs["max.messages"], 10, 64)
	b.MaxBytes, _ = strconv.ParseInt(configs["max.bytes"], 10, 64)
	b.MaxMessages, b.MaxBytes = max(b.MaxMessages, 0), max(b.MaxBytes, 0)
	if b.MaxMessages == 0 && b.MaxBytes == 0 {
		return nil
	}
	if b.OverflowPolicy == "" {
		b.OverflowPolicy = "reject"
	}
	return b
}

// compacted reports whether a topic's cleanup.policy includes compact.
func compacted(configs map[string]string) bool {
	return strings.Contains(configs["cleanup.policy"], "compact")
}

func formatBounds(b *boundsJSON) string {
	bound := func(n int64) string {
		if n == 0 {
			return "unbounded"
		}
		return strconv.FormatInt(n, 10)
	}
	return fmt.Sprintf("max.messages=%s max.bytes=%s overflow.policy=%s", bound(b.MaxMessages), bound(b.MaxBytes), b.OverflowPolicy)
}

type partitionJSON struct {
	Partition      int32    `json:"partition"`
	Leader         string   `json:"leader"`
	LeaderAddr     string   `json:"leader_addr"`
	Replicas       []string `json:"replicas"`
	InSync         []string `json:"in_sync"`
	HighWatermark  int64    `json:"high_watermark"`
	LogStartOffset int64    `json:"log_start_offset"`
	// DirtyRatio is set for compacted topics: the share of obsolete
	// records, -1 when the answering broker does not know it.
	DirtyRatio *float64 `json:"dirty_ratio,omitempty"`
}

func topicJSONOf(ti client.TopicInfo) topicJSON {
	out := topicJSON{Name: ti.Name, ID: ti.ID, Internal: ti.Internal, Configs: ti.Configs, Partitions: []partitionJSON{}, Bounds: topicBounds(ti.Configs)}
	for _, p := range ti.Partitions {
		out.Partitions = append(out.Partitions, partitionJSON{
			Partition: p.Partition, Leader: p.Leader, LeaderAddr: p.LeaderAddr,
			Replicas: nonNil(p.Replicas), InSync: nonNil(p.InSync),
			HighWatermark: p.HighWatermark, LogStartOffset: p.LogStartOffset,
		})
		if compacted(ti.Configs) {
			ratio := p.DirtyRatio
			out.Partitions[len(out.Partitions)-1].DirtyRatio = &ratio
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func printTopic(w io.Writer, ti client.TopicInfo) error {
	fmt.Fprintf(w, "topic: %s (id %d)", ti.Name, ti.ID)
	if ti.Internal {
		fmt.Fprint(w, ", internal")
	}
	fmt.Fprintf(w, "\nconfigs: %s\n", dash(formatConfigs(ti.Configs)))
	if b := topicBounds(ti.Configs); b != nil {
		// Each partition holds at most the bounds; RECORDS shows how full.
		fmt.Fprintf(w, "bounds: %s (per partition)\n", formatBounds(b))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	dirty := compacted(ti.Configs)
	header := "PARTITION\tLEADER\tREPLICAS\tIN-SYNC\tHIGH-WATERMARK\tLOG-START\tRECORDS"
	if dirty {
		header += "\tDIRTY-RATIO"
	}
	fmt.Fprintln(tw, header)
	for _, p := range ti.Partitions {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%d", p.Partition, dash(p.Leader),
			dash(strings.Join(p.Replicas, ",")), dash(strings.Join(p.InSync, ",")), p.HighWatermark, p.LogStartOffset,
			p.HighWatermark-p.LogStartOffset)
		if dirty {
			// RECORDS counts offsets: a compacted log has gaps, so it is an
			// upper bound there; the dirty ratio says how much is obsolete.
			if p.DirtyRatio < 0 {
				fmt.Fprint(tw, "\t-")
			} else {
				fmt.Fprintf(tw, "\t%.2f", p.DirtyRatio)
			}
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
