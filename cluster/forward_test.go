package cluster

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/skiff-mq/skiff/cluster/metadata"
)

// TestForwardedErrorsKeepTheirKind: an error of the meta leader reaches
// the node that forwarded the write as the same kind, so the client sees
// the same status whichever node it asked.
func TestForwardedErrorsKeepTheirKind(t *testing.T) {
	indeterminate := fmt.Errorf("%w (%v)", ErrMetaIndeterminate, raft.ErrLeadershipLost)
	for _, tc := range []struct {
		err  error
		want error
	}{
		{indeterminate, ErrMetaIndeterminate},
		{fmt.Errorf("create: %w", metadata.ErrTopicExists), metadata.ErrTopicExists},
		{errMetaNotLeader, errMetaNotLeader},
		{errNoMetaLeader, errMetaNotLeader},
	} {
		got := toWireResult(metadata.Result{}, tc.err).err()
		if !errors.Is(got, tc.want) {
			t.Errorf("%v crossed the wire as %v, want %v", tc.err, got, tc.want)
		}
	}
	if got := toWireResult(metadata.Result{}, indeterminate).err(); got.Error() == ErrMetaIndeterminate.Error() {
		t.Errorf("the leader's reason was dropped: %q", got)
	}
}
