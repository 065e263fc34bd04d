package partition

import (
	"context"
	"time"

	"github.com/skiff-mq/skiff/internal/raftutil"
)

// crashForTest stops the replica without closing or syncing its log, as a
// killed process would leave it. The Raft stores are closed because BoltDB
// holds a file lock a restarted replica in this same process must take.
func (r *Replica) crashForTest() {
	r.closeOnce.Do(func() {
		close(r.stop)
		r.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		raftutil.WaitFuture(ctx, r.raft.Shutdown())
		r.metrics.unregister()
		r.trans.Close()
		r.cached.close()
		r.logs.Close()
		r.stable.Close()
		if r.ownNode {
			r.node.Close()
		}
		r.closeErr = ErrClosed
	})
}
