package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/skiff-mq/skiff/client"
)

func newQuotaCommand(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quota",
		Short: "Manage per-principal quotas (rates each broker lets a user use; over them, answers are delayed)",
		Long: "A quota limits the produce bytes, fetch bytes and requests per second a principal may use on each broker.\n" +
			"A call over quota is served, then answered late (Kafka's throttling); nothing fails. User:* is the\n" +
			"default for users without their own quota; a user's own quota replaces the default as a whole.\n" +
			"  skiff quota set --principal User:alice --produce-bytes-per-sec 1048576\n" +
			"  skiff quota set --principal 'User:*' --requests-per-sec 100\n" +
			"  skiff quota list\n" +
			"  skiff quota delete --principal User:alice",
	}
	var (
		q         client.Quota
		principal string
	)
	setCmd := &cobra.Command{
		Use:   "set",
		Short: "Set (create or replace) a principal's quota; limits not given are unlimited",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if q.Principal == "" {
				return errors.New("--principal is required (User:<name>, or User:* for the default)")
			}
			f := cmd.Flags()
			if !f.Changed("produce-bytes-per-sec") && !f.Changed("fetch-bytes-per-sec") && !f.Changed("requests-per-sec") {
				return errors.New("give at least one limit: --produce-bytes-per-sec, --fetch-bytes-per-sec or --requests-per-sec (0 means no limit)")
			}
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				if err := cl.SetQuota(ctx, q); err != nil {
					return err
				}
				if o.g.output == "json" {
					return writeJSON(cmd.OutOrStdout(), q)
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "set quota of %s\n", q.Principal)
				return err
			})
		},
	}
	sf := setCmd.Flags()
	sf.StringVar(&q.Principal, "principal", "", "User:<name>, or User:* for the default of users without their own quota")
	sf.Int64Var(&q.ProduceBytesPerSec, "produce-bytes-per-sec", 0, "record bytes the principal may produce per second on each broker (0: no limit)")
	sf.Int64Var(&q.FetchBytesPerSec, "fetch-bytes-per-sec", 0, "record bytes the principal may fetch per second on each broker (0: no limit)")
	sf.Int64Var(&q.RequestsPerSec, "requests-per-sec", 0, "calls (and stream messages) the principal may make per second on each broker (0: no limit)")

	deleteCmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a principal's quota (it falls back to User:*, or to no limit)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if principal == "" {
				return errors.New("--principal is required (User:<name>, or User:* for the default)")
			}
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				if err := cl.DeleteQuota(ctx, principal); err != nil {
					return err
				}
				if o.g.output == "json" {
					return writeJSON(cmd.OutOrStdout(), map[string]any{"deleted": principal})
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "deleted quota of %s\n", principal)
				return err
			})
		},
	}
	deleteCmd.Flags().StringVar(&principal, "principal", "", "User:<name>, or User:* for the default")

	listCmd := &cobra.Command{
		Use:   "list",
		Short: "List every quota",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				qs, err := cl.ListQuotas(ctx)
				if err != nil {
					return err
				}
				if o.g.output == "json" {
					return writeJSON(cmd.OutOrStdout(), map[string]any{"quotas": qs})
				}
				return printQuotas(cmd.OutOrStdout(), qs)
			})
		},
	}
	cmd.AddCommand(setCmd, deleteCmd, listCmd)
	return cmd
}

func printQuotas(w io.Writer, qs []client.Quota) error {
	limit := func(v int64) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprint(v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PRINCIPAL\tPRODUCE B/S\tFETCH B/S\tREQUESTS/S")
	for _, q := range qs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", q.Principal, limit(q.ProduceBytesPerSec), limit(q.FetchBytesPerSec), limit(q.RequestsPerSec))
	}
	return tw.Flush()
}
