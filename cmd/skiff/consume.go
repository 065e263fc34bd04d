package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/skiff-mq/skiff/client"
)

// consumeOptions are `skiff consume`'s flags.
type consumeOptions struct {
	partition  int32
	from       string
	max        int
	timeout    time.Duration
	follow     bool
	group      string
	instanceID string
	// share group worker mode (share.go)
	shareGroup  string
	exec        string
	concurrency int
}

func newConsumeCommand(o *clientOptions) *cobra.Command {
	co := &consumeOptions{}
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print messages of a topic",
		Long: "Prints each message's value on its own line (-o json: one JSON object per message with topic,\n" +
			"partition, offset, timestamp, key, value and headers; a key or value that is not UTF-8 is\n" +
			"base64, flagged by key_base64 / value_base64).\n" +
			"Without --follow it stops at the end of each partition as it was at start; --max and\n" +
			"--timeout stop it sooner. --from: earliest, latest, an offset, or @TIME (RFC 3339, or\n" +
			"Unix milliseconds) for the first message at or after TIME.\n\n" +
			"--group G joins consumer group G and prints the messages of the partitions the group gives\n" +
			"this member, committing what it printed, until --max, --timeout or Ctrl-C (then it leaves\n" +
			"the group). Run it several times to share the partitions. TOPIC may then be a pattern:\n" +
			"'orders.*', '*.completed', 'orders.#', '#', or 're:<regexp>'. --from (earliest or latest)\n" +
			"is where partitions without a committed offset start.\n\n" +
			"--share-group G takes records of share group G (a queue: any member gets any record, locked\n" +
			"to it until acked; records of one key never in flight twice) until --max, --timeout or Ctrl-C,\n" +
			"then leaves. TOPIC may be a pattern. Without --exec each record is printed, then acked. With\n" +
			"--exec CMD each record's value is piped to `sh -c CMD` with SKIFF_KEY, SKIFF_TOPIC,\n" +
			"SKIFF_PARTITION, SKIFF_OFFSET, SKIFF_DELIVERY_COUNT and SKIFF_HEADER_<NAME> in its environment:\n" +
			"exit 0 acks the record, any other status releases it for redelivery after the group's backoff,\n" +
			"keeping CMD's last stderr line as its error (after max.deliveries it goes to the dead-letter\n" +
			"topic: skiff dlq). The lock is renewed while CMD runs. --concurrency N runs N at once.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.prepare(cmd); err != nil {
				return err
			}
			if co.shareGroup != "" {
				return runShareConsume(cmd, o, co, args[0])
			}
			for _, name := range []string{"exec", "concurrency"} {
				if cmd.Flags().Changed(name) {
					return fmt.Errorf("--%s needs --share-group", name)
				}
			}
			if co.group != "" {
				return runGroupConsume(cmd, o, co, args[0])
			}
			if cmd.Flags().Changed("instance-id") {
				return errors.New("--instance-id needs --group")
			}
			return runConsume(cmd, o, co, args[0])
		},
	}
	f := cmd.Flags()
	f.Int32Var(&co.partition, "partition", -1, "read only this partition (default: all)")
	f.StringVar(&co.from, "from", "earliest", "earliest, latest, OFFSET or @TIMESTAMP")
	f.IntVar(&co.max, "max", 0, "stop after this many messages (0: no limit)")
	f.DurationVar(&co.timeout, "timeout", 0, "stop after this long (0: no limit)")
	f.BoolVar(&co.follow, "follow", false, "keep waiting for new messages")
	f.StringVar(&co.group, "group", "", "join this consumer group and read the partitions it assigns")
	f.StringVar(&co.instanceID, "instance-id", "", "static group membership: a stable id that keeps the partitions across a quick restart")
	f.StringVar(&co.shareGroup, "share-group", "", "take records of this share group (a queue), acking each one")
	f.StringVar(&co.exec, "exec", "", "with --share-group: pipe each record to `CMD` (run by sh -c); exit 0 acks, else release with backoff")
	f.IntVar(&co.concurrency, "concurrency", 1, "with --share-group: records processed at once")
	return cmd
}

// parseFrom turns --from into a client.Offset (see client.ParseOffset).
func parseFrom(s string) (client.Offset, error) {
	o, err := client.ParseOffset(s)
	if err != nil {
		return client.Offset{}, fmt.Errorf("--from: %w", err)
	}
	return o, nil
}

func runConsume(cmd *cobra.Command, o *clientOptions, co *consumeOptions, topic string) error {
	from, err := parseFrom(co.from)
	if err != nil {
		return err
	}
	if co.max < 0 || co.timeout < 0 {
		return errors.New("--max and --timeout must not be negative")
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
	ti, err := cl.DescribeTopic(ctx, topic)
	if err != nil {
		return err
	}
	consumer, err := cl.NewConsumer(client.ConsumerConfig{})
	if err != nil {
		return err
	}
	defer consumer.Close()

	// The end of each partition now, as its leader says: without --follow,
	// reading stops there.
	end := map[int32]int64{}
	for _, p := range ti.Partitions {
		if co.partition >= 0 && p.Partition != co.partition {
			continue
		}
		if err := consumer.Assign(ctx, topic, p.Partition, client.Latest()); err != nil {
			return err
		}
		end[p.Partition], _ = consumer.Position(topic, p.Partition)
		if err := consumer.Assign(ctx, topic, p.Partition, from); err != nil {
			return err
		}
	}
	if len(end) == 0 {
		return fmt.Errorf("topic %s has no partition %d (it has %d)", topic, co.partition, len(ti.Partitions))
	}
	done := func(p int32) bool {
		pos, _ := consumer.Position(topic, p)
		return !co.follow && pos >= end[p]
	}
	for p := range end {
		if done(p) {
			consumer.Unassign(topic, p)
			delete(end, p)
		}
	}

	out := bufio.NewWriter(cmd.OutOrStdout())
	defer out.Flush()
	printed := 0
	for len(end) > 0 && (co.max == 0 || printed < co.max) {
		recs, err := consumer.Poll(ctx)
		for _, r := range recs {
			if !co.follow && r.Offset >= end[r.Partition] {
				continue // written after we started
			}
			if err := printRecord(out, o.g.output, r); err != nil {
				return err
			}
			if printed++; co.max > 0 && printed >= co.max {
				break
			}
		}
		if err := out.Flush(); err != nil {
			return err
		}
		if err != nil {
			if ctx.Err() != nil {
				// --timeout, or an interrupt: a normal way to stop reading.
				return nil
			}
			return err
		}
		for p := range end {
			if done(p) {
				consumer.Unassign(topic, p)
				delete(end, p)
			}
		}
	}
	return nil
}

// recordJSON is one message in -o json output.
type recordJSON struct {
	Topic       string       `json:"topic"`
	Partition   int32        `json:"partition"`
	Offset      int64        `json:"offset"`
	Timestamp   string       `json:"timestamp"`
	Key         *string      `json:"key"`
	KeyBase64   bool         `json:"key_base64,omitempty"`
	Value       *string      `json:"value"`
	ValueBase64 bool         `json:"value_base64,omitempty"`
	Headers     []headerJSON `json:"headers"`
}

type headerJSON struct {
	Key         string  `json:"key"`
	Value       *string `json:"value"`
	ValueBase64 bool    `json:"value_base64,omitempty"`
}

// textOrBase64 renders bytes as a JSON string: the text when it is UTF-8,
// else base64 (and says so). nil stays null.
func textOrBase64(b []byte) (*string, bool) {
	if b == nil {
		return nil, false
	}
	if utf8.Valid(b) {
		s := string(b)
		return &s, false
	}
	s := base64.StdEncoding.EncodeToString(b)
	return &s, true
}

func printRecord(w *bufio.Writer, output string, r *client.Record) error {
	if output != "json" {
		w.Write(r.Value)
		return w.WriteByte('\n')
	}
	rj := recordJSON{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
		Timestamp: r.Timestamp.UTC().Format(time.RFC3339Nano), Headers: []headerJSON{}}
	rj.Key, rj.KeyBase64 = textOrBase64(r.Key)
	rj.Value, rj.ValueBase64 = textOrBase64(r.Value)
	for _, h := range r.Headers {
		hj := headerJSON{Key: h.Key}
		hj.Value, hj.ValueBase64 = textOrBase64(h.Value)
		rj.Headers = append(rj.Headers, hj)
	}
	return json.NewEncoder(w).Encode(rj)
}
