package cluster

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skiff-mq/skiff/cluster/membership"
	"github.com/skiff-mq/skiff/cluster/metadata"
)

// Gossip encryption keys, cluster-wide.
//
// memberlist's keyring is per process, so a rotation is a fan-out: the
// node that receives the admin call applies the operation to itself and,
// over the node-to-node HTTP routes, to every other live member, and
// reports each node's outcome and resulting keyring (serf's key manager
// does the same). The safe order is install everywhere, use everywhere,
// remove the old key everywhere; GossipKeys refuses the two steps that
// would cut nodes off: using a key some node lacks, and removing a key
// some node still encrypts with.
//
// Keys travel on the peer channel (HTTP over the Raft mux, peer.go): with
// TLS only nodes holding a certificate of the cluster CA reach it. In
// plaintext a caller need only claim the id of a gossip member, so gossip
// keys without TLS keep out strays, not attackers.

// gossipKeyringFile is the live keyring in the data dir; see
// Config.GossipKeyFile.
const gossipKeyringFile = "gossip-keyring"

// gossipKeyCallTimeout bounds one node's answer during a fan-out.
const gossipKeyCallTimeout = 5 * time.Second

// GossipKeyOp is a keyring operation.
type GossipKeyOp string

// The keyring operations.
const (
	GossipKeysList   GossipKeyOp = "list"
	GossipKeyInstall GossipKeyOp = "install"
	GossipKeyUse     GossipKeyOp = "use"
	GossipKeyRemove  GossipKeyOp = "remove"
)

// ErrGossipKeyRefused means a cluster-wide precondition of the operation
// does not hold; nothing was changed. The message says what to do first.
var ErrGossipKeyRefused = errors.New("gossip key operation refused")

// NodeKeyring is one node's outcome: its keyring after the operation, or
// why the operation failed there.
type NodeKeyring struct {
	Node string `json:"node"`
	// Keys are the node's keys, base64, primary first.
	Keys  []string `json:"keys,omitempty"`
	Error string   `json:"error,omitempty"`
}

// GossipKeysResult is a fan-out's outcome on every live member.
type GossipKeysResult struct {
	Op GossipKeyOp
	// Key is the key operated on, base64 (the generated one when install
	// was given none); empty for list.
	Key string
	// Nodes has one entry per live member, sorted by id.
	Nodes []NodeKeyring
}

// Failed lists the nodes where the operation failed.
func (r GossipKeysResult) Failed() []NodeKeyring {
	var out []NodeKeyring
	for _, nk := range r.Nodes {
		if nk.Error != "" {
			out = append(out, nk)
		}
	}
	return out
}

// gossipSecurity sets the keys, keyring file and label of this node's
// gossip. The keyring persisted by a past rotation wins over
// --gossip-key-file: that file may still hold a key the cluster has since
// removed, and a node restarted from it could not rejoin (Consul's
// local.keyring behaves the same).
func (n *Node) gossipSecurity(mcfg *membership.Config) error {
	mcfg.ClusterName = n.cfg.ClusterName
	persisted := filepath.Join(n.cfg.DataDir, gossipKeyringFile)
	keys, err := membership.ReadKeyFile(persisted)
	switch {
	case err == nil:
		n.logger.Info("gossip keys: using the keyring persisted by a past rotation; it wins over --gossip-key-file",
			"file", persisted, "keys", len(keys), "gossip_key_file", n.cfg.GossipKeyFile)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w (fix or delete it to start from --gossip-key-file)", err)
	case n.cfg.GossipKeyFile == "":
		return nil
	default:
		if keys, err = membership.ReadKeyFile(n.cfg.GossipKeyFile); err != nil {
			return err
		}
	}
	mcfg.Keys = keys
	mcfg.KeyringFile = persisted
	return nil
}

// GossipKeys runs a keyring operation on every live member (list needs no
// key; install with an empty key generates one). Refusals and a bad key are
// errors (ErrGossipKeyRefused, *metadata.InvalidArgumentError,
// membership.ErrEncryptionDisabled) and change nothing. Otherwise the
// result reports each node: check Failed — the operation may have
// succeeded on some nodes only, and is safe to repeat.
func (n *Node) GossipKeys(ctx context.Context, op GossipKeyOp, key string) (GossipKeysResult, error) {
	res := GossipKeysResult{Op: op}
	if !n.members.Encrypted() {
		return res, fmt.Errorf("gossip keys: %w", membership.ErrEncryptionDisabled)
	}
	switch op {
	case GossipKeysList:
		if key != "" {
			return res, &metadata.InvalidArgumentError{Field: "key", Reason: "list takes no key"}
		}
		res.Nodes = n.fanOutGossipKeys(ctx, gossipKeysRequest{Op: op})
		return res, nil
	case GossipKeyInstall:
		if key == "" {
			k, err := membership.GenerateKey()
			if err != nil {
				return res, err
			}
			key = membership.EncodeKey(k)
		}
	case GossipKeyUse, GossipKeyRemove:
	default:
		return res, &metadata.InvalidArgumentError{Field: "op", Reason: fmt.Sprintf("%q is not list, install, use or remove", op)}
	}
	raw, err := membership.ParseKey(key)
	if err != nil {
		return res, &metadata.InvalidArgumentError{Field: "key", Reason: err.Error()}
	}
	key = membership.EncodeKey(raw) // canonical form, to compare with listed keys
	res.Key = key

	if op == GossipKeyUse || op == GossipKeyRemove {
		if err := n.checkGossipKeyOp(ctx, op, key); err != nil {
			return res, err
		}
	}
	res.Nodes = n.fanOutGossipKeys(ctx, gossipKeysRequest{Op: op, Key: key})
	return res, nil
}

// checkGossipKeyOp lists every node's keyring and refuses use of a key
// that some node lacks, or removal of a key that some node encrypts with.
// It runs before anything changes; a rotation racing with another can
// still slip through, which the per-node checks then catch.
func (n *Node) checkGossipKeyOp(ctx context.Context, op GossipKeyOp, key string) error {
	var unknown, blocking []string
	for _, nk := range n.fanOutGossipKeys(ctx, gossipKeysRequest{Op: GossipKeysList}) {
		switch {
		case nk.Error != "":
			unknown = append(unknown, nk.Node+" ("+nk.Error+")")
		case op == GossipKeyUse && !slices.Contains(nk.Keys, key):
			blocking = append(blocking, nk.Node)
		case op == GossipKeyRemove && len(nk.Keys) > 0 && nk.Keys[0] == key:
			blocking = append(blocking, nk.Node)
		}
	}
	switch {
	case len(blocking) > 0 && op == GossipKeyUse:
		return fmt.Errorf("%w: the key is not installed on %s: run `skiff cluster gossip-keys install KEY` first",
			ErrGossipKeyRefused, strings.Join(blocking, ", "))
	case len(blocking) > 0:
		return fmt.Errorf("%w: the key is the primary key on %s: run `skiff cluster gossip-keys use NEWKEY` first",
			ErrGossipKeyRefused, strings.Join(blocking, ", "))
	case len(unknown) > 0:
		return fmt.Errorf("%w: cannot check the keyring of %s: retry once every live node answers",
			ErrGossipKeyRefused, strings.Join(unknown, "; "))
	}
	return nil
}

// gossipKeysRequest is the node-to-node request body.
type gossipKeysRequest struct {
	Op  GossipKeyOp `json:"op"`
	Key string      `json:"key,omitempty"` // base64
}

// fanOutGossipKeys applies req to this node directly and to every other
// live member over HTTP, concurrently, one bounded call each.
func (n *Node) fanOutGossipKeys(ctx context.Context, req gossipKeysRequest) []NodeKeyring {
	alive := n.members.Alive()
	out := make([]NodeKeyring, len(alive))
	// A use or remove makes two rounds (check, then apply) within the
	// caller's deadline, so one round may take at most 40% of what is left:
	// a dead node then shows as a failure rather than a timeout of the call.
	timeout := gossipKeyCallTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, max(time.Until(d)*2/5, 100*time.Millisecond))
	}
	var wg sync.WaitGroup
	for i, m := range alive {
		if m.Meta.ID == n.id {
			out[i] = n.applyGossipKeys(req)
			continue
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			nk, err := n.postGossipKeys(cctx, m.Meta.RaftAddr, req)
			if err != nil {
				nk = NodeKeyring{Error: err.Error()}
			}
			nk.Node = m.Meta.ID
			out[i] = nk
		})
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b NodeKeyring) int { return cmp.Compare(a.Node, b.Node) })
	return out
}

// peerGossipKeysURL is the peer route's URL on the node whose Raft mux is
// at addr: the keys travel on the peer channel (mTLS with TLS on).
func (n *Node) peerGossipKeysURL(addr string) string {
	return peerURL(addr, "/internal/v1/gossip-keys")
}

func (n *Node) postGossipKeys(ctx context.Context, addr string, req gossipKeysRequest) (NodeKeyring, error) {
	if addr == "" {
		return NodeKeyring{}, errors.New("no Raft address advertised")
	}
	body, err := json.Marshal(req)
	if err != nil {
		return NodeKeyring{}, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, n.peerGossipKeysURL(addr), bytes.NewReader(body))
	if err != nil {
		return NodeKeyring{}, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := n.peerClient.Do(hreq)
	if err != nil {
		return NodeKeyring{}, fmt.Errorf("gossip keys %s at %s: %w", req.Op, addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return NodeKeyring{}, fmt.Errorf("gossip keys %s at %s: %s: %s", req.Op, addr, resp.Status, bytes.TrimSpace(b))
	}
	var nk NodeKeyring
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&nk); err != nil {
		return NodeKeyring{}, fmt.Errorf("gossip keys %s at %s: %w", req.Op, addr, err)
	}
	return nk, nil
}

// applyGossipKeys runs req on this node only and reports its keyring.
func (n *Node) applyGossipKeys(req gossipKeysRequest) NodeKeyring {
	nk := NodeKeyring{Node: n.id}
	var err error
	if req.Op != GossipKeysList {
		var key []byte
		if key, err = membership.ParseKey(req.Key); err == nil {
			switch req.Op {
			case GossipKeyInstall:
				err = n.members.InstallKey(key)
			case GossipKeyUse:
				err = n.members.UseKey(key)
			case GossipKeyRemove:
				err = n.members.RemoveKey(key)
			default:
				err = fmt.Errorf("unknown gossip key operation %q", req.Op)
			}
		}
	}
	if err != nil {
		nk.Error = err.Error()
	}
	// Report the keyring even after a failure: it shows what the node holds.
	st, kerr := n.members.Keyring()
	if kerr != nil {
		nk.Error = kerr.Error()
		return nk
	}
	for _, k := range st.Keys {
		nk.Keys = append(nk.Keys, membership.EncodeKey(k))
	}
	return nk
}

// gossipKeyRoutes registers the node-to-node keyring routes:
//
//	GET  /internal/v1/gossip-keys   this node's keyring (NodeKeyring)
//	POST /internal/v1/gossip-keys   apply {op, key} to this node only; 200 with NodeKeyring.Error on failure
func (n *Node) gossipKeyRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /internal/v1/gossip-keys", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, n.applyGossipKeys(gossipKeysRequest{Op: GossipKeysList}))
	})
	mux.HandleFunc("POST /internal/v1/gossip-keys", func(w http.ResponseWriter, r *http.Request) {
		var req gossipKeysRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, "bad gossip keys request: "+err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, n.applyGossipKeys(req))
	})
}
