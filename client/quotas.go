package client

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// Quota is the rates Principal ("User:<name>", or "User:*": the default
// for users without their own) may use on each broker. Zero means no limit
// of that kind; a principal's own quota replaces the default as a whole.
// A broker serves a call over quota, then answers it late; the client
// waits out the delay before its next request on that connection.
type Quota struct {
	Principal          string `json:"principal"`
	ProduceBytesPerSec int64  `json:"produce_bytes_per_sec"`
	FetchBytesPerSec   int64  `json:"fetch_bytes_per_sec"`
	RequestsPerSec     int64  `json:"requests_per_sec"`
}

// SetQuota sets (creates or replaces) q.Principal's quota; needs alter on
// the cluster.
func (c *Client) SetQuota(ctx context.Context, q Quota) error {
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := skiffpb.NewAdminClient(cc).SetQuota(ctx, &skiffpb.SetQuotaRequest{Quota: &skiffpb.Quota{
			Principal: q.Principal, ProduceBytesPerSec: q.ProduceBytesPerSec, FetchBytesPerSec: q.FetchBytesPerSec, RequestsPerSec: q.RequestsPerSec}})
		return err
	})
	if err != nil {
		return fmt.Errorf("set quota of %s: %w", q.Principal, err)
	}
	return nil
}

// DeleteQuota removes principal's quota; it falls back to the User:*
// default, or to no limit.
func (c *Client) DeleteQuota(ctx context.Context, principal string) error {
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := skiffpb.NewAdminClient(cc).DeleteQuota(ctx, &skiffpb.DeleteQuotaRequest{Principal: principal})
		return err
	})
	if err != nil {
		return fmt.Errorf("delete quota of %s: %w", principal, err)
	}
	return nil
}

// ListQuotas returns every quota, sorted by principal.
func (c *Client) ListQuotas(ctx context.Context) ([]Quota, error) {
	var resp *skiffpb.ListQuotasResponse
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewAdminClient(cc).ListQuotas(ctx, &skiffpb.ListQuotasRequest{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list quotas: %w", err)
	}
	out := make([]Quota, 0, len(resp.GetQuotas()))
	for _, q := range resp.GetQuotas() {
		out = append(out, Quota{Principal: q.GetPrincipal(), ProduceBytesPerSec: q.GetProduceBytesPerSec(),
			FetchBytesPerSec: q.GetFetchBytesPerSec(), RequestsPerSec: q.GetRequestsPerSec()})
	}
	return out, nil
}
