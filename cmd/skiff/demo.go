package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-mq/skiff/client"
)

// newDemoCommand is the producer of the example application that
// `scripts/cluster.sh up --demo` runs next to the cluster.
func newDemoCommand(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Example application workloads (what scripts/cluster.sh up --demo runs)",
	}
	var (
		interval   time.Duration
		keys       int
		partitions int
		count      int
	)
	produce := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Write a keyed order record every --interval, logging each one, until stopped",
		Long: "Creates TOPIC if it is missing, then writes {\"order\":N,\"customer\":\"customer-K\"} keyed by customer-K\n" +
			"(K cycles over --keys) every --interval and prints where each landed. A failed write is\n" +
			"printed and tried again with the next record: the demo rides out node restarts.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.prepare(cmd); err != nil {
				return err
			}
			if interval <= 0 || keys <= 0 || partitions <= 0 || count < 0 {
				return fmt.Errorf("--interval, --keys and --partitions must be positive, --count not negative")
			}
			return runDemoProducer(cmd.Context(), o, cmd, args[0], interval, keys, partitions, count)
		},
	}
	produce.Flags().DurationVar(&interval, "interval", 100*time.Millisecond, "time between records")
	produce.Flags().IntVar(&keys, "keys", 10, "distinct customers (record keys)")
	produce.Flags().IntVar(&partitions, "partitions", 3, "partitions of the topic if it is created")
	produce.Flags().IntVar(&count, "count", 0, "stop after this many records (0: until stopped)")
	cmd.AddCommand(produce)
	return cmd
}

func runDemoProducer(ctx context.Context, o *clientOptions, cmd *cobra.Command, topic string, interval time.Duration, keys, partitions, count int) error {
	out := cmd.OutOrStdout()
	cl, err := o.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		cctx, cancel := context.WithTimeout(ctx, o.timeout)
		rf, rerr := defaultReplication(cctx, cl)
		if rerr == nil {
			_, rerr = cl.CreateTopic(cctx, topic, partitions, rf, nil)
		}
		cancel()
		if rerr == nil || errors.Is(rerr, client.ErrTopicExists) {
			break
		}
		fmt.Fprintf(out, "create topic %s: %v (retrying)\n", topic, rerr)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	p, err := cl.NewProducer(client.ProducerConfig{})
	if err != nil {
		return err
	}
	defer func() {
		fctx, cancel := context.WithTimeout(context.Background(), o.timeout)
		defer cancel()
		p.Close(fctx)
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 1; count == 0 || n <= count; n++ {
		key := fmt.Sprintf("customer-%d", n%keys)
		r := &client.Record{Topic: topic, Key: []byte(key), Value: fmt.Appendf(nil, `{"order":%d,"customer":%q}`, n, key)}
		pctx, cancel := context.WithTimeout(ctx, o.timeout)
		err := p.ProduceSync(pctx, r)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			fmt.Fprintf(out, "order %d for %s: not written: %v\n", n, key, err)
		default:
			fmt.Fprintf(out, "order %d for %s -> %s/%d@%d\n", n, key, topic, r.Partition, r.Offset)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
	return nil
}
