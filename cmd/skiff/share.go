package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/skiff-mq/skiff/client"
)

// ---- skiff consume --share-group: a queue worker ----

// shareShutdownGrace is how long commands still running after Ctrl-C or
// --timeout may take before they are killed (and their records released).
const shareShutdownGrace = 10 * time.Second

// shareCounts are a share worker's outcomes, for the summary line.
type shareCounts struct {
	acked, released, ackErrors atomic.Int64
}

// shareWorker processes the records of a share consumer: it prints each
// one, or pipes it to a command, and acks or releases it by the outcome.
type shareWorker struct {
	sc     *client.ShareConsumer
	group  string
	exec   string // "" prints
	output string // text or json
	out    io.Writer
	errOut io.Writer
	// settleTimeout bounds each ack, which runs on a context of its own
	// so that records are settled even after Ctrl-C.
	settleTimeout time.Duration
	// stop ends when fetching stops (Ctrl-C, --timeout); kill ends
	// shareShutdownGrace later and kills commands still running.
	stop, kill context.Context
	counts     shareCounts
}

// runShareConsume is `skiff consume TOPIC --share-group G`: it fetches
// records of the share group and hands them to --concurrency workers until
// --max records were taken, --timeout passes or Ctrl-C, then settles what
// is in flight and leaves the group.
func runShareConsume(cmd *cobra.Command, o *clientOptions, co *consumeOptions, topic string) error {
	for _, name := range []string{"from", "partition", "follow", "group", "instance-id"} {
		if cmd.Flags().Changed(name) {
			return fmt.Errorf("--%s does not apply to --share-group (the group decides what each member gets; its auto.offset.reset says where it starts)", name)
		}
	}
	if co.max < 0 || co.timeout < 0 {
		return errors.New("--max and --timeout must not be negative")
	}
	if co.concurrency < 1 {
		return fmt.Errorf("--concurrency %d: want at least 1", co.concurrency)
	}
	ctx := cmd.Context()
	if co.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, co.timeout)
		defer cancel()
	}
	cl, err := o.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()

	var outMu sync.Mutex
	w := &shareWorker{group: co.shareGroup, exec: co.exec, output: o.g.output,
		out: &syncWriter{mu: &outMu, w: cmd.OutOrStdout()}, errOut: &syncWriter{mu: &outMu, w: cmd.ErrOrStderr()},
		settleTimeout: o.timeout, stop: ctx}
	// Outcomes travel batched, with the next fetch: each record is still
	// settled alone (its own ack or release), and counted as its outcome
	// comes back.
	cfg := client.ShareConsumerConfig{Group: co.shareGroup, MaxRecords: shareFetchSize(co), OnAckResult: w.ackResult}
	if isPattern(topic) {
		cfg.Pattern = topic
	} else {
		// The group would wait for a missing topic for ever; a typo
		// deserves an error.
		if _, err := cl.DescribeTopic(ctx, topic); err != nil {
			return err
		}
		cfg.Topics = []string{topic}
	}
	sc, err := cl.NewShareConsumer(cfg)
	if err != nil {
		return err
	}
	w.sc = sc
	kill, killNow := context.WithCancel(context.WithoutCancel(ctx))
	defer killNow()
	stopKillTimer := context.AfterFunc(ctx, func() {
		t := time.NewTimer(shareShutdownGrace)
		defer t.Stop()
		select {
		case <-t.C:
			killNow()
		case <-kill.Done():
		}
	})
	defer stopKillTimer()

	w.kill = kill

	work := make(chan *client.ShareRecord)
	var wg sync.WaitGroup
	for range co.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				w.process(r, time.Now())
			}
		}()
	}
	runErr := w.dispatch(ctx, co.max, work)
	close(work)
	wg.Wait()
	killNow()

	// Leave (after sending the outcomes still queued): the coordinator
	// releases anything still locked to us at once instead of after the
	// lock timeout.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.timeout)
	defer cancel()
	if err := sc.Close(lctx); err != nil && runErr == nil {
		runErr = err
	}
	fmt.Fprintln(w.errOut, w.summary())
	return runErr
}

// shareFetchSize is how many records one fetch takes. Printing is quick,
// so it takes many; a command per record takes no more than the workers
// can start at once, since fetched records hold their locks while they
// wait.
func shareFetchSize(co *consumeOptions) int {
	n := 1000
	if co.exec != "" {
		n = co.concurrency
	}
	if co.max > 0 {
		n = min(n, co.max)
	}
	return min(n, 10000)
}

// dispatch fetches records and hands them to the workers until max were
// taken (0: no limit) or ctx ends. Records fetched but not handed out are
// released at once for other members.
func (w *shareWorker) dispatch(ctx context.Context, max int, work chan<- *client.ShareRecord) error {
	taken := 0
	paused := false
	for max == 0 || taken < max {
		recs, err := w.sc.Fetch(ctx)
		switch {
		case ctx.Err() != nil:
			w.releaseAll(recs)
			return nil
		case errors.Is(err, client.ErrGroupPaused):
			// Fetch waited MaxWait before answering: keep waiting for
			// `skiff share resume`, saying so once.
			if !paused {
				fmt.Fprintf(w.errOut, "skiff: %v; waiting (skiff share resume %s lifts it)\n", err, w.group)
				paused = true
			}
			continue
		case err != nil:
			return err
		}
		if paused {
			fmt.Fprintf(w.errOut, "skiff: share group %s resumed\n", w.group)
			paused = false
		}
		for i, r := range recs {
			if max > 0 && taken >= max {
				w.releaseAll(recs[i:])
				break
			}
			select {
			case work <- r:
				taken++
			case <-ctx.Done():
				w.releaseAll(recs[i:])
				return nil
			}
		}
	}
	return nil
}

// releaseAll hands records back for immediate redelivery, in one request.
func (w *shareWorker) releaseAll(recs []*client.ShareRecord) {
	if len(recs) == 0 {
		return
	}
	acks := make([]client.ShareAck, len(recs))
	for i, r := range recs {
		acks[i] = client.ShareAck{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Type: client.ShareRelease}
	}
	ctx, cancel := w.settleContext()
	defer cancel()
	errs, err := w.sc.Acknowledge(ctx, acks)
	if err != nil {
		fmt.Fprintf(w.errOut, "skiff: release %d unprocessed records: %v (they return when their locks expire)\n", len(recs), err)
		return
	}
	for _, e := range errs {
		if e != nil {
			fmt.Fprintf(w.errOut, "skiff: release: %v\n", e)
		}
	}
}

func (w *shareWorker) settleContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(w.stop), w.settleTimeout)
}

// process handles one record: print and ack, or run the command and ack
// or release by its exit status. The outcome is queued, to travel with
// the next fetch; ackResult counts it once it is committed.
func (w *shareWorker) process(r *client.ShareRecord, received time.Time) {
	if w.exec == "" {
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		if err := printRecord(bw, w.output, &r.Record); err == nil && bw.Flush() == nil {
			if _, err := w.out.Write(buf.Bytes()); err != nil {
				w.queue(r, r.ReleaseAsync(0, ""), "release")
				return
			}
		}
		w.queue(r, r.AckAsync(), "ack")
		return
	}
	if w.stop.Err() != nil {
		// Stopped while the record waited for this worker.
		w.queue(r, r.ReleaseAsync(0, ""), "release")
		return
	}
	reason, runErr := w.runCommand(r, received)
	switch {
	case runErr == nil:
		w.queue(r, r.AckAsync(), "ack")
	case w.stop.Err() != nil:
		// Interrupted (Ctrl-C reaches the command too) or killed after the
		// grace period: not the record's fault, so no backoff.
		w.queue(r, r.ReleaseAsync(0, ""), "release")
	default:
		w.queue(r, r.ReleaseAsync(client.BackoffDelay, reason), "release")
	}
}

// queue reports an outcome that could not even be queued (the consumer
// is closed).
func (w *shareWorker) queue(r *client.ShareRecord, err error, verb string) {
	if err != nil {
		w.counts.ackErrors.Add(1)
		fmt.Fprintf(w.errOut, "skiff: %s %s/%d@%d: %v\n", verb, r.Topic, r.Partition, r.Offset, err)
	}
}

// ackResult counts a committed outcome, or reports why it was not
// applied: the lock expired or moved (the record is, or will be,
// delivered again), or the outcome was lost in a coordinator failover.
func (w *shareWorker) ackResult(a client.ShareAck, err error) {
	verb, n := "ack", &w.counts.acked
	if a.Type == client.ShareRelease {
		verb, n = "release", &w.counts.released
	}
	if err != nil {
		w.counts.ackErrors.Add(1)
		fmt.Fprintf(w.errOut, "skiff: %s %s/%d@%d: %v\n", verb, a.Topic, a.Partition, a.Offset, err)
		return
	}
	n.Add(1)
}

// runCommand runs the --exec command on r, renewing r's lock while the
// command runs past half of it. It returns the command's error and, when
// it failed, the reason to record: its last non-empty stderr line, else
// the exit status.
func (w *shareWorker) runCommand(r *client.ShareRecord, received time.Time) (reason string, err error) {
	c := exec.CommandContext(w.kill, "sh", "-c", w.exec)
	c.Env = shareEnv(os.Environ(), r)
	c.Stdin = bytes.NewReader(r.Value)
	c.Stdout = w.out
	last := &lastLineWriter{}
	c.Stderr = io.MultiWriter(w.errOut, last)
	c.WaitDelay = 2 * time.Second // a killed sh may leave children holding the pipes
	if err := c.Start(); err != nil {
		return "start " + w.exec + ": " + err.Error(), err
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()

	lock := r.LockUntil.Sub(received)
	renewing := lock > 0
	for {
		var renew <-chan time.Time
		var t *time.Timer
		if renewing {
			t = time.NewTimer(time.Until(r.LockUntil.Add(-lock / 2)))
			renew = t.C
		}
		select {
		case err := <-done:
			if t != nil {
				t.Stop()
			}
			if err == nil {
				return "", nil
			}
			if reason = last.Line(); reason == "" {
				reason = err.Error()
			}
			return reason, err
		case <-renew:
			ctx, cancel := w.settleContext()
			before := r.LockUntil
			if _, err := r.Renew(ctx); err != nil {
				fmt.Fprintf(w.errOut, "skiff: renew lock of %s/%d@%d: %v (the record may be delivered again)\n", r.Topic, r.Partition, r.Offset, err)
				renewing = false
			} else if !r.LockUntil.After(before) {
				renewing = false // no new expiry to wait for: do not spin
			}
			cancel()
		}
	}
}

// shareEnv is the environment of an --exec command: ours, less any
// record variables inherited from an outer worker, plus the record's. A
// key or header value that cannot be an environment value (not UTF-8, or
// with a NUL byte) is base64, flagged by NAME_BASE64=1. A record without a
// key has no SKIFF_KEY; of several headers of one name the last wins.
func shareEnv(base []string, r *client.ShareRecord) []string {
	env := make([]string, 0, len(base)+6+len(r.Headers))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "SKIFF_KEY", name == "SKIFF_KEY_BASE64", name == "SKIFF_TOPIC", name == "SKIFF_PARTITION",
			name == "SKIFF_OFFSET", name == "SKIFF_DELIVERY_COUNT", strings.HasPrefix(name, "SKIFF_HEADER_"):
			continue
		}
		env = append(env, kv)
	}
	add := func(name string, b []byte) {
		v, b64 := envValue(b)
		env = append(env, name+"="+v)
		if b64 {
			env = append(env, name+"_BASE64=1")
		}
	}
	if r.Key != nil {
		add("SKIFF_KEY", r.Key)
	}
	env = append(env,
		"SKIFF_TOPIC="+r.Topic,
		"SKIFF_PARTITION="+strconv.Itoa(int(r.Partition)),
		"SKIFF_OFFSET="+strconv.FormatInt(r.Offset, 10),
		"SKIFF_DELIVERY_COUNT="+strconv.Itoa(r.DeliveryCount))
	var names []string
	last := map[string][]byte{}
	for _, h := range r.Headers {
		name := headerEnvName(h.Key)
		if _, ok := last[name]; !ok {
			names = append(names, name)
		}
		last[name] = h.Value
	}
	for _, name := range names {
		add(name, last[name])
	}
	return env
}

// envValue renders bytes as an environment value: the text when it can
// be one, else base64 (b64 true).
func envValue(b []byte) (v string, b64 bool) {
	if utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 {
		return string(b), false
	}
	return base64.StdEncoding.EncodeToString(b), true
}

// headerEnvName is SKIFF_HEADER_ and the header name upper-cased, with
// every character other than a letter or digit as '_'.
func headerEnvName(key string) string {
	var b strings.Builder
	b.WriteString("SKIFF_HEADER_")
	for _, c := range strings.ToUpper(key) {
		if (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// lastLineWriter remembers the last non-empty line written to it (the
// reason a failed command gives). Lines are cut at maxLastLine bytes.
type lastLineWriter struct {
	mu   sync.Mutex
	cur  []byte
	last string
}

const maxLastLine = 1024

func (l *lastLineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range p {
		if c == '\n' {
			l.endLine()
			continue
		}
		if len(l.cur) < maxLastLine {
			l.cur = append(l.cur, c)
		}
	}
	return len(p), nil
}

func (l *lastLineWriter) endLine() {
	if s := strings.TrimSpace(strings.ToValidUTF8(string(l.cur), "?")); s != "" {
		l.last = s
	}
	l.cur = l.cur[:0]
}

// Line returns the last non-empty line, the unterminated one included.
func (l *lastLineWriter) Line() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := strings.TrimSpace(strings.ToValidUTF8(string(l.cur), "?")); s != "" {
		return s
	}
	return l.last
}

// syncWriter serialises writes of concurrent workers to one stream.
type syncWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (w *shareWorker) summary() string {
	s := fmt.Sprintf("share group %s: acked %d, released %d", w.group, w.counts.acked.Load(), w.counts.released.Load())
	if n := w.counts.ackErrors.Load(); n > 0 {
		s += fmt.Sprintf(", %d not settled (see above)", n)
	}
	return s
}

// ---- skiff share: share group administration ----

func newShareCommand(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "share",
		Short: "Describe, configure and inspect share groups (queues)",
		Long: "Share groups hand any record of their topics to any member (skiff consume TOPIC --share-group G),\n" +
			"locked until the member acks or releases it; see also skiff dlq for their dead letters.",
	}
	cmd.AddCommand(newShareDescribeCommand(o), newShareConfigCommand(o), newShareResumeCommand(o), newShareInspectCommand(o))
	return cmd
}

func newShareDescribeCommand(o *clientOptions) *cobra.Command {
	cmd := newDescribeCommand(o, "Show a share group's settings, members and per-partition state",
		"Shows whether the group is paused (DLQ flood breaker), its settings, its members with the\n"+
			"records each holds, and per partition the start offset, records in flight, available, acked,\n"+
			"redelivered and dead-lettered, the lag (queue depth), the age of the oldest unacked record\n"+
			"and the quarantined keys. -o json prints the same as one object.",
		func(ctx context.Context, cl *client.Client, name string) (client.ShareGroupDescription, error) {
			return cl.DescribeShareGroup(ctx, name)
		},
		func(d client.ShareGroupDescription) any { return shareGroupJSONOf(d) }, printShareGroup)
	cmd.Use = "describe GROUP"
	return cmd
}

// shareGroupJSON is `share describe -o json`: the description with keys
// as text (or base64) instead of raw bytes.
type shareGroupJSON struct {
	client.ShareGroupDescription
	Partitions []sharePartitionJSON `json:"partitions"`
	TotalLag   int64                `json:"total_lag"`
}

type sharePartitionJSON struct {
	client.SharePartitionState
	QuarantinedKeys []keyJSON `json:"quarantined_keys"`
}

type keyJSON struct {
	Key       *string `json:"key"`
	KeyBase64 bool    `json:"key_base64,omitempty"`
}

func shareGroupJSONOf(d client.ShareGroupDescription) shareGroupJSON {
	out := shareGroupJSON{ShareGroupDescription: d, Partitions: []sharePartitionJSON{}, TotalLag: d.TotalLag()}
	for _, p := range d.Partitions {
		pj := sharePartitionJSON{SharePartitionState: p, QuarantinedKeys: []keyJSON{}}
		for _, k := range p.QuarantinedKeys {
			var kj keyJSON
			kj.Key, kj.KeyBase64 = textOrBase64(k)
			pj.QuarantinedKeys = append(pj.QuarantinedKeys, kj)
		}
		out.Partitions = append(out.Partitions, pj)
	}
	return out
}

func printShareGroup(w io.Writer, d client.ShareGroupDescription) error {
	state := "active"
	if d.Paused {
		state = "PAUSED (" + dash(d.PausedReason) + "; skiff share resume " + d.Group + ")"
	}
	fmt.Fprintf(w, "share group: %s  coordinator: %s  state: %s  total lag: %d\n\n", d.Group, dash(d.Coordinator), state, d.TotalLag())
	if err := printConfig(w, d.Config); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tCLIENT\tHOST\tIN-FLIGHT\tLAST-SEEN")
	for _, m := range d.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", m.MemberID, dash(m.ClientID), dash(m.ClientHost), m.InFlight, timeOrDash(m.LastSeen))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tSTART\tHIGH-WATERMARK\tIN-FLIGHT\tAVAILABLE\tACKED\tREDELIVERIES\tDEAD-LETTERED\tLAG\tOLDEST-UNACKED\tQUARANTINED-KEYS")
	for _, p := range d.Partitions {
		age := "-"
		if p.OldestUnackedAgeSeconds > 0 {
			age = (time.Duration(p.OldestUnackedAgeSeconds * float64(time.Second))).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", p.Topic, p.Partition, p.StartOffset, orDash(p.HighWatermark),
			p.InFlight, p.Available, p.Acked, p.Redeliveries, p.DeadLettered, p.Lag, age, keyList(p.QuarantinedKeys))
	}
	return tw.Flush()
}

// keyText renders a key for a table: the text, base64 (marked) when it is
// not UTF-8, "-" for none.
func keyText(k []byte) string {
	s, b64 := textOrBase64(k)
	switch {
	case s == nil:
		return "-"
	case b64:
		return "base64:" + *s
	}
	q := strconv.Quote(*s) // control characters would break the table
	return q[1 : len(q)-1]
}

func keyList(keys [][]byte) string {
	if len(keys) == 0 {
		return "-"
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = keyText(k)
	}
	return strings.Join(parts, ",")
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func printConfig(w io.Writer, config map[string]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONFIG\tVALUE")
	for _, k := range slices.Sorted(maps.Keys(config)) {
		fmt.Fprintf(tw, "%s\t%s\n", k, config[k])
	}
	return tw.Flush()
}

func newShareConfigCommand(o *clientOptions) *cobra.Command {
	var set []string
	cmd := &cobra.Command{
		Use:   "config GROUP [--set key=value ...]",
		Short: "Show or change a share group's settings",
		Long: "Sets each --set key=value and prints the group's settings (without --set it only prints them).\n" +
			"Keys: lock.timeout.ms, max.deliveries, key.ordered, dlq.topic, backoff.initial.ms,\n" +
			"backoff.max.ms, backoff.multiplier, backoff.jitter, dlq.flood.per.minute, max.inflight,\n" +
			"auto.offset.reset. Changes apply at once, to records in flight too.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kv, err := parseSettings(set)
			if err != nil {
				return err
			}
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				var config map[string]string
				if len(kv) == 0 {
					d, err := cl.DescribeShareGroup(ctx, args[0])
					if err != nil {
						return err
					}
					config = d.Config
				} else if config, err = cl.AlterShareGroup(ctx, args[0], kv, false); err != nil {
					return err
				}
				if o.g.output == "json" {
					return writeJSON(cmd.OutOrStdout(), config)
				}
				return printConfig(cmd.OutOrStdout(), config)
			})
		},
	}
	cmd.Flags().StringArrayVar(&set, "set", nil, "setting key=value (repeatable)")
	return cmd
}

// parseSettings turns --set key=value flags into a map.
func parseSettings(set []string) (map[string]string, error) {
	kv := map[string]string{}
	for _, s := range set {
		k, v, ok := strings.Cut(s, "=")
		if k = strings.TrimSpace(k); !ok || k == "" {
			return nil, fmt.Errorf("--set %q: want key=value", s)
		}
		kv[k] = v
	}
	return kv, nil
}

func newShareResumeCommand(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "resume GROUP",
		Short: "Resume a share group paused by the DLQ flood breaker",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				if _, err := cl.AlterShareGroup(ctx, args[0], nil, true); err != nil {
					return err
				}
				if o.g.output == "json" {
					return writeJSON(cmd.OutOrStdout(), map[string]string{"resumed": args[0]})
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "resumed share group %s\n", args[0])
				return err
			})
		},
	}
}

func newShareInspectCommand(o *clientOptions) *cobra.Command {
	var (
		topic     string
		partition int32
		offset    int64
	)
	cmd := &cobra.Command{
		Use:   "inspect GROUP --topic T --partition P --offset O",
		Short: "Show one record's state in a share group without acquiring it",
		Long: "Shows the record's state (available, acquired, acknowledged, dead, dead-lettered,\n" +
			"not-delivered-yet, below-start), delivery count, lock holder and expiry, next visible time,\n" +
			"whether its key is quarantined, its last error and why it is not deliverable now.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if topic == "" {
				return errors.New("--topic is required")
			}
			if !cmd.Flags().Changed("partition") || !cmd.Flags().Changed("offset") {
				return errors.New("--partition and --offset are required")
			}
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				st, err := cl.InspectShareRecord(ctx, args[0], topic, partition, offset)
				if err != nil {
					return err
				}
				if o.g.output == "json" {
					j := inspectJSON{Group: args[0], Topic: topic, Partition: partition, Offset: offset, ShareRecordState: st}
					j.Key, j.KeyBase64 = textOrBase64(st.Key)
					return writeJSON(cmd.OutOrStdout(), j)
				}
				return printShareRecordState(cmd.OutOrStdout(), args[0], topic, partition, offset, st)
			})
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "topic of the record")
	cmd.Flags().Int32Var(&partition, "partition", 0, "partition of the record")
	cmd.Flags().Int64Var(&offset, "offset", 0, "offset of the record")
	return cmd
}

// inspectJSON is `share inspect -o json`.
type inspectJSON struct {
	Group     string `json:"group"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	client.ShareRecordState
	Key       *string `json:"key"`
	KeyBase64 bool    `json:"key_base64,omitempty"`
}

func printShareRecordState(w io.Writer, group, topic string, partition int32, offset int64, st client.ShareRecordState) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("record", fmt.Sprintf("%s/%d@%d in share group %s", topic, partition, offset, group))
	row("state", st.State)
	row("deliveries", strconv.Itoa(st.DeliveryCount))
	row("lock holder", dash(st.LockHolder))
	row("lock until", timeOrDash(st.LockUntil))
	row("visible at", timeOrDash(st.VisibleAt))
	row("key", keyText(st.Key))
	row("key quarantined", strconv.FormatBool(st.KeyQuarantined))
	row("blocked by", dash(st.BlockedBy))
	row("last error", dash(oneLine(st.LastError)))
	row("first delivery", timeOrDash(st.FirstDelivery))
	row("last delivery", timeOrDash(st.LastDelivery))
	row("partition start", strconv.FormatInt(st.StartOffset, 10))
	return tw.Flush()
}

// oneLine keeps a message on one table line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
