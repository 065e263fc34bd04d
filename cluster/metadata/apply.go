package metadata

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// The apply methods re-check everything: the FSM never trusts the proposer,
// which may have validated against an older state or be buggy. Field names
// in errors are the command's JSON field names.

func (c RegisterBroker) apply(s *State, _ uint64, _ *Result) error {
	if err := ValidateBroker(c.Broker); err != nil {
		return err
	}
	s.Brokers[c.Broker.ID] = c.Broker
	return nil
}

func (c CreateTopic) apply(s *State, index uint64, res *Result) error {
	if err := validateTopicName("name", c.Name, c.Internal); err != nil {
		return err
	}
	if t, ok := s.Topics[c.Name]; ok {
		return fmt.Errorf("%w: %q (id %d)", ErrTopicExists, c.Name, t.ID)
	}
	if err := validateTopic(c.Name, c.Internal, c.Config, c.Partitions, s.Brokers); err != nil {
		return err
	}
	if c.MaxTopics < 0 {
		return invalid("max_topics", "%d: must not be negative (0: not checked)", c.MaxTopics)
	}
	if c.MaxTotalPartitions < 0 {
		return invalid("max_total_partitions", "%d: must not be negative (0: not checked)", c.MaxTotalPartitions)
	}
	limits := Limits{MaxTopics: c.MaxTopics, MaxTotalPartitions: c.MaxTotalPartitions}
	if err := limits.CheckCapacity(s, len(c.Partitions)); err != nil {
		return err
	}
	t := &Topic{Name: c.Name, ID: index, Config: c.Config, Internal: c.Internal}
	t.Partitions = make([]PartitionAssignment, len(c.Partitions))
	for i, p := range c.Partitions {
		t.Partitions[i] = PartitionAssignment{Partition: p.Partition, Replicas: slices.Clone(p.Replicas), Initial: slices.Clone(p.Replicas)}
	}
	s.Topics[c.Name] = t
	res.TopicID = index
	return nil
}

// lookupTopic finds the topic a command names; id 0 matches any incarnation.
func lookupTopic(s *State, name string, id uint64) (*Topic, error) {
	t, ok := s.Topics[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	if id != 0 && t.ID != id {
		return nil, fmt.Errorf("%w: %q with id %d (it was deleted; the topic of that name now has id %d)", ErrUnknownTopic, name, id, t.ID)
	}
	return t, nil
}

func (c DeleteTopic) apply(s *State, _ uint64, _ *Result) error {
	t, err := lookupTopic(s, c.Name, c.TopicID)
	if err != nil {
		return err
	}
	if !c.legacy && !c.Controller && IsInternalTopic(t) {
		return &InternalTopicError{Topic: t.Name, Action: "delete it"}
	}
	delete(s.Topics, c.Name)
	return nil
}

func (c AlterTopicConfig) apply(s *State, _ uint64, _ *Result) error {
	t, err := lookupTopic(s, c.Name, c.TopicID)
	if err != nil {
		return err
	}
	if !c.legacy && !c.Controller && IsInternalTopic(t) {
		return &InternalTopicError{Topic: t.Name, Action: "alter its configuration"}
	}
	cfg := t.Config
	defaults := DefaultTopicConfig()
	del := slices.Clone(c.Delete)
	sort.Strings(del) // the first bad key reported must not depend on order
	for _, k := range del {
		key, ok := findConfigKey(k)
		if !ok {
			return invalid("config."+k, "unknown configuration key, cannot delete it")
		}
		if _, both := c.Set[k]; both {
			return invalid("config."+k, "both set and deleted")
		}
		key.set(&cfg, key.get(defaults))
	}
	cfg, err = ParseTopicConfig(cfg, c.Set)
	if err != nil {
		return err
	}
	nt := t.clone()
	nt.Config = cfg
	s.Topics[c.Name] = nt
	return nil
}

func (c ReassignPartition) apply(s *State, _ uint64, _ *Result) error {
	if c.TopicID == 0 {
		return invalid("topic_id", "required: the id of the topic the reassignment was computed for")
	}
	t, err := lookupTopic(s, c.Topic, c.TopicID)
	if err != nil {
		return err
	}
	if c.Partition < 0 || int(c.Partition) >= len(t.Partitions) {
		return invalid("partition", "%d: topic %q has partitions 0..%d", c.Partition, c.Topic, len(t.Partitions)-1)
	}
	if err := validateReplicas("replicas", c.Replicas, s.Brokers); err != nil {
		return err
	}
	nt := t.clone()
	pa := &nt.Partitions[c.Partition]
	if !sameSet(pa.Replicas, c.Replicas) {
		pa.Initial = nil // see PartitionAssignment.Initial
	}
	pa.Replicas = slices.Clone(c.Replicas)
	s.Topics[c.Topic] = nt
	return nil
}

func (c AllocateProducerIDs) apply(s *State, _ uint64, res *Result) error {
	if c.Count < 1 || c.Count > MaxProducerIDBlock {
		return invalid("count", "%d: must be in [1, %d]", c.Count, MaxProducerIDBlock)
	}
	if s.NextProducerID > math.MaxInt64-c.Count {
		return fmt.Errorf("%w: next id %d, %d requested", ErrProducerIDsExhausted, s.NextProducerID, c.Count)
	}
	res.FirstProducerID = s.NextProducerID
	s.NextProducerID += c.Count
	return nil
}

func (c SetMetaVoters) apply(s *State, _ uint64, _ *Result) error {
	if err := validateVoters(c.IDs); err != nil {
		return err
	}
	s.MetaVoters = slices.Sorted(slices.Values(c.IDs))
	return nil
}

// Check reports whether cmd would be accepted by the state as it is now,
// without changing it: the controller's early answer before a Raft round
// trip. The FSM checks again when the entry is applied, against the state
// of that moment.
func (s *State) Check(cmd Command) error {
	if cmd == nil {
		return invalid("command", "nil")
	}
	var res Result
	return applyRecovering(cmd, s.cow(), s.Index+1, &res)
}

// applyRecovering runs cmd.apply, turning a panic (a bug, since every input
// is validated) into an error: the state copy is then discarded and the
// node stays up, as it must for any input. A panic caused by the command
// is deterministic, so every replica rejects the entry alike.
func applyRecovering(cmd Command, s *State, index uint64, res *Result) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("metadata: internal error applying %s: %v", cmd.Type(), p)
		}
	}()
	return cmd.apply(s, index, res)
}
