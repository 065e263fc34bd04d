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

// aclOptions are the flags that name bindings.
type aclOptions struct {
	principal  string
	host       string
	topic      string
	group      string
	cluster    string
	prefixed   bool
	operations []string
	deny       bool
}

// clusterResourceName is the one name the cluster resource has.
const clusterResourceName = "skiff-cluster"

func (a *aclOptions) register(cmd *cobra.Command, forList bool) {
	f := cmd.Flags()
	f.StringVar(&a.principal, "principal", "", "User:<name> (a client certificate's CN or a user name), or User:* for every user")
	f.StringVar(&a.topic, "topic", "", "topic name (or * for all topics, or a prefix with --prefixed)")
	f.StringVar(&a.group, "group", "", "consumer or share group name (or *, or a prefix with --prefixed)")
	f.StringVar(&a.cluster, "cluster", "", "the cluster itself (users, ACLs, gossip keys, cluster describe)")
	f.Lookup("cluster").NoOptDefVal = clusterResourceName
	if forList {
		return
	}
	f.StringVar(&a.host, "host", "*", "client IP address the binding applies to")
	f.BoolVar(&a.prefixed, "prefixed", false, "match every resource whose name starts with the given name")
	f.StringSliceVar(&a.operations, "operation", nil, "read, write, create, delete, alter, describe or all (comma-separated for several)")
	f.BoolVar(&a.deny, "deny", false, "deny instead of allow (deny wins over any allow)")
}

// resource returns the one resource the flags name.
func (a *aclOptions) resource(required bool) (typ, name string, err error) {
	set := 0
	for _, v := range []string{a.topic, a.group, a.cluster} {
		if v != "" {
			set++
		}
	}
	switch {
	case set > 1:
		return "", "", errors.New("name one resource: --topic, --group or --cluster")
	case set == 0 && required:
		return "", "", errors.New("name a resource: --topic NAME, --group NAME or --cluster")
	case a.topic != "":
		return "topic", a.topic, nil
	case a.group != "":
		return "group", a.group, nil
	case a.cluster != "":
		return "cluster", a.cluster, nil
	}
	return "", "", nil
}

func (a *aclOptions) bindings() ([]client.ACLBinding, error) {
	if a.principal == "" {
		return nil, errors.New("--principal is required (User:<name> or User:*)")
	}
	typ, name, err := a.resource(true)
	if err != nil {
		return nil, err
	}
	if len(a.operations) == 0 {
		return nil, errors.New("--operation is required (read, write, create, delete, alter, describe or all)")
	}
	pattern, perm := "literal", "allow"
	if a.prefixed {
		pattern = "prefixed"
	}
	if a.deny {
		perm = "deny"
	}
	var out []client.ACLBinding
	for _, op := range splitList(a.operations) {
		out = append(out, client.ACLBinding{Principal: a.principal, Host: a.host, ResourceType: typ, Pattern: pattern, Name: name, Operation: op, Permission: perm})
	}
	return out, nil
}

func newACLCommand(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "acl",
		Short: "Manage who may do what (Kafka-style ACLs; enforced when nodes run with --auth)",
		Long: "A binding allows (or with --deny, denies) a principal an operation on a topic, a group or the cluster,\n" +
			"named literally (* for all) or by prefix (--prefixed). Deny wins; with --auth, no binding means deny.\n" +
			"  skiff acl add --principal User:alice --topic orders --operation write\n" +
			"  skiff acl add --principal User:alice --group billing --operation read\n" +
			"  skiff acl add --principal User:ops --cluster --operation alter",
	}
	var add, remove, list aclOptions
	addCmd := &cobra.Command{
		Use:   "add",
		Short: "Add bindings (one per --operation)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			bs, err := add.bindings()
			if err != nil {
				return err
			}
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				n, err := cl.CreateACLs(ctx, bs...)
				if err != nil {
					return err
				}
				return printACLChange(cmd.OutOrStdout(), o.g.output, "added", n, len(bs))
			})
		},
	}
	add.register(addCmd, false)
	removeCmd := &cobra.Command{
		Use:   "remove",
		Short: "Remove bindings equal to the ones the flags name",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			bs, err := remove.bindings()
			if err != nil {
				return err
			}
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				n, err := cl.DeleteACLs(ctx, bs...)
				if err != nil {
					return err
				}
				return printACLChange(cmd.OutOrStdout(), o.g.output, "removed", n, len(bs))
			})
		},
	}
	remove.register(removeCmd, false)
	listCmd := &cobra.Command{
		Use:   "list",
		Short: "List bindings, optionally only a principal's or a resource's",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			typ, name, err := list.resource(false)
			if err != nil {
				return err
			}
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				bs, err := cl.ListACLs(ctx, client.ACLFilter{Principal: list.principal, ResourceType: typ, Name: name})
				if err != nil {
					return err
				}
				if o.g.output == "json" {
					if bs == nil {
						bs = []client.ACLBinding{}
					}
					return writeJSON(cmd.OutOrStdout(), map[string]any{"bindings": bs})
				}
				return printACLs(cmd.OutOrStdout(), bs)
			})
		},
	}
	list.register(listCmd, true)
	cmd.AddCommand(addCmd, removeCmd, listCmd)
	return cmd
}

func printACLChange(w io.Writer, output, verb string, n int64, asked int) error {
	if output == "json" {
		return writeJSON(w, map[string]any{verb: n})
	}
	_, err := fmt.Fprintf(w, "%s %d of %d bindings\n", verb, n, asked)
	return err
}

func printACLs(w io.Writer, bs []client.ACLBinding) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PRINCIPAL\tPERMISSION\tOPERATION\tRESOURCE\tPATTERN\tNAME\tHOST")
	for _, b := range bs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Principal, b.Permission, b.Operation, b.ResourceType, b.Pattern, b.Name, b.Host)
	}
	return tw.Flush()
}
