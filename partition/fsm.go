package partition

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/skiff-mq/skiff/log"
	"github.com/skiff-mq/skiff/record"
)

// appendResult is what applying an opAppend entry returns to the leader's
// Apply future.
type appendResult struct {
	BaseOffset  int64
	LastOffset  int64
	LeaderEpoch int32
	Duplicate   bool // a retried batch: these offsets are the original ones
	Err         error
}

// fsm is the partition's Raft state machine: the segmented log plus the
// idempotent-producer table.
//
// Apply, Snapshot and Restore are called one at a time by Raft's FSM
// goroutine; the fields marked "FSM goroutine" are touched only there.
// Readers reach the log through lg, which Restore may swap.
type fsm struct {
	dir    string
	logCfg log.Config
	snaps  *snapshotStore
	logger *slog.Logger
	// fatal is called (once) when the replica can no longer apply entries
	// without diverging from its peers, e.g. a failed disk write.
	fatal func(error)

	lg atomic.Pointer[log.Log]

	producers   *producerTable // FSM goroutine
	producerCfg producerConfig
	// Entries with an index at or below replayUntil are already in the log
	// (written before the last restart); their batches are not appended again,
	// only their producer-state transitions are replayed. cursor is the offset
	// the next such batch sits at.
	replayUntil uint64 // FSM goroutine
	cursor      int64  // FSM goroutine

	appliedIndex atomic.Uint64

	// inflight is the leader's count of batches queued in Raft and not yet
	// in the log (bounds.go); Apply settles them under its mutex.
	inflight inflight

	// snapshotMu keeps retention from deleting segment files while a snapshot
	// is linking them.
	snapshotMu sync.Mutex
}

var _ raft.FSM = (*fsm)(nil)

const (
	logDirName    = "log"
	logDirNew     = "log.new"
	logDirOld     = "log.old"
	restoreTmpDir = "restore.tmp"
)

// openFSM opens the replica's log, checks it against the newest snapshot
// and prepares the replay of the Raft tail.
//
// hashicorp/raft with NoSnapshotRestoreOnStart still sets lastApplied to the
// newest snapshot's index, so entries up to it are never replayed: the log
// must really hold everything the snapshot covers. If it does not (a crash
// between a snapshot install and the log swap, or lost page cache) the log is
// rebuilt from the snapshot's files (rqlite #2747 lost data to exactly this).
func openFSM(dir string, logCfg log.Config, pcfg producerConfig, snaps *snapshotStore, logger *slog.Logger, fatal func(error)) (*fsm, error) {
	f := &fsm{dir: dir, logCfg: logCfg, snaps: snaps, logger: logger, fatal: fatal, producerCfg: pcfg}
	if err := f.recoverLogSwap(); err != nil {
		return nil, err
	}
	snapDir, _, m, haveSnap, err := snaps.latest()
	if err != nil {
		return nil, fmt.Errorf("open partition state: %w", err)
	}
	lg, err := log.Open(filepath.Join(dir, logDirName), logCfg)
	if err != nil {
		return nil, fmt.Errorf("open partition log: %w", err)
	}
	if haveSnap && (lg.NextOffset() < m.NextOffset || lg.LastIndex() < m.LastLogIndex) {
		logger.Warn("log is behind its newest snapshot; rebuilding it from the snapshot",
			"log_next_offset", lg.NextOffset(), "snapshot_next_offset", m.NextOffset)
		if err := lg.Close(); err != nil {
			return nil, err
		}
		lg, err = f.installLog(snapDir, m)
		if err != nil {
			return nil, err
		}
	}
	f.lg.Store(lg)
	f.producers = newProducerTable(pcfg)
	if haveSnap {
		pt, err := unmarshalProducerTable(m.Producers, pcfg)
		if err != nil {
			lg.Close()
			return nil, fmt.Errorf("open partition state: snapshot producers: %w", err)
		}
		f.producers = pt
		f.cursor = m.NextOffset
		f.appliedIndex.Store(m.Index)
	}
	f.replayUntil = lg.LastIndex()
	return f, nil
}

// recoverLogSwap finishes or undoes a log swap interrupted by a crash
// (see installLog for the order of steps).
func (f *fsm) recoverLogSwap() error {
	cur := filepath.Join(f.dir, logDirName)
	old := filepath.Join(f.dir, logDirOld)
	if _, err := os.Stat(cur); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(old); err == nil {
			if err := os.Rename(old, cur); err != nil {
				return fmt.Errorf("recover log swap: %w", err)
			}
		}
	}
	for _, d := range []string{logDirNew, logDirOld, restoreTmpDir} {
		if err := os.RemoveAll(filepath.Join(f.dir, d)); err != nil {
			return fmt.Errorf("recover log swap: %w", err)
		}
	}
	return nil
}

// log returns the current log. Callers must tolerate log.ErrClosed: a
// snapshot install swaps logs under them.
func (f *fsm) log() *log.Log { return f.lg.Load() }

// Apply applies one committed entry.
func (f *fsm) Apply(l *raft.Log) interface{} {
	if l.Type != raft.LogCommand {
		return nil
	}
	defer f.appliedIndex.Store(l.Index)
	if len(l.Data) == 0 {
		return &appendResult{Err: errors.New("empty partition command")}
	}
	switch l.Data[0] {
	case opAppend:
		return f.applyCounted(l, l.Data[1:], 0, 0)
	case opAppendDropOldest:
		maxMessages, maxBytes, batch, err := decodeBoundedAppend(l.Data[1:])
		if err != nil {
			return &appendResult{Err: err}
		}
		return f.applyCounted(l, batch, maxMessages, maxBytes)
	case opAppendIfDuplicate:
		return f.applyIfDuplicate(l, l.Data[1:])
	default:
		return &appendResult{Err: errUnknownCommand(l.Data[0])}
	}
}

// applyCounted applies an append and, in the same critical section,
// settles the leader's reservation of it (bounds.go), then keeps a
// drop-oldest partition within its bounds.
func (f *fsm) applyCounted(l *raft.Log, batch []byte, maxMessages, maxBytes int64) *appendResult {
	f.inflight.mu.Lock()
	res := f.applyAppend(l, batch)
	if h, err := record.ParseHeader(batch); err == nil {
		f.inflight.settleLocked(l.Term, int64(h.RecordCount), int64(len(batch)))
	}
	f.inflight.mu.Unlock()
	if res.Err == nil && !res.Duplicate && (maxMessages > 0 || maxBytes > 0) {
		if err := f.dropOldest(res.LastOffset+1, maxMessages, maxBytes); err != nil {
			// The start is a pure function of the entries: a replica that
			// cannot move it would serve records its peers dropped.
			err = fmt.Errorf("drop oldest at raft index %d: %w", l.Index, err)
			f.fatal(err)
			return &appendResult{Err: err}
		}
	}
	return res
}

// dropOldest advances the log start so that the records up to end (the
// offset after the batch just applied) number at most maxMessages and take
// at most maxBytes (0 = unbounded). It depends only on the entries applied,
// so every replica drops the same records. The byte bound is measured at
// the log's end, so while replaying entries whose batches are already in
// the log (after a restart) it is applied only by the newest one.
func (f *fsm) dropOldest(end, maxMessages, maxBytes int64) error {
	lg := f.log()
	var start int64
	if maxMessages > 0 {
		start = end - maxMessages
	}
	if maxBytes > 0 && end == lg.NextOffset() {
		s, err := lg.StartKeepingBytes(maxBytes)
		if err != nil {
			return err
		}
		start = max(start, s)
	}
	if start <= lg.LogStartOffset() {
		return nil
	}
	if err := lg.AdvanceStart(start); err != nil {
		return err
	}
	// Delete the files of segments now wholly below the start, unless a
	// snapshot is linking them (retention deletes them later then): the
	// FSM must not wait for a snapshot to stream.
	if f.snapshotMu.TryLock() {
		_, err := lg.DeleteBefore(lg.LogStartOffset())
		f.snapshotMu.Unlock()
		if err != nil {
			f.logger.Warn("delete segments below the log start", "error", err)
		}
	}
	return nil
}

// errNotDuplicate is the result of an opAppendIfDuplicate entry whose
// batch is new: the leader's refusal (a *FullError) stands.
var errNotDuplicate = errors.New("not a retry of an appended batch")

// applyIfDuplicate answers a retried batch with its original offsets and
// appends nothing in any case.
func (f *fsm) applyIfDuplicate(l *raft.Log, batch []byte) *appendResult {
	h, err := record.Verify(batch)
	if err != nil {
		return &appendResult{Err: fmt.Errorf("%w: %v", ErrInvalidBatch, err)}
	}
	dup, err := f.producers.check(h, l.AppendedAt)
	if err != nil {
		return &appendResult{Err: err}
	}
	if dup == nil {
		return &appendResult{Err: errNotDuplicate}
	}
	return &appendResult{BaseOffset: dup.baseOffset, LastOffset: dup.lastOffset, LeaderEpoch: int32(l.Term), Duplicate: true}
}

func (f *fsm) applyAppend(l *raft.Log, batch []byte) *appendResult {
	// The Raft WAL checks a CRC per append on disk, but an entry crosses the
	// network in an AppendEntries with no checksum and sits in memory
	// between: the batch CRC is the end-to-end guard.
	h, err := record.Verify(batch)
	if err != nil {
		return &appendResult{Err: fmt.Errorf("%w: %v", ErrInvalidBatch, err)}
	}
	if h.Size() != len(batch) {
		return &appendResult{Err: fmt.Errorf("%w: %d trailing bytes after the batch", ErrInvalidBatch, len(batch)-h.Size())}
	}
	now := l.AppendedAt
	dup, err := f.producers.check(h, now)
	if err != nil {
		return &appendResult{Err: err}
	}
	epoch := int32(l.Term)
	if dup != nil {
		return &appendResult{BaseOffset: dup.baseOffset, LastOffset: dup.lastOffset, LeaderEpoch: epoch, Duplicate: true}
	}
	next := int64(h.LastOffsetDelta) + 1
	if l.Index <= f.replayUntil {
		base := f.cursor
		if err := f.checkReplayed(base, h); err != nil {
			f.fatal(err)
			return &appendResult{Err: err}
		}
		f.cursor = base + next
		f.producers.record(h, base, now)
		return &appendResult{BaseOffset: base, LastOffset: base + next - 1, LeaderEpoch: epoch}
	}
	// The entry's bytes may be shared with Raft's log cache and replication
	// goroutines, so stamp a private copy.
	own := make([]byte, len(batch))
	copy(own, batch)
	record.SetPartitionLeaderEpoch(own, epoch)
	base, err := f.log().Append(own, l.Index)
	if err != nil {
		// Every other replica appended this batch; carrying on without it
		// would fork the log. Stop this replica instead.
		err = fmt.Errorf("append at raft index %d: %w", l.Index, err)
		f.fatal(err)
		// The entry is committed and the other replicas apply it: the
		// write happened, only not here. Reported as a definite failure
		// (a full disk's RESOURCE_EXHAUSTED), it made the producer send
		// the batch again as a new one, a duplicate. Indeterminate, it is
		// retried with the same sequence, which the next leader finds.
		return &appendResult{Err: fmt.Errorf("%w: %w", ErrIndeterminate, err)}
	}
	f.producers.record(h, base, now)
	return &appendResult{BaseOffset: base, LastOffset: base + next - 1, LeaderEpoch: epoch}
}

// checkReplayed verifies that the batch already in the log at offset is the
// one the replayed entry carries. A mismatch means the local log holds a
// history the cluster never committed (possible only after losing unsynced
// Raft log writes with durability=replicated), which must not be served.
func (f *fsm) checkReplayed(offset int64, h record.BatchHeader) error {
	lg := f.log()
	if offset < lg.LogStartOffset() {
		return nil // deleted by retention; nothing left to compare
	}
	got, err := lg.Read(offset, record.HeaderSize)
	if err != nil {
		return fmt.Errorf("replay check at offset %d: %w", offset, err)
	}
	gh, err := record.ParseHeader(got)
	if err != nil {
		return fmt.Errorf("replay check at offset %d: %w", offset, err)
	}
	if gh.BaseOffset == offset && gh.CRC == h.CRC {
		return nil
	}
	// Compaction rewrites batches in place of the originals: the same base
	// offset and span with fewer records, or an empty batch spanning this
	// one and its neighbours. Either covers exactly the entry's offsets.
	compacted := gh.RecordCount < h.RecordCount &&
		((gh.BaseOffset == offset && gh.LastOffsetDelta == h.LastOffsetDelta) ||
			(gh.RecordCount == 0 && gh.BaseOffset <= offset && offset+int64(h.LastOffsetDelta) < gh.NextOffset()))
	if compacted {
		return nil
	}
	return fmt.Errorf("replay check at offset %d: local log diverges from the committed Raft log (crc %08x, want %08x)", offset, gh.CRC, h.CRC)
}

// Snapshot captures the state to persist. It runs on the FSM goroutine, so it
// only records sizes and copies the (small) producer table; Persist does the
// I/O.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	lg := f.log()
	m := &manifest{
		Index:          f.appliedIndex.Load(),
		LogStartOffset: lg.LogStartOffset(),
		NextOffset:     lg.NextOffset(),
		LastLogIndex:   lg.LastIndex(),
		Producers:      f.producers.marshalBinary(),
	}
	return &fsmSnapshot{fsm: f, lg: lg, manifest: m, files: snapshotSources(lg), compactions: lg.Compactions()}, nil
}

// Restore replaces the whole state with a snapshot's, received from the
// leader (InstallSnapshot) or read from our own store.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var (
		dir string
		m   *manifest
	)
	if sr, ok := rc.(*snapshotReader); ok {
		dir, m = sr.dir, sr.manifest
	} else {
		dir = filepath.Join(f.dir, restoreTmpDir)
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		var err error
		if m, err = readSnapshotStream(rc, dir); err != nil {
			return fmt.Errorf("restore partition: %w", err)
		}
	}
	pt, err := unmarshalProducerTable(m.Producers, f.producerCfg)
	if err != nil {
		return fmt.Errorf("restore partition: producers: %w", err)
	}
	if old := f.log(); old != nil {
		if err := old.Close(); err != nil && !errors.Is(err, log.ErrClosed) {
			return fmt.Errorf("restore partition: close log: %w", err)
		}
	}
	lg, err := f.installLog(dir, m)
	if err != nil {
		// The old log is closed and the new one did not open: this replica
		// cannot serve; stop it rather than apply onto nothing.
		f.fatal(err)
		return err
	}
	f.lg.Store(lg)
	f.producers = pt
	f.replayUntil = lg.LastIndex()
	f.cursor = lg.NextOffset()
	f.appliedIndex.Store(m.Index)
	return nil
}

// installLog builds a log directory from a snapshot's files and swaps it in
// place of the current one. Order (each step durable before the next):
// build log.new; rename log -> log.old; rename log.new -> log; remove
// log.old. recoverLogSwap finishes whatever a crash interrupted.
func (f *fsm) installLog(snapDir string, m *manifest) (*log.Log, error) {
	newDir := filepath.Join(f.dir, logDirNew)
	if err := os.RemoveAll(newDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(newDir, 0o755); err != nil {
		return nil, err
	}
	for _, file := range m.Files {
		if err := linkOrCopyPrefix(filepath.Join(snapDir, file.Name), filepath.Join(newDir, file.Name), file.Size); err != nil {
			return nil, fmt.Errorf("install snapshot file %s: %w", file.Name, err)
		}
	}
	if err := syncDir(newDir); err != nil {
		return nil, err
	}
	cur := filepath.Join(f.dir, logDirName)
	old := filepath.Join(f.dir, logDirOld)
	if _, err := os.Stat(cur); err == nil {
		if err := os.Rename(cur, old); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(newDir, cur); err != nil {
		return nil, err
	}
	if err := syncDir(f.dir); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(old); err != nil {
		return nil, err
	}
	lg, err := log.Open(cur, f.logCfg)
	if err != nil {
		return nil, fmt.Errorf("open installed log: %w", err)
	}
	if lg.NextOffset() != m.NextOffset {
		lg.Close()
		return nil, fmt.Errorf("%w: installed log ends at offset %d, manifest says %d", ErrSnapshotCorrupt, lg.NextOffset(), m.NextOffset)
	}
	// A drop-oldest partition's start lies inside the snapshot's first
	// segment; the manifest carries it.
	if err := lg.AdvanceStart(m.LogStartOffset); err != nil {
		lg.Close()
		return nil, err
	}
	return lg, nil
}

// linkOrCopyPrefix hard-links src to dst when src is exactly size bytes;
// otherwise (a live active segment that grew after the snapshot) it copies
// the first size bytes, because truncating a shared inode would cut the
// other snapshot or log that links it.
func linkOrCopyPrefix(src, dst string, size int64) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if st.Size() < size {
		return fmt.Errorf("%w: %s holds %d bytes, want %d", ErrSnapshotCorrupt, src, st.Size(), size)
	}
	if st.Size() == size {
		return os.Link(src, dst)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.NewSectionReader(in, 0, size)); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// fsmSnapshot is a point-in-time view: the sizes of the log's files when
// Snapshot ran. Bytes below those sizes never change, so linking the files
// later still captures exactly that state.
type fsmSnapshot struct {
	fsm      *fsm
	lg       *log.Log
	manifest *manifest
	files    []sourceFile
	// compactions is the log's count when the files were listed: a
	// compaction since put new content under their names.
	compactions uint64
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	s.fsm.snapshotMu.Lock()
	defer s.fsm.snapshotMu.Unlock()
	if s.lg.Compactions() != s.compactions {
		// Compaction runs under snapshotMu, so only between Snapshot and
		// here; Raft takes the next snapshot later.
		sink.Cancel()
		return errors.New("snapshot: the log was compacted after its files were listed; retry")
	}
	// Raft drops log entries once the snapshot exists, so what the snapshot
	// covers must be on disk first, whatever the topic's durability.
	if err := s.lg.Sync(); err != nil {
		sink.Cancel()
		return fmt.Errorf("snapshot: sync log: %w", err)
	}
	if ss, ok := sink.(*snapshotSink); ok {
		if err := ss.linkFiles(s.manifest, s.files); err != nil {
			sink.Cancel()
			return err
		}
		return sink.Close()
	}
	// A foreign sink (tests, tools): stream the bytes.
	if err := s.streamTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) streamTo(w io.Writer) error {
	m := *s.manifest
	m.Files = nil
	for _, f := range s.files {
		m.Files = append(m.Files, snapshotFile{Name: f.Name, Size: f.Size})
	}
	raw, err := json.Marshal(&m)
	if err != nil {
		return err
	}
	return writeSnapshotStream(w, &m, raw, func(name string) string {
		for _, sf := range s.files {
			if sf.Name == name {
				return sf.Path
			}
		}
		return ""
	})
}

func (s *fsmSnapshot) Release() {}

// snapshotSources lists the log files a snapshot needs: every segment's data
// and journal (the per-batch Raft indexes), each with the length that belongs
// to the state at this moment, plus the index files of sealed segments when
// they exist. Indexes are derived data, but shipping them spares a replica
// that installs the snapshot a scan of every segment when it opens the log.
func snapshotSources(lg *log.Log) []sourceFile {
	var files []sourceFile
	for _, s := range lg.Segments() {
		files = append(files,
			sourceFile{Name: filepath.Base(s.DataPath), Path: s.DataPath, Size: s.Size},
			sourceFile{Name: filepath.Base(s.JournalPath), Path: s.JournalPath, Size: s.JournalSize})
		if !s.Sealed {
			continue
		}
		for _, p := range []string{s.IndexPath, s.TimeIndexPath} {
			if p == "" {
				continue
			}
			if st, err := os.Stat(p); err == nil {
				files = append(files, sourceFile{Name: filepath.Base(p), Path: p, Size: st.Size()})
			}
		}
	}
	return files
}
