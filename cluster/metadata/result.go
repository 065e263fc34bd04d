package metadata

import "fmt"

// Result is what FSM.Apply returns for a command entry (the Response of
// the raft.ApplyFuture, a Result value); read it with ResultOf. It encodes
// to JSON without Err, for forwarding; carry the error separately.
type Result struct {
	// Err is why the command was rejected; nil if it was applied.
	Err error `json:"-"`
	// Index is the entry's Raft index: wait for State().Index >= Index to
	// see the command's effect on another node.
	Index uint64 `json:"index"`
	// TopicID is the id of the topic a CreateTopic created.
	TopicID uint64 `json:"topic_id,omitempty"`
	// FirstProducerID is the first id of the block an AllocateProducerIDs
	// allocated.
	FirstProducerID int64 `json:"first_producer_id,omitempty"`
	// Count is how many ACL bindings a CreateACLs added or a DeleteACLs
	// removed.
	Count int64 `json:"count,omitempty"`
}

// ResultOf unpacks an ApplyFuture's Response: the Result and its Err.
func ResultOf(response any) (Result, error) {
	switch r := response.(type) {
	case Result:
		return r, r.Err
	case *Result:
		if r != nil {
			return *r, r.Err
		}
	}
	return Result{}, fmt.Errorf("metadata: unexpected apply response %T", response)
}
