package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/skiff-mq/skiff/cluster/metadata"
)

// HTTP endpoints of a node:
//
//	GET  /metrics                   Prometheus metrics (the node's own registry)
//	GET  /healthz                   200 while the process serves
//	GET  /readyz                    200 once the node is Ready (docker healthchecks, load balancers)
//	GET  /v1/cluster                cluster status: nodes, controller, partition health
//	GET  /v1/topics                 topics with their configs and assignments
//	GET  /v1/topics/{name}          one topic with each partition's leader, in-sync replicas and offsets
//	POST /internal/v1/meta          a metadata command forwarded to the meta leader
//	GET  /internal/v1/bootstrapped  whether this node holds meta state (new nodes ask before bootstrapping)
//	GET  /internal/v1/partitions    status of this node's replicas (topic describe fans out to it)
//	GET/POST /internal/v1/gossip-keys  this node's gossip keyring (gossipkeys.go)
//
// The /internal routes are node-to-node; they change nothing a client
// could not change through the admin API. gossip-keys carries the gossip
// keys themselves: until peers authenticate each other, the HTTP port must
// stay on a private network.
func (n *Node) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !n.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /v1/cluster", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		writeJSON(w, n.Status(ctx))
	})
	mux.HandleFunc("GET /v1/topics", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, n.Topics())
	})
	mux.HandleFunc("GET /v1/topics/{name}", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		desc, err := n.DescribeTopic(ctx, r.PathValue("name"))
		if errors.Is(err, metadata.ErrUnknownTopic) {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, desc)
	})
	mux.HandleFunc("POST /internal/v1/meta", n.serveMetaForward)
	mux.HandleFunc("GET /internal/v1/bootstrapped", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]bool{"has_state": n.meta.hasState()})
	})
	mux.HandleFunc("GET /internal/v1/partitions", n.servePartitions)
	n.gossipKeyRoutes(mux) // GET/POST /internal/v1/gossip-keys: gossipkeys.go
	mux.HandleFunc("GET /internal/v1/partitions/{topic}/{partition}/read", n.serveRead)
	mux.HandleFunc("POST /internal/v1/partitions/{topic}/{partition}/produce", n.serveProduce)
	return mux
}

// maxForwardBody bounds a forwarded metadata command.
const maxForwardBody = 16 << 20

func (n *Node) serveMetaForward(w http.ResponseWriter, r *http.Request) {
	cmd, err := io.ReadAll(io.LimitReader(r.Body, maxForwardBody))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if n.meta.isLeader() {
		res, err := n.meta.apply(ctx, cmd)
		writeJSON(w, toWireResult(res, err))
		return
	}
	// One hop onward to the leader, for a sender that does not know it (a
	// node not yet in the meta group); never further, so nothing loops.
	if r.Header.Get(forwardedHeader) != "" {
		http.Error(w, errMetaNotLeader.Error(), http.StatusMisdirectedRequest)
		return
	}
	res, err := n.forwardToLeader(ctx, cmd, true)
	writeJSON(w, toWireResult(res, err))
}

func (n *Node) servePartitions(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	writeJSON(w, n.localPartitionStatus(ctx))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
