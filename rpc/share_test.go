package rpc

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/skiff-mq/skiff/consumergroup"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// Share fetches with bad bounds or acknowledgements are refused whole,
// naming the field, before anything is acquired or settled.
func TestShareFetchRefusesBadBoundsAndAcksNamingTheField(t *testing.T) {
	c := theCluster(t)
	shares := skiffpb.NewShareGroupsClient(c.nodes[0].conn)
	ctx := ctxFor(t, 30*time.Second)
	ack := &skiffpb.ShareAck{Topic: "t", Offset: 1}
	tooMany := make([]*skiffpb.ShareAck, consumergroup.MaxShareAcksPerRequest+1)
	for i := range tooMany {
		tooMany[i] = ack
	}
	for _, tc := range []struct {
		name  string
		req   *skiffpb.ShareFetchRequest
		field string
	}{
		{"negative max_records", &skiffpb.ShareFetchRequest{Group: "g", Topics: []string{"t"}, MaxRecords: -1}, "max_records"},
		{"negative max_bytes", &skiffpb.ShareFetchRequest{Group: "g", Topics: []string{"t"}, MaxBytes: -1}, "max_bytes"},
		{"too many acks", &skiffpb.ShareFetchRequest{Group: "g", MemberId: "m", Topics: []string{"t"}, Acks: tooMany}, "acks"},
		{"acks without a member", &skiffpb.ShareFetchRequest{Group: "g", Topics: []string{"t"}, Acks: []*skiffpb.ShareAck{ack}}, "member_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := shares.ShareFetch(ctx, tc.req)
			st := wantCode(t, err, codes.InvalidArgument)
			if got := fieldViolation(st); got != tc.field {
				t.Errorf("field %q, want %q (%s)", got, tc.field, st.Message())
			}
		})
	}
}
