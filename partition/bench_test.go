package partition

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/skiff-mq/skiff/log"
	"github.com/skiff-mq/skiff/raftnet"
	"github.com/skiff-mq/skiff/record"
)

// BenchmarkProduce3Replicas measures acknowledged throughput and ack latency
// of one partition with three replicas in this process (real loopback TCP,
// durability=fsync), batches of 100 records, with 1, 8 and 64 batches in
// flight.
func BenchmarkProduce3Replicas(b *testing.B) {
	for _, size := range []int{100, 1024} {
		for _, inflight := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("record=%dB/batch=100/inflight=%d", size, inflight), func(b *testing.B) {
				benchProduce(b, size, 100, inflight)
			})
		}
	}
	// skiff bench produce's default: batches of up to 1 MiB, so one
	// AppendEntries carries a few MiB.
	b.Run("record=1024B/batch=1000/inflight=8", func(b *testing.B) {
		benchProduce(b, 1024, 1000, 8)
	})
}

func benchProduce(b *testing.B, recordSize, perBatch, inflight int) {
	c := newTestCluster(b, 3, func(cfg *Config) {
		cfg.Raft = DefaultRaftTiming()
		cfg.Log.SegmentBytes = 128 << 20
	})
	leader := c.waitLeader(10 * time.Second).r()
	value := make([]byte, recordSize)
	recs := make([]record.Record, perBatch)
	for i := range recs {
		recs[i] = record.Record{Timestamp: time.Now().UnixMilli(), Value: value}
	}
	batch, err := record.Encode(record.BatchOptions{}, recs)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(batch)))
	lat := make([][]time.Duration, inflight)
	var next atomic.Int64
	var wg sync.WaitGroup
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	cpu0 := cpuTime()
	for w := 0; w < inflight; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if _, err := leader.Produce(ctx, batch, 0); err != nil {
					// A leader change under load: count the write via
					// whichever replica leads now.
					if _, err := c.produceRetrying(ctx, batch); err != nil {
						b.Error(err)
						return
					}
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(len(all)*perBatch)/elapsed.Seconds(), "records/s")
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
		// All three replicas run in this process: CPU for the whole group.
		b.ReportMetric(cpu.Seconds()/(float64(len(all)*perBatch)/1e6), "cpu-s/Mrec")
	}
}

// BenchmarkSnapshotCreate measures taking a snapshot of a log of 100 MB and
// 1 GB: the time must not grow with the size, because a snapshot links the
// segment files rather than copying them.
func BenchmarkSnapshotCreate(b *testing.B) {
	for _, total := range []int64{100 << 20, 1 << 30} {
		b.Run(fmt.Sprintf("log=%dMB", total>>20), func(b *testing.B) {
			dir := b.TempDir()
			snaps, err := newSnapshotStore(filepath.Join(dir, "snapshots"), 2)
			if err != nil {
				b.Fatal(err)
			}
			cfg := log.DefaultConfig()
			cfg.MaxBatchBytes = maxRaftBatch
			f, err := openFSM(dir, cfg, defaultProducerConfig(), snaps, slog.New(slog.DiscardHandler), func(error) {})
			if err != nil {
				b.Fatal(err)
			}
			defer f.log().Close()
			value := make([]byte, 1000)
			recs := make([]record.Record, 1000)
			for i := range recs {
				recs[i] = record.Record{Timestamp: 1, Value: value}
			}
			batch, err := record.Encode(record.BatchOptions{}, recs)
			if err != nil {
				b.Fatal(err)
			}
			var index uint64
			for f.log().Size() < total {
				index++
				f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: encodeAppend(batch)})
			}
			if err := f.log().Sync(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				snap, err := f.Snapshot()
				if err != nil {
					b.Fatal(err)
				}
				sink, err := snaps.Create(1, index, 1, raft.Configuration{}, 1, nil)
				if err != nil {
					b.Fatal(err)
				}
				if err := snap.Persist(sink); err != nil {
					b.Fatal(err)
				}
				snap.Release()
			}
			b.ReportMetric(float64(f.log().Size())/(1<<20), "log-MB")
		})
	}
}

// BenchmarkFailover measures, with the default Raft timing, the time from
// killing a partition's leader to a new leader that is ready to take writes.
func BenchmarkFailover(b *testing.B) {
	c := newTestCluster(b, 3, func(cfg *Config) { cfg.Raft = DefaultRaftTiming() })
	var total time.Duration
	for i := 0; i < b.N; i++ {
		old := c.waitLeader(30 * time.Second)
		start := time.Now()
		c.crash(old)
		c.waitLeader(30 * time.Second)
		total += time.Since(start)
		c.start(old)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/failover")
}

// BenchmarkIdleGroups runs 100 partition groups on three in-process nodes
// with the default timing and reports the CPU they burn while idle and how
// many elections happen after the initial ones (flapping).
func BenchmarkIdleGroups(b *testing.B) {
	const groups = 100
	net := raftnet.NewFaultNetwork()
	base := b.TempDir()
	type node struct {
		id  string
		hub *raftnet.Hub
	}
	var nodes []node
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("n%d", i)
		mux, err := net.NewMux(id, raftnet.DefaultMuxConfig())
		if err != nil {
			b.Fatal(err)
		}
		defer mux.Close()
		hub, err := raftnet.NewHub(mux, raftnet.HubConfig{})
		if err != nil {
			b.Fatal(err)
		}
		defer hub.Close()
		nodes = append(nodes, node{id, hub})
	}
	reps := make([][]*Replica, groups)
	for g := 0; g < groups; g++ {
		group := fmt.Sprintf("topic/%d", g)
		var servers []Server
		for _, nd := range nodes {
			cfg := DefaultConfig()
			cfg.Group, cfg.NodeID, cfg.Dir = group, nd.id, filepath.Join(base, nd.id, fmt.Sprint(g))
			rep, err := Open(cfg, nd.hub)
			if err != nil {
				b.Fatal(err)
			}
			defer rep.Close()
			reps[g] = append(reps[g], rep)
			servers = append(servers, Server{ID: nd.id, Address: rep.Addr(), Voter: true})
		}
		for _, rep := range reps[g] {
			if err := rep.Bootstrap(servers); err != nil {
				b.Fatal(err)
			}
		}
	}
	waitFor(b, 2*time.Minute, "a leader in every group", func() bool {
		for _, rs := range reps {
			led := false
			for _, r := range rs {
				led = led || r.IsLeader()
			}
			if !led {
				return false
			}
		}
		return true
	})
	terms := func() (sum uint64) {
		for _, rs := range reps {
			for _, r := range rs {
				sum += r.Status().Term
			}
		}
		return sum
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := terms()
		cpu0 := cpuTime()
		start := time.Now()
		time.Sleep(10 * time.Second) // the quantity measured is idle cost over wall time
		cores := (cpuTime() - cpu0).Seconds() / time.Since(start).Seconds()
		b.ReportMetric(cores, "cpu-cores")
		b.ReportMetric(float64(terms()-t0), "term-bumps")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
