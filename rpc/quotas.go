package rpc

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/skiff-mq/skiff/cluster/metadata"
	pb "github.com/skiff-mq/skiff/rpc/skiffpb"
)

// quotaStore is what the quota admin calls need beyond Node; *cluster.Node
// has it.
type quotaStore interface {
	SetQuota(ctx context.Context, principal string, q metadata.Quota) error
	DeleteQuota(ctx context.Context, principal string) error
}

func (a *adminService) quotaStore() (quotaStore, error) {
	st, ok := a.s.node.(quotaStore)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this server does not manage quotas")
	}
	return st, nil
}

// SetQuota sets (creates or replaces) a principal's quota.
func (a *adminService) SetQuota(ctx context.Context, req *pb.SetQuotaRequest) (*pb.SetQuotaResponse, error) {
	st, err := a.quotaStore()
	if err != nil {
		return nil, err
	}
	q := req.GetQuota()
	if q == nil {
		return nil, invalid("quota", "no quota given")
	}
	if err := metadata.ValidateQuotaPrincipal(q.GetPrincipal()); err != nil {
		return nil, err
	}
	mq := metadata.Quota{ProduceBytesPerSec: q.GetProduceBytesPerSec(), FetchBytesPerSec: q.GetFetchBytesPerSec(), RequestsPerSec: q.GetRequestsPerSec()}
	if err := st.SetQuota(ctx, q.GetPrincipal(), mq); err != nil {
		return nil, err
	}
	return &pb.SetQuotaResponse{}, nil
}

// DeleteQuota removes a principal's quota.
func (a *adminService) DeleteQuota(ctx context.Context, req *pb.DeleteQuotaRequest) (*pb.DeleteQuotaResponse, error) {
	st, err := a.quotaStore()
	if err != nil {
		return nil, err
	}
	if err := metadata.ValidateQuotaPrincipal(req.GetPrincipal()); err != nil {
		return nil, err
	}
	if err := st.DeleteQuota(ctx, req.GetPrincipal()); err != nil {
		return nil, err
	}
	return &pb.DeleteQuotaResponse{}, nil
}

// ListQuotas lists every quota from this node's metadata, sorted by
// principal.
func (a *adminService) ListQuotas(ctx context.Context, _ *pb.ListQuotasRequest) (*pb.ListQuotasResponse, error) {
	st := a.s.node.Metadata()
	resp := &pb.ListQuotasResponse{}
	for _, p := range st.QuotaPrincipals() {
		q := st.Quotas[p]
		resp.Quotas = append(resp.Quotas, &pb.Quota{Principal: p, ProduceBytesPerSec: q.ProduceBytesPerSec, FetchBytesPerSec: q.FetchBytesPerSec, RequestsPerSec: q.RequestsPerSec})
	}
	return resp, nil
}
