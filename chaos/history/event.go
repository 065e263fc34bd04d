package history

import "time"

// Event types. A producer writes SendEvent before each attempt and then
// exactly one of AckEvent, FailEvent or IndeterminateEvent for the same Value.
const (
	// SendEvent: Process tried to write Value (unique per send) with
	// sequence number Seq (per producer, increasing) to Topic.
	SendEvent = "send"
	// AckEvent: the write of Value was acknowledged at Partition/Offset.
	AckEvent = "ack"
	// FailEvent: the write of Value definitely did not happen; reading it
	// later is an aborted read.
	FailEvent = "fail"
	// IndeterminateEvent: the outcome of the write of Value is unknown
	// (timeout, leadership lost); it may or may not be in the log.
	IndeterminateEvent = "indeterminate"
	// ReadEvent: consumer Process polled Value at Partition/Offset.
	ReadEvent = "read"
	// CommitEvent: consumer Process committed Offset (the next record to
	// consume) for Group on Topic/Partition, and the commit returned
	// success. The group's committed offsets must never go backwards.
	CommitEvent = "commit"
	// CommitFailedEvent: consumer Process tried to commit Offset for Group
	// on Topic/Partition and got the error in Detail. The commit may or may
	// not have taken effect, so the checker counts it and holds the group
	// to nothing.
	CommitFailedEvent = "commit-failed"
	// AssignEvent: consumer Process was (re)assigned Topic/Partition, or
	// gave it up (Detail says which, for group consumers one of
	// AssignAssigned, AssignRevoked, AssignLost); its next read there may
	// start anywhere. Partition -1 means every partition of Topic.
	AssignEvent = "assign"
	// FaultEvent: the nemesis started (Value "start" or empty) or stopped
	// (Value "stop") the fault named in Detail. A stop with an empty Detail
	// heals every fault in effect.
	FaultEvent = "fault"
)

// Values of Event.Detail for AssignEvent written by group consumers: the
// group gave the partition to Process, Process released it before it moved
// (after committing), or Process learned it had been fenced and the
// partition already belonged to another member.
const (
	AssignAssigned = "assigned"
	AssignRevoked  = "revoked"
	AssignLost     = "lost"
)

// Values of Event.Value for FaultEvent.
const (
	FaultStart = "start"
	FaultStop  = "stop"
)

// Event is one line of a history.
type Event struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	Process   string    `json:"process,omitempty"`
	Topic     string    `json:"topic,omitempty"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Value     string    `json:"value,omitempty"`
	Seq       int64     `json:"seq,omitempty"`
	Group     string    `json:"group,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// Record is one record of the final read: the value stored at an offset.
type Record struct {
	Offset int64  `json:"offset"`
	Value  string `json:"value"`
}
