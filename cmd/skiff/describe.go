package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/skiff-mq/skiff/client"
)

// newDescribeCommand builds a `describe NAME` verb: fetch the named
// object, then print it as text, or with -o json as one object.
func newDescribeCommand[T any](o *clientOptions, short, long string,
	fetch func(ctx context.Context, cl *client.Client, name string) (T, error),
	asJSON func(T) any, printText func(io.Writer, T) error) *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME",
		Short: short,
		Long:  long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				d, err := fetch(ctx, cl, args[0])
				if err != nil {
					return err
				}
				if o.g.output == "json" {
					return writeJSON(cmd.OutOrStdout(), asJSON(d))
				}
				return printText(cmd.OutOrStdout(), d)
			})
		},
	}
}
