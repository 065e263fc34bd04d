package metadata

import "fmt"

// Hard bounds, checked by the FSM itself. They are part of the replicated
// state machine (see the package comment), so they are constants, not
// configuration: a replica configured differently would reject entries its
// peers accept.
const (
	// MaxReplicationFactor is the largest replica list of a partition.
	// Beyond seven, every write waits for a quorum of four or more fsyncs
	// for no practical gain in safety.
	MaxReplicationFactor = 7
	// MaxPartitionsCeiling is the most partitions one topic may ever have.
	// Limits.MaxPartitions (the operator's policy) may not exceed it.
	MaxPartitionsCeiling = 100_000
	// MaxTopicNameLength is Kafka's limit (249 bytes: file names of
	// "<topic>-<partition>" directories must fit in 255).
	MaxTopicNameLength = 249
	// MaxBrokerIDLength bounds broker ids (they name directories and Raft
	// servers).
	MaxBrokerIDLength = 128
	// MaxProducerIDBlock is the most producer ids one AllocateProducerIDs
	// hands out.
	MaxProducerIDBlock = 1_000_000
	// MaxMetaVoters bounds SetMetaVoters.
	MaxMetaVoters = 7
	// MaxTopicsCeiling and MaxTotalPartitionsCeiling bound the operator's
	// Limits.MaxTopics and Limits.MaxTotalPartitions.
	MaxTopicsCeiling          = 1_000_000
	MaxTotalPartitionsCeiling = 10_000_000
)

// Limits is the operator's policy for creating topics, enforced at the edge
// (the controller, before proposing) with ValidatePartitions,
// ValidateReplicationFactor and CheckCapacity. The FSM enforces the hard
// bounds above, and the cluster-wide counts (MaxTopics,
// MaxTotalPartitions) only with the values a CreateTopic command carries:
// so changing Limits on some nodes never makes replicas disagree, and a
// create proposed by a node configured with other counts is still judged
// alike everywhere.
type Limits struct {
	// MaxPartitions is the most partitions a topic may be created with.
	// Default 10,000; at most MaxPartitionsCeiling.
	MaxPartitions int
	// MaxReplicationFactor is the largest replication factor a topic may be
	// created with. Default 7; at most MaxReplicationFactor.
	MaxReplicationFactor int
	// MaxTopics is the most topics the cluster may hold, internal ones
	// included (`skiff server --max-topics`). Default 10,000; at most
	// MaxTopicsCeiling.
	MaxTopics int
	// MaxTotalPartitions is the most partitions all topics together may
	// have, internal ones included (`skiff server --max-partitions`).
	// Default 100,000; at most MaxTotalPartitionsCeiling.
	MaxTotalPartitions int
}

// DefaultLimits returns the documented defaults.
func DefaultLimits() Limits {
	return Limits{MaxPartitions: 10_000, MaxReplicationFactor: MaxReplicationFactor,
		MaxTopics: 10_000, MaxTotalPartitions: 100_000}
}

// Validate reports an unusable limit.
func (l Limits) Validate() error {
	if l.MaxPartitions < 1 || l.MaxPartitions > MaxPartitionsCeiling {
		return fmt.Errorf("metadata limits: MaxPartitions %d: must be in [1, %d]", l.MaxPartitions, MaxPartitionsCeiling)
	}
	if l.MaxReplicationFactor < 1 || l.MaxReplicationFactor > MaxReplicationFactor {
		return fmt.Errorf("metadata limits: MaxReplicationFactor %d: must be in [1, %d]", l.MaxReplicationFactor, MaxReplicationFactor)
	}
	if l.MaxTopics < 1 || l.MaxTopics > MaxTopicsCeiling {
		return fmt.Errorf("metadata limits: --max-topics %d: must be in [1, %d]", l.MaxTopics, MaxTopicsCeiling)
	}
	if l.MaxTotalPartitions < 1 || l.MaxTotalPartitions > MaxTotalPartitionsCeiling {
		return fmt.Errorf("metadata limits: --max-partitions %d: must be in [1, %d]", l.MaxTotalPartitions, MaxTotalPartitionsCeiling)
	}
	return nil
}

// ValidatePartitions checks a requested partition count: [1,
// MaxPartitions]. The error is an *InvalidArgumentError on "partitions".
func (l Limits) ValidatePartitions(partitions int) error {
	if partitions < 1 || partitions > l.MaxPartitions {
		return invalid("partitions", "%d: must be in [1, %d]", partitions, l.MaxPartitions)
	}
	return nil
}

// ValidateReplicationFactor checks a requested replication factor: [1,
// MaxReplicationFactor]. Whether there are enough live brokers for it is
// placement's answer (*placement.NotEnoughNodesError). The error is an
// *InvalidArgumentError on "replication_factor".
func (l Limits) ValidateReplicationFactor(replicationFactor int) error {
	if replicationFactor < 1 || replicationFactor > l.MaxReplicationFactor {
		return invalid("replication_factor", "%d: must be in [1, %d]", replicationFactor, l.MaxReplicationFactor)
	}
	return nil
}

// CheckCapacity reports whether s has room for one more topic of
// partitions partitions under MaxTopics and MaxTotalPartitions (a zero
// limit is not checked). The error is a *LimitExceededError.
func (l Limits) CheckCapacity(s *State, partitions int) error {
	if l.MaxTopics > 0 && len(s.Topics) >= l.MaxTopics {
		return &LimitExceededError{Limit: "max-topics", What: "topics", Current: len(s.Topics), Adding: 1, Max: l.MaxTopics}
	}
	if l.MaxTotalPartitions > 0 {
		total := s.PartitionCount()
		if total+partitions > l.MaxTotalPartitions {
			return &LimitExceededError{Limit: "max-partitions", What: "partitions", Current: total, Adding: partitions, Max: l.MaxTotalPartitions}
		}
	}
	return nil
}
