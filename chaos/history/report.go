package history

import (
	"fmt"
	"strings"
	"time"
)

// MaxExamples bounds the examples kept per anomaly class, so that a badly
// broken run still yields a readable report.
const MaxExamples = 10

// Anomaly is one example of a violation.
type Anomaly struct {
	TopicPartition
	Offset  int64    `json:"offset"`
	Values  []string `json:"values,omitempty"`
	Process string   `json:"process,omitempty"`
	Group   string   `json:"group,omitempty"`
	Detail  string   `json:"detail"`
}

// Anomalies counts one class of violation and keeps its first examples.
type Anomalies struct {
	Count    int       `json:"count"`
	Examples []Anomaly `json:"examples,omitempty"`
}

func (a *Anomalies) add(x Anomaly) {
	a.Count++
	if len(a.Examples) < MaxExamples {
		a.Examples = append(a.Examples, x)
	}
}

// Window is the longest stretch of a partition without a successful ack.
type Window struct {
	TopicPartition
	Start    time.Time     `json:"start"`
	End      time.Time     `json:"end"`
	Duration time.Duration `json:"duration_ns"`
	// Causes names the faults in effect at some point during the window.
	Causes []string `json:"causes,omitempty"`
}

// Report is the result of Check.
type Report struct {
	Sends                 int `json:"sends"`
	Acked                 int `json:"acked"`
	Failed                int `json:"failed"`
	Indeterminate         int `json:"indeterminate"`
	IndeterminateFound    int `json:"indeterminate_found"`
	IndeterminateNotFound int `json:"indeterminate_not_found"`
	Reads                 int `json:"reads"`
	FinalRecords          int `json:"final_records"`
	// Commits and CommitsFailed count group commits that succeeded and
	// that returned an error; Assignments counts AssignEvents (group
	// rebalances seen by each member, and partition readers' restarts).
	Commits       int `json:"commits"`
	CommitsFailed int `json:"commits_failed"`
	Assignments   int `json:"assignments"`

	LostWrites          Anomalies `json:"lost_writes"`
	Duplicates          Anomalies `json:"duplicates"`
	InconsistentOffsets Anomalies `json:"inconsistent_offsets"`
	AbortedReads        Anomalies `json:"aborted_reads"`
	UnexpectedValues    Anomalies `json:"unexpected_values"`
	NonDenseOffsets     Anomalies `json:"non_dense_offsets"`
	NonmonotonicSends   Anomalies `json:"nonmonotonic_sends"`
	PollSkips           Anomalies `json:"poll_skips"`
	NonmonotonicPolls   Anomalies `json:"nonmonotonic_polls"`
	CommitRegressions   Anomalies `json:"commit_regressions"`

	// Unavailability holds, per partition in topic/partition order, the
	// longest gap between successive acks.
	Unavailability []Window `json:"unavailability,omitempty"`
}

type namedClass struct {
	name string
	a    *Anomalies
}

// classes lists the anomaly classes in report order.
func (r *Report) classes() []namedClass {
	return []namedClass{
		{"lost writes", &r.LostWrites},
		{"duplicates", &r.Duplicates},
		{"inconsistent offsets", &r.InconsistentOffsets},
		{"aborted reads", &r.AbortedReads},
		{"unexpected values", &r.UnexpectedValues},
		{"non-dense offsets", &r.NonDenseOffsets},
		{"nonmonotonic sends", &r.NonmonotonicSends},
		{"poll skips", &r.PollSkips},
		{"nonmonotonic polls", &r.NonmonotonicPolls},
		{"commit regressions", &r.CommitRegressions},
	}
}

// Valid reports whether the history shows no anomaly. Indeterminate sends
// are allowed either way and do not make a history invalid.
func (r Report) Valid() bool {
	for _, c := range r.classes() {
		if c.a.Count > 0 {
			return false
		}
	}
	return true
}

// MaxUnavailability returns the longest window over all partitions.
func (r Report) MaxUnavailability() (Window, bool) {
	var best Window
	found := false
	for _, w := range r.Unavailability {
		if !found || w.Duration > best.Duration {
			best, found = w, true
		}
	}
	return best, found
}

// String is a one-screen summary: counts, each anomaly class with its first
// example, and the worst unavailability window.
func (r Report) String() string {
	var b strings.Builder
	verdict := "VALID"
	if !r.Valid() {
		verdict = "INVALID"
	}
	fmt.Fprintf(&b, "history: %s\n", verdict)
	fmt.Fprintf(&b, "  sends %d, acked %d, failed %d, indeterminate %d (found %d, not found %d), reads %d, final records %d\n",
		r.Sends, r.Acked, r.Failed, r.Indeterminate, r.IndeterminateFound, r.IndeterminateNotFound, r.Reads, r.FinalRecords)
	if r.Commits > 0 || r.CommitsFailed > 0 {
		fmt.Fprintf(&b, "  group commits %d (failed %d), assignment changes %d\n", r.Commits, r.CommitsFailed, r.Assignments)
	}
	for _, c := range r.classes() {
		fmt.Fprintf(&b, "  %-21s %d", c.name, c.a.Count)
		if len(c.a.Examples) > 0 {
			x := c.a.Examples[0]
			fmt.Fprintf(&b, "  e.g. %s/%d@%d: %s", x.Topic, x.Partition, x.Offset, x.Detail)
		}
		b.WriteByte('\n')
	}
	if w, ok := r.MaxUnavailability(); ok {
		fmt.Fprintf(&b, "  max unavailability    %s on %s/%d", w.Duration, w.Topic, w.Partition)
		if len(w.Causes) > 0 {
			fmt.Fprintf(&b, " during %s", strings.Join(w.Causes, ", "))
		}
		b.WriteByte('\n')
	}
	return b.String()
}
