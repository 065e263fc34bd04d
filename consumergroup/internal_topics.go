package consumergroup

import "strings"

// IsInternalTopic reports whether a topic belongs to the cluster (its name
// starts with "__", like OffsetsTopic). Groups may read internal topics,
// but nothing a group does on a client's behalf may write to one: a dead
// letter or a redriven record landing in __consumer_offsets would be
// replayed as group state.
func IsInternalTopic(name string) bool { return strings.HasPrefix(name, internalPrefix) }

// refuseInternal returns an ErrInternalTopic error when topic is internal.
func refuseInternal(topic, action string) error {
	if IsInternalTopic(topic) {
		return &internalTopicError{topic: topic, action: action}
	}
	return nil
}
