package consumergroup

import (
	"errors"
	"fmt"
	"strconv"
)

// The offsets log is replayed by every replica on every start, and before
// internal topics were closed to clients anyone could produce to it. So an
// entry read back is checked as hostile input: one that could make apply
// panic, loop or build a state the rest of the package does not expect is
// skipped (and counted) instead of applied. The checks are deterministic,
// so every replica skips the same entries and the tables stay identical.

// errMalformedEntry is matched by every error of checkEntry and
// decodeEntry.
var errMalformedEntry = errors.New("malformed offsets entry")

// malformedError says why an offsets-log record was skipped. class is a
// bounded label for logging once per class ("not-json", "unknown-kind" or
// the entry's kind), never the attacker-chosen kind text itself.
type malformedError struct {
	class  string
	reason string
}

func (e *malformedError) Error() string {
	return fmt.Sprintf("%s: %s: %s", errMalformedEntry, e.class, e.reason)
}

func (e *malformedError) Is(target error) bool { return target == errMalformedEntry }

// maxEntryOffset bounds offsets in entries: far above any real log, far
// enough below MaxInt64 that offset arithmetic (Start+MaxInflight, o+1)
// cannot overflow.
const maxEntryOffset = 1 << 62

// checkEntry reports why e cannot be applied, or nil.
func checkEntry(e *entry) error {
	bad := func(format string, args ...any) error {
		return &malformedError{class: e.Kind, reason: fmt.Sprintf(format, args...)}
	}
	switch e.Kind {
	case kindCheckpointBegin:
		return nil
	case kindCheckpointEnd:
		if e.Begin < 0 {
			return bad("begin offset %d is negative", e.Begin)
		}
		return nil
	case kindCommit, kindDeleteGroup, kindGroupState:
	default:
		return &malformedError{class: "unknown-kind", reason: fmt.Sprintf("kind %.40q", e.Kind)}
	}
	if e.Group == "" {
		return bad("empty group name")
	}
	needTP := func() error {
		if e.Topic == "" {
			return bad("empty topic")
		}
		if e.Partition < 0 {
			return bad("partition %d is negative", e.Partition)
		}
		return nil
	}
	needOffset := func(name string, o int64) error {
		if o < 0 || o > maxEntryOffset {
			return bad("%s %d out of range [0, %d]", name, o, int64(maxEntryOffset))
		}
		return nil
	}
	switch e.Kind {
	case kindCommit:
		return errors.Join(needTP(), needOffset("offset", e.Offset))
	case kindGroupState:
		if e.GroupState == nil {
			return bad("no group state")
		}
		if err := checkGroupSnapshot(e.GroupState); err != nil {
			return bad("%v", err)
		}
	}
	return nil
}

// checkGroupSnapshot checks what restoreGroup relies on.
func checkGroupSnapshot(gs *groupSnapshot) error {
	if gs.Version < 0 || gs.Epoch < 0 || gs.Rebalances < 0 {
		return fmt.Errorf("negative version %d, epoch %d or rebalances %d", gs.Version, gs.Epoch, gs.Rebalances)
	}
	seen := make(map[string]bool, len(gs.Members))
	for i, m := range gs.Members {
		switch {
		case m.ID == "":
			return fmt.Errorf("members[%d]: empty id", i)
		case seen[m.ID]:
			return fmt.Errorf("members[%d]: duplicate id %.40q", i, m.ID)
		case m.Epoch < 0 || m.PrevEpoch < 0 || m.AssignSeq < 0 || m.RebalanceTimeout < 0:
			return fmt.Errorf("members[%d]: negative epoch, sequence or timeout", i)
		}
		seen[m.ID] = true
		for _, tps := range [][]TopicPartition{m.Assigned, m.Target} {
			for _, tp := range tps {
				if tp.Topic == "" || tp.Partition < 0 {
					return fmt.Errorf("members[%d]: bad partition %q/%d", i, tp.Topic, tp.Partition)
				}
			}
		}
	}
	return nil
}

// checkShareState checks a share group's restated state: every pointer
// set, every "topic/partition" key well formed, offsets in range, states
// known.
func checkShareState(g *shareGroupState) error {
	for k, sp := range g.Partitions {
		if _, ok := parseTPKeyStrict(k); !ok {
			return fmt.Errorf("partition key %.80q is not topic/partition", k)
		}
		if sp == nil {
			return fmt.Errorf("partition %q: null", k)
		}
		if sp.Start < 0 || sp.Start > maxEntryOffset {
			return fmt.Errorf("partition %q: start %d out of range", k, sp.Start)
		}
		for o, r := range sp.Recs {
			switch {
			case r == nil:
				return fmt.Errorf("partition %q: record %d: null", k, o)
			case o < 0 || o > maxEntryOffset:
				return fmt.Errorf("partition %q: record offset %d out of range", k, o)
			case r.State > recDeadLettered:
				return fmt.Errorf("partition %q: record %d: unknown state %d", k, o, r.State)
			case r.Deliveries < 0:
				return fmt.Errorf("partition %q: record %d: negative deliveries", k, o)
			}
		}
		for key, q := range sp.Quarantine {
			if q == nil {
				return fmt.Errorf("partition %q: quarantine of key %.40q: null", k, key)
			}
		}
	}
	for i, d := range g.DeadLetters {
		switch {
		case d == nil:
			return fmt.Errorf("dead_letters[%d]: null", i)
		case d.Topic == "" || d.Partition < 0 || d.Offset < 0:
			return fmt.Errorf("dead_letters[%d]: bad source %q/%d@%d", i, d.Topic, d.Partition, d.Offset)
		case d.State != dlPending && d.State != dlRedriven && d.State != dlDiscarded:
			return fmt.Errorf("dead_letters[%d]: unknown state %.40q", i, d.State)
		}
	}
	return nil
}

// parseTPKeyStrict parses a "topic/partition" key as tpKey writes it,
// refusing anything tpKey would not have written.
func parseTPKeyStrict(k string) (TopicPartition, bool) {
	for i := len(k) - 1; i >= 0; i-- {
		if k[i] != '/' {
			continue
		}
		p, err := strconv.ParseInt(k[i+1:], 10, 32)
		if err != nil || p < 0 || i == 0 || tpKey(k[:i], int32(p)) != k {
			return TopicPartition{}, false
		}
		return TopicPartition{Topic: k[:i], Partition: int32(p)}, true
	}
	return TopicPartition{}, false
}
