package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-mq/skiff/internal/certs"
)

func newCertsCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Create the cluster CA and node and client certificates for TLS",
	}
	cmd.AddCommand(newCertsCreateCommand(g))
	return cmd
}

// certsCreateOptions are the flags of `skiff certs create`.
type certsCreateOptions struct {
	dir     string
	nodes   []string
	hosts   []string
	clients []string
	days    int
	force   bool
}

func newCertsCreateCommand(g *globalOptions) *cobra.Command {
	o := &certsCreateOptions{}
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Write a cluster CA and certificates for nodes and clients into --dir",
		Long: "Writes ca.crt and ca.key (or reuses them when both are in --dir already, so that more\n" +
			"nodes or clients can be added later), then <node>.crt/.key for each of --nodes and\n" +
			"<client>.crt/.key for each of --clients, all signed by the CA.\n" +
			"A node certificate is valid for the node id, localhost, 127.0.0.1, ::1 and every --hosts entry\n" +
			"(list every name and address clients and peers dial the nodes by), and names the node by the\n" +
			"URI skiff://node/<id>. A client certificate is for clients only and can never pass as a node.\n" +
			"Keys are written mode 0600: hand each node only its own key.",
		Example: "  skiff certs create --dir certs --nodes n1,n2,n3 --hosts skiff-1,skiff-2,skiff-3 --clients admin",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCertsCreate(cmd.OutOrStdout(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "", "directory to write the files into (created when missing)")
	f.StringSliceVar(&o.nodes, "nodes", nil, "node ids to issue certificates for (n1,n2,...)")
	f.StringSliceVar(&o.hosts, "hosts", nil, "extra DNS names and IP addresses of the nodes, in every node certificate")
	f.StringSliceVar(&o.clients, "clients", nil, "client names to issue client certificates for (admin,alice,...)")
	f.IntVar(&o.days, "days", 365, "validity of new certificates in days (the CA's too when it is new)")
	f.BoolVar(&o.force, "force", false, "replace existing node and client files (the CA is always kept)")
	return cmd
}

// certsCreateJSON is `skiff certs create -o json`.
type certsCreateJSON struct {
	Dir      string         `json:"dir"`
	CA       string         `json:"ca"`
	CAReused bool           `json:"ca_reused"`
	Nodes    []certFileJSON `json:"nodes"`
	Clients  []certFileJSON `json:"clients"`
}

type certFileJSON struct {
	ID   string `json:"id"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

func runCertsCreate(w io.Writer, g *globalOptions, o *certsCreateOptions) error {
	if o.dir == "" {
		return fmt.Errorf("--dir is required: the directory to write the certificates into")
	}
	if o.days <= 0 {
		return fmt.Errorf("--days %d: must be positive", o.days)
	}
	nodes, clients, hosts := splitList(o.nodes), splitList(o.clients), splitList(o.hosts)
	if len(nodes) == 0 && len(clients) == 0 {
		return fmt.Errorf("nothing to issue: pass --nodes and/or --clients")
	}
	caPath := filepath.Join(o.dir, certs.CACertFile)
	_, statErr := os.Stat(caPath)
	reused := statErr == nil
	err := certs.Create(certs.CreateOptions{
		Dir: o.dir, Nodes: nodes, Hosts: hosts, Clients: clients,
		Validity: time.Duration(o.days) * 24 * time.Hour, Force: o.force,
	})
	if err != nil {
		return err
	}
	out := certsCreateJSON{Dir: o.dir, CA: caPath, CAReused: reused, Nodes: []certFileJSON{}, Clients: []certFileJSON{}}
	for _, id := range nodes {
		crt, key := certs.Paths(o.dir, id)
		out.Nodes = append(out.Nodes, certFileJSON{ID: id, Cert: crt, Key: key})
	}
	for _, name := range clients {
		crt, key := certs.Paths(o.dir, name)
		out.Clients = append(out.Clients, certFileJSON{ID: name, Cert: crt, Key: key})
	}
	if g.output == "json" {
		return writeJSON(w, out)
	}
	ca := "created"
	if reused {
		ca = "reused"
	}
	fmt.Fprintf(w, "CA      %s (%s)\n", caPath, ca)
	for _, n := range out.Nodes {
		fmt.Fprintf(w, "node    %-12s %s %s\n", n.ID, n.Cert, n.Key)
	}
	for _, c := range out.Clients {
		fmt.Fprintf(w, "client  %-12s %s %s\n", c.ID, c.Cert, c.Key)
	}
	_, err = fmt.Fprintf(w, "Give each node its own .crt/.key and ca.crt; keep ca.key offline.\n")
	return err
}
