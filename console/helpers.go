package console

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/skiff-mq/skiff/client"
)

// redirectError sends the browser elsewhere (a form that names a page).
type redirectError struct{ to string }

func (e *redirectError) Error() string { return "see " + e.to }

func redirect(_ *request, to string) error { return &redirectError{to: to} }

// lagWait bounds the reads behind the lag-in-seconds column.
const lagWait = 2 * time.Second

// lagSeconds is, for each partition a group lags on, the age of the oldest
// record it has not committed (0 when caught up), as the coordinator's
// skiff_group_lag_seconds: it reads that record's timestamp. Partitions
// whose record could not be read in time are missing.
func lagSeconds(r *request, parts []client.GroupPartition) map[client.TopicPartition]float64 {
	out := map[client.TopicPartition]float64{}
	want := map[client.TopicPartition]int64{}
	for _, p := range parts {
		tp := client.TopicPartition{Topic: p.Topic, Partition: p.Partition}
		switch {
		case p.Lag == 0:
			out[tp] = 0
		case p.Lag > 0:
			want[tp] = max(p.Committed, 0)
		}
	}
	if len(want) == 0 {
		return out
	}
	co, err := r.cl.NewConsumer(client.ConsumerConfig{MaxBytes: 1, MaxWait: 100 * time.Millisecond, AllowFollower: true})
	if err != nil {
		return out
	}
	defer co.Close()
	ctx, cancel := context.WithTimeout(r.ctx, lagWait)
	defer cancel()
	for tp, off := range want {
		from := client.At(off)
		if off == 0 {
			from = client.Earliest() // nothing committed, or the log was trimmed
		}
		if co.Assign(ctx, tp.Topic, tp.Partition, from) != nil {
			delete(want, tp)
		}
	}
	now := time.Now()
	for len(want) > 0 {
		recs, err := co.Poll(ctx)
		for _, rec := range recs {
			tp := client.TopicPartition{Topic: rec.Topic, Partition: rec.Partition}
			if _, ok := want[tp]; ok {
				out[tp] = max(0, now.Sub(rec.Timestamp).Seconds())
				delete(want, tp)
				co.Unassign(tp.Topic, tp.Partition)
			}
		}
		if ctx.Err() != nil {
			break
		}
		if oor, ok := asOutOfRange(err); ok {
			// Committed below the log start: the oldest record left is
			// the first one.
			co.Assign(ctx, oor.Topic, oor.Partition, client.Earliest())
		}
	}
	return out
}

func asOutOfRange(err error) (*client.OffsetOutOfRangeError, bool) {
	var oor *client.OffsetOutOfRangeError
	if errors.As(err, &oor) {
		return oor, true
	}
	return nil, false
}

// shown is bytes as the browser shows them: text when they are printable
// UTF-8 (or asked for), else hex.
type shown struct {
	Text  string
	Hex   bool
	Null  bool
	Bytes int
}

func show(b []byte, format string) shown {
	if b == nil {
		return shown{Null: true}
	}
	s := shown{Bytes: len(b)}
	if format == "hex" || (format == "auto" && !printable(b)) {
		s.Text, s.Hex = hex.EncodeToString(b), true
		return s
	}
	s.Text = strings.ToValidUTF8(string(b), "\uFFFD")
	return s
}

func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) && !unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

var funcs = template.FuncMap{
	"duration": func(secs float64) string {
		if secs < 0 {
			return "unknown"
		}
		d := time.Duration(secs * float64(time.Second)).Round(time.Second)
		if d < time.Minute {
			return fmt.Sprintf("%ds", int(d.Seconds()))
		}
		return d.String()
	},
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05.000Z")
	},
	"join": func(ss []string) string { return strings.Join(ss, ", ") },
	"tps": func(tps []client.TopicPartition) string {
		parts := make([]string, len(tps))
		for i, tp := range tps {
			parts[i] = fmt.Sprintf("%s/%d", tp.Topic, tp.Partition)
		}
		return strings.Join(parts, ", ")
	},
	"offset": func(o int64) string {
		if o < 0 {
			return "-"
		}
		return fmt.Sprint(o)
	},
	"keytext": func(b []byte) string {
		if b == nil {
			return "(null)"
		}
		if printable(b) {
			return string(b)
		}
		return "0x" + hex.EncodeToString(b)
	},
	"inc": func(n int) int { return n + 1 },
}
