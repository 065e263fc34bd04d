package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/skiff-mq/skiff/client"
)

func newUserCommand(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Create, list, delete users and change their passwords (clusters run with --auth)",
		Long: "Users authenticate with --user/--password (SKIFF_USER/SKIFF_PASSWORD) over TLS. The node receiving\n" +
			"a password hashes it (argon2id); only the hash is stored, in the cluster metadata. With --auth,\n" +
			"only super users (skiff server --super-users) may manage users.",
	}
	cmd.AddCommand(newUserSetCommand(o, "create", "Create a user", false), newUserSetCommand(o, "passwd", "Change a user's password", true),
		newUserDeleteCommand(o), newUserListCommand(o))
	return cmd
}

// newUserSetCommand is `user create` (update false) and `user passwd`.
func newUserSetCommand(o *clientOptions, verb, short string, update bool) *cobra.Command {
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Long: short + ". With --password-stdin the password is the first line of stdin; without it a random\n" +
			"password is generated and printed once (it cannot be shown again).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			password, generated, err := newPassword(cmd.InOrStdin(), fromStdin)
			if err != nil {
				return err
			}
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				set := cl.CreateUser
				if update {
					set = cl.SetUserPassword
				}
				if err := set(ctx, args[0], password); err != nil {
					return err
				}
				if o.g.output == "json" {
					out := map[string]string{"user": args[0]}
					if generated {
						out["password"] = password
					}
					return writeJSON(cmd.OutOrStdout(), out)
				}
				w := cmd.OutOrStdout()
				if generated {
					if _, err := fmt.Fprintf(w, "password of %s (shown only now): %s\n", args[0], password); err != nil {
						return err
					}
				}
				if update {
					_, err = fmt.Fprintf(w, "changed the password of user %s\n", args[0])
				} else {
					_, err = fmt.Fprintf(w, "created user %s\n", args[0])
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of stdin instead of generating one")
	return cmd
}

// newPassword reads the password from r (fromStdin) or generates one: 18
// random bytes, 24 characters of URL-safe base64.
func newPassword(r io.Reader, fromStdin bool) (password string, generated bool, err error) {
	if !fromStdin {
		b := make([]byte, 18)
		if _, err := rand.Read(b); err != nil {
			return "", false, fmt.Errorf("generate a password: %w", err)
		}
		return base64.RawURLEncoding.EncodeToString(b), true, nil
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", false, fmt.Errorf("--password-stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", false, fmt.Errorf("--password-stdin: stdin held no password (pipe one in: echo \"$PW\" | skiff user ...)")
	}
	return line, false, nil
}

func newUserDeleteCommand(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a user; its password stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				if err := cl.DeleteUser(ctx, args[0]); err != nil {
					return err
				}
				if o.g.output == "json" {
					return writeJSON(cmd.OutOrStdout(), map[string]string{"deleted": args[0]})
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "deleted user %s\n", args[0])
				return err
			})
		},
	}
}

type userJSON struct {
	Name      string `json:"name"`
	Mechanism string `json:"mechanism"`
}

func newUserListCommand(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List users (names and hash mechanism; hashes never leave the cluster)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				users, err := cl.ListUsers(ctx)
				if err != nil {
					return err
				}
				if o.g.output == "json" {
					out := []userJSON{}
					for _, u := range users {
						out = append(out, userJSON{Name: u.Name, Mechanism: u.Mechanism})
					}
					return writeJSON(cmd.OutOrStdout(), out)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tMECHANISM")
				for _, u := range users {
					fmt.Fprintf(tw, "%s\t%s\n", u.Name, u.Mechanism)
				}
				return tw.Flush()
			})
		},
	}
}
