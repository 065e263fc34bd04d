package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-mq/skiff/client"
)

func newGroupCommand(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "List, describe, reset and delete consumer groups",
	}
	cmd.AddCommand(newGroupListCommand(o), newGroupDescribeCommand(o), newGroupResetCommand(o), newGroupDeleteCommand(o))
	return cmd
}

func newGroupListCommand(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List consumer groups with their state and member count",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				groups, err := cl.ListGroups(ctx)
				if err != nil {
					return err
				}
				if o.g.output == "json" {
					if groups == nil {
						groups = []client.GroupListing{}
					}
					return writeJSON(cmd.OutOrStdout(), groups)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "GROUP\tSTATE\tMEMBERS\tCOORDINATOR")
				for _, g := range groups {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", g.Group, g.State, g.Members, g.Coordinator)
				}
				return tw.Flush()
			})
		},
	}
}

func newGroupDescribeCommand(o *clientOptions) *cobra.Command {
	cmd := newDescribeCommand(o, "Show a group's members, assignments, committed offsets and lag",
		"Shows the group's state, its members with the partitions each owns, and per partition the\n"+
			"committed offset, the high watermark and the lag (records not yet consumed: the queue depth).\n"+
			"-o json prints the same as one object.",
		func(ctx context.Context, cl *client.Client, name string) (client.GroupDescription, error) {
			return cl.DescribeGroup(ctx, name)
		},
		func(d client.GroupDescription) any { return groupJSONOf(d) }, printGroup)
	cmd.Use = "describe GROUP"
	return cmd
}

// groupJSON is `group describe -o json`.
type groupJSON struct {
	client.GroupDescription
	TotalLag int64 `json:"total_lag"`
}

func groupJSONOf(d client.GroupDescription) groupJSON {
	return groupJSON{GroupDescription: d, TotalLag: d.TotalLag()}
}

func printGroup(w io.Writer, d client.GroupDescription) error {
	fmt.Fprintf(w, "group: %s  state: %s  epoch: %d  coordinator: %s  total lag: %d\n\n", d.Group, d.State, d.Epoch, d.Coordinator, d.TotalLag())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tINSTANCE\tCLIENT\tEPOCH\tSUBSCRIPTION\tPARTITIONS")
	for _, m := range d.Members {
		sub := m.Pattern
		if sub == "" {
			sub = strings.Join(m.Topics, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", m.MemberID, dash(m.InstanceID), dash(m.ClientID), m.Epoch, sub, partitionList(m.Assigned))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tHIGH-WATERMARK\tLAG\tOWNER")
	for _, p := range d.Partitions {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", p.Topic, p.Partition, orDash(p.Committed), orDash(p.HighWatermark), orDash(p.Lag), dash(p.Owner))
	}
	return tw.Flush()
}

func orDash(n int64) string {
	if n < 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

func partitionList(tps []client.TopicPartition) string {
	if len(tps) == 0 {
		return "-"
	}
	parts := make([]string, len(tps))
	for i, tp := range tps {
		parts[i] = tp.String()
	}
	return strings.Join(parts, ",")
}

func newGroupResetCommand(o *clientOptions) *cobra.Command {
	var (
		topic      string
		to         string
		shift      int64
		partitions []int32
	)
	cmd := &cobra.Command{
		Use:   "reset-offsets GROUP --topic T (--to earliest|latest|OFFSET|@TIMESTAMP | --shift-by N)",
		Short: "Move a group's committed offsets, for replay or to skip ahead",
		Long: "Sets the group's committed offsets in the topic's partitions (all, or --partition ones):\n" +
			"--to earliest, latest, an offset, or @TIME (RFC 3339 or Unix milliseconds: the first record\n" +
			"at or after it); or --shift-by N records (negative: back), clamped to the log.\n" +
			"The group must have no active members: stop its consumers first.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if topic == "" {
				return fmt.Errorf("--topic is required")
			}
			byShift := cmd.Flags().Changed("shift-by")
			if byShift == (to != "") {
				return fmt.Errorf("give exactly one of --to and --shift-by")
			}
			spec := client.ResetSpec{Shift: shift, ByShift: byShift}
			if !byShift {
				from, err := parseFrom(to)
				if err != nil {
					return fmt.Errorf("--to: %w", err)
				}
				spec.To = from
			}
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				got, err := cl.ResetGroupOffsets(ctx, args[0], topic, spec, partitions...)
				if err != nil {
					return err
				}
				type row struct {
					Topic     string `json:"topic"`
					Partition int32  `json:"partition"`
					Offset    int64  `json:"offset"`
				}
				rows := []row{}
				for _, tp := range slices.SortedFunc(maps.Keys(got), func(a, b client.TopicPartition) int { return int(a.Partition - b.Partition) }) {
					rows = append(rows, row{tp.Topic, tp.Partition, got[tp]})
				}
				if o.g.output == "json" {
					return writeJSON(cmd.OutOrStdout(), map[string]any{"group": args[0], "offsets": rows})
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TOPIC\tPARTITION\tNEW-OFFSET")
				for _, r := range rows {
					fmt.Fprintf(tw, "%s\t%d\t%d\n", r.Topic, r.Partition, r.Offset)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "topic whose offsets to reset")
	cmd.Flags().StringVar(&to, "to", "", "earliest, latest, OFFSET or @TIMESTAMP")
	cmd.Flags().Int64Var(&shift, "shift-by", 0, "move the committed offsets by N records")
	cmd.Flags().Int32SliceVar(&partitions, "partition", nil, "only these partitions (repeatable or comma-separated)")
	return cmd
}

func newGroupDeleteCommand(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "delete GROUP",
		Short: "Delete a group's committed offsets (the group must have no active members)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				if err := cl.DeleteGroup(ctx, args[0]); err != nil {
					return err
				}
				if o.g.output == "json" {
					return writeJSON(cmd.OutOrStdout(), map[string]string{"deleted": args[0]})
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "deleted group %s\n", args[0])
				return err
			})
		},
	}
}

// isPattern reports whether a consume argument names topics by pattern.
func isPattern(topic string) bool {
	return strings.ContainsAny(topic, "*#") || strings.HasPrefix(topic, "re:")
}

// runGroupConsume joins a group and prints the records of the partitions
// it is given, committing what it printed, until --max, --timeout or an
// interrupt.
func runGroupConsume(cmd *cobra.Command, o *clientOptions, co *consumeOptions, topic string) error {
	reset := co.from
	if reset != "earliest" && reset != "latest" {
		return fmt.Errorf("--from %q with --group: want earliest or latest (where partitions without a committed offset start; use group reset-offsets to move the group)", co.from)
	}
	ctx := cmd.Context()
	if co.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, co.timeout)
		defer cancel()
	}
	cl, err := o.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	printed := map[client.TopicPartition]int64{} // next offset after the last printed record
	var gc *client.GroupConsumer
	commitPrinted := func(ctx context.Context, tps []client.TopicPartition) {
		offs := map[client.TopicPartition]int64{}
		for _, tp := range tps {
			if off, ok := printed[tp]; ok {
				offs[tp] = off
			}
		}
		if len(offs) > 0 {
			if err := gc.CommitOffsets(ctx, offs); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "skiff: commit: %v\n", err)
			}
		}
	}
	cfg := client.GroupConsumerConfig{Group: co.group, AutoOffsetReset: reset, DisableAutoCommit: true, InstanceID: co.instanceID,
		OnAssigned: func(ctx context.Context, tps []client.TopicPartition) {
			fmt.Fprintf(cmd.ErrOrStderr(), "assigned: %s\n", partitionList(tps))
		},
		OnRevoked: func(ctx context.Context, tps []client.TopicPartition) {
			commitPrinted(ctx, tps)
			for _, tp := range tps {
				delete(printed, tp)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "revoked: %s\n", partitionList(tps))
		},
	}
	if isPattern(topic) {
		cfg.Pattern = topic
	} else {
		cfg.Topics = []string{topic}
	}
	if gc, err = cl.NewGroupConsumer(cfg); err != nil {
		return err
	}
	out := bufio.NewWriter(cmd.OutOrStdout())
	count := 0
	lastCommit := time.Now()
	var runErr error
	for co.max == 0 || count < co.max {
		recs, err := gc.Poll(ctx)
		for _, r := range recs {
			if err := printRecord(out, o.g.output, r); err != nil {
				return err
			}
			printed[client.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset + 1
			if count++; co.max > 0 && count >= co.max {
				break
			}
		}
		if err := out.Flush(); err != nil {
			return err
		}
		if err != nil {
			if ctx.Err() == nil {
				runErr = err
			}
			break
		}
		if time.Since(lastCommit) > time.Second {
			commitPrinted(ctx, gc.Assignment())
			lastCommit = time.Now()
		}
	}
	// Commit what was printed and leave, even after an interrupt.
	cctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	commitPrinted(cctx, gc.Assignment())
	if err := gc.Close(cctx); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}
