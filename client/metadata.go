package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// errTopicGone marks an unknown topic that the cluster's metadata itself
// confirms, as opposed to one broker not (yet) hosting a replica: the
// first ends a produce at once, the second is retried.
var errTopicGone = fmt.Errorf("%w (not in the cluster metadata)", ErrUnknownTopic)

// metadataCache is the client's view of brokers and partition leaders. It
// is refreshed per topic when older than maxAge or when a request learned
// that it is wrong. Entries are immutable once stored; updates replace
// them.
type metadataCache struct {
	c      *Client
	seeds  []string
	maxAge time.Duration

	mu       sync.Mutex // guards the fields below
	brokers  map[string]*skiffpb.Broker
	topics   map[string]*topicMeta
	inflight map[string]*refreshCall // one refresh per topic at a time
}

type topicMeta struct {
	fetched    time.Time
	stale      bool // a request found it wrong: refresh before the next use
	partitions []partitionMeta
}

type partitionMeta struct {
	leaderID, leaderAddr string
	replicas             []string // broker ids
}

type refreshCall struct {
	done chan struct{}
	err  error
}

func newMetadataCache(c *Client, seeds []string, maxAge time.Duration) *metadataCache {
	return &metadataCache{
		c: c, seeds: seeds, maxAge: maxAge,
		brokers:  make(map[string]*skiffpb.Broker),
		topics:   make(map[string]*topicMeta),
		inflight: make(map[string]*refreshCall),
	}
}

func (m *metadataCache) storeBrokers(resp *skiffpb.MetadataResponse) {
	if len(resp.GetBrokers()) == 0 {
		return
	}
	brokers := make(map[string]*skiffpb.Broker, len(resp.GetBrokers()))
	for _, b := range resp.GetBrokers() {
		brokers[b.GetId()] = b
	}
	m.mu.Lock()
	m.brokers = brokers
	m.mu.Unlock()
}

// brokerAddrs lists the gRPC addresses of brokers not known to be down.
func (m *metadataCache) brokerAddrs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var live, other []string
	for _, b := range m.brokers {
		if b.GetState() == "" || b.GetState() == "alive" {
			live = append(live, b.GetGrpcAddr())
		} else {
			other = append(other, b.GetGrpcAddr())
		}
	}
	rand.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
	return append(live, other...)
}

func (m *metadataCache) brokerAddr(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.brokers[id].GetGrpcAddr()
}

// topic returns the metadata of a topic, refreshing it when missing, old
// or stale; concurrent callers share one refresh. A failed refresh falls
// back to what is cached, if anything. An unknown topic is an error
// matching ErrUnknownTopic (errTopicGone).
func (m *metadataCache) topic(ctx context.Context, name string) (*topicMeta, error) {
	return m.topicSince(ctx, name, time.Time{})
}

// topicSince is topic for a caller that cannot use an answer fetched
// before since: it waits for a refresh rather than go on with an older one.
func (m *metadataCache) topicSince(ctx context.Context, name string, since time.Time) (*topicMeta, error) {
	m.mu.Lock()
	t := m.topics[name]
	if t != nil && !t.stale && time.Since(t.fetched) < m.maxAge && !t.fetched.Before(since) {
		m.mu.Unlock()
		return t, nil
	}
	call := m.inflight[name]
	if call != nil && t != nil && !t.fetched.Before(since) {
		// Someone is refreshing already: go on with what we have rather
		// than stall every partition of the topic behind one slow broker.
		// A request to a moved leader fails and retries after it.
		m.mu.Unlock()
		return t, nil
	}
	if call == nil {
		call = &refreshCall{done: make(chan struct{})}
		m.inflight[name] = call
		m.mu.Unlock()
		call.err = m.refresh(ctx, name)
		m.mu.Lock()
		delete(m.inflight, name)
		close(call.done)
	} else {
		m.mu.Unlock()
		select {
		case <-call.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		m.mu.Lock()
	}
	t = m.topics[name]
	m.mu.Unlock()
	if call.err != nil && (t == nil || errors.Is(call.err, errTopicGone)) {
		return nil, call.err
	}
	return t, nil
}

// refresh fetches one topic's metadata from any broker. An answer that
// names no leader for some partition is checked against the other
// brokers: a node cut off from the cluster still answers, from a view in
// which every leader is unknown, and must not keep the client from the
// leaders the rest of the cluster elected.
func (m *metadataCache) refresh(ctx context.Context, name string) error {
	var resp *skiffpb.MetadataResponse
	asked := map[string]bool{}
	err := m.c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		asked[cc.Target()] = true
		r, err := skiffpb.NewAdminClient(cc).Metadata(ctx, &skiffpb.MetadataRequest{Topics: []string{name}})
		if err != nil {
			return err
		}
		if resp == nil || leaderless(r, name) < leaderless(resp, name) {
			resp = r
		}
		if leaderless(resp, name) > 0 && len(asked) < len(m.c.brokerOrder()) {
			return errLeaderless
		}
		return nil
	})
	if resp != nil {
		err = nil // the best answer found
	}
	if errors.Is(err, ErrUnknownTopic) {
		m.forget(name)
		return fmt.Errorf("topic %q: %w", name, errTopicGone)
	}
	if err != nil {
		return fmt.Errorf("metadata of topic %q: %w", name, err)
	}
	m.storeBrokers(resp)
	for _, tm := range resp.GetTopics() {
		if tm.GetName() == name {
			m.store(tm)
			return nil
		}
	}
	m.forget(name)
	return fmt.Errorf("topic %q: %w", name, errTopicGone)
}

// errLeaderless makes anyBroker ask the next broker for a better answer.
var errLeaderless = fmt.Errorf("answer names no leader for some partitions: %w", ErrUnavailable)

// leaderless counts the partitions of topic without a known leader in r
// (a missing topic counts as all of them).
func leaderless(r *skiffpb.MetadataResponse, topic string) int {
	for _, tm := range r.GetTopics() {
		if tm.GetName() != topic {
			continue
		}
		n := 0
		for _, p := range tm.GetPartitions() {
			if p.GetLeaderId() == "" {
				n++
			}
		}
		return n
	}
	return 1 << 30
}

// store caches a topic's metadata as received from a broker.
func (m *metadataCache) store(tm *skiffpb.TopicMetadata) {
	t := &topicMeta{fetched: time.Now()}
	for _, pm := range tm.GetPartitions() {
		p := int(pm.GetPartition())
		if p < 0 || p > 1<<20 {
			continue
		}
		for len(t.partitions) <= p {
			t.partitions = append(t.partitions, partitionMeta{})
		}
		t.partitions[p] = partitionMeta{leaderID: pm.GetLeaderId(), leaderAddr: pm.GetLeaderAddr(), replicas: pm.GetReplicas()}
	}
	m.mu.Lock()
	m.topics[tm.GetName()] = t
	m.mu.Unlock()
}

func (m *metadataCache) forget(name string) {
	m.mu.Lock()
	delete(m.topics, name)
	m.mu.Unlock()
}

// invalidate makes the next use of the topic refresh it.
func (m *metadataCache) invalidate(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.topics[name]; t != nil && !t.stale {
		cp := *t
		cp.stale = true
		m.topics[name] = &cp
	}
}

// setLeader records a leader that a broker named in a NotLeader answer.
func (m *metadataCache) setLeader(name string, partition int32, id, addr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.topics[name]
	if t == nil || int(partition) >= len(t.partitions) {
		return
	}
	cp := *t
	cp.partitions = append([]partitionMeta(nil), t.partitions...)
	cp.partitions[partition].leaderID, cp.partitions[partition].leaderAddr = id, addr
	m.topics[name] = &cp
}

// partitionCount returns how many partitions the topic has.
func (m *metadataCache) partitionCount(ctx context.Context, topic string) (int, error) {
	t, err := m.topic(ctx, topic)
	if err != nil {
		return 0, err
	}
	if len(t.partitions) == 0 {
		return 0, fmt.Errorf("topic %q has no partitions: %w", topic, ErrUnavailable)
	}
	return len(t.partitions), nil
}

// leader returns the gRPC address of the partition's leader. With
// anyReplica, a live replica serves when no leader is known.
func (m *metadataCache) leader(ctx context.Context, topic string, partition int32, anyReplica bool) (string, error) {
	t, err := m.topic(ctx, topic)
	if err != nil {
		return "", err
	}
	if partition < 0 || int(partition) >= len(t.partitions) {
		return "", fmt.Errorf("topic %q partition %d (of %d): %w", topic, partition, len(t.partitions), errTopicGone)
	}
	p := t.partitions[partition]
	addr := p.leaderAddr
	if addr == "" && p.leaderID != "" {
		addr = m.brokerAddr(p.leaderID)
	}
	if addr != "" {
		// A leader that went silent after this answer was fetched may have
		// been replaced since: ask the cluster again first (suspects.go).
		// If it still names the same leader, that one is used after all.
		if since, ok := m.c.silentSince(addr); ok && t.fetched.Before(since) {
			if fresh, err := m.topicSince(ctx, topic, since); err == nil && int(partition) < len(fresh.partitions) {
				fp := fresh.partitions[partition]
				if a := cmp.Or(fp.leaderAddr, m.brokerAddr(fp.leaderID)); a != "" {
					return a, nil
				}
			}
		}
		return addr, nil
	}
	if anyReplica {
		for _, id := range p.replicas {
			if addr := m.brokerAddr(id); addr != "" {
				return addr, nil
			}
		}
	}
	m.invalidate(topic)
	return "", fmt.Errorf("topic %q partition %d has no leader: %w", topic, partition, ErrUnavailable)
}

// learn updates the cache from a failed request's error: a NotLeader
// naming the leader moves the partition there, anything else that
// suggests the cache is wrong makes the next use refresh.
func (m *metadataCache) learn(topic string, partition int32, err error) {
	if nl, ok := notLeader(err); ok && nl.LeaderAddr != "" {
		m.setLeader(topic, partition, nl.LeaderID, nl.LeaderAddr)
		return
	}
	if retriable(err) || errors.Is(err, ErrUnknownTopic) {
		m.invalidate(topic)
	}
}

// jitter returns a random duration in [0, n).
func jitter(n int64) int64 {
	if n <= 0 {
		return 0
	}
	return rand.Int64N(n)
}
