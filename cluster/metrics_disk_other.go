//go:build !unix

package cluster

import "github.com/prometheus/client_golang/prometheus"

// diskMetrics: free-space gauges need statfs, which only unix systems
// have; elsewhere the node exports none rather than a made-up value.
func diskMetrics(string) []prometheus.Collector { return nil }
