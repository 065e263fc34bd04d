package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/skiff-mq/skiff/cluster/metadata"
)

// Public HTTP endpoints of a node (HTTPAddr; TLS when the node has a
// certificate). Read-only: nothing here changes the cluster.
//
//	GET  /metrics                   Prometheus metrics (the node's own registry)
//	GET  /healthz                   200 while the process serves
//	GET  /readyz                    200 once the node is Ready (docker healthchecks, load balancers)
//	GET  /v1/cluster                cluster status: nodes, controller, partition health
//	GET  /v1/topics                 topics with their configs and assignments
//	GET  /v1/topics/{name}          one topic with each partition's leader, in-sync replicas and offsets
//
// HandleHTTP adds more (cmd/skiff mounts the web console under /ui/).
func (n *Node) httpHandler() http.Handler {
	mux := http.NewServeMux()
	n.httpMux = mux
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
	return mux
}

// HandleHTTP serves pattern (http.ServeMux syntax) on the node's public
// HTTP port with h, which must do its own authorization: the port is
// reachable by anyone who reaches the node.
func (n *Node) HandleHTTP(pattern string, h http.Handler) {
	n.httpMux.Handle(pattern, h)
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
