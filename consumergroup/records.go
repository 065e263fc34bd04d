package consumergroup

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// OffsetsTopic is the internal topic that holds committed offsets.
const OffsetsTopic = "__consumer_offsets"

// PartitionFor returns the offsets partition that owns group, of n.
func PartitionFor(group string, n int32) int32 {
	if n <= 0 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(group))
	return int32(h.Sum32() % uint32(n))
}

// Kinds of entries in the offsets log besides the share commands
// (share_cmd.go). The values are part of the on-disk format: never change
// one.
const (
	kindCommit          = "commit"
	kindDeleteGroup     = "delete-group"
	kindCheckpointBegin = "checkpoint-begin"
	kindCheckpointEnd   = "checkpoint-end"
	kindGroupState      = "group-state"
)

// entry is one record of the offsets log, JSON in the record's value; the
// record key names the kind and group so that `skiff log dump` output is
// readable. Share groups' entries are typed commands (cmd); the fields
// here are those of consumer groups and checkpoints.
type entry struct {
	Kind       string `json:"k"`
	Group      string `json:"g,omitempty"`
	Topic      string `json:"t,omitempty"`
	Partition  int32  `json:"p,omitempty"`
	Offset     int64  `json:"o,omitempty"`
	Metadata   string `json:"m,omitempty"`
	CommitTime int64  `json:"ts,omitempty"` // unix milliseconds
	// Begin is the offset of the checkpoint-begin entry a checkpoint-end
	// closes.
	Begin      int64          `json:"b,omitempty"`
	GroupState *groupSnapshot `json:"gs,omitempty"`

	// cmd is the share command of a share kind (nil otherwise).
	cmd shareCmd
}

// shareEntry wraps a share command as an entry.
func shareEntry(c shareCmd) entry { return entry{Kind: c.kind(), Group: c.groupID(), cmd: c} }

func isShareKind(kind string) bool { return strings.HasPrefix(kind, "share-") }

// maxEntriesBatchBytes bounds one batch of entries; checkpoints of large
// states span several batches.
const maxEntriesBatchBytes = 512 << 10

// encodeEntries packs entries into batches of at most about
// maxEntriesBatchBytes each.
func encodeEntries(entries []entry, now time.Time) ([][]byte, error) {
	var out [][]byte
	b := record.NewBuilder(record.BatchOptions{})
	ts := now.UnixMilli()
	for _, e := range entries {
		var v []byte
		var err error
		if e.cmd != nil {
			v, err = encodeShareCmd(e.cmd)
		} else {
			v, err = json.Marshal(e)
		}
		if err != nil {
			return nil, fmt.Errorf("encode %s entry: %w", e.Kind, err)
		}
		r := record.Record{Timestamp: ts, Key: []byte(e.Kind + "/" + e.Group), Value: v}
		if b.Len() > 0 && b.EstimatedSizeWith(r) > maxEntriesBatchBytes {
			batch, err := b.Build()
			if err != nil {
				return nil, err
			}
			out = append(out, batch)
			b = record.NewBuilder(record.BatchOptions{})
		}
		b.Add(r)
	}
	if b.Len() > 0 {
		batch, err := b.Build()
		if err != nil {
			return nil, err
		}
		out = append(out, batch)
	}
	return out, nil
}

// decodeEntry parses and checks one offsets-log record. An error (it
// matches errMalformedEntry) means the record is not an entry this version
// can apply: not JSON, an unknown kind (written by a newer version, or not
// by a coordinator at all), or fields that checkEntry refuses. The caller
// skips it.
func decodeEntry(r record.Record) (entry, error) {
	var head struct {
		Kind string `json:"k"`
	}
	if err := json.Unmarshal(r.Value, &head); err != nil {
		return entry{}, &malformedError{class: "not-json", reason: err.Error()}
	}
	if isShareKind(head.Kind) {
		c, err := decodeShareCmd(head.Kind, r.Value)
		if err != nil {
			return entry{}, err
		}
		return shareEntry(c), nil
	}
	var e entry
	if err := json.Unmarshal(r.Value, &e); err != nil {
		return entry{}, &malformedError{class: "not-json", reason: err.Error()}
	}
	if err := checkEntry(&e); err != nil {
		return entry{}, err
	}
	return e, nil
}
