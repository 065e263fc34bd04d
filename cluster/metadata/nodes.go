package metadata

import (
	"fmt"
	"slices"
)

// NodeMode is what an operator asked of a node (skiff node decommission,
// skiff node maintenance). The zero value is a node in normal service.
type NodeMode struct {
	// Decommission asks the controller to move every replica off the
	// node and then to remove it from the meta group; no new replica is
	// placed on it. Cleared by recommission.
	Decommission bool `json:"decommission,omitempty"`
	// Maintenance keeps partition and meta leadership off the node (for an
	// upgrade or a reboot) until it is turned off; the node keeps its
	// replicas and follows.
	Maintenance bool `json:"maintenance,omitempty"`
	// DiskDegraded is reported by the node itself (SetNodeDisk): its free
	// space is under its threshold, or a replica failed to write. It
	// takes no new replicas and hands its leaderships away, as in
	// maintenance, until the node reports space again.
	DiskDegraded bool `json:"disk_degraded,omitempty"`
}

// Active reports whether the node is in normal service.
func (m NodeMode) Active() bool { return !m.Decommission && !m.Maintenance && !m.DiskDegraded }

// Mode returns what was asked of a node (the zero NodeMode if nothing).
func (s *State) Mode(id string) NodeMode { return s.NodeModes[id] }

// Decommissioning reports whether the node is being (or has been) taken out.
func (s *State) Decommissioning(id string) bool { return s.NodeModes[id].Decommission }

// InMaintenance reports whether leadership must stay off the node.
func (s *State) InMaintenance(id string) bool { return s.NodeModes[id].Maintenance }

// SetNodeMode changes what is asked of a registered node: the fields
// given (non-nil) are set, the others kept. Fails with ErrUnknownBroker for
// a node that never registered, and with an *InvalidArgumentError when no
// field is given.
type SetNodeMode struct {
	Node         string `json:"node"`
	Decommission *bool  `json:"decommission,omitempty"`
	Maintenance  *bool  `json:"maintenance,omitempty"`
}

// CreatePartitions adds partitions to a topic (skiff topic alter
// --partitions). Partitions are the new ones only, numbered on from the
// topic's current count; a topic never loses partitions, and a retried
// command (whose first partition now exists) fails instead of adding more.
// TopicID is required, as for ReassignPartition. MaxTotalPartitions, when
// non-zero, is the proposer's limit, checked as for CreateTopic.
type CreatePartitions struct {
	Topic              string                `json:"topic"`
	TopicID            uint64                `json:"topic_id"`
	Partitions         []PartitionAssignment `json:"partitions"`
	MaxTotalPartitions int                   `json:"max_total_partitions,omitempty"`
}

// SetNodeDisk records a node's own report of its disk: Degraded when its
// free space fell under its --min-free-bytes threshold or a write failed
// for lack of space. Only the node itself may send it (checked where
// peers' commands arrive). Fails with ErrUnknownBroker for a node that
// never registered.
type SetNodeDisk struct {
	Node     string `json:"node"`
	Degraded bool   `json:"degraded"`
}

func (SetNodeDisk) Type() CommandType { return TypeSetNodeDisk }

func (c SetNodeDisk) apply(s *State, _ uint64, _ *Result) error {
	if err := validateBrokerID("node", c.Node); err != nil {
		return err
	}
	if _, ok := s.Brokers[c.Node]; !ok {
		return fmt.Errorf("node: %w %q", ErrUnknownBroker, c.Node)
	}
	m := s.NodeModes[c.Node]
	m.DiskDegraded = c.Degraded
	s.NodeModes = withMode(s.NodeModes, c.Node, m)
	return nil
}

// DiskDegraded reports whether the node said its disk is (nearly) full.
func (s *State) DiskDegraded(id string) bool { return s.NodeModes[id].DiskDegraded }

// withMode returns a copy of modes with id's mode set (removed when in
// normal service): states share the map, so it is never changed in place.
func withMode(modes map[string]NodeMode, id string, m NodeMode) map[string]NodeMode {
	out := make(map[string]NodeMode, len(modes)+1)
	for k, v := range modes {
		out[k] = v
	}
	if m.Active() {
		delete(out, id)
	} else {
		out[id] = m
	}
	return out
}

func (SetNodeMode) Type() CommandType      { return TypeSetNodeMode }
func (CreatePartitions) Type() CommandType { return TypeCreatePartitions }

func (c SetNodeMode) apply(s *State, _ uint64, _ *Result) error {
	if err := validateBrokerID("node", c.Node); err != nil {
		return err
	}
	if _, ok := s.Brokers[c.Node]; !ok {
		return fmt.Errorf("node: %w %q", ErrUnknownBroker, c.Node)
	}
	if c.Decommission == nil && c.Maintenance == nil {
		return invalid("node", "nothing to change: give decommission or maintenance")
	}
	m := s.NodeModes[c.Node]
	if c.Decommission != nil {
		m.Decommission = *c.Decommission
	}
	if c.Maintenance != nil {
		m.Maintenance = *c.Maintenance
	}
	s.NodeModes = withMode(s.NodeModes, c.Node, m)
	return nil
}

func (c CreatePartitions) apply(s *State, _ uint64, _ *Result) error {
	if c.TopicID == 0 {
		return invalid("topic_id", "required: the id of the topic the partitions were placed for")
	}
	t, err := lookupTopic(s, c.Topic, c.TopicID)
	if err != nil {
		return err
	}
	if IsInternalTopic(t) {
		return &InternalTopicError{Topic: t.Name, Action: "add partitions to it"}
	}
	have := len(t.Partitions)
	if len(c.Partitions) == 0 {
		return invalid("partitions", "no partitions to add")
	}
	if c.Partitions[0].Partition != int32(have) {
		return invalid("partitions", "first new partition is %d but topic %q has %d partitions (0..%d): partitions can only be added after the last one",
			c.Partitions[0].Partition, c.Topic, have, have-1)
	}
	if have+len(c.Partitions) > MaxPartitionsCeiling {
		return invalid("partitions", "%d partitions: must be at most %d", have+len(c.Partitions), MaxPartitionsCeiling)
	}
	if c.MaxTotalPartitions < 0 {
		return invalid("max_total_partitions", "%d: must not be negative (0: not checked)", c.MaxTotalPartitions)
	}
	if c.MaxTotalPartitions > 0 {
		if total := s.PartitionCount(); total+len(c.Partitions) > c.MaxTotalPartitions {
			return &LimitExceededError{Limit: "max-partitions", What: "partitions", Current: total, Adding: len(c.Partitions), Max: c.MaxTotalPartitions}
		}
	}
	nt := t.clone()
	for i, p := range c.Partitions {
		field := fmt.Sprintf("partitions[%d]", i)
		if p.Partition != int32(have+i) {
			return invalid(field+".partition", "partition %d at position %d: new partitions must be numbered %d.. in order", p.Partition, i, have)
		}
		if err := validateReplicas(field+".replicas", p.Replicas, s.Brokers); err != nil {
			return err
		}
		// A new partition bootstraps like a new topic's: see
		// PartitionAssignment.Initial.
		nt.Partitions = append(nt.Partitions, PartitionAssignment{Partition: p.Partition,
			Replicas: slices.Clone(p.Replicas), Initial: slices.Clone(p.Replicas)})
	}
	s.Topics[c.Topic] = nt
	return nil
}

// validateNodeModes checks the operator modes of a state: registered
// brokers only, no entry for a node in normal service.
func (s *State) validateNodeModes() error {
	for id, m := range s.NodeModes {
		if _, ok := s.Brokers[id]; !ok {
			return fmt.Errorf("metadata state: node mode for unregistered broker %q", id)
		}
		if m.Active() {
			return fmt.Errorf("metadata state: empty node mode stored for %q", id)
		}
	}
	return nil
}
