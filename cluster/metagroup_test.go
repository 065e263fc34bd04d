package cluster

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

func TestLastCommandIndexSkipsNoOpsAndConfigurations(t *testing.T) {
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(t.TempDir(), "raft-log.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m := &metaGroup{logs: store}
	if got := m.lastCommandIndex(0); got != 0 {
		t.Fatalf("empty log: %d, want 0", got)
	}
	logs := []*raft.Log{
		{Index: 5, Term: 1, Type: raft.LogConfiguration},
		{Index: 6, Term: 1, Type: raft.LogNoop},
		{Index: 7, Term: 1, Type: raft.LogCommand, Data: []byte{1}},
		{Index: 8, Term: 1, Type: raft.LogCommand, Data: []byte{2}},
		{Index: 9, Term: 2, Type: raft.LogNoop},           // a new leader's election
		{Index: 10, Term: 2, Type: raft.LogConfiguration}, // a voter added
		{Index: 11, Term: 3, Type: raft.LogNoop},
	}
	if err := store.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ last, want uint64 }{
		{11, 8}, // the state reaches 8, never 11: the gate must wait for 8
		{8, 8},
		{7, 7},
		{6, 0}, // no command in the log up to 6: all in the snapshot
	} {
		if got := m.lastCommandIndex(tc.last); got != tc.want {
			t.Errorf("lastCommandIndex(%d) = %d, want %d", tc.last, got, tc.want)
		}
	}
}
