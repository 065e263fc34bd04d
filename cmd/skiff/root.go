package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

// globalOptions are the flags every verb shares.
type globalOptions struct {
	output string // text or json
}

func (g *globalOptions) validate() error {
	if g.output != "text" && g.output != "json" {
		return fmt.Errorf("-o %q: want text or json", g.output)
	}
	return nil
}

func newRootCommand() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:           "skiff",
		Short:         "Skiff: a replicated, partitioned log",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return g.validate()
		},
	}
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	root.AddCommand(append([]*cobra.Command{newVersionCommand(g), newLogCommand(g), newServerCommand(), newDevCommand(), newHealthCommand(g), newChaosCommand(g), newCertsCommand(g)}, newClientCommands(root.PersistentFlags(), g)...)...)
	return root
}

func newVersionCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.output == "json" {
				return writeJSON(cmd.OutOrStdout(), map[string]string{"version": version})
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "skiff", version)
			return err
		},
	}
}

func writeJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
