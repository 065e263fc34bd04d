package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-mq/skiff/chaos/fault"
	"github.com/skiff-mq/skiff/chaos/history"
	"github.com/skiff-mq/skiff/chaos/nemesis"
	"github.com/skiff-mq/skiff/chaos/proxy"
	"github.com/skiff-mq/skiff/chaos/runner"
	"github.com/skiff-mq/skiff/chaos/workload"
)

// errAnomalies makes `skiff chaos run|check` exit non-zero after printing
// a summary that already says what is wrong.
var errAnomalies = errors.New("the history shows anomalies (see the summary above)")

func newChaosCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "chaos run|check|proxy|scenarios",
		Short: "Chaos testing: workload under faults, history checker, delaying proxy",
		Long: "run:       a workload through steady, fault and recovery phases with a scenario's faults,\n" +
			"           then the final read and the check (scripts/chaos.sh wraps it with a compose cluster).\n" +
			"check:     check a history file for lost, duplicated, reordered ... writes.\n" +
			"proxy:     a TCP proxy that delays what it forwards (stands in for tc netem).\n" +
			"scenarios: list the scenarios.",
	}
	cmd.AddCommand(newChaosRunCommand(g), newChaosCheckCommand(g), newChaosProxyCommand(), newChaosScenariosCommand(g))
	return cmd
}

// chaosRunOptions are the flags of `skiff chaos run`.
type chaosRunOptions struct {
	scenario        string
	backend         string
	faultsScript    string
	topic           string
	partitions      int
	replication     int
	producers       int
	readers         int
	groupConsumers  int
	group           string
	rate            int
	steady, fault   time.Duration
	recovery        time.Duration
	deliveryTimeout time.Duration
	requestTimeout  time.Duration
	historyPath     string
	verbose         bool
	debug           bool
}

func newChaosRunCommand(g *globalOptions) *cobra.Command {
	o := &chaosRunOptions{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run a workload under a fault scenario and check its history",
		Long: "Writes unique values with idempotent producers to a new RF3 topic, reads them with consumers\n" +
			"(--readers read every partition; --group-consumers are members of one consumer group that commit\n" +
			"after every poll, so rebalances and committed offsets are checked too),\n" +
			"injects the scenario's faults during the fault phase (backend docker: the compose cluster via\n" +
			"scripts/faults.sh), heals, reads every partition from the start, and checks the history.\n" +
			"Exits non-zero if the checker finds any anomaly. Scenario \"none\" injects no fault.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return err
			}
			brokers, err := cmd.Flags().GetStringSlice("brokers")
			if err != nil {
				return err
			}
			return runChaos(cmd, g, o, splitList(brokers))
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.scenario, "scenario", "none", "fault scenario (see `skiff chaos scenarios`)")
	f.StringVar(&o.backend, "backend", "docker", "fault backend: docker (the compose cluster of docker-compose.yml)")
	f.StringVar(&o.faultsScript, "faults-script", "scripts/faults.sh", "path of scripts/faults.sh (docker backend)")
	f.StringVar(&o.topic, "topic", "", "topic to create and write (default chaos-<scenario>-<time>)")
	f.IntVar(&o.partitions, "partitions", 6, "partitions of the topic")
	f.IntVar(&o.replication, "replication", 3, "replication factor of the topic")
	f.IntVar(&o.producers, "producers", 3, "idempotent producers")
	f.IntVar(&o.readers, "readers", 2, "consumers reading every partition during the run")
	f.IntVar(&o.groupConsumers, "group-consumers", 2,
		"members of one consumer group reading the topic from the earliest offset and committing after every poll (0: none)")
	f.StringVar(&o.group, "group", "", "consumer group of --group-consumers (default <topic>-chaos-<time>, new per run)")
	f.IntVar(&o.rate, "rate", 200, "sends per second per producer")
	f.DurationVar(&o.steady, "steady", 20*time.Second, "steady phase (no fault)")
	f.DurationVar(&o.fault, "fault", 30*time.Second, "fault phase (stretched to the scenario's minimum)")
	f.DurationVar(&o.recovery, "recovery", 30*time.Second, "recovery phase (after healing)")
	f.DurationVar(&o.deliveryTimeout, "delivery-timeout", 20*time.Second, "per-record delivery timeout (then indeterminate)")
	f.DurationVar(&o.requestTimeout, "request-timeout", 2*time.Second,
		"client request timeout: how long a request to a broker that died silently takes to fail over")
	f.StringVar(&o.historyPath, "history", "chaos-history.jsonl", "history file to write")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "log phases and faults on stderr")
	f.BoolVar(&o.debug, "debug", false, "with --verbose, also the client's retries and leader changes")
	return cmd
}

func runChaos(cmd *cobra.Command, g *globalOptions, o *chaosRunOptions, brokers []string) error {
	sc, err := lookupScenario(o.scenario)
	if err != nil {
		return err
	}
	// Bad TLS flags fail before any fault backend is set up.
	tlsCfg, err := tlsOptionsFrom(cmd.Flags()).config()
	if err != nil {
		return err
	}
	logger := slog.New(slog.DiscardHandler)
	if o.verbose {
		level := slog.LevelInfo
		if o.debug {
			level = slog.LevelDebug
		}
		logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	}
	var cl fault.Cluster
	switch o.backend {
	case "docker":
		script, err := filepath.Abs(o.faultsScript)
		if err != nil {
			return err
		}
		self, err := os.Executable()
		if err != nil {
			return err
		}
		if cl, err = fault.NewDocker(fault.DockerConfig{Script: script, Env: []string{"SKIFF_BIN=" + self}}); err != nil {
			return err
		}
	default:
		return fmt.Errorf("--backend %q: want docker (Go tests use the in-process backend)", o.backend)
	}
	topic := o.topic
	if topic == "" {
		topic = fmt.Sprintf("chaos-%s-%d", sc.Name, time.Now().Unix())
	}
	cfg := runner.Config{
		Workload: workload.Config{
			Brokers: brokers, TLS: tlsCfg, Topic: topic, Partitions: o.partitions, ReplicationFactor: o.replication,
			Producers: o.producers, Readers: o.readers, NoReaders: o.readers == 0, Rate: o.rate,
			GroupConsumers: o.groupConsumers, NoGroupConsumers: o.groupConsumers == 0, Group: o.group,
			DeliveryTimeout: o.deliveryTimeout, RequestTimeout: o.requestTimeout, Logger: logger,
		},
		Scenario: sc, Cluster: cl,
		Steady: o.steady, Fault: o.fault, Recovery: o.recovery,
		HistoryPath: o.historyPath, Logger: logger,
	}
	if o.verbose {
		cfg.Progress = func(_ string, s workload.Stats) {
			logger.Info("progress", "sends", s.Sends, "acked", s.Acked, "failed", s.Failed,
				"indeterminate", s.Indeterminate, "reads", s.Reads, "commits", s.Commits, "commits_failed", s.CommitsFailed,
				"rebalances", s.Rebalances)
		}
	}
	res, err := runner.Run(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	if g.output == "json" {
		if err := writeJSON(cmd.OutOrStdout(), res); err != nil {
			return err
		}
	} else {
		printChaosResult(cmd.OutOrStdout(), res, o.historyPath)
	}
	if !res.Valid() {
		return errAnomalies
	}
	return nil
}

func lookupScenario(name string) (nemesis.Scenario, error) {
	if name == "none" {
		return nemesis.None(), nil
	}
	return nemesis.Lookup(name)
}

func printChaosResult(w io.Writer, res runner.Result, historyPath string) {
	verdict := "PASS"
	switch {
	case res.Skipped != "":
		verdict = "SKIPPED"
	case !res.Valid():
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "chaos %s: %s in %s (history %s)\n", res.Scenario, verdict, res.Took.Round(time.Second), historyPath)
	if res.Skipped != "" {
		fmt.Fprintf(w, "  skipped: %s\n", res.Skipped)
	}
	for _, e := range res.Errors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
	fmt.Fprintf(w, "  final read: %d records in %d partitions\n", res.Final.Records, res.Final.Partitions)
	fmt.Fprintf(w, "  unavailability per partition: p99 %s, max %s; per fault and partition: p99 %s over %d gaps\n",
		res.P99.Round(time.Millisecond), res.Max.Round(time.Millisecond), res.FaultP99.Round(time.Millisecond), len(res.FaultGaps))
	fmt.Fprint(w, indent(res.Report.String()))
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func newChaosCheckCommand(g *globalOptions) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check a history file; exit non-zero on any anomaly",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := runner.CheckFile(path)
			if err != nil {
				return err
			}
			if g.output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(a); err != nil {
					return err
				}
			} else {
				fmt.Fprint(cmd.OutOrStdout(), a.Report.String())
				fmt.Fprintf(cmd.OutOrStdout(), "  unavailability p99     %s over %d partitions (each its longest gap)\n",
					a.UnavailabilityQuantile(0.99).Round(time.Millisecond), len(a.Unavailability))
				if len(a.FaultGaps) > 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "  per fault              p99 %s, max %s over %d fault x partition gaps\n",
						a.FaultP99.Round(time.Millisecond), history.GapQuantile(a.FaultGaps, 1).Round(time.Millisecond), len(a.FaultGaps))
				}
			}
			if !a.Valid() {
				return errAnomalies
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "history", "chaos-history.jsonl", "history file (JSON lines) to check")
	return cmd
}

func newChaosProxyCommand() *cobra.Command {
	var cfg proxy.Config
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Forward TCP connections with a delay (a netem stand-in); runs until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := proxy.Start(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "proxy %s -> %s, delay %v + up to %v\n", p.Addr(), cfg.Target, cfg.Delay, cfg.Jitter)
			<-cmd.Context().Done()
			return p.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:0", "address to accept on")
	f.StringVar(&cfg.Target, "target", "", "address to forward to")
	f.DurationVar(&cfg.Delay, "delay", 50*time.Millisecond, "delay added each way")
	f.DurationVar(&cfg.Jitter, "jitter", 0, "random extra delay, up to this")
	return cmd
}

func newChaosScenariosCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "scenarios",
		Short: "List the chaos scenarios",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			all := nemesis.All()
			if g.output == "json" {
				type sc struct {
					Name        string   `json:"name"`
					Description string   `json:"description"`
					Needs       []string `json:"needs,omitempty"`
				}
				var out []sc
				for _, s := range all {
					out = append(out, sc{s.Name, s.Description, s.Needs})
				}
				return writeJSON(cmd.OutOrStdout(), out)
			}
			for _, s := range all {
				fmt.Fprintf(cmd.OutOrStdout(), "%-28s %s\n", s.Name, s.Description)
			}
			return nil
		},
	}
}
