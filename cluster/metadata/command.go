package metadata

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// CommandType is the first byte of every meta log entry. It doubles as the
// version of the payload that follows: a change to a command's fields or
// to the rules it is checked against gets a new type, and a binary that
// does not know a type rejects the entry the same way on every replica
// (*UnknownCommandError) instead of guessing.
type CommandType uint8

// The command types. Values are stored in Raft logs: never reuse one.
const (
	TypeRegisterBroker      CommandType = 1
	TypeCreateTopic         CommandType = 2
	TypeDeleteTopic         CommandType = 3
	TypeAlterTopicConfig    CommandType = 4
	TypeReassignPartition   CommandType = 5
	TypeAllocateProducerIDs CommandType = 6
	TypeSetMetaVoters       CommandType = 7
	// Types 8 and 9 are DeleteTopic and AlterTopicConfig under the rule
	// that internal topics are refused unless Controller is set; 3 and 4
	// keep the rule they were written under (no such check), so replaying
	// an old log gives the state it gave then.
	TypeDeleteTopicV2      CommandType = 8
	TypeAlterTopicConfigV2 CommandType = 9
	TypeCreateACLs         CommandType = 12
	TypeDeleteACLs         CommandType = 13
	TypeUpsertUser         CommandType = 10
	TypeDeleteUser         CommandType = 11
	TypeSetQuota           CommandType = 14
	TypeDeleteQuota        CommandType = 15
	TypeSetNodeMode        CommandType = 16
	TypeCreatePartitions   CommandType = 17
	TypeSetNodeDisk        CommandType = 18
)

func (t CommandType) String() string {
	switch t {
	case TypeRegisterBroker:
		return "RegisterBroker"
	case TypeCreateTopic:
		return "CreateTopic"
	case TypeDeleteTopic, TypeDeleteTopicV2:
		return "DeleteTopic"
	case TypeAlterTopicConfig, TypeAlterTopicConfigV2:
		return "AlterTopicConfig"
	case TypeReassignPartition:
		return "ReassignPartition"
	case TypeAllocateProducerIDs:
		return "AllocateProducerIDs"
	case TypeSetMetaVoters:
		return "SetMetaVoters"
	case TypeCreateACLs:
		return "CreateACLs"
	case TypeDeleteACLs:
		return "DeleteACLs"
	case TypeUpsertUser:
		return "UpsertUser"
	case TypeDeleteUser:
		return "DeleteUser"
	case TypeSetQuota:
		return "SetQuota"
	case TypeDeleteQuota:
		return "DeleteQuota"
	case TypeSetNodeMode:
		return "SetNodeMode"
	case TypeCreatePartitions:
		return "CreatePartitions"
	case TypeSetNodeDisk:
		return "SetNodeDisk"
	}
	return fmt.Sprintf("CommandType(%d)", uint8(t))
}

// Command is one change to the metadata. The set is closed: the commands
// are the types of this package.
type Command interface {
	Type() CommandType
	// apply checks the command against s and, if it is acceptable, changes
	// s (a copy-on-write copy: see State.cow) and fills res. index is the
	// entry's Raft index. On error s may be half changed and is discarded.
	apply(s *State, index uint64, res *Result) error
}

// RegisterBroker adds a broker or updates its addresses and rack (a node
// re-registers on every start, as its addresses may have changed).
type RegisterBroker struct {
	Broker Broker `json:"broker"`
}

// CreateTopic creates a topic with its full configuration and replica
// assignment, which the controller computed (DefaultTopicConfig plus the
// request's overrides; placement.AssignTopic). Fails with ErrTopicExists,
// ErrUnknownBroker or an *InvalidArgumentError. Result.TopicID is the new
// topic's id.
type CreateTopic struct {
	Name       string                `json:"name"`
	Config     TopicConfig           `json:"config"`
	Partitions []PartitionAssignment `json:"partitions"`
	// Internal allows a name starting with "__".
	Internal bool `json:"internal,omitempty"`
	// MaxTopics and MaxTotalPartitions, when non-zero, are the proposer's
	// Limits: the FSM refuses the topic (*LimitExceededError) if the
	// cluster would then hold more topics or partitions. They travel in
	// the command so that every replica judges it by the same numbers
	// whatever its own flags. An entry without them (older logs, the
	// controller's internal topics) is applied as before, which is why
	// they did not need a new command type; a binary that predates them
	// rejects an entry carrying them as malformed, as it would an unknown
	// type.
	MaxTopics          int `json:"max_topics,omitempty"`
	MaxTotalPartitions int `json:"max_total_partitions,omitempty"`
}

// DeleteTopic deletes a topic. With a non-zero TopicID it deletes only that
// incarnation, so a retried delete cannot remove a topic created again
// meanwhile. Fails with ErrUnknownTopic, and with ErrInternalTopic for an
// internal topic unless Controller is set.
type DeleteTopic struct {
	Name    string `json:"name"`
	TopicID uint64 `json:"topic_id,omitempty"`
	// Controller marks a command the cluster itself issues; only such a
	// command may delete an internal topic. Nothing a client sends may
	// set it.
	Controller bool `json:"controller,omitempty"`

	legacy bool // decoded from a TypeDeleteTopic entry: applied without the internal-topic rule
}

// AlterTopicConfig sets keys of a topic's configuration (Set, in
// ParseTopicConfig's form) and resets others to their defaults (Delete),
// all or nothing. A key may not be in both. With a non-zero TopicID only
// that incarnation is altered.
//
// The configuration of an internal topic may only be altered with
// Controller set (ErrInternalTopic otherwise), as for DeleteTopic.
type AlterTopicConfig struct {
	Name       string            `json:"name"`
	TopicID    uint64            `json:"topic_id,omitempty"`
	Set        map[string]string `json:"set,omitempty"`
	Delete     []string          `json:"delete,omitempty"`
	Controller bool              `json:"controller,omitempty"`

	legacy bool // decoded from a TypeAlterTopicConfig entry: see DeleteTopic.legacy
}

// ReassignPartition replaces one partition's replica list (self-healing,
// leader balancing, operator moves). TopicID is required: a reassignment
// computed for a topic that was since deleted and created again fails with
// ErrUnknownTopic instead of moving the new topic's replicas.
type ReassignPartition struct {
	Topic     string   `json:"topic"`
	TopicID   uint64   `json:"topic_id"`
	Partition int32    `json:"partition"`
	Replicas  []string `json:"replicas"`
}

// AllocateProducerIDs hands out Count (1..MaxProducerIDBlock) fresh producer
// ids: Result.FirstProducerID .. FirstProducerID+Count-1. Ids are never
// handed out twice, snapshots included.
type AllocateProducerIDs struct {
	Count int64 `json:"count"`
}

// SetMetaVoters records which nodes vote in the meta group (1..MaxMetaVoters
// distinct ids; stored sorted).
type SetMetaVoters struct {
	IDs []string `json:"ids"`
}

func (RegisterBroker) Type() CommandType { return TypeRegisterBroker }
func (CreateTopic) Type() CommandType    { return TypeCreateTopic }
func (c DeleteTopic) Type() CommandType {
	if c.legacy {
		return TypeDeleteTopic
	}
	return TypeDeleteTopicV2
}

func (c AlterTopicConfig) Type() CommandType {
	if c.legacy {
		return TypeAlterTopicConfig
	}
	return TypeAlterTopicConfigV2
}
func (ReassignPartition) Type() CommandType   { return TypeReassignPartition }
func (AllocateProducerIDs) Type() CommandType { return TypeAllocateProducerIDs }
func (SetMetaVoters) Type() CommandType       { return TypeSetMetaVoters }

// EncodeCommand returns the log entry for cmd: its type byte, then JSON
// (metadata commands are small and rare; JSON keeps entries readable in a
// log dump).
func EncodeCommand(cmd Command) ([]byte, error) {
	if cmd == nil {
		return nil, errors.New("metadata: nil command")
	}
	var buf bytes.Buffer
	buf.WriteByte(byte(cmd.Type()))
	if err := json.NewEncoder(&buf).Encode(cmd); err != nil {
		return nil, fmt.Errorf("metadata: encode %s: %w", cmd.Type(), err)
	}
	return buf.Bytes(), nil
}

// DecodeCommand parses a log entry written by EncodeCommand. Unknown fields
// and trailing data are errors (ErrMalformedCommand): a field this binary
// would silently drop could make it apply the entry differently from a
// newer replica.
func DecodeCommand(data []byte) (Command, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty entry", ErrMalformedCommand)
	}
	t := CommandType(data[0])
	switch t {
	case TypeRegisterBroker:
		return decodeAs[RegisterBroker](t, data[1:])
	case TypeCreateTopic:
		return decodeAs[CreateTopic](t, data[1:])
	case TypeDeleteTopic:
		c, err := decodeStrict[DeleteTopic](t, data[1:])
		if err != nil {
			return nil, err
		}
		if c.Controller {
			return nil, fmt.Errorf("%w: %s: field \"controller\" is not part of type %d", ErrMalformedCommand, t, uint8(t))
		}
		c.legacy = true
		return c, nil
	case TypeDeleteTopicV2:
		return decodeAs[DeleteTopic](t, data[1:])
	case TypeAlterTopicConfig:
		c, err := decodeStrict[AlterTopicConfig](t, data[1:])
		if err != nil {
			return nil, err
		}
		if c.Controller {
			return nil, fmt.Errorf("%w: %s: field \"controller\" is not part of type %d", ErrMalformedCommand, t, uint8(t))
		}
		c.legacy = true
		return c, nil
	case TypeAlterTopicConfigV2:
		return decodeAs[AlterTopicConfig](t, data[1:])
	case TypeReassignPartition:
		return decodeAs[ReassignPartition](t, data[1:])
	case TypeAllocateProducerIDs:
		return decodeAs[AllocateProducerIDs](t, data[1:])
	case TypeSetMetaVoters:
		return decodeAs[SetMetaVoters](t, data[1:])
	case TypeCreateACLs:
		return decodeAs[CreateACLs](t, data[1:])
	case TypeDeleteACLs:
		return decodeAs[DeleteACLs](t, data[1:])
	case TypeUpsertUser:
		return decodeAs[UpsertUser](t, data[1:])
	case TypeDeleteUser:
		return decodeAs[DeleteUser](t, data[1:])
	case TypeSetQuota:
		return decodeAs[SetQuota](t, data[1:])
	case TypeDeleteQuota:
		return decodeAs[DeleteQuota](t, data[1:])
	case TypeSetNodeMode:
		return decodeAs[SetNodeMode](t, data[1:])
	case TypeCreatePartitions:
		return decodeAs[CreatePartitions](t, data[1:])
	case TypeSetNodeDisk:
		return decodeAs[SetNodeDisk](t, data[1:])
	}
	return nil, &UnknownCommandError{Type: t}
}

func decodeAs[C Command](t CommandType, payload []byte) (Command, error) {
	cmd, err := decodeStrict[C](t, payload)
	if err != nil {
		return nil, err
	}
	return cmd, nil
}

func decodeStrict[C Command](t CommandType, payload []byte) (C, error) {
	var cmd C
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cmd); err != nil {
		return cmd, fmt.Errorf("%w: %s: %v", ErrMalformedCommand, t, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return cmd, fmt.Errorf("%w: %s: trailing data", ErrMalformedCommand, t)
	}
	return cmd, nil
}
