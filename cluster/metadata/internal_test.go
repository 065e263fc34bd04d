package metadata

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// Internal topics belong to the cluster: the FSM itself, not only the RPC
// edge, refuses to delete them or alter their configuration unless the
// command is marked as the controller's.
func TestInternalTopicsChangeOnlyByTheController(t *testing.T) {
	const internal = "__consumer_offsets"
	retention := map[string]string{"retention.ms": "1000"}
	tests := []struct {
		name    string
		cmd     Command
		refused bool
		check   func(t *testing.T, s *State) // on the state after an accepted command
	}{
		{"delete internal", DeleteTopic{Name: internal}, true, nil},
		{"delete internal by id", DeleteTopic{Name: internal, TopicID: 5}, true, nil},
		{"alter internal", AlterTopicConfig{Name: internal, Set: retention}, true, nil},
		{"reset internal key", AlterTopicConfig{Name: internal, Delete: []string{"retention.ms"}}, true, nil},
		{"delete internal as controller", DeleteTopic{Name: internal, Controller: true}, false, func(t *testing.T, s *State) {
			if _, ok := s.Topics[internal]; ok {
				t.Fatal("topic still there")
			}
		}},
		{"alter internal as controller", AlterTopicConfig{Name: internal, Set: retention, Controller: true}, false, func(t *testing.T, s *State) {
			if got := s.Topics[internal].Config.RetentionMs; got != 1000 {
				t.Fatalf("retention.ms = %d, want 1000", got)
			}
		}},
		{"delete ordinary", DeleteTopic{Name: "orders"}, false, func(t *testing.T, s *State) {
			if _, ok := s.Topics["orders"]; ok {
				t.Fatal("topic still there")
			}
		}},
		{"alter ordinary", AlterTopicConfig{Name: "orders", Set: retention}, false, func(t *testing.T, s *State) {
			if got := s.Topics["orders"].Config.RetentionMs; got != 1000 {
				t.Fatalf("retention.ms = %d, want 1000", got)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := seeded(t)
			a.must(CreateTopic{Name: internal, Internal: true, Config: DefaultTopicConfig(), Partitions: assignment([]string{"b1"})})
			before := a.fsm.State()
			if before.Topics[internal].ID != 5 {
				t.Fatalf("internal topic id %d, want 5", before.Topics[internal].ID)
			}
			checkErr := before.Check(tc.cmd)
			r := a.apply(tc.cmd)
			if !tc.refused {
				if r.Err != nil || checkErr != nil {
					t.Fatalf("refused: apply %v, check %v", r.Err, checkErr)
				}
				tc.check(t, a.fsm.State())
				return
			}
			for _, err := range []error{checkErr, r.Err} {
				var ite *InternalTopicError
				if !errors.Is(err, ErrInternalTopic) || !errors.As(err, &ite) || ite.Topic != internal {
					t.Fatalf("err = %v, want an InternalTopicError naming %s", err, internal)
				}
				if !strings.Contains(err.Error(), `topic "__consumer_offsets" is internal to the cluster`) {
					t.Fatalf("message %q does not name the topic", err)
				}
			}
			if !reflect.DeepEqual(withoutIndex(before), withoutIndex(a.fsm.State())) {
				t.Fatal("a refused command changed the state")
			}
		})
	}
}

// Entries of the old types 3 and 4 were written before the internal-topic
// rule: they still decode, and replay as they applied then, so a log
// replayed by this version gives the state it gave before.
func TestOldDeleteAndAlterEntriesReplayUnderTheirOwnRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		want func(*State) bool
	}{
		{"delete", "\x03" + `{"name":"__consumer_offsets"}`, func(s *State) bool { return s.Topics["__consumer_offsets"] == nil }},
		{"alter", "\x04" + `{"name":"__consumer_offsets","set":{"retention.ms":"1000"}}`,
			func(s *State) bool { return s.Topics["__consumer_offsets"].Config.RetentionMs == 1000 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := seeded(t)
			a.must(CreateTopic{Name: "__consumer_offsets", Internal: true, Config: DefaultTopicConfig(), Partitions: assignment([]string{"b1"})})
			if r := a.raw([]byte(tc.data)); r.Err != nil {
				t.Fatalf("old entry rejected: %v", r.Err)
			}
			if !tc.want(a.fsm.State()) {
				t.Fatal("old entry not applied as before")
			}
		})
	}
	// The old types never carried the flag: an entry of type 3 with it is
	// not one an older version wrote.
	a := seeded(t)
	if r := a.raw([]byte("\x03" + `{"name":"orders","controller":true}`)); !errors.Is(r.Err, ErrMalformedCommand) {
		t.Fatalf("type 3 with controller: %v, want ErrMalformedCommand", r.Err)
	}
	if a.fsm.State().Topics["orders"] == nil {
		t.Fatal("malformed entry deleted the topic")
	}
}

// New commands are written with the new types and round-trip, flag
// included.
func TestDeleteAndAlterEncodeWithTheInternalTopicRule(t *testing.T) {
	for _, cmd := range []Command{
		DeleteTopic{Name: "__x", Controller: true},
		DeleteTopic{Name: "orders", TopicID: 4},
		AlterTopicConfig{Name: "__x", Set: map[string]string{"retention.ms": "5"}, Controller: true},
	} {
		data, err := EncodeCommand(cmd)
		if err != nil {
			t.Fatal(err)
		}
		want := TypeDeleteTopicV2
		if _, ok := cmd.(AlterTopicConfig); ok {
			want = TypeAlterTopicConfigV2
		}
		if CommandType(data[0]) != want {
			t.Fatalf("%T encoded as type %d, want %d", cmd, data[0], want)
		}
		got, err := DecodeCommand(data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, cmd) {
			t.Fatalf("round trip: %#v, want %#v", got, cmd)
		}
	}
}
