//go:build unix

package cluster

import (
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// diskMetrics are the free and total bytes of the file system holding the
// data directory, read at scrape time (one statfs call each).
func diskMetrics(dir string) []prometheus.Collector {
	stat := func(f func(*unix.Statfs_t) float64) func() float64 {
		return func() float64 {
			var st unix.Statfs_t
			if err := unix.Statfs(dir, &st); err != nil {
				return -1 // scraped as -1: the alert rules treat it as unknown, not full
			}
			return f(&st)
		}
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "skiff", Subsystem: "node", Name: "disk_free_bytes",
			Help: "Bytes available to the node on the file system of its data directory (-1 if it cannot be read)."},
			stat(func(st *unix.Statfs_t) float64 { return float64(st.Bavail) * float64(st.Bsize) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "skiff", Subsystem: "node", Name: "disk_total_bytes",
			Help: "Size of the file system of the node's data directory (-1 if it cannot be read)."},
			stat(func(st *unix.Statfs_t) float64 { return float64(st.Blocks) * float64(st.Bsize) })),
	}
}
