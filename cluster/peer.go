package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/raftnet"
)

// Node-to-node calls travel as HTTP over the Raft mux (group peerGroup), so
// they share the Raft port's trust boundary: mutual TLS with node
// certificates from the cluster CA when the node has one, and otherwise a
// header naming a node that gossip knows. The public HTTP port serves
// nothing that changes the cluster.
//
//	POST /internal/v1/meta          a metadata command forwarded to the meta leader
//	GET  /internal/v1/bootstrapped  whether this node holds meta state (new nodes ask before bootstrapping)
//	GET  /internal/v1/healthz       liveness probe used before a dead node's replicas move
//	GET  /internal/v1/partitions    status of this node's replicas (topic describe fans out to it)
//	GET  /internal/v1/partitions/{topic}/{partition}/read     read from a local replica
//	POST /internal/v1/partitions/{topic}/{partition}/produce  append through the local leader
//	POST /internal/v1/share-progress   share groups' progress for reject-unacked bounds (shareprogress.go)
//	GET  /internal/v1/liveness         held open while both nodes live; its break starts fast failover (liveness.go)
//	GET/POST /internal/v1/gossip-keys                         this node's gossip keyring (gossipkeys.go)

// peerGroup is the mux group node-to-node HTTP runs on. A ':' cannot appear
// in a topic name, so no partition's Raft group can take this name.
const peerGroup = "skiff:peer"

type peerKey struct{}

// peerIdentity is who is calling on the peer channel.
type peerIdentity struct {
	id       string
	verified bool // a certificate from the cluster CA names id
}

func peerFrom(ctx context.Context) peerIdentity {
	p, _ := ctx.Value(peerKey{}).(peerIdentity)
	return p
}

// startPeerHTTP serves the node-to-node routes on the mux and builds the
// client that reaches other nodes' routes through it.
func (n *Node) startPeerHTTP() error {
	layer, err := n.mux.StreamLayer(peerGroup)
	if err != nil {
		return fmt.Errorf("peer channel: %w", err)
	}
	n.peerSrv = &http.Server{
		Handler:           n.peerHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(n.logger.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			id, verified := raftnet.Peer(c)
			return context.WithValue(ctx, peerKey{}, peerIdentity{id: id, verified: verified})
		},
	}
	n.goLoop(func() {
		if err := n.peerSrv.Serve(layer); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			n.logger.Error("peer http server", "error", err)
		}
	})
	n.peerClient = &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return n.mux.Dial(ctx, peerGroup, addr)
			},
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	n.livenessClient = &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return n.mux.Dial(ctx, peerGroup, addr)
			},
			ResponseHeaderTimeout: 5 * time.Second,
			MaxIdleConnsPerHost:   1,
		},
	}
	return nil
}

func (n *Node) peerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /internal/v1/meta", n.serveMetaForward)
	mux.HandleFunc("GET /internal/v1/bootstrapped", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]bool{"has_state": n.meta.hasState()})
	})
	mux.HandleFunc("GET /internal/v1/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /internal/v1/partitions", n.servePartitions)
	mux.HandleFunc("GET /internal/v1/partitions/{topic}/{partition}/read", n.serveRead)
	mux.HandleFunc("POST /internal/v1/partitions/{topic}/{partition}/produce", n.serveProduce)
	mux.HandleFunc("POST /internal/v1/share-progress", n.serveShareProgress)
	mux.HandleFunc("GET "+livenessPath, n.serveLiveness)
	mux.HandleFunc("POST "+silencePath, n.serveSilence)
	n.gossipKeyRoutes(mux) // GET/POST /internal/v1/gossip-keys: gossipkeys.go
	return mux
}

// peerURL is the URL of a node-to-node route on the node whose Raft mux is
// at raftAddr.
func peerURL(raftAddr, path string) string { return "http://" + raftAddr + path }

// peerAddrOf finds the Raft (peer channel) address of a node: from the
// metadata, else from gossip (a node not yet registered, such as the first
// meta leader).
func (n *Node) peerAddrOf(id string) string {
	if b, ok := n.meta.fsm.State().Brokers[id]; ok && b.RaftAddr != "" {
		return b.RaftAddr
	}
	for _, m := range n.members.Members() {
		if m.Meta.ID == id {
			return m.Meta.RaftAddr
		}
	}
	return ""
}

// authorizePeer decides who may open a connection on the Raft mux (every
// Raft group and the peer channel). With TLS the certificate has already
// proven the node id, and any node of the cluster CA may connect. In
// plaintext the id is only a claim: it must at least name a node gossip
// knows, which keeps out strays but not an attacker who can join gossip
// (README, "Security").
func (n *Node) authorizePeer(peer, group string) error {
	if n.cfg.TLS != nil {
		return nil
	}
	m := n.gossip.Load()
	if m == nil {
		return errors.New("gossip not started yet")
	}
	for _, mem := range m.Members() {
		if mem.Meta.ID == peer {
			return nil
		}
	}
	return fmt.Errorf("node %q is not a member of this cluster", peer)
}

// maxForwardBody bounds a forwarded metadata command.
const maxForwardBody = 16 << 20

func (n *Node) serveMetaForward(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxForwardBody+1))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(raw) > maxForwardBody {
		http.Error(w, "metadata command too large", http.StatusRequestEntityTooLarge)
		return
	}
	origin := peerFrom(r.Context()).id
	if err := checkCommandOrigin(raw, origin); err != nil {
		n.logger.Warn("refused metadata command from peer", "peer", origin, "error", err)
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	if !n.meta.isLeader() {
		// Name the leader rather than relay: the leader must hear each
		// command from the node it comes from.
		if id, _ := n.meta.leader(); id != "" {
			if addr := n.peerAddrOf(id); addr != "" {
				w.Header().Set(leaderHeader, addr)
			}
		}
		http.Error(w, errMetaNotLeader.Error(), http.StatusMisdirectedRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	res, err := n.meta.apply(ctx, raw)
	writeJSON(w, toWireResult(res, err))
}

// checkCommandOrigin refuses what no node may ask of another: a broker
// registration for any node but the sender (one node could otherwise
// re-point another's addresses), the pre-rule encodings of DeleteTopic and
// AlterTopicConfig (kept for replaying old logs, never for new writes), and
// commands marked as the controller's, which the meta leader only ever
// applies locally.
func checkCommandOrigin(raw []byte, origin string) error {
	if len(raw) > 0 {
		switch metadata.CommandType(raw[0]) {
		case metadata.TypeDeleteTopic, metadata.TypeAlterTopicConfig:
			return fmt.Errorf("metadata command type %d is accepted only on replay", raw[0])
		}
	}
	cmd, err := metadata.DecodeCommand(raw)
	if err != nil {
		return fmt.Errorf("decode metadata command: %w", err)
	}
	switch c := cmd.(type) {
	case metadata.RegisterBroker:
		if c.Broker.ID != origin {
			return fmt.Errorf("node %q may not register broker %q", origin, c.Broker.ID)
		}
	case metadata.SetNodeDisk:
		if c.Node != origin {
			return fmt.Errorf("node %q may not report the disk of node %q", origin, c.Node)
		}
	case metadata.DeleteTopic:
		if c.Controller {
			return errors.New("a controller command cannot come from a peer")
		}
	case metadata.AlterTopicConfig:
		if c.Controller {
			return errors.New("a controller command cannot come from a peer")
		}
	}
	return nil
}
