package client

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/grpc"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// GossipKeyOp is an operation on the cluster's gossip encryption keys.
type GossipKeyOp string

// The gossip key operations. A rotation is install (of a new key), then
// use (make it primary: the key that encrypts), then remove (of the old
// key), each applied to every live node.
const (
	GossipKeysList   GossipKeyOp = "list"
	GossipKeyInstall GossipKeyOp = "install"
	GossipKeyUse     GossipKeyOp = "use"
	GossipKeyRemove  GossipKeyOp = "remove"
)

var gossipKeyOps = map[GossipKeyOp]skiffpb.GossipKeyOp{
	GossipKeysList:   skiffpb.GossipKeyOp_GOSSIP_KEY_OP_LIST,
	GossipKeyInstall: skiffpb.GossipKeyOp_GOSSIP_KEY_OP_INSTALL,
	GossipKeyUse:     skiffpb.GossipKeyOp_GOSSIP_KEY_OP_USE,
	GossipKeyRemove:  skiffpb.GossipKeyOp_GOSSIP_KEY_OP_REMOVE,
}

// ErrGossipKeysPartial means a gossip key operation failed on some nodes;
// the GossipKeysResult returned with it says which. The operations are
// idempotent: repeat it once those nodes are back.
var ErrGossipKeysPartial = errors.New("gossip key operation failed on some nodes")

// GossipKeyNode is one node's outcome.
type GossipKeyNode struct {
	NodeID string `json:"node_id"`
	// Keys are the node's keys, base64, the primary (encrypting) key first.
	Keys  []string `json:"keys,omitempty"`
	Error string   `json:"error,omitempty"`
}

// GossipKeyCount says how many nodes hold a key and how many encrypt with it.
type GossipKeyCount struct {
	Key       string `json:"key"`
	Nodes     int    `json:"nodes"`
	PrimaryOn int    `json:"primary_on"`
}

// GossipKeysResult is the outcome of a gossip key operation.
type GossipKeysResult struct {
	// Key is the key operated on (the generated one when InstallGossipKey
	// was given none); empty for list.
	Key string `json:"key,omitempty"`
	// Nodes has one entry per live node, sorted by id.
	Nodes []GossipKeyNode `json:"nodes"`
}

// Counts tallies each key over the nodes that answered, sorted by key.
func (r GossipKeysResult) Counts() []GossipKeyCount {
	by := map[string]*GossipKeyCount{}
	for _, n := range r.Nodes {
		for i, k := range n.Keys {
			c := by[k]
			if c == nil {
				c = &GossipKeyCount{Key: k}
				by[k] = c
			}
			c.Nodes++
			if i == 0 {
				c.PrimaryOn++
			}
		}
	}
	out := make([]GossipKeyCount, 0, len(by))
	for _, c := range by {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// GossipKeys runs op on every live node of the cluster; key is base64
// (none for list; none for install makes the server generate one). The
// broker refuses, changing nothing, to use a key that some node lacks or
// to remove a key that some node encrypts with, and fails when the cluster
// runs without gossip encryption. When the operation failed on some nodes,
// the result comes with an error wrapping ErrGossipKeysPartial.
func (c *Client) GossipKeys(ctx context.Context, op GossipKeyOp, key string) (GossipKeysResult, error) {
	pop, ok := gossipKeyOps[op]
	if !ok {
		return GossipKeysResult{}, &InvalidArgumentError{Field: "op", Reason: fmt.Sprintf("%q is not list, install, use or remove", op)}
	}
	var resp *skiffpb.GossipKeysResponse
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewAdminClient(cc).GossipKeys(ctx, &skiffpb.GossipKeysRequest{Op: pop, Key: key})
		return err
	})
	if err != nil {
		return GossipKeysResult{}, fmt.Errorf("gossip keys %s: %w", op, err)
	}
	res := GossipKeysResult{Key: resp.GetKey()}
	var failed []string
	for _, n := range resp.GetNodes() {
		res.Nodes = append(res.Nodes, GossipKeyNode{NodeID: n.GetNodeId(), Keys: n.GetKeys(), Error: n.GetError()})
		if n.GetError() != "" {
			failed = append(failed, n.GetNodeId()+": "+n.GetError())
		}
	}
	if len(failed) > 0 {
		return res, fmt.Errorf("gossip keys %s: %w (%d of %d): %s", op, ErrGossipKeysPartial,
			len(failed), len(res.Nodes), strings.Join(failed, "; "))
	}
	return res, nil
}
