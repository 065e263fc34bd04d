package rpc

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// The shared test cluster gossips in plain text: key operations are a
// precondition failure that says how to enable encryption, and a bad op is
// the caller's error.
func TestGossipKeysStatusCodes(t *testing.T) {
	c := theCluster(t)
	admin := c.nodes[0].admin
	_, err := admin.GossipKeys(ctxFor(t, 10*time.Second), &skiffpb.GossipKeysRequest{Op: skiffpb.GossipKeyOp_GOSSIP_KEY_OP_LIST})
	st := wantCode(t, err, codes.FailedPrecondition)
	if errorReason(st) != ReasonGossipUnencrypted {
		t.Fatalf("reason %q, want %s", errorReason(st), ReasonGossipUnencrypted)
	}
	_, err = admin.GossipKeys(ctxFor(t, 10*time.Second), &skiffpb.GossipKeysRequest{})
	if st := wantCode(t, err, codes.InvalidArgument); fieldViolation(st) != "op" {
		t.Fatalf("field %q, want op", fieldViolation(st))
	}
}
