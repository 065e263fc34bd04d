package partition

import "fmt"

// Every Raft entry of a partition group is one command in a small envelope:
// one type byte, then the payload. The type byte is the version: a new kind
// of command gets a new byte, and an old binary refuses what it does not know
// (deterministically, on every replica) rather than guessing.
const (
	// opAppend carries one encoded record batch, exactly as the producer
	// built it (base offset and leader epoch are stamped when applied).
	opAppend byte = 1
	// opAppendDropOldest carries a batch of a drop-oldest bounded topic:
	// uvarint max.messages, uvarint max.bytes (0 = unbounded), then the
	// batch. After appending, every replica advances its log start so the
	// partition holds at most that many records and bytes: the bounds
	// travel with the entry, so replicas never disagree on what to drop.
	opAppendDropOldest byte = 2
	// opAppendIfDuplicate carries an idempotent batch that the leader found
	// would overfill a reject-bounded partition: it is appended nowhere, but
	// if it is a retry of a batch already in the log, its original offsets
	// are the answer (only the state machine knows the producer table).
	// Since no replica appends anything for it, replicas cannot diverge
	// over it, whatever their version.
	opAppendIfDuplicate byte = 3
)

func encodeAppend(batch []byte) []byte {
	cmd := make([]byte, 1+len(batch))
	cmd[0] = opAppend
	copy(cmd[1:], batch)
	return cmd
}

// errUnknownCommand is returned (as an apply result) for an entry whose type
// byte this binary does not know.
type errUnknownCommand byte

func (e errUnknownCommand) Error() string {
	return fmt.Sprintf("unknown partition command type %d (written by a newer version?)", byte(e))
}
