package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-mq/skiff/client"
)

// dlqOptions are the flags every dlq verb shares.
type dlqOptions struct {
	topic string
	group string
}

func (d *dlqOptions) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&d.topic, "topic", "", "source topic of the dead letters")
	cmd.Flags().StringVar(&d.group, "share-group", "", "share group whose dead letters these are")
}

func (d *dlqOptions) check(needTopic bool) error {
	if d.group == "" {
		return errors.New("--share-group is required")
	}
	if needTopic && d.topic == "" {
		return errors.New("--topic is required")
	}
	return nil
}

func newDLQCommand(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show, redrive and discard a share group's dead letters",
		Long: "A share group sends a record to its dead-letter topic (<topic>.dlq.<group> unless dlq.topic\n" +
			"says otherwise) when it was delivered max.deliveries times without an ack, or rejected. In\n" +
			"key-ordered mode its key waits until the dead letter is redriven (delivered again, before the\n" +
			"later records of its key) or discarded. --offset names a dead letter by the DLQ-OFFSET that\n" +
			"dlq list shows.",
	}
	cmd.AddCommand(newDLQListCommand(o), newDLQShowCommand(o), newDLQResolveCommand(o, false), newDLQResolveCommand(o, true))
	return cmd
}

func newDLQListCommand(o *clientOptions) *cobra.Command {
	d := &dlqOptions{}
	cmd := &cobra.Command{
		Use:   "list --topic T --share-group G",
		Short: "List dead letters with their source, state and last error",
		Long: "Lists the group's dead letters from topic T (every topic without --topic): pending, redriven\n" +
			"and discarded. -o json prints one object per dead letter with its payload (key, value and\n" +
			"headers: text, or base64 flagged by *_base64), provenance and last error.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := d.check(false); err != nil {
				return err
			}
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				dls, err := cl.ListDeadLetters(ctx, d.group, d.topic)
				if err != nil {
					return err
				}
				if o.g.output == "json" {
					out := make([]deadLetterJSON, 0, len(dls))
					for _, dl := range dls {
						out = append(out, deadLetterJSONOf(dl))
					}
					return writeJSON(cmd.OutOrStdout(), out)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "DLQ-OFFSET\tSOURCE\tSTATE\tDELIVERIES\tLAST-ERROR\tKEY")
				for _, dl := range dls {
					fmt.Fprintf(tw, "%d\t%s/%d@%d\t%s\t%d\t%s\t%s\n", dl.DLQOffset, dl.Topic, dl.Partition, dl.Offset, dl.State,
						dl.DeliveryCount, dash(truncate(oneLine(dl.LastError), 60)), keyText(dl.Key))
				}
				return tw.Flush()
			})
		},
	}
	d.register(cmd)
	return cmd
}

func newDLQShowCommand(o *clientOptions) *cobra.Command {
	d := &dlqOptions{}
	var offset int64
	cmd := &cobra.Command{
		Use:   "show --topic T --share-group G --offset O",
		Short: "Show one dead letter in full: provenance, last error, headers and value",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := d.check(true); err != nil {
				return err
			}
			if !cmd.Flags().Changed("offset") {
				return errors.New("--offset is required (the DLQ-OFFSET of dlq list)")
			}
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				dls, err := cl.ListDeadLetters(ctx, d.group, d.topic)
				if err != nil {
					return err
				}
				var found []client.DeadLetter
				for _, dl := range dls {
					if dl.DLQOffset == offset {
						found = append(found, dl)
					}
				}
				if len(found) == 0 {
					return fmt.Errorf("share group %s has no dead letter of topic %s at DLQ offset %d (see skiff dlq list)", d.group, d.topic, offset)
				}
				for i, dl := range found {
					if o.g.output == "json" {
						if err := writeJSON(cmd.OutOrStdout(), deadLetterJSONOf(dl)); err != nil {
							return err
						}
						continue
					}
					if i > 0 {
						fmt.Fprintln(cmd.OutOrStdout())
					}
					if err := printDeadLetter(cmd.OutOrStdout(), dl); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	d.register(cmd)
	cmd.Flags().Int64Var(&offset, "offset", 0, "DLQ offset of the dead letter (as dlq list shows)")
	return cmd
}

// newDLQResolveCommand is `dlq redrive` or, with discard, `dlq discard`.
func newDLQResolveCommand(o *clientOptions, discard bool) *cobra.Command {
	d := &dlqOptions{}
	var (
		offsets []int64
		all     bool
	)
	verb, done, short := "redrive", "redriven", "Send dead letters back to their source topic, to be delivered again"
	if discard {
		verb, done, short = "discard", "discarded", "Drop dead letters, releasing their quarantined keys"
	}
	cmd := &cobra.Command{
		Use:   verb + " --topic T --share-group G (--offset O ... | --all)",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := d.check(true); err != nil {
				return err
			}
			if all == (len(offsets) > 0) {
				return errors.New("give --offset (repeatable) or --all")
			}
			return o.run(cmd, func(ctx context.Context, cl *client.Client) error {
				n, err := cl.ResolveDeadLetters(ctx, d.group, d.topic, offsets, all, discard)
				if err != nil {
					return err
				}
				if o.g.output == "json" {
					return writeJSON(cmd.OutOrStdout(), map[string]int{done: n})
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %d dead letters of topic %s in share group %s\n", done, n, d.topic, d.group)
				return err
			})
		},
	}
	d.register(cmd)
	cmd.Flags().Int64SliceVar(&offsets, "offset", nil, "DLQ offset of a dead letter, as dlq list shows (repeatable or comma-separated)")
	cmd.Flags().BoolVar(&all, "all", false, "every pending dead letter of the topic")
	return cmd
}

// deadLetterJSON is a dead letter in -o json output: provenance, last
// error and the payload rendered as printRecord renders records.
type deadLetterJSON struct {
	Topic         string       `json:"topic"`
	Partition     int32        `json:"partition"`
	Offset        int64        `json:"offset"`
	DLQTopic      string       `json:"dlq_topic"`
	DLQPartition  int32        `json:"dlq_partition"`
	DLQOffset     int64        `json:"dlq_offset"`
	State         string       `json:"state"`
	DeliveryCount int          `json:"delivery_count"`
	LastError     string       `json:"last_error"`
	FirstDelivery string       `json:"first_delivery,omitempty"`
	LastDelivery  string       `json:"last_delivery,omitempty"`
	RedriveOffset int64        `json:"redrive_offset,omitempty"`
	Key           *string      `json:"key"`
	KeyBase64     bool         `json:"key_base64,omitempty"`
	Value         *string      `json:"value"`
	ValueBase64   bool         `json:"value_base64,omitempty"`
	Headers       []headerJSON `json:"headers"`
}

func deadLetterJSONOf(dl client.DeadLetter) deadLetterJSON {
	j := deadLetterJSON{Topic: dl.Topic, Partition: dl.Partition, Offset: dl.Offset, DLQTopic: dl.DLQTopic,
		DLQPartition: dl.DLQPartition, DLQOffset: dl.DLQOffset, State: dl.State, DeliveryCount: dl.DeliveryCount,
		LastError: dl.LastError, RedriveOffset: dl.RedriveOffset, Headers: []headerJSON{}}
	if !dl.FirstDelivery.IsZero() {
		j.FirstDelivery = dl.FirstDelivery.UTC().Format(time.RFC3339Nano)
	}
	if !dl.LastDelivery.IsZero() {
		j.LastDelivery = dl.LastDelivery.UTC().Format(time.RFC3339Nano)
	}
	j.Key, j.KeyBase64 = textOrBase64(dl.Key)
	j.Value, j.ValueBase64 = textOrBase64(dl.Value)
	for _, h := range dl.Headers {
		hj := headerJSON{Key: h.Key}
		hj.Value, hj.ValueBase64 = textOrBase64(h.Value)
		j.Headers = append(j.Headers, hj)
	}
	return j
}

func printDeadLetter(w io.Writer, dl client.DeadLetter) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("dead letter", fmt.Sprintf("%s/%d@%d", dl.DLQTopic, dl.DLQPartition, dl.DLQOffset))
	row("source", fmt.Sprintf("%s/%d@%d", dl.Topic, dl.Partition, dl.Offset))
	row("state", dl.State)
	if dl.State == "redriven" {
		row("redriven to", fmt.Sprintf("%s@%d", dl.Topic, dl.RedriveOffset))
	}
	row("deliveries", strconv.Itoa(dl.DeliveryCount))
	row("first delivery", timeOrDash(dl.FirstDelivery))
	row("last delivery", timeOrDash(dl.LastDelivery))
	row("last error", dash(dl.LastError))
	row("key", keyText(dl.Key))
	for _, h := range dl.Headers {
		row("header "+h.Key, keyText(h.Value))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	v, b64 := textOrBase64(dl.Value)
	switch {
	case v == nil:
		_, err := fmt.Fprintln(w, "value: null")
		return err
	case b64:
		_, err := fmt.Fprintf(w, "value (base64):\n%s\n", *v)
		return err
	}
	_, err := fmt.Fprintf(w, "value:\n%s\n", *v)
	return err
}

// truncate cuts s to n runes, marking the cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
