package partition

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// snapshotStore is a raft.SnapshotStore whose snapshots are directories of
// hard links to the log's immutable files (see snapshot_format.go). Taking a
// snapshot therefore costs a few link(2) calls whatever the size of the log,
// and only InstallSnapshot to another replica moves bytes.
type snapshotStore struct {
	dir    string
	retain int
	// catchUp paces snapshots streamed in from a leader (nil: unpaced).
	catchUp *catchUpLimiter

	mu sync.Mutex // serialises Create's finalisation and reaping
}

var _ raft.SnapshotStore = (*snapshotStore)(nil)

const (
	snapshotMetaName = "meta.json"
	snapshotTmpExt   = ".tmp"
)

func newSnapshotStore(dir string, retain int) (*snapshotStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	// A snapshot still being written when the process died is garbage.
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), snapshotTmpExt) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return nil, fmt.Errorf("snapshot store: remove partial %s: %w", e.Name(), err)
			}
		}
	}
	return &snapshotStore{dir: dir, retain: retain}, nil
}

func snapshotID(term, index uint64) string {
	return fmt.Sprintf("%020d-%020d-%d", term, index, time.Now().UnixMilli())
}

// Create starts a snapshot. Raft either streams a received snapshot into the
// sink (InstallSnapshot) or our FSM links its files in directly (local).
func (s *snapshotStore) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("snapshot store: unsupported snapshot version %d", version)
	}
	id := snapshotID(term, index)
	tmp := filepath.Join(s.dir, id+snapshotTmpExt)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("create snapshot %s: %w", id, err)
	}
	return &snapshotSink{
		store: s,
		dir:   tmp,
		meta: raft.SnapshotMeta{
			Version:            version,
			ID:                 id,
			Index:              index,
			Term:               term,
			Configuration:      configuration,
			ConfigurationIndex: configurationIndex,
		},
	}, nil
}

// List returns the complete snapshots, newest first.
func (s *snapshotStore) List() ([]*raft.SnapshotMeta, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var metas []*raft.SnapshotMeta
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), snapshotTmpExt) {
			continue
		}
		meta, err := readSnapshotMeta(filepath.Join(s.dir, e.Name()))
		if err != nil {
			// An unreadable snapshot is skipped, as hashicorp's FileSnapshotStore
			// does; an older intact one may still serve.
			continue
		}
		metas = append(metas, meta)
	}
	sort.Slice(metas, func(i, j int) bool {
		if metas[i].Term != metas[j].Term {
			return metas[i].Term > metas[j].Term
		}
		if metas[i].Index != metas[j].Index {
			return metas[i].Index > metas[j].Index
		}
		return metas[i].ID > metas[j].ID
	})
	return metas, nil
}

// latest returns the newest snapshot's directory, meta and manifest, or ok
// false when there is none.
func (s *snapshotStore) latest() (dir string, meta *raft.SnapshotMeta, m *manifest, ok bool, err error) {
	metas, err := s.List()
	if err != nil || len(metas) == 0 {
		return "", nil, nil, false, err
	}
	dir = filepath.Join(s.dir, metas[0].ID)
	m, _, err = readManifest(dir)
	if err != nil {
		return "", nil, nil, false, err
	}
	return dir, metas[0], m, true, nil
}

// Open returns a reader of the snapshot's stream. The reader also lets our
// own FSM restore by linking the directory's files instead of reading it.
func (s *snapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	if err := validSnapshotFileName(id); err != nil {
		return nil, nil, err
	}
	dir := filepath.Join(s.dir, id)
	meta, err := readSnapshotMeta(dir)
	if err != nil {
		return nil, nil, err
	}
	m, raw, err := readManifest(dir)
	if err != nil {
		return nil, nil, err
	}
	return meta, &snapshotReader{dir: dir, manifest: m, manifestJSON: raw}, nil
}

func (s *snapshotStore) reap() error {
	metas, err := s.List()
	if err != nil {
		return err
	}
	var errs []error
	for i := s.retain; i < len(metas); i++ {
		if err := os.RemoveAll(filepath.Join(s.dir, metas[i].ID)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func readSnapshotMeta(dir string) (*raft.SnapshotMeta, error) {
	b, err := os.ReadFile(filepath.Join(dir, snapshotMetaName))
	if err != nil {
		return nil, fmt.Errorf("snapshot meta: %w", err)
	}
	meta := new(raft.SnapshotMeta)
	if err := json.Unmarshal(b, meta); err != nil {
		return nil, fmt.Errorf("%w: meta %s: %v", ErrSnapshotCorrupt, dir, err)
	}
	return meta, nil
}

func readManifest(dir string) (*manifest, []byte, error) {
	raw, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot manifest: %w", err)
	}
	m := new(manifest)
	if err := json.Unmarshal(raw, m); err != nil {
		return nil, nil, fmt.Errorf("%w: manifest %s: %v", ErrSnapshotCorrupt, dir, err)
	}
	if err := m.validate(); err != nil {
		return nil, nil, err
	}
	return m, raw, nil
}

// snapshotSink receives one snapshot, either as a stream (Write) or as a set
// of files to hard-link (linkFiles), never both.
type snapshotSink struct {
	store *snapshotStore
	dir   string
	meta  raft.SnapshotMeta

	// Streaming state: Write feeds a pipe whose reader unpacks into dir.
	pw     *io.PipeWriter
	result chan error
	linked bool
	done   bool
}

var _ raft.SnapshotSink = (*snapshotSink)(nil)

func (s *snapshotSink) ID() string { return s.meta.ID }

func (s *snapshotSink) Write(p []byte) (int, error) {
	if s.linked {
		return 0, errors.New("snapshot sink: stream written after files were linked")
	}
	if s.pw == nil {
		pr, pw := io.Pipe()
		s.pw = pw
		s.result = make(chan error, 1)
		go func() {
			_, err := readSnapshotStream(pr, s.dir)
			// Drain so the writer never blocks on a reader that gave up.
			pr.CloseWithError(err)
			s.result <- err
		}()
	}
	// Only snapshots received from a leader are streamed into a sink (a
	// local snapshot links its files): this is the replica catching up.
	// A chunk waits at most 1/8 s of the budget, so a cancelled install
	// stops soon after its connection does.
	if err := s.store.catchUp.wait(context.Background(), len(p)); err != nil {
		return 0, err
	}
	return s.pw.Write(p)
}

// sourceFile is a file of the live log to put into a snapshot.
type sourceFile struct {
	Name string
	Path string
	Size int64
}

// linkFiles hard-links the given files into the snapshot and writes its
// manifest. Files must already be durable (the caller syncs the log first):
// the snapshot lets Raft drop the entries the files stand for.
func (s *snapshotSink) linkFiles(m *manifest, files []sourceFile) error {
	if s.pw != nil {
		return errors.New("snapshot sink: files linked after a stream was written")
	}
	s.linked = true
	m.Files = m.Files[:0]
	for _, f := range files {
		if err := os.Link(f.Path, filepath.Join(s.dir, f.Name)); err != nil {
			return fmt.Errorf("snapshot link %s: %w", f.Name, err)
		}
		m.Files = append(m.Files, snapshotFile{Name: f.Name, Size: f.Size})
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return writeFileSynced(filepath.Join(s.dir, manifestName), raw)
}

func (s *snapshotSink) Close() error {
	if s.done {
		return nil
	}
	s.done = true
	if s.pw != nil {
		s.pw.Close()
		if err := <-s.result; err != nil {
			os.RemoveAll(s.dir)
			return fmt.Errorf("receive snapshot %s: %w", s.meta.ID, err)
		}
	} else if !s.linked {
		os.RemoveAll(s.dir)
		return fmt.Errorf("snapshot %s: closed with no content", s.meta.ID)
	}
	if err := s.finish(); err != nil {
		os.RemoveAll(s.dir)
		return err
	}
	return nil
}

// finish records the meta, makes the snapshot visible atomically by renaming
// its directory, and reaps old snapshots.
func (s *snapshotSink) finish() error {
	m, raw, err := readManifest(s.dir)
	if err != nil {
		return err
	}
	s.meta.Size = m.streamSize(raw)
	metaJSON, err := json.Marshal(&s.meta)
	if err != nil {
		return err
	}
	if err := writeFileSynced(filepath.Join(s.dir, snapshotMetaName), metaJSON); err != nil {
		return err
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	final := strings.TrimSuffix(s.dir, snapshotTmpExt)
	if err := os.Rename(s.dir, final); err != nil {
		return fmt.Errorf("snapshot %s: %w", s.meta.ID, err)
	}
	if err := syncDir(s.store.dir); err != nil {
		return err
	}
	s.dir = final
	return s.store.reap()
}

func (s *snapshotSink) Cancel() error {
	if s.done {
		return nil
	}
	s.done = true
	if s.pw != nil {
		s.pw.CloseWithError(errors.New("snapshot cancelled"))
		<-s.result
	}
	return os.RemoveAll(s.dir)
}

// snapshotReader streams a stored snapshot. Reading starts a producer
// goroutine that Close stops.
type snapshotReader struct {
	dir          string
	manifest     *manifest
	manifestJSON []byte

	once sync.Once
	pr   *io.PipeReader
	done chan struct{}
}

func (r *snapshotReader) Read(p []byte) (int, error) {
	r.once.Do(func() {
		pr, pw := io.Pipe()
		r.pr = pr
		r.done = make(chan struct{})
		go func() {
			defer close(r.done)
			pw.CloseWithError(writeSnapshotStream(pw, r.manifest, r.manifestJSON, func(name string) string {
				return filepath.Join(r.dir, name)
			}))
		}()
	})
	return r.pr.Read(p)
}

func (r *snapshotReader) Close() error {
	started := false
	r.once.Do(func() {}) // after this, no Read can start the goroutine
	if r.pr != nil {
		started = true
		r.pr.Close()
	}
	if started {
		<-r.done
	}
	return nil
}
