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

// Kinds of entries in the offsets log. The values are part of the on-disk
// format: never change one.
const (
	kindCommit          = "commit"
	kindDeleteGroup     = "delete-group"
	kindCheckpointBegin = "checkpoint-begin"
	kindCheckpointEnd   = "checkpoint-end"
	kindGroupState      = "group-state"

	kindShareConfig       = "share-config"
	kindSharePause        = "share-pause"
	kindShareResume       = "share-resume"
	kindShareInit         = "share-init"
	kindShareAcquire      = "share-acquire"
	kindShareAck          = "share-ack"
	kindShareDead         = "share-dead"
	kindShareDeadLettered = "share-dead-lettered"
	kindShareResolve      = "share-resolve"
	kindShareLeave        = "share-leave"
	kindShareState        = "share-state" // a checkpoint's restatement of a whole share group
)

// Share acknowledgement kinds and dead-letter actions in entries.
const (
	ackAccept  = "accept"
	ackRelease = "release"
	ackRenew   = "renew"

	actionRedrive = "redrive"
	actionDiscard = "discard"
	actionReset   = "reset" // share-init: start the share-partition over
)

// entry is one record of the offsets log, JSON in the record's value; the
// record key names the kind and group so that `skiff log dump` output is
// readable.
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
	Begin int64 `json:"b,omitempty"`

	// Share group fields.
	Offsets       []int64           `json:"os,omitempty"`
	Member        string            `json:"mb,omitempty"`
	LockUntil     int64             `json:"lu,omitempty"`
	Avail         []int64           `json:"av,omitempty"`
	At            int64             `json:"at,omitempty"`
	Ack           string            `json:"ack,omitempty"`
	Err           string            `json:"er,omitempty"`
	Key           []byte            `json:"key,omitempty"`
	KeyNull       bool              `json:"kn,omitempty"`
	Quarantine    bool              `json:"q,omitempty"`
	DLQTopic      string            `json:"dt,omitempty"`
	DLQPartition  int32             `json:"dp,omitempty"`
	DLQOffset     int64             `json:"do,omitempty"`
	Action        string            `json:"ac,omitempty"`
	RedriveOffset int64             `json:"ro,omitempty"`
	Config        map[string]string `json:"cf,omitempty"`
	Reason        string            `json:"rs,omitempty"`
	State         *shareGroupState  `json:"sg,omitempty"`
	GroupState    *groupSnapshot    `json:"gs,omitempty"`
}

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
		v, err := json.Marshal(e)
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
	var e entry
	if err := json.Unmarshal(r.Value, &e); err != nil {
		return entry{}, &malformedError{class: "not-json", reason: err.Error()}
	}
	if err := checkEntry(&e); err != nil {
		return entry{}, err
	}
	return e, nil
}
