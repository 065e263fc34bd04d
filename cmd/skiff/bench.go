package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-mq/skiff/client"
	"github.com/skiff-mq/skiff/record"
)

// benchOptions are the flags of `skiff bench produce|consume|e2e|share`.
type benchOptions struct {
	topic       string
	records     int
	duration    time.Duration
	recordSize  int
	partitions  int
	replication int
	concurrency int
	keys        int
	linger      time.Duration
	batchBytes  int
	compression string
	rate        int
}

func newBenchCommand(o *clientOptions) *cobra.Command {
	bo := &benchOptions{}
	sb := &shareBenchOptions{}
	cmd := &cobra.Command{
		Use:   "bench produce|consume|e2e|share",
		Short: "Measure throughput and latency against a running cluster",
		Long: "produce: write records as fast as acknowledgements allow; latency is send to ack.\n" +
			"consume: read the topic from the start; throughput only.\n" +
			"e2e:     produce and consume at once; latency is send to receive.\n" +
			"share:   produce --records into a new topic (--partitions, --keys), then --members share\n" +
			"         consumers of one share group take and ack every record (--ack-mode batch: acks\n" +
			"         travel with the next fetch; sync: one Acknowledge call per fetched batch);\n" +
			"         records/s from the members' start to the last ack, latency is delivery to\n" +
			"         ack committed, plus redeliveries and duplicates (records acked twice).\n" +
			"The topic is created if missing. A progress line is drawn on a terminal; the result\n" +
			"(records/s, MB/s, latency percentiles) is printed at the end, as JSON with -o json.",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"produce", "consume", "e2e", "share"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.prepare(cmd); err != nil {
				return err
			}
			if err := bo.validate(args[0]); err != nil {
				return err
			}
			if args[0] == "share" {
				if bo.duration > 0 {
					return errors.New("--duration does not apply to bench share (it takes --records)")
				}
				if err := sb.validate(); err != nil {
					return err
				}
				return runShareBench(cmd, o, bo, sb)
			}
			for _, name := range []string{"members", "ack-mode", "fetch-records", "share-timeout", "key-ordered"} {
				if cmd.Flags().Changed(name) {
					return fmt.Errorf("--%s applies to bench share only", name)
				}
			}
			return runBench(cmd, o, bo, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&bo.topic, "topic", "bench", "topic to use (created if missing)")
	f.IntVar(&bo.records, "records", 1_000_000, "records to write or read (ignored with --duration)")
	f.DurationVar(&bo.duration, "duration", 0, "run for this long instead of a record count")
	f.IntVar(&bo.recordSize, "record-size", 100, "value size in bytes")
	f.IntVar(&bo.partitions, "partitions", 6, "partitions of a topic the benchmark creates")
	f.IntVar(&bo.replication, "replication", 3, "replication factor of a topic the benchmark creates")
	f.IntVar(&bo.concurrency, "concurrency", 4, "producers (produce, e2e) or consumers (consume) running at once")
	f.IntVar(&bo.keys, "keys", 0, "distinct keys, chosen round-robin (0: no keys, records spread by the sticky partitioner)")
	f.DurationVar(&bo.linger, "linger", 5*time.Millisecond, "producer linger")
	f.IntVar(&bo.batchBytes, "batch-bytes", 1<<20, "producer max batch bytes")
	f.StringVar(&bo.compression, "compression", "none", "none, gzip, snappy, lz4 or zstd")
	f.IntVar(&bo.rate, "rate", 0, "records per second across all producers (0: as fast as possible; set it to measure latency below saturation)")
	f.IntVar(&sb.members, "members", 3, "share: share consumers of the group")
	f.StringVar(&sb.ackMode, "ack-mode", "batch", "share: batch (acks ride on the next fetch) or sync (an Acknowledge call per fetched batch)")
	f.IntVar(&sb.maxRecords, "fetch-records", 1000, "share: records one fetch may take")
	f.DurationVar(&sb.timeout, "share-timeout", 10*time.Minute, "share: give up when not every record is acked by then")
	f.BoolVar(&sb.keyOrdered, "key-ordered", true, "share: the group's key.ordered (false: records of one key may be in flight at once, as in a JetStream work queue)")
	return cmd
}

func (b *benchOptions) validate(mode string) error {
	switch {
	case mode != "produce" && mode != "consume" && mode != "e2e" && mode != "share":
		return fmt.Errorf("bench %q: want produce, consume or e2e, or share", mode)
	case b.records <= 0 && b.duration <= 0:
		return errors.New("--records must be positive (or give --duration)")
	case b.recordSize < 8:
		return errors.New("--record-size must be at least 8 (the value carries a send timestamp)")
	case b.concurrency < 1 || b.concurrency > 1024:
		return errors.New("--concurrency must be in [1, 1024]")
	case b.keys < 0:
		return errors.New("--keys must not be negative")
	case b.rate < 0:
		return errors.New("--rate must not be negative")
	}
	_, err := parseCompression(b.compression)
	return err
}

func parseCompression(s string) (record.Compression, error) {
	for _, c := range []record.Compression{record.CompressionNone, record.CompressionGzip, record.CompressionSnappy, record.CompressionLZ4, record.CompressionZstd} {
		if c.String() == s {
			return c, nil
		}
	}
	return 0, fmt.Errorf("--compression %q: want none, gzip, snappy, lz4 or zstd", s)
}

// benchResult is the JSON output of `skiff bench`; field names are a
// contract for scripts.
type benchResult struct {
	Mode        string  `json:"mode"`
	Records     int64   `json:"records"`
	Errors      int64   `json:"errors"`
	Bytes       int64   `json:"bytes"`
	Seconds     float64 `json:"seconds"`
	RecordsPerS float64 `json:"records_per_sec"`
	MBPerS      float64 `json:"mb_per_sec"`
	LatencyP50  float64 `json:"latency_p50_ms,omitempty"`
	LatencyP90  float64 `json:"latency_p90_ms,omitempty"`
	LatencyP99  float64 `json:"latency_p99_ms,omitempty"`
	LatencyP999 float64 `json:"latency_p999_ms,omitempty"`
	LatencyMax  float64 `json:"latency_max_ms,omitempty"`
	FirstError  string  `json:"first_error,omitempty"`
	RecordSize  int     `json:"record_size"`
	Partitions  int     `json:"partitions"`
	Concurrency int     `json:"concurrency"`
	Compression string  `json:"compression"`
}

// benchStats collects counts and latencies from many goroutines.
type benchStats struct {
	records, errors, bytes atomic.Int64
	mu                     sync.Mutex
	latencies              []time.Duration // guarded by mu
	firstErr               error           // guarded by mu
}

func (s *benchStats) ok(n int, lat time.Duration) {
	s.records.Add(1)
	s.bytes.Add(int64(n))
	if lat >= 0 {
		s.mu.Lock()
		s.latencies = append(s.latencies, lat)
		s.mu.Unlock()
	}
}

func (s *benchStats) fail(err error) {
	s.errors.Add(1)
	s.mu.Lock()
	if s.firstErr == nil {
		s.firstErr = err
	}
	s.mu.Unlock()
}

func runBench(cmd *cobra.Command, o *clientOptions, bo *benchOptions, mode string) error {
	ctx := cmd.Context()
	if bo.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, bo.duration)
		defer cancel()
	}
	c, err := o.connect(cmd.Context())
	if err != nil {
		return err
	}
	defer c.Close()
	topic, err := ensureBenchTopic(cmd.Context(), c, bo)
	if err != nil {
		return err
	}
	stats := &benchStats{}
	stopProgress := startProgress(cmd.ErrOrStderr(), stats)
	start := time.Now()
	switch mode {
	case "produce":
		err = benchProduce(ctx, c, bo, stats)
	case "consume":
		err = benchConsume(ctx, c, bo, topic, stats, false)
	case "e2e":
		err = benchE2E(ctx, c, bo, topic, stats)
	}
	elapsed := time.Since(start)
	stopProgress()
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	res := summarizeBench(mode, bo, stats, elapsed, topic)
	if o.g.output == "json" {
		return writeJSON(cmd.OutOrStdout(), res)
	}
	printBench(cmd.OutOrStdout(), res)
	if res.Errors > 0 {
		return fmt.Errorf("%d records failed (first: %s)", res.Errors, res.FirstError)
	}
	return nil
}

func ensureBenchTopic(ctx context.Context, c *client.Client, bo *benchOptions) (client.TopicInfo, error) {
	t, err := c.DescribeTopic(ctx, bo.topic)
	if errors.Is(err, client.ErrUnknownTopic) {
		t, err = c.CreateTopic(ctx, bo.topic, bo.partitions, bo.replication, nil)
		if err == nil {
			// A new topic's partitions need a moment to elect leaders.
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				if t, err = c.DescribeTopic(ctx, bo.topic); err == nil && allLed(t) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	if err != nil {
		return client.TopicInfo{}, fmt.Errorf("bench topic %s: %w", bo.topic, err)
	}
	return t, nil
}

func allLed(t client.TopicInfo) bool {
	for _, p := range t.Partitions {
		if p.Leader == "" {
			return false
		}
	}
	return len(t.Partitions) > 0
}

// benchProduce runs bo.concurrency producers until the record count or the
// context runs out. Each value starts with its send time (ns), which e2e
// consumers read back.
func benchProduce(ctx context.Context, c *client.Client, bo *benchOptions, stats *benchStats) error {
	comp, _ := parseCompression(bo.compression)
	var next atomic.Int64
	begin := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, bo.concurrency)
	for w := 0; w < bo.concurrency; w++ {
		p, err := c.NewProducer(client.ProducerConfig{Linger: bo.linger, MaxBatchBytes: bo.batchBytes, Compression: comp})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.Close(context.Background())
			for {
				i := next.Add(1)
				if bo.duration <= 0 && i > int64(bo.records) || ctx.Err() != nil {
					break
				}
				if bo.rate > 0 {
					// Open-loop pacing: record i is due at i/rate.
					due := begin.Add(time.Duration(float64(i) / float64(bo.rate) * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done():
						}
					}
				}
				value := make([]byte, bo.recordSize)
				binary.BigEndian.PutUint64(value, uint64(time.Now().UnixNano()))
				r := &client.Record{Topic: bo.topic, Value: value}
				if bo.keys > 0 {
					r.Key = []byte("key-" + strconv.FormatInt(i%int64(bo.keys), 10))
				}
				sentAt := time.Now()
				p.Produce(ctx, r, func(r *client.Record, err error) {
					if err != nil {
						if ctx.Err() == nil {
							stats.fail(err)
						}
						return
					}
					stats.ok(len(r.Value)+len(r.Key), time.Since(sentAt))
				})
			}
			fctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := p.Flush(fctx); err != nil && ctx.Err() == nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// benchConsume reads every partition from the start (each consumer takes a
// share of the partitions) until the record count is reached or ctx ends.
// With measureLatency it records receive time minus the send time in each
// value.
func benchConsume(ctx context.Context, c *client.Client, bo *benchOptions, t client.TopicInfo, stats *benchStats, measureLatency bool) error {
	workers := min(bo.concurrency, len(t.Partitions))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		co, err := c.NewConsumer(client.ConsumerConfig{})
		if err != nil {
			return err
		}
		for i, p := range t.Partitions {
			if i%workers == w {
				if err := co.Assign(ctx, t.Name, p.Partition, client.Earliest()); err != nil {
					return err
				}
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer co.Close()
			for ctx.Err() == nil {
				recs, err := co.Poll(ctx)
				now := time.Now()
				for _, r := range recs {
					lat := time.Duration(-1)
					if measureLatency && len(r.Value) >= 8 {
						lat = now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(r.Value))))
					}
					stats.ok(len(r.Value)+len(r.Key), lat)
				}
				if bo.duration <= 0 && stats.records.Load() >= int64(bo.records) {
					cancel()
				}
				if err != nil && ctx.Err() == nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// benchE2E produces and consumes at once; latency is send to receive.
func benchE2E(ctx context.Context, c *client.Client, bo *benchOptions, t client.TopicInfo, stats *benchStats) error {
	// Consumers start at the end so they see only this run's records.
	start := map[int32]int64{}
	for _, p := range t.Partitions {
		start[p.Partition] = p.HighWatermark
	}
	consumed := &benchStats{}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- benchConsumeFrom(cctx, c, bo, t, start, consumed) }()
	produced := &benchStats{}
	perr := benchProduce(ctx, c, bo, produced)
	// Let the consumers catch up with what was acknowledged.
	deadline := time.Now().Add(time.Minute)
	for consumed.records.Load() < produced.records.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	cerr := <-done
	stats.records.Store(consumed.records.Load())
	stats.bytes.Store(consumed.bytes.Load())
	stats.errors.Store(produced.errors.Load() + consumed.errors.Load())
	stats.latencies = consumed.latencies
	stats.firstErr = errors.Join(produced.firstErr, consumed.firstErr)
	if perr != nil {
		return perr
	}
	if cerr != nil && !errors.Is(cerr, context.Canceled) {
		return cerr
	}
	return nil
}

func benchConsumeFrom(ctx context.Context, c *client.Client, bo *benchOptions, t client.TopicInfo, start map[int32]int64, stats *benchStats) error {
	co, err := c.NewConsumer(client.ConsumerConfig{MaxWait: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	defer co.Close()
	for _, p := range t.Partitions {
		if err := co.Assign(ctx, t.Name, p.Partition, client.At(start[p.Partition])); err != nil {
			return err
		}
	}
	for ctx.Err() == nil {
		recs, err := co.Poll(ctx)
		now := time.Now()
		for _, r := range recs {
			stats.ok(len(r.Value)+len(r.Key), now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(r.Value)))))
		}
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
	return ctx.Err()
}

func summarizeBench(mode string, bo *benchOptions, s *benchStats, elapsed time.Duration, t client.TopicInfo) benchResult {
	res := benchResult{
		Mode: mode, Records: s.records.Load(), Errors: s.errors.Load(), Bytes: s.bytes.Load(),
		Seconds: elapsed.Seconds(), RecordSize: bo.recordSize, Partitions: len(t.Partitions),
		Concurrency: bo.concurrency, Compression: bo.compression,
	}
	if res.Seconds > 0 {
		res.RecordsPerS = float64(res.Records) / res.Seconds
		res.MBPerS = float64(res.Bytes) / res.Seconds / 1e6
	}
	if s.firstErr != nil {
		res.FirstError = s.firstErr.Error()
	}
	lat := s.latencies
	if len(lat) > 0 {
		slices.Sort(lat)
		pct := func(p float64) float64 {
			return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
		}
		res.LatencyP50, res.LatencyP90, res.LatencyP99, res.LatencyP999 = pct(0.50), pct(0.90), pct(0.99), pct(0.999)
		res.LatencyMax = float64(lat[len(lat)-1].Microseconds()) / 1000
	}
	return res
}

func printBench(w io.Writer, r benchResult) {
	fmt.Fprintf(w, "%s: %d records in %.2fs: %.0f records/s, %.2f MB/s (%d partitions, %d B records, concurrency %d, %s)\n",
		r.Mode, r.Records, r.Seconds, r.RecordsPerS, r.MBPerS, r.Partitions, r.RecordSize, r.Concurrency, r.Compression)
	if r.LatencyMax > 0 {
		what := "send to ack"
		if r.Mode == "e2e" {
			what = "send to receive"
		}
		fmt.Fprintf(w, "latency (%s): p50 %.2fms  p90 %.2fms  p99 %.2fms  p99.9 %.2fms  max %.2fms\n",
			what, r.LatencyP50, r.LatencyP90, r.LatencyP99, r.LatencyP999, r.LatencyMax)
	}
	if r.Errors > 0 {
		fmt.Fprintf(w, "errors: %d (first: %s)\n", r.Errors, r.FirstError)
	}
}

// startProgress redraws one status line per second when w is a terminal.
func startProgress(w io.Writer, s *benchStats) (stop func()) {
	f, ok := w.(*os.File)
	if !ok {
		return func() {}
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				fmt.Fprint(f, "\r\033[K")
				return
			case <-t.C:
				n := s.records.Load()
				fmt.Fprintf(f, "\r\033[K%d records  %.0f records/s  %d errors", n, float64(n)/time.Since(start).Seconds(), s.errors.Load())
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
