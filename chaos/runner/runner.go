// Package runner runs one chaos scenario end to end against a cluster:
// the workload through the phases steady, fault and recovery (like
// Redpanda's chaos suite), the scenario's faults during the fault phase,
// healing, the final read, and the check of the history.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/skiff-mq/skiff/chaos/fault"
	"github.com/skiff-mq/skiff/chaos/history"
	"github.com/skiff-mq/skiff/chaos/nemesis"
	"github.com/skiff-mq/skiff/chaos/workload"
)

// Config configures a run.
type Config struct {
	Workload workload.Config
	Scenario nemesis.Scenario
	Cluster  fault.Cluster
	// Timings of the scenario's schedule; zero fields take
	// nemesis.DefaultTimings.
	Timings nemesis.Timings
	// Steady, Fault and Recovery are the phases: the workload alone, the
	// workload under the scenario's faults (stretched to the scenario's
	// MinFault), the workload after everything healed. Defaults 20s, 30s,
	// 30s.
	Steady, Fault, Recovery time.Duration
	// HistoryPath is the history file written (truncated first).
	HistoryPath string
	// HealthyTimeout bounds waiting for a whole cluster before the run
	// and after healing. Default 120s.
	HealthyTimeout time.Duration
	// Progress, if set, is called every ProgressEvery with the workload's
	// counts. Default every 5s.
	Progress      func(phase string, s workload.Stats)
	ProgressEvery time.Duration
	Logger        *slog.Logger
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if err := c.Workload.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Scenario.Name == "" {
		errs = append(errs, errors.New("runner config: Scenario is required"))
	}
	if c.Cluster == nil {
		errs = append(errs, errors.New("runner config: Cluster (a fault backend) is required"))
	}
	if c.HistoryPath == "" {
		errs = append(errs, errors.New("runner config: HistoryPath is required"))
	}
	if c.Steady < 0 || c.Fault < 0 || c.Recovery < 0 || c.HealthyTimeout < 0 || c.ProgressEvery < 0 {
		errs = append(errs, errors.New("runner config: durations must not be negative"))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Steady == 0 {
		c.Steady = 20 * time.Second
	}
	if c.Fault == 0 {
		c.Fault = 30 * time.Second
	}
	c.Fault = max(c.Fault, c.Scenario.MinFault)
	if c.Recovery == 0 {
		c.Recovery = 30 * time.Second
	}
	if c.HealthyTimeout == 0 {
		c.HealthyTimeout = 120 * time.Second
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Workload.Logger == nil {
		c.Workload.Logger = c.Logger
	}
	return c
}

// Result is the outcome of a run.
type Result struct {
	Scenario string              `json:"scenario"`
	Started  time.Time           `json:"started"`
	Took     time.Duration       `json:"took_ns"`
	Stats    workload.Stats      `json:"workload"`
	Final    workload.FinalStats `json:"final_read"`
	Report   history.Report      `json:"report"`
	P99      time.Duration       `json:"unavailability_p99_ns"`
	Max      time.Duration       `json:"unavailability_max_ns"`
	// FaultGaps are, per fault and partition, the ack gap spanning the
	// fault's start; FaultP99 their 99th percentile (nearest rank).
	FaultGaps []history.FaultGap   `json:"fault_gaps,omitempty"`
	FaultP99  time.Duration        `json:"fault_gap_p99_ns"`
	Skipped   string               `json:"skipped,omitempty"` // why, when the backend lacks a fault
	Errors    []string             `json:"errors,omitempty"`  // scenario or workload trouble (the check still ran)
	Phases    map[string]time.Time `json:"phases"`
}

// Valid reports whether the run found no anomaly and had no error.
func (r Result) Valid() bool { return r.Skipped == "" && len(r.Errors) == 0 && r.Report.Valid() }

// Run runs the scenario. It returns an error only when the run could not
// happen at all (a bad config, no cluster, no history file); trouble
// during the run is in Result.Errors, anomalies in Result.Report.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger
	res := Result{Scenario: cfg.Scenario.Name, Started: time.Now(), Phases: map[string]time.Time{}}
	f, err := os.Create(cfg.HistoryPath)
	if err != nil {
		return res, fmt.Errorf("runner: %w", err)
	}
	defer f.Close()
	hist := history.NewWriter(f)
	fail := func(what string, err error) {
		log.Error(what, "err", err)
		res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", what, err))
	}

	hctx, cancel := context.WithTimeout(ctx, cfg.HealthyTimeout)
	err = cfg.Cluster.WaitHealthy(hctx)
	cancel()
	if err != nil {
		return res, fmt.Errorf("runner: cluster not healthy before the run: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, cfg.HealthyTimeout)
	w, err := workload.Start(sctx, cfg.Workload, hist)
	cancel()
	if err != nil {
		return res, fmt.Errorf("runner: %w", err)
	}
	stopProgress := progress(cfg, w)
	// The history reaches the file every second, so that a run that dies
	// (or is killed by its time bound) still leaves most of its history.
	stopFlush := every(time.Second, func() { _ = hist.Flush() })
	defer stopFlush()

	phase := func(name string) {
		res.Phases[name] = time.Now()
		log.Info("phase", "phase", name)
	}
	phase("steady")
	wait(ctx, cfg.Steady)

	phase("fault")
	env := &nemesis.Env{
		Cluster:     cfg.Cluster,
		Topic:       cfg.Workload.Topic,
		Partitions:  partitions(cfg.Workload),
		Replication: cfg.Workload.ReplicationFactor,
		Record:      func(e history.Event) { _ = hist.Write(e) },
		T:           cfg.Timings,
		Logger:      log,
	}
	fctx, cancel := context.WithTimeout(ctx, cfg.Fault)
	err = cfg.Scenario.Run(fctx, env)
	cancel()
	switch {
	case errors.Is(err, fault.ErrUnsupported):
		res.Skipped = err.Error()
	case err != nil:
		fail("scenario", err)
	}

	phase("heal")
	// Whatever the scenario left behind: every node up, no network fault.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.HealthyTimeout)
	if err := cfg.Cluster.StartAll(cctx); err != nil {
		fail("heal", err)
	}
	_ = hist.Write(history.Event{Type: history.FaultEvent, Value: history.FaultStop})
	if err := cfg.Cluster.WaitHealthy(cctx); err != nil {
		fail("cluster not healthy after healing", err)
	}
	cancel()

	phase("recovery")
	wait(ctx, cfg.Recovery)

	phase("stop")
	stopProgress()
	stopFlush()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.HealthyTimeout)
	if err := w.Stop(dctx); err != nil {
		fail("workload", err)
	}
	cancel()
	res.Stats = w.Stats()

	phase("final read")
	res.Final, err = workload.FinalRead(context.WithoutCancel(ctx), cfg.Workload, hist)
	if err != nil {
		fail("final read", err)
	}
	if err := hist.Close(); err != nil {
		return res, fmt.Errorf("runner: %w", err)
	}
	if err := f.Sync(); err != nil {
		return res, fmt.Errorf("runner: %w", err)
	}

	phase("check")
	a, err := CheckFile(cfg.HistoryPath)
	if err != nil {
		return res, fmt.Errorf("runner: %w", err)
	}
	res.Report, res.FaultGaps, res.FaultP99 = a.Report, a.FaultGaps, a.FaultP99
	res.P99 = res.Report.UnavailabilityQuantile(0.99)
	if w, ok := res.Report.MaxUnavailability(); ok {
		res.Max = w.Duration
	}
	res.Took = time.Since(res.Started)
	return res, nil
}

// Analysis is what CheckFile finds in a history.
type Analysis struct {
	history.Report
	// FaultGaps and FaultP99: see Result.
	FaultGaps []history.FaultGap `json:"fault_gaps,omitempty"`
	FaultP99  time.Duration      `json:"fault_gap_p99_ns"`
}

// CheckFile reads a history file (its final-read events included), checks
// it and measures the unavailability each fault caused.
func CheckFile(path string) (Analysis, error) {
	f, err := os.Open(path)
	if err != nil {
		return Analysis{}, fmt.Errorf("check: %w", err)
	}
	defer f.Close()
	events, err := history.Read(f)
	if err != nil {
		return Analysis{}, fmt.Errorf("check %s: %w", path, err)
	}
	a := Analysis{Report: history.CheckAll(events), FaultGaps: history.FaultGaps(events)}
	a.FaultP99 = history.GapQuantile(a.FaultGaps, 0.99)
	return a, nil
}

func partitions(c workload.Config) int {
	if c.Partitions == 0 {
		return workload.DefaultConfig().Partitions
	}
	return c.Partitions
}

// progress calls cfg.Progress periodically until the returned stop runs.
func progress(cfg Config, w *workload.Workload) (stop func()) {
	if cfg.Progress == nil {
		return func() {}
	}
	return every(cfg.ProgressEvery, func() { cfg.Progress("", w.Stats()) })
}

// every calls f every d until the returned stop runs (and returned);
// stop may be called more than once.
func every(d time.Duration, f func()) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f()
			}
		}
	}()
	return func() { cancel(); <-done }
}

// wait sleeps d or until ctx ends.
func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
