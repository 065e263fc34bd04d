package metadata

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// snapshotVersion is the format of a snapshot file. A binary refuses
// snapshots of other versions rather than misread them.
const snapshotVersion = 1

// snapshotFile is the JSON document a snapshot holds. encoding/json writes
// map keys sorted, so equal states give byte-identical snapshots.
type snapshotFile struct {
	Version int    `json:"version"`
	State   *State `json:"state"`
}

// Snapshot captures the current state. Published states are immutable, so
// the pointer is all there is to capture; Persist encodes it while Apply
// goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{state: f.state.Load()}, nil
}

type fsmSnapshot struct {
	state *State
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := WriteSnapshot(sink, s.state); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// Restore replaces the state with a snapshot's, after checking every
// invariant (State.Validate): a damaged or foreign snapshot is refused and
// the current state kept.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s, err := ReadSnapshot(rc)
	if err != nil {
		return err
	}
	f.publish(s)
	return nil
}

// WriteSnapshot encodes s in the snapshot format (a versioned JSON
// document). Exposed for tools and tests.
func WriteSnapshot(w io.Writer, s *State) error {
	if err := json.NewEncoder(w).Encode(snapshotFile{Version: snapshotVersion, State: s}); err != nil {
		return fmt.Errorf("metadata snapshot: %w", err)
	}
	return nil
}

// ReadSnapshot decodes and validates a snapshot written by WriteSnapshot.
func ReadSnapshot(r io.Reader) (*State, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var file snapshotFile
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("metadata snapshot: decode: %w", err)
	}
	if file.Version != snapshotVersion {
		return nil, fmt.Errorf("metadata snapshot: version %d, this binary reads %d", file.Version, snapshotVersion)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("metadata snapshot: trailing data after the document")
	}
	s := file.State
	if s == nil {
		return nil, fmt.Errorf("metadata snapshot: no state")
	}
	// JSON cannot tell an empty map from a missing one; the state always
	// has both maps.
	if s.Brokers == nil {
		s.Brokers = map[string]Broker{}
	}
	if s.Topics == nil {
		s.Topics = map[string]*Topic{}
	}
	if s.Users == nil { // a snapshot from before users existed
		s.Users = map[string]UserCredential{}
	}
	if s.Quotas == nil { // a snapshot from before quotas existed
		s.Quotas = map[string]Quota{}
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("metadata snapshot: %w", err)
	}
	return s, nil
}
