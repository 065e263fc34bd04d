package partition

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// mixedEntries returns entries first..last of every kind a partition's
// Raft log holds: batches, and entries with no records (configuration,
// no-op, barrier).
func mixedEntries(first, last uint64, term uint64) []*raft.Log {
	kinds := []raft.LogType{raft.LogCommand, raft.LogConfiguration, raft.LogNoop, raft.LogBarrier}
	var out []*raft.Log
	for i := first; i <= last; i++ {
		l := &raft.Log{Index: i, Term: term, Type: kinds[i%uint64(len(kinds))]}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			l.Data = []byte(fmt.Sprintf("entry-%d-term-%d-%s", i, term, strings.Repeat("x", int(i%97))))
		}
		out = append(out, l)
	}
	return out
}

func sameEntry(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type && bytes.Equal(a.Data, b.Data)
}

// checkLog asserts store holds exactly want, in order, from first to last.
func checkLog(t *testing.T, store raft.LogStore, want []*raft.Log) {
	t.Helper()
	first, err := store.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, err := store.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 {
		if last != 0 {
			t.Fatalf("want an empty log, LastIndex = %d", last)
		}
		return
	}
	if first != want[0].Index || last != want[len(want)-1].Index {
		t.Fatalf("log spans [%d, %d], want [%d, %d]", first, last, want[0].Index, want[len(want)-1].Index)
	}
	for _, w := range want {
		var got raft.Log
		if err := store.GetLog(w.Index, &got); err != nil {
			t.Fatalf("entry %d: %v", w.Index, err)
		}
		if !sameEntry(&got, w) {
			t.Fatalf("entry %d: got term %d type %v %q, want term %d type %v %q", w.Index, got.Term, got.Type, got.Data, w.Term, w.Type, w.Data)
		}
	}
}

func openTestLog(t *testing.T, dir string) (*raftLog, *SyncGroup) {
	t.Helper()
	g := NewSyncGroup()
	t.Cleanup(g.Close)
	l, err := openRaftLog(dir, 1<<20, g, false, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	return l, g
}

func TestRaftLogMigratesABoltLog(t *testing.T) {
	tests := []struct {
		name        string
		entries     []*raft.Log
		leftoverWAL bool // a migration that crashed half way left a raft-wal dir
	}{
		{"empty bolt log", nil, false},
		{"bolt log after compaction", mixedEntries(40, 300, 3), false},
		{"interrupted migration is redone", mixedEntries(1, 120, 2), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, legacyBoltLog)})
			if err != nil {
				t.Fatal(err)
			}
			if len(tt.entries) > 0 {
				if err := bolt.StoreLogs(tt.entries); err != nil {
					t.Fatal(err)
				}
			}
			if err := bolt.Close(); err != nil {
				t.Fatal(err)
			}
			if tt.leftoverWAL {
				// The half-copied WAL holds entries the bolt log does not
				// (as if the copy had been of different data): none of
				// them may survive.
				l, _ := openTestLog(t, t.TempDir())
				if err := l.StoreLogs(mixedEntries(1, 500, 9)); err != nil {
					t.Fatal(err)
				}
				l.Close()
				if err := os.MkdirAll(filepath.Join(dir, raftWALDir), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, raftWALDir, "00000000000000000001-0000000000000001.wal"), []byte("torn"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			l, _ := openTestLog(t, dir)
			checkLog(t, l, tt.entries)
			if _, err := os.Stat(filepath.Join(dir, legacyBoltLog)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("bolt log still present after migration: %v", err)
			}
			next := uint64(1)
			if len(tt.entries) > 0 {
				next = tt.entries[len(tt.entries)-1].Index + 1
			}
			more := mixedEntries(next, next+9, 4)
			if err := l.StoreLogs(more); err != nil {
				t.Fatal(err)
			}
			l.Close()
			// Reopening finds the WAL only and the same entries.
			l, _ = openTestLog(t, dir)
			defer l.Close()
			checkLog(t, l, append(append([]*raft.Log(nil), tt.entries...), more...))
		})
	}
}

// TestRaftLogDeleteRangeAcrossRestart covers the two deletes hashicorp/raft
// makes: a suffix (a new leader's log conflicts with this follower's
// uncommitted tail) and a prefix (compaction after a snapshot), and that
// FirstIndex/LastIndex after a restart reflect them.
func TestRaftLogDeleteRangeAcrossRestart(t *testing.T) {
	tests := []struct {
		name     string
		min, max uint64
		want     func(all []*raft.Log) []*raft.Log
		thenFrom uint64 // the next append after the delete starts here
	}{
		{"suffix: conflicting uncommitted tail", 151, 400, func(all []*raft.Log) []*raft.Log { return all[:150] }, 151},
		{"prefix: compaction after a snapshot", 1, 250, func(all []*raft.Log) []*raft.Log { return all[250:] }, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l, _ := openTestLog(t, dir)
			all := mixedEntries(1, 400, 1)
			for i := 0; i < len(all); i += 50 {
				if err := l.StoreLogs(all[i : i+50]); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.DeleteRange(tt.min, tt.max); err != nil {
				t.Fatal(err)
			}
			want := tt.want(all)
			checkLog(t, l, want)
			l.Close()
			l, _ = openTestLog(t, dir)
			defer l.Close()
			checkLog(t, l, want)
			// The deleted indexes can be written again, in a newer term.
			next := mixedEntries(tt.thenFrom, tt.thenFrom+20, 2)
			if err := l.StoreLogs(next); err != nil {
				t.Fatal(err)
			}
			checkLog(t, l, append(append([]*raft.Log(nil), want...), next...))
		})
	}
}

// TestRaftLogCrashAtEveryByteOfTheLastEntry writes entries, then simulates
// a crash that left only a prefix of the last append on disk (the rest of
// the preallocated file reads as zeros), for every possible prefix. After
// recovery the log must hold every earlier entry intact, and the last entry
// either whole or not at all, and must take new appends.
func TestRaftLogCrashAtEveryByteOfTheLastEntry(t *testing.T) {
	dir := t.TempDir()
	l, _ := openTestLog(t, dir)
	all := mixedEntries(1, 12, 1)
	for _, e := range all[:11] {
		if err := l.StoreLogs([]*raft.Log{e}); err != nil {
			t.Fatal(err)
		}
	}
	seg := onlySegment(t, filepath.Join(dir, raftWALDir))
	before := writtenEnd(t, seg)
	last := all[11]
	last.Data = bytes.Repeat([]byte("L"), 300)
	if err := l.StoreLogs([]*raft.Log{last}); err != nil {
		t.Fatal(err)
	}
	after := writtenEnd(t, seg)
	l.Close()
	if after <= before {
		t.Fatalf("last append wrote nothing (end %d -> %d)", before, after)
	}
	full, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := os.ReadFile(filepath.Join(dir, raftWALDir, "wal-meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	whole := 0
	for cut := before; cut <= after; cut++ {
		crashed := t.TempDir()
		walDir := filepath.Join(crashed, raftWALDir)
		if err := os.MkdirAll(walDir, 0o755); err != nil {
			t.Fatal(err)
		}
		torn := append([]byte(nil), full...)
		clear(torn[cut:after])
		if err := os.WriteFile(filepath.Join(walDir, filepath.Base(seg)), torn, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(walDir, "wal-meta.db"), meta, 0o644); err != nil {
			t.Fatal(err)
		}
		rl, _ := openTestLog(t, crashed)
		lastIdx, err := rl.LastIndex()
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		switch lastIdx {
		case 11:
			checkLog(t, rl, all[:11])
		case 12:
			whole++
			checkLog(t, rl, all)
		default:
			t.Fatalf("cut at byte %d of [%d, %d]: LastIndex %d, want 11 or 12", cut, before, after, lastIdx)
		}
		again := mixedEntries(lastIdx+1, lastIdx+1, 2)
		if err := rl.StoreLogs(again); err != nil {
			t.Fatalf("cut at %d: append after recovery: %v", cut, err)
		}
		rl.Close()
	}
	if whole != 1 {
		t.Fatalf("the last entry survived %d cuts; want exactly one (the complete write)", whole)
	}
}

func onlySegment(t *testing.T, dir string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil || len(m) != 1 {
		t.Fatalf("want one segment in %s, got %v (%v)", dir, m, err)
	}
	return m[0]
}

// writtenEnd is the offset after the last non-zero byte of a preallocated
// segment file: every cut below it loses written data.
func writtenEnd(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := len(b)
	for i > 0 && b[i-1] == 0 {
		i--
	}
	return i
}
