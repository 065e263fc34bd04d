package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-mq/skiff/cluster/metadata"
)

// DiskUsage is the space of the file system holding a node's data.
type DiskUsage struct {
	Free  uint64 // bytes available to the node
	Total uint64 // bytes in the file system
}

// StatFS measures the file system holding dir.
func StatFS(dir string) (DiskUsage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return DiskUsage{}, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return DiskUsage{Free: uint64(st.Bavail) * uint64(st.Bsize), Total: uint64(st.Blocks) * uint64(st.Bsize)}, nil
}

// DiskFullError refuses a write on a node whose disk is (nearly) full:
// below its free-space threshold, or a replica failed to write for lack
// of space. The client sees RESOURCE_EXHAUSTED "disk full on node n2".
type DiskFullError struct {
	Node      string
	Free      uint64
	Threshold uint64
	// WriteFailed is set when a replica's write failed with ENOSPC.
	WriteFailed bool
}

func (e *DiskFullError) Error() string {
	if e.WriteFailed {
		return fmt.Sprintf("disk full on node %s: a write failed for lack of space (%d bytes free); the node refuses writes until space returns", e.Node, e.Free)
	}
	return fmt.Sprintf("disk full on node %s: %d bytes free, under its --min-free-bytes threshold of %d; the node refuses writes until space returns", e.Node, e.Free, e.Threshold)
}

// threshold is the free space under which the node is degraded:
// MinFreeBytes, or MinFreePercent of the disk when that is smaller (a
// small disk is not degraded for ever by a fixed 1 GiB). Zero disables one.
func (c Config) diskThreshold(total uint64) uint64 {
	byBytes := uint64(max(c.MinFreeBytes, 0))
	byPercent := uint64(float64(total) * c.MinFreePercent / 100)
	switch {
	case c.MinFreeBytes == 0:
		return byPercent
	case c.MinFreePercent == 0:
		return byBytes
	}
	return min(byBytes, byPercent)
}

// diskMonitor watches the node's free space. State is read by the produce
// path (atomics); the run goroutine writes it.
type diskMonitor struct {
	free      atomic.Uint64
	total     atomic.Uint64
	threshold atomic.Uint64
	low       atomic.Bool // free under threshold
	enospc    atomic.Bool // a replica failed with ENOSPC since the last check found space
	// reported is the degraded state last recorded in the metadata.
	reported atomic.Bool
	// wake makes the monitor check (and report) now rather than at its
	// next tick: a failed write must reach the metadata at once, or other
	// nodes keep handing leaderships to this one.
	wake chan struct{}
}

func (d *diskMonitor) degraded() bool { return d.low.Load() || d.enospc.Load() }

// DiskFull returns a *DiskFullError while this node's disk is degraded,
// nil otherwise: the produce path asks before it writes.
func (n *Node) DiskFull() error {
	if !n.disk.degraded() {
		return nil
	}
	return &DiskFullError{Node: n.id, Free: n.disk.free.Load(), Threshold: n.disk.threshold.Load(), WriteFailed: n.disk.enospc.Load() && !n.disk.low.Load()}
}

// noteWriteFailure is told of every failed replica; ENOSPC degrades the
// node at once (the next check clears it when space is back).
func (n *Node) noteWriteFailure(err error) {
	if errors.Is(err, syscall.ENOSPC) && !n.disk.enospc.Swap(true) {
		n.logger.Warn("disk full: a replica failed to write", "error", err)
		select {
		case n.disk.wake <- struct{}{}:
		default:
		}
	}
}

// registerDiskMetrics exports what the disk monitor last measured (every
// --disk-check-interval), the same figures its degraded state is decided
// on; both are 0 until the first check.
func (n *Node) registerDiskMetrics() {
	n.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "skiff", Subsystem: "node", Name: "disk_free_bytes",
			Help: "Bytes available to the node on the file system of its data directory (checked every --disk-check-interval)."},
			func() float64 { return float64(n.disk.free.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "skiff", Subsystem: "node", Name: "disk_total_bytes",
			Help: "Size of the file system of the node's data directory (checked every --disk-check-interval)."},
			func() float64 { return float64(n.disk.total.Load()) }))
}

// runDiskMonitor checks the data directory's free space every
// DiskCheckInterval and records the node's degraded state in the
// metadata when it changes, so that placement avoids the node and its
// leaderships move away (see metadata.NodeMode.DiskDegraded).
func (n *Node) runDiskMonitor() {
	tick := time.NewTicker(n.cfg.DiskCheckInterval)
	defer tick.Stop()
	ctx, cancel := n.stopContext()
	defer cancel()
	for {
		n.checkDisk(ctx)
		select {
		case <-n.stop:
			return
		case <-tick.C:
		case <-n.disk.wake:
		}
	}
}

func (n *Node) checkDisk(ctx context.Context) {
	statfs := n.cfg.StatFS
	if statfs == nil {
		statfs = StatFS
	}
	u, err := statfs(n.cfg.DataDir)
	if err != nil {
		n.logger.Warn("disk check", "error", err)
		return
	}
	th := n.cfg.diskThreshold(u.Total)
	n.disk.free.Store(u.Free)
	n.disk.total.Store(u.Total)
	n.disk.threshold.Store(th)
	low := u.Free < th
	if n.disk.low.Swap(low) != low {
		n.logger.Warn("disk free space", "free", u.Free, "threshold", th, "degraded", low)
	}
	// A write that failed for lack of space counts until there is room
	// again: above the threshold plus what the failed write may need,
	// approximated by one segment.
	if n.disk.enospc.Load() && u.Free > th+uint64(max(n.cfg.Partition.Log.SegmentBytes, 0)) {
		n.disk.enospc.Store(false)
		n.logger.Info("disk space is back after a failed write", "free", u.Free)
	}
	deg := n.disk.degraded()
	st := n.meta.fsm.State()
	if _, registered := st.Brokers[n.id]; !registered || st.DiskDegraded(n.id) == deg {
		n.disk.reported.Store(st.DiskDegraded(n.id))
		return
	}
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	if _, err := n.proposeMeta(pctx, metadata.SetNodeDisk{Node: n.id, Degraded: deg}); err != nil {
		n.logger.Warn("record disk state", "degraded", deg, "error", err)
		return
	}
	n.disk.reported.Store(deg)
}
