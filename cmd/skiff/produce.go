package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/skiff-mq/skiff/client"
	"github.com/skiff-mq/skiff/record"
)

// produceOptions are `skiff produce`'s flags.
type produceOptions struct {
	key       string
	keyDelim  string
	partition int32
	headers   []string
	acks      string
}

func newProduceCommand(o *clientOptions) *cobra.Command {
	po := &produceOptions{}
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Write one message per line of standard input",
		Long: "Writes each line of standard input as one message (without its line ending).\n" +
			"--key gives every message the same key; with --key-delim the text before the first SEP of\n" +
			"each line is its key. Keys pick partitions as Kafka's default partitioner does, unless\n" +
			"--partition is given. A summary goes to standard error (-o json: a JSON summary to standard\n" +
			"output); the exit status is non-zero if any message was not acknowledged.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.prepare(cmd); err != nil {
				return err
			}
			return runProduce(cmd, o, po, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&po.key, "key", "", "key of every message")
	f.StringVar(&po.keyDelim, "key-delim", "", "split each line at the first SEP into key and value")
	f.Int32Var(&po.partition, "partition", -1, "write every message to this partition (default: by key)")
	f.StringArrayVar(&po.headers, "header", nil, "header key=value of every message (repeatable)")
	f.StringVar(&po.acks, "acks", "all", "all: wait until a majority has the message; none: do not wait")
	return cmd
}

// produceSummary counts what was acknowledged, per partition.
type produceSummary struct {
	mu         sync.Mutex
	partitions map[int32]*partitionSummary
	produced   int
	failed     int
	firstErr   error
}

type partitionSummary struct {
	Partition   int32 `json:"partition"`
	Count       int   `json:"count"`
	FirstOffset int64 `json:"first_offset"`
	LastOffset  int64 `json:"last_offset"`
}

func (s *produceSummary) record(r *client.Record, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failed++
		if s.firstErr == nil {
			s.firstErr = err
		}
		return
	}
	s.produced++
	p := s.partitions[r.Partition]
	if p == nil {
		p = &partitionSummary{Partition: r.Partition, FirstOffset: r.Offset, LastOffset: r.Offset}
		s.partitions[r.Partition] = p
	}
	p.Count++
	p.FirstOffset, p.LastOffset = min(p.FirstOffset, r.Offset), max(p.LastOffset, r.Offset)
}

func runProduce(cmd *cobra.Command, o *clientOptions, po *produceOptions, topic string) error {
	cfg := client.ProducerConfig{}
	switch po.acks {
	case "all":
	case "none":
		cfg.Acks = client.AcksNone
	default:
		return fmt.Errorf("--acks %q: want all or none", po.acks)
	}
	if cmd.Flags().Changed("partition") {
		if po.partition < 0 {
			return fmt.Errorf("--partition %d: must not be negative", po.partition)
		}
		cfg.Partitioner = client.ManualPartitioner()
	}
	if cmd.Flags().Changed("key") && po.keyDelim != "" {
		return errors.New("--key and --key-delim exclude each other")
	}
	var headers []record.Header
	for _, h := range po.headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return fmt.Errorf("--header %q: want key=value", h)
		}
		headers = append(headers, record.Header{Key: k, Value: []byte(v)})
	}

	cl, err := o.connect(cmd.Context())
	if err != nil {
		return err
	}
	defer cl.Close()
	// Fail fast, with a clear message, on a topic that does not exist.
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	_, err = cl.DescribeTopic(ctx, topic)
	cancel()
	if err != nil {
		return err
	}
	p, err := cl.NewProducer(cfg)
	if err != nil {
		return err
	}
	sum := &produceSummary{partitions: map[int32]*partitionSummary{}}
	in := bufio.NewReaderSize(cmd.InOrStdin(), 64<<10)
	total := 0
	var readErr error
	for {
		line, err := in.ReadString('\n')
		if err != nil && err != io.EOF {
			readErr = fmt.Errorf("read standard input: %w", err)
			break
		}
		if line == "" && err == io.EOF {
			break
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		r := &client.Record{Topic: topic, Partition: po.partition, Value: []byte(line), Headers: headers}
		switch {
		case cmd.Flags().Changed("key"):
			r.Key = []byte(po.key)
		case po.keyDelim != "":
			if k, v, ok := strings.Cut(line, po.keyDelim); ok {
				r.Key, r.Value = []byte(k), []byte(v)
			}
		}
		total++
		p.Produce(cmd.Context(), r, sum.record)
		if err == io.EOF {
			break
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if err := p.Close(ctx); err != nil && readErr == nil {
		readErr = err
	}
	if err := printProduceSummary(cmd, o, topic, sum, cfg.Acks); err != nil {
		return err
	}
	switch {
	case sum.failed > 0:
		return fmt.Errorf("%d of %d messages not acknowledged; first error: %w", sum.failed, total, sum.firstErr)
	case readErr != nil:
		return readErr
	}
	return nil
}

func printProduceSummary(cmd *cobra.Command, o *clientOptions, topic string, sum *produceSummary, acks client.Acks) error {
	sum.mu.Lock()
	defer sum.mu.Unlock()
	parts := make([]partitionSummary, 0, len(sum.partitions))
	for _, p := range sum.partitions {
		parts = append(parts, *p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].Partition < parts[j].Partition })
	if o.g.output == "json" {
		return writeJSON(cmd.OutOrStdout(), map[string]any{
			"topic": topic, "produced": sum.produced, "failed": sum.failed, "partitions": parts,
		})
	}
	w := cmd.ErrOrStderr()
	fmt.Fprintf(w, "produced %d messages to %s", sum.produced, topic)
	if sum.failed > 0 {
		fmt.Fprintf(w, " (%d failed)", sum.failed)
	}
	fmt.Fprintln(w)
	for _, p := range parts {
		if acks == client.AcksNone {
			fmt.Fprintf(w, "  partition %d: %d messages (offsets unknown with --acks none)\n", p.Partition, p.Count)
		} else {
			fmt.Fprintf(w, "  partition %d: %d messages, offsets %d-%d\n", p.Partition, p.Count, p.FirstOffset, p.LastOffset)
		}
	}
	return nil
}
