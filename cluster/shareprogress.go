package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/consumergroup"
	"github.com/skiff-mq/skiff/partition"
)

// Share groups' progress for overflow.policy=reject-unacked: the groups'
// coordinators tell every replica of a partition how far each share group
// has got through it, so that whichever replica leads bounds producers by
// the records not yet done. Reports are soft state, refreshed several
// times a second while a group runs and forgotten when it stops running
// here (partition.ShareProgressTTL on the replicas).

const (
	// shareProgressEvery paces the sends: new reports go out at the next
	// beat, all current ones at least every shareProgressRefresh.
	shareProgressEvery   = 250 * time.Millisecond
	shareProgressRefresh = time.Second
	// shareProgressForget drops a report its coordinator stopped
	// renewing (group deleted, coordinator moved to another node).
	shareProgressForget = 3 * time.Second
	// maxShareProgressBody bounds one peer's request body.
	maxShareProgressBody = 8 << 20
)

// shareProgressKey names one group's progress through one partition.
type shareProgressKey struct {
	group     string
	topic     string
	partition int32
}

// shareProgressSender keeps the newest report of every group and
// partition that this node's coordinator runs, and sends them.
type shareProgressSender struct {
	mu      sync.Mutex
	latest  map[shareProgressKey]shareProgressEntry // guarded by mu
	changed bool                                    // guarded by mu
}

type shareProgressEntry struct {
	consumergroup.ShareProgress
	offered time.Time
}

// offer takes the coordinator's newest reports; it never blocks on I/O.
func (s *shareProgressSender) offer(reports []consumergroup.ShareProgress, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latest == nil {
		s.latest = map[shareProgressKey]shareProgressEntry{}
	}
	for _, r := range reports {
		k := shareProgressKey{r.Group, r.Topic, r.Partition}
		old, ok := s.latest[k]
		if !ok || old.Floor != r.Floor || old.Done != r.Done {
			s.changed = true
		}
		s.latest[k] = shareProgressEntry{ShareProgress: r, offered: now}
	}
}

// take returns the reports to send now: all current ones when any changed
// or refresh is due, else none. Reports not offered for
// shareProgressForget are dropped.
func (s *shareProgressSender) take(now time.Time, refresh bool) []consumergroup.ShareProgress {
	s.mu.Lock()
	defer s.mu.Unlock()
	maps.DeleteFunc(s.latest, func(_ shareProgressKey, e shareProgressEntry) bool {
		return now.Sub(e.offered) > shareProgressForget
	})
	if !s.changed && !refresh {
		return nil
	}
	s.changed = false
	out := make([]consumergroup.ShareProgress, 0, len(s.latest))
	for _, e := range s.latest {
		out = append(out, e.ShareProgress)
	}
	return out
}

// shareProgressWire is one report on the peer channel.
type shareProgressWire struct {
	Group     string `json:"group"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Floor     int64  `json:"floor"`
	Done      int64  `json:"done"`
	Epoch     uint64 `json:"epoch"`
	Seq       uint64 `json:"seq"`
}

// runShareProgress sends the coordinator's reports to the replicas of
// partitions whose topic has overflow.policy=reject-unacked.
func (n *Node) runShareProgress() {
	t := time.NewTicker(shareProgressEvery)
	defer t.Stop()
	lastAll := time.Time{}
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		refresh := now.Sub(lastAll) >= shareProgressRefresh
		reports := n.shareProgress.take(now, refresh)
		if len(reports) == 0 {
			continue
		}
		lastAll = now
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n.sendShareProgress(ctx, reports)
		cancel()
	}
}

// sendShareProgress hands reports to this node's replicas and, one request
// per node, to the other replicas.
func (n *Node) sendShareProgress(ctx context.Context, reports []consumergroup.ShareProgress) {
	st := n.meta.fsm.State()
	byNode := map[string][]shareProgressWire{}
	for _, r := range reports {
		t, ok := st.Topics[r.Topic]
		if !ok || t.Config.Overflow() != metadata.OverflowRejectUnacked || int(r.Partition) >= len(t.Partitions) || r.Partition < 0 {
			continue
		}
		w := shareProgressWire{Group: r.Group, Topic: r.Topic, Partition: r.Partition, Floor: r.Floor, Done: r.Done, Epoch: r.Epoch, Seq: r.Seq}
		for _, id := range t.Partitions[r.Partition].Replicas {
			byNode[id] = append(byNode[id], w)
		}
	}
	var wg sync.WaitGroup
	for _, id := range slices.Sorted(maps.Keys(byNode)) {
		batch := byNode[id]
		if id == n.id {
			n.applyShareProgress(batch)
			continue
		}
		addr := n.peerAddrOf(id)
		if addr == "" || !n.isAlive(id) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.postShareProgress(ctx, addr, batch); err != nil {
				n.logger.Debug("share progress", "node", id, "error", err)
			}
		}()
	}
	wg.Wait()
}

func (n *Node) postShareProgress(ctx context.Context, addr string, batch []shareProgressWire) error {
	body, err := json.Marshal(batch)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, peerURL(addr, "/internal/v1/share-progress"), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.peerClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// serveShareProgress takes another node's coordinator's reports for this
// node's replicas.
func (n *Node) serveShareProgress(w http.ResponseWriter, r *http.Request) {
	var batch []shareProgressWire
	dec := json.NewDecoder(io.LimitReader(r.Body, maxShareProgressBody))
	if err := dec.Decode(&batch); err != nil {
		http.Error(w, "bad share progress: "+err.Error(), http.StatusBadRequest)
		return
	}
	n.applyShareProgress(batch)
	w.WriteHeader(http.StatusNoContent)
}

// applyShareProgress gives reports to the local replicas they name;
// reports of partitions this node does not hold, or malformed ones, are
// dropped.
func (n *Node) applyShareProgress(batch []shareProgressWire) {
	for _, w := range batch {
		rep, _, ok := n.replicas.get(w.Topic, w.Partition)
		if !ok {
			continue
		}
		if err := rep.ReportShareProgress(w.Group, partition.ShareProgress{Floor: w.Floor, Done: w.Done, Epoch: w.Epoch, Seq: w.Seq}); err != nil {
			n.logger.Debug("share progress", "error", err)
		}
	}
}
