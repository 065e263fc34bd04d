// Package log is the storage engine of one partition replica: a segmented,
// append-only log of Kafka v2 record batches on local disk, with sparse
// offset and time indexes, retention, crash recovery and cheap snapshots.
//
// It knows nothing of Raft, gRPC or cluster membership; its only dependency
// in this repository is the record package, and it never decodes records:
// batches are verified (CRC) and stamped with their base offset, and
// otherwise flow through as bytes, from Append to the files to Read.
//
// # Layers
//
// Like proglog, the package is built in layers, each testable alone:
//
//	scan.go, verify.go            batches: verified frames (record package)
//	index.go, timeindex.go        sparse indexes; indexer.go places entries
//	journal.go                    per-batch sidecar: caller index, append time
//	segment.go, segment_*.go      one data file with its journal and indexes
//	log.go, read.go, flusher.go   the list of segments, rolling, Sync
//	recovery.go                   Open after a crash
//	retention.go, reset.go, checkpoint.go  whole-segment operations
//	start.go, held.go             a log start inside a segment (bounded topics)
//	compact.go                    compaction: cleaned segments swapped in
//
// # On-disk layout
//
// A log is a directory of segments. Segment files are named by the segment's
// base offset, the offset of its first batch, as 20 zero-padded digits:
//
//	00000000000000000000.log        data: batches exactly as appended
//	00000000000000000000.journal    one 24-byte entry per batch (see below)
//	00000000000000000000.index      sparse offset index (sealed segments)
//	00000000000000000000.timeindex  sparse time index (sealed segments)
//	00000000000001048576.log        next segment: base offset 1048576
//	...
//	reset.pending                   only while a Reset is in progress
//	start.offset                    the log start, when it lies inside a segment
//	compact.pending                 only while compacted segments are swapped in
//	*.cleaned                       only while a compaction pass writes them
//	*.tmp                           only while a file is being replaced
//
// The .log file is a plain concatenation of v2 record batches (see the
// record package): no framing of its own, so a byte range of it is a valid
// fetch response and a hard link to it is a valid copy.
//
// The .index file holds (relative offset uint32, position uint32) pairs, one
// per IndexIntervalBytes of data, always including the first batch; the
// .timeindex file holds (max timestamp int64, relative offset uint32) pairs
// with strictly increasing timestamps (the running maximum, as in Kafka).
// Both start with a 56-byte header (indexfile.go) that also records the
// segment's next offset, data size and newest timestamp. Index files are
// derived data: written once, atomically by rename, when a sealed segment has
// been made durable, and rebuilt from the data whenever they are missing,
// damaged or disagree with it. The active segment keeps its indexes in
// memory only.
//
// # The journal: why a sidecar file
//
// Append takes the caller's index (the Raft log index of the entry that
// carried the batch), and LastIndex must name the newest batch that survives
// a crash, so the partition layer knows which Raft entries to replay. The
// index must therefore be exactly as durable as the batch itself, with no
// extra fsync per append. The options were:
//
//   - a field inside the batch: the v2 format has no spare 64-bit field
//     outside the CRC, and rewriting batches would break zero-copy;
//   - a separate metadata file rewritten on Sync: it can disagree with the
//     data after a crash (data synced, metadata not, or the reverse);
//   - a sidecar with one fixed-size entry per batch, written with the batch
//     and fsynced with it: chosen.
//
// Journal entry i belongs to batch i of the segment. Each entry holds the
// index, the append time (for SegmentMaxAge, which must not depend on
// producer timestamps), a CRC-32C of the batch's first 21 bytes (base
// offset, length, leader epoch, magic and batch CRC: it binds the entry to
// its batch and covers the two fields the batch CRC does not) and a CRC of
// the entry. Recovery keeps a batch only if the batch is intact and its entry
// is intact and bound to it, and cuts both files after the last such batch;
// so the data and the journal can never disagree, in whatever order their
// pages reached the disk. The journal header holds prevIndex, the index of
// the last batch before the segment, so LastIndex is known even when the
// active segment is empty and every older segment was deleted by retention.
//
// An append is one pwrite of the batch into the data file plus one 24-byte
// pwrite into the journal. Both happen before Append returns, so everything
// appended survives a process crash (kill -9); Sync, the sync policy, or the
// background flush of sealed segments makes it survive a machine crash.
//
// # Concurrency
//
// One writer (Append, serialized by a mutex) and any number of readers.
// Readers take no lock: the list of segments is copy-on-write behind an
// atomic pointer; each segment publishes its committed extent (size and next
// offset packed in one atomic word) after a batch is fully written, so a
// reader never sees part of a batch; index entries are published after the
// batch they point at. A reader pins the segment it reads with a reference
// count, so retention and Reset can unlink files a reader is still using;
// the last reference closes them. fsync never runs under the writer's lock
// (except for SyncEveryAppend, inside Append by definition), so neither
// readers nor the writer wait for a Sync.
//
// # Rolling and durability
//
// The active segment rolls (a new segment starts) when the next batch would
// take it past SegmentBytes, when its first batch is older than
// SegmentMaxAge, or before relative offsets would overflow 32 bits. A roll
// does no fsync on the append path. A background flusher fsyncs the segment
// just filled (up to SegmentBytes of dirty pages), then writes its index
// files, then fsyncs the directory: because of that order, valid index files
// are the durability marker of a sealed segment. Sync flushes whatever the
// flusher has not reached yet (normally nothing), fsyncs the directory if a
// roll created files since the last time, and fsyncs the active segment's
// data and journal.
//
// Bytes of a segment below its committed size never change while the log is
// open, and a sealed segment's files never change at all (index files are
// replaced by rename). That is what makes Checkpoint (and the partition
// layer's snapshots) cheap: hard links to sealed segments plus a copy of the
// active segment's committed prefix, taken after a Sync.
//
// # Recovery (Open)
//
//  1. Finish an interrupted Reset (reset.pending present), delete *.tmp
//     files and journal or index files whose data file is gone.
//  2. Drop a trailing segment whose creation a crash cut short (empty data
//     file without a valid journal).
//  3. Trust the leading run of sealed segments whose index header matches
//     the data file: they were fsynced before being marked. Nothing of them
//     is read but that header; their index entries load on first use.
//  4. Scan every later segment from its start, in order: each batch must pass
//     record.Verify (length, magic, CRC, length <= MaxBatchBytes), continue
//     the offsets, and have an intact journal entry bound to it, with a
//     non-decreasing index. A sealed segment that passes whole is made
//     durable and marked now. At the first batch that fails, the log ends:
//     that segment becomes the active one, its data and journal are cut
//     there, and any later segments are deleted (they hold unsynced data
//     written after the damaged part). Its indexes are rebuilt in memory.
//  5. Drop segments before a gap in offsets (a crash while retention was
//     deleting old segments), and fsync the directory if anything changed.
//
// After a clean Close only the last segment is scanned; after a crash, the
// segments the flusher had not reached as well (normally none or one). A
// segment whose files are hard links is copied before it is written to or
// cut, so a log opened from linked files never changes the files it shares.
// Recovery never returns a batch that fails its CRC and never drops a batch
// that was synced: synced batches are intact and so are their journal
// entries.
//
// # Retention
//
// ApplyRetention deletes whole sealed segments from the old end while they
// are older than RetentionAge (by their newest batch timestamp) or while the
// log without them would still hold RetentionBytes, and advances
// LogStartOffset. Reads below it get *OffsetOutOfRangeError with the valid
// range. AdvanceStart moves the start inside a segment (start.go).
//
// # Compaction
//
// Compact rewrites sealed segments keeping the latest record of each key
// (compact.go). A cleaned segment is a new pair of files renamed over the
// old names after a commit marker, so its bytes are never changed in place:
// hard links to the old files keep the old content, and the invariants
// above hold for every file (inode) the log ever wrote. Offsets and batch
// spans are kept, so batches stay contiguous.
package log
