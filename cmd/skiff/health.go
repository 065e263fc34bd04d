package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func newHealthCommand(g *globalOptions) *cobra.Command {
	var addr string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Exit 0 when the node at --addr is ready (for container healthchecks)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := applyTLSEnv(cmd.Flags()); err != nil {
				return err
			}
			t := tlsOptionsFrom(cmd.Flags())
			tlsCfg, err := t.config()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			status, err := checkHealthTLS(ctx, addr, tlsCfg)
			if err != nil {
				return t.explain(err)
			}
			if g.output == "json" {
				if err := writeJSON(cmd.OutOrStdout(), map[string]string{"addr": addr, "status": status.String()}); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), status)
			}
			if status != healthpb.HealthCheckResponse_SERVING {
				return fmt.Errorf("node %s is %s", addr, status)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:9400", "gRPC address of the node")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	return cmd
}

// checkHealth asks a plaintext node for its health.
func checkHealth(ctx context.Context, addr string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	return checkHealthTLS(ctx, addr, nil)
}

// checkHealthTLS asks the node at addr for its health, over TLS when
// tlsCfg is set.
func checkHealthTLS(ctx context.Context, addr string, tlsCfg *tls.Config) (healthpb.HealthCheckResponse_ServingStatus, error) {
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return 0, fmt.Errorf("health %s: %w", addr, err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return 0, fmt.Errorf("health %s: %w", addr, err)
	}
	return resp.GetStatus(), nil
}
