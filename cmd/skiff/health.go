package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
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
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			status, err := checkHealth(ctx, addr)
			if err != nil {
				return err
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

func checkHealth(ctx context.Context, addr string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
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
