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
