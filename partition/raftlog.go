package partition

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/migrate"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// The partition's Raft log lives in raftWALDir, a hashicorp/raft-wal
// write-ahead log: append-only segment files with a per-batch commit frame
// and CRC, one pwrite and one fsync per StoreLogs, suffix and prefix deletes
// by whole segments. It replaced raft-boltdb (legacyBoltLog) in the data
// path: bolt rewrote B+tree pages, spilled and kept a freelist on every
// commit (57% of produce CPU), and its mmap of a database that grows with
// the log counted in every node's RSS.
const (
	raftWALDir     = "raft-wal"
	legacyBoltLog  = "raft-log.db"
	stableStoreDB  = "raft-stable.db"
	migrateBatchSz = 4 << 20
)

// openRaftLog opens (creating or migrating) the replica's Raft log store.
// Its fsyncs go through group (one durability pass for every partition of
// the node); with noSync (durability=replicated) appends are not fsynced.
func openRaftLog(dir string, segmentBytes int, group *SyncGroup, noSync bool, logger hclog.Logger) (*raftLog, error) {
	walDir := filepath.Join(dir, raftWALDir)
	legacy := filepath.Join(dir, legacyBoltLog)
	_, err := os.Stat(legacy)
	switch {
	case err == nil:
		if err := migrateBoltLog(legacy, walDir, segmentBytes, group, logger); err != nil {
			return nil, fmt.Errorf("migrate %s to %s: %w", legacyBoltLog, raftWALDir, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if err := os.MkdirAll(walDir, 0o755); err != nil {
		return nil, err
	}
	return openWAL(walDir, segmentBytes, group, noSync, logger)
}

// raftLog is the WAL with its metadata database, which wal.WAL.Close
// leaves open (and locked: a replica reopened in the same process would
// wait for ever on the bolt file lock).
type raftLog struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

// Close closes the WAL, then its metadata database.
func (l *raftLog) Close() error {
	return errors.Join(l.WAL.Close(), l.meta.Close())
}

func openWAL(walDir string, segmentBytes int, group *SyncGroup, noSync bool, logger hclog.Logger) (*raftLog, error) {
	vfs := &groupSyncFS{FS: walfs.New(), group: group, noSync: noSync}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(walDir,
		wal.WithSegmentFiler(segment.NewFiler(walDir, vfs)),
		wal.WithSegmentSize(segmentBytes),
		wal.WithMetaStore(meta),
		wal.WithLogger(logger.Named("raft-wal")),
	)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open raft log %s: %w", walDir, err), meta.Close())
	}
	return &raftLog{WAL: w, meta: meta}, nil
}

// migrateBoltLog copies a replica's raft-boltdb log (written by Skiff
// before the WAL) into a fresh WAL, fsynced, and only then deletes the bolt
// file: a crash at any point leaves the bolt file in place and the next
// open starts the copy again from scratch, so no entry is ever only in a
// half-written WAL.
func migrateBoltLog(legacy, walDir string, segmentBytes int, group *SyncGroup, logger hclog.Logger) error {
	if err := os.RemoveAll(walDir); err != nil {
		return err
	}
	if err := os.MkdirAll(walDir, 0o755); err != nil {
		return err
	}
	src, err := raftboltdb.New(raftboltdb.Options{Path: legacy})
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := openWAL(walDir, segmentBytes, group, false, logger)
	if err != nil {
		return err
	}
	last, err := src.LastIndex()
	if err == nil && last > 0 {
		err = migrate.CopyLogs(context.Background(), dst, src, migrateBatchSz, nil)
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := src.Close(); err != nil {
		return err
	}
	if err := os.Remove(legacy); err != nil {
		return err
	}
	return syncDir(filepath.Dir(legacy))
}

// groupSyncFS is raft-wal's file system with every Sync routed through the
// node's SyncGroup (or skipped, for durability=replicated).
type groupSyncFS struct {
	*walfs.FS
	group  *SyncGroup
	noSync bool
}

func (f *groupSyncFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	w, err := f.FS.Create(dir, name, size)
	if err != nil {
		return nil, err
	}
	return &groupSyncFile{WritableFile: w, fs: f}, nil
}

func (f *groupSyncFS) OpenWriter(dir, name string) (types.WritableFile, error) {
	w, err := f.FS.OpenWriter(dir, name)
	if err != nil {
		return nil, err
	}
	return &groupSyncFile{WritableFile: w, fs: f}, nil
}

type groupSyncFile struct {
	types.WritableFile
	fs *groupSyncFS
}

// Sync keeps the wrapped file's own Sync (raft-wal's also fsyncs the
// directory after a segment's first sync) but runs it in a group pass.
func (f *groupSyncFile) Sync() error {
	if f.fs.noSync {
		return nil
	}
	return f.fs.group.Sync(f.WritableFile)
}

var _ raft.MonotonicLogStore = (*wal.WAL)(nil)
