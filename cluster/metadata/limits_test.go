package metadata

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestCreateTopicCarriesTheClusterLimits(t *testing.T) {
	a := newApplier(t)
	a.brokers("b1")
	create := func(name string, partitions, maxTopics, maxParts int) *Result {
		reps := make([][]string, partitions)
		for i := range reps {
			reps[i] = []string{"b1"}
		}
		return a.apply(CreateTopic{Name: name, Config: DefaultTopicConfig(), Partitions: assignment(reps...),
			MaxTopics: maxTopics, MaxTotalPartitions: maxParts})
	}
	if r := create("a", 3, 2, 5); r.Err != nil {
		t.Fatal(r.Err)
	}
	// 3 + 3 > 5 partitions.
	r := create("b", 3, 2, 5)
	var le *LimitExceededError
	if !errors.As(r.Err, &le) || le.Limit != "max-partitions" || le.Current != 3 || le.Adding != 3 || le.Max != 5 {
		t.Fatalf("got %v, want max-partitions exceeded with 3 existing", r.Err)
	}
	if !errors.Is(r.Err, ErrLimitExceeded) || !strings.Contains(r.Err.Error(), "--max-partitions") {
		t.Errorf("message %q", r.Err)
	}
	if r := create("b", 2, 2, 5); r.Err != nil { // exactly at the limit
		t.Fatal(r.Err)
	}
	before := withoutIndex(a.fsm.State())
	r = create("c", 1, 2, 0)
	if !errors.As(r.Err, &le) || le.Limit != "max-topics" || le.Current != 2 || le.Max != 2 {
		t.Fatalf("got %v, want max-topics exceeded", r.Err)
	}
	if got := withoutIndex(a.fsm.State()); !reflect.DeepEqual(got, before) {
		t.Fatalf("a refused create changed the state")
	}
	// Existing topics are intact.
	if ta, tb := a.fsm.State().Topics["a"], a.fsm.State().Topics["b"]; ta == nil || len(ta.Partitions) != 3 || tb == nil || len(tb.Partitions) != 2 {
		t.Fatalf("topics after the refusals: %+v %+v", ta, tb)
	}
	// A command without limits (older logs, the controller's internal
	// topics) is not checked.
	if r := create("d", 10, 0, 0); r.Err != nil {
		t.Fatalf("create without limits: %v", r.Err)
	}
	if r := create("e", 1, -1, 0); !errors.Is(r.Err, ErrInvalidArgument) {
		t.Fatalf("negative limit: %v", r.Err)
	}
}

func TestLimitsValidateNamesTheFlag(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Limits)
		flag string
	}{
		{func(l *Limits) { l.MaxTopics = 0 }, "--max-topics"},
		{func(l *Limits) { l.MaxTopics = MaxTopicsCeiling + 1 }, "--max-topics"},
		{func(l *Limits) { l.MaxTotalPartitions = 0 }, "--max-partitions"},
	} {
		l := DefaultLimits()
		tc.mod(&l)
		if err := l.Validate(); err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%+v: %v, want an error naming %s", l, err, tc.flag)
		}
	}
	if err := DefaultLimits().Validate(); err != nil {
		t.Fatal(err)
	}
}
