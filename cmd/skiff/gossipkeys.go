package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/skiff-mq/skiff/client"
	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/cluster/membership"
)

// addGossipFlags registers the gossip security flags of `skiff server`.
func addGossipFlags(f *pflag.FlagSet, cfg *cluster.Config) {
	f.StringVar(&cfg.GossipKeyFile, "gossip-key-file", "",
		"file of base64 AES-256 gossip keys, one per line ('#' comments allowed); the first encrypts, the others are accepted during rotation. "+
			"After a live rotation (skiff cluster gossip-keys) the keyring kept in <data-dir>/gossip-keyring wins over this file (default: gossip not encrypted)")
	f.StringVar(&cfg.ClusterName, "cluster-name", "",
		"name labelling this cluster's gossip, so clusters sharing a network never merge; the same on every node (letters, digits, . _ -; at most 255)")
}

// writeNewGossipKeyFile writes a key file holding one new random key
// (mode 0600) and returns the key, base64; for `skiff dev --secure`.
func writeNewGossipKeyFile(path string) (string, error) {
	key, err := membership.GenerateKey()
	if err != nil {
		return "", err
	}
	if err := membership.WriteKeyFile(path, [][]byte{key}); err != nil {
		return "", err
	}
	return membership.EncodeKey(key), nil
}

// newGossipKeysCommand is `skiff cluster gossip-keys`.
func newGossipKeysCommand(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gossip-keys",
		Short: "List or rotate the gossip encryption keys of every node",
		Long: "Keys are base64 AES-256 (openssl rand -base64 32). Rotate without a restart:\n" +
			"  skiff cluster gossip-keys install        (prints the new key)\n" +
			"  skiff cluster gossip-keys use NEWKEY\n" +
			"  skiff cluster gossip-keys remove OLDKEY\n" +
			"Each step runs on every live node; nodes persist their keyring in their data dir,\n" +
			"so a restart keeps the rotated keys whatever --gossip-key-file holds.",
	}
	verb := func(use, short string, op client.GossipKeyOp, args cobra.PositionalArgs) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  args,
			RunE: func(cmd *cobra.Command, args []string) error {
				key := ""
				if len(args) == 1 {
					key = args[0]
				}
				return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
					res, err := cl.GossipKeys(ctx, op, key)
					if err != nil && !errors.Is(err, client.ErrGossipKeysPartial) {
						return err
					}
					var perr error
					if o.g.output == "json" {
						perr = writeJSON(cmd.OutOrStdout(), gossipKeysJSON(op, res))
					} else {
						perr = printGossipKeys(cmd.OutOrStdout(), op, res)
					}
					return errors.Join(perr, err) // a partial failure still exits non-zero
				})
			},
		}
	}
	cmd.AddCommand(
		verb("list", "Show each key with how many nodes hold it and use it as primary", client.GossipKeysList, cobra.NoArgs),
		verb("install [KEY]", "Install a key on every node (a new random one when KEY is omitted)", client.GossipKeyInstall, cobra.MaximumNArgs(1)),
		verb("use KEY", "Make KEY the primary (encrypting) key on every node; it must be installed everywhere", client.GossipKeyUse, cobra.ExactArgs(1)),
		verb("remove KEY", "Remove KEY from every node; it must not be primary anywhere", client.GossipKeyRemove, cobra.ExactArgs(1)),
	)
	return cmd
}

type gossipKeysOutput struct {
	Op    string                  `json:"op"`
	Key   string                  `json:"key,omitempty"`
	Keys  []client.GossipKeyCount `json:"keys"`
	Nodes []client.GossipKeyNode  `json:"nodes"`
}

func gossipKeysJSON(op client.GossipKeyOp, res client.GossipKeysResult) gossipKeysOutput {
	out := gossipKeysOutput{Op: string(op), Key: res.Key, Keys: res.Counts(), Nodes: res.Nodes}
	if out.Nodes == nil {
		out.Nodes = []client.GossipKeyNode{}
	}
	return out
}

func printGossipKeys(w io.Writer, op client.GossipKeyOp, res client.GossipKeysResult) error {
	failed := 0
	for _, n := range res.Nodes {
		if n.Error != "" {
			failed++
		}
	}
	if op != client.GossipKeysList {
		// The key last on its own line: scripts take it with `tail -1`-like tools or use -o json.
		fmt.Fprintf(w, "%s done on %d of %d nodes\n", op, len(res.Nodes)-failed, len(res.Nodes))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "KEY\tNODES\tPRIMARY ON\n")
	for _, c := range res.Counts() {
		fmt.Fprintf(tw, "%s\t%d/%d\t%d\n", c.Key, c.Nodes, len(res.Nodes), c.PrimaryOn)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range res.Nodes {
		if n.Error != "" {
			fmt.Fprintf(w, "failed on %s: %s\n", n.NodeID, n.Error)
		}
	}
	if op != client.GossipKeysList {
		_, err := fmt.Fprintf(w, "\nkey: %s\n", res.Key)
		return err
	}
	return nil
}
