package consumergroup

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Member epochs with special meaning in heartbeats, as in KIP-848.
const (
	EpochJoin        int32 = 0  // a new member
	EpochLeave       int32 = -1 // the member leaves; its partitions go to others
	EpochStaticLeave int32 = -2 // a static member leaves for a moment and keeps its partitions
)

// Group states, as DescribeGroup and ListGroups report them.
const (
	StateEmpty       = "Empty"       // no members (may have committed offsets)
	StateStable      = "Stable"      // every member owns exactly its target
	StateReconciling = "Reconciling" // partitions are being handed over
)

// HeartbeatRequest is a member's periodic call. It joins (MemberEpoch 0),
// keeps the member alive and reports what it owns, or leaves.
type HeartbeatRequest struct {
	Group       string
	MemberID    string // empty when joining
	InstanceID  string // static membership: stable across restarts
	MemberEpoch int32
	// Subscription: topic names, or a pattern (see ParseSubscription).
	Topics  []string
	Pattern string
	// Owned is every partition the member owns now, after applying the
	// assignment numbered AppliedSeq.
	Owned            []TopicPartition
	AppliedSeq       int64
	RebalanceTimeout time.Duration // 0: the coordinator's default
	ClientID         string
	ClientHost       string
	// MayRead, when set, bounds what Pattern resolves to: topics it
	// rejects are not assigned to this member (the caller's read
	// permission; named Topics are checked before the request gets here).
	// nil: all topics. Each heartbeat brings the filter of that moment.
	MayRead func(topic string) bool
}

// HeartbeatResponse tells a member what to own.
type HeartbeatResponse struct {
	MemberID          string
	MemberEpoch       int32
	HeartbeatInterval time.Duration
	// Assignment is the full set of partitions the member should own now.
	// Partitions it owns beyond it must be released (commit, then stop
	// fetching) and reported released in the next heartbeat.
	Assignment []TopicPartition
	// AssignmentSeq numbers Assignment; it grows whenever the assignment
	// changes, and the member echoes the one it applied.
	AssignmentSeq int64
}

// group is the coordinator's soft state for one group.
type group struct {
	id      string
	epoch   int32 // bumped by every change of members, subscriptions or matched topics
	members map[string]*member
	// target is the assignment computed at targetEpoch.
	target      map[string][]TopicPartition
	targetEpoch int32
	// owner maps each partition handed to a member and not yet released.
	owner map[TopicPartition]string
	// topology is the resolved subscriptions' signature: matched topics and
	// their partition counts. A change (a new topic matching a pattern,
	// more partitions) bumps the epoch.
	topology   string
	rebalances int64
	// fenced remembers members removed by this coordinator, so their
	// late heartbeats are refused instead of adopted.
	fenced map[string]time.Time
	// dirty: membership or assignment changed since the last snapshot
	// written; granted: a partition was handed out since, so the snapshot
	// must be in the log before the answer leaves.
	dirty, granted bool
	version        int64 // of the latest snapshot
}

type member struct {
	id, instanceID       string
	clientID, clientHost string
	epoch, prevEpoch     int32
	topics               []string
	pattern              string
	matcher              Matcher
	// mayRead filters the topics matcher resolves to (the member's read
	// permission, from its last heartbeat; nil: all). Not replicated: a
	// member restored by a new coordinator gets it back with its next
	// heartbeat, and its fetches are checked by the API meanwhile.
	mayRead  func(topic string) bool
	assigned map[TopicPartition]bool
	// handed is the assignment seq of the answer that first gave each
	// assigned partition; a report of owned partitions applied before it
	// says nothing about that partition yet.
	handed           map[TopicPartition]int64
	assignSeq        int64
	lastAnswer       []TopicPartition
	lastSeen         time.Time
	rebalanceTimeout time.Duration
	revokingSince    time.Time // zero unless it holds partitions it must release
	departed         bool      // a static member between leave and rejoin
}

func newGroup(id string) *group {
	return &group{id: id, members: map[string]*member{}, target: map[string][]TopicPartition{},
		owner: map[TopicPartition]string{}, fenced: map[string]time.Time{}}
}

func newMemberID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// state summarises the group for listings.
func (g *group) state() string {
	if len(g.members) == 0 {
		return StateEmpty
	}
	for _, m := range g.members {
		if m.epoch != g.epoch || len(m.assigned) != len(g.target[m.id]) {
			return StateReconciling
		}
	}
	return StateStable
}

// active reports whether some member is in the group (a static member
// that left for a moment counts: it is coming back).
func (g *group) active() bool { return len(g.members) > 0 }

// bump records a change that needs a new target assignment.
func (g *group) bump() {
	g.epoch++
	g.rebalances++
	g.dirty = true
}

// heartbeat applies one heartbeat. topics is the cluster's topic list
// (name -> partition count); adopt says whether unknown members may be
// adopted (this coordinator is new).
func (g *group) heartbeat(req HeartbeatRequest, topics map[string]int32, cfg *Config, now time.Time, adopt bool) (HeartbeatResponse, error) {
	var m *member
	switch {
	case req.MemberEpoch == EpochLeave || (req.MemberEpoch == EpochStaticLeave && req.InstanceID == ""):
		if m = g.members[req.MemberID]; m != nil {
			g.remove(m, now)
		}
		return HeartbeatResponse{MemberID: req.MemberID, MemberEpoch: EpochLeave}, nil
	case req.MemberEpoch == EpochStaticLeave:
		m = g.members[req.MemberID]
		if m == nil {
			return HeartbeatResponse{}, ErrUnknownMember
		}
		m.departed, m.lastSeen = true, now
		return HeartbeatResponse{MemberID: m.id, MemberEpoch: EpochStaticLeave}, nil
	case req.MemberEpoch == EpochJoin:
		var err error
		if m, err = g.join(req, cfg, now); err != nil {
			return HeartbeatResponse{}, err
		}
	case req.MemberEpoch > 0:
		m = g.members[req.MemberID]
		if m == nil {
			if _, gone := g.fenced[req.MemberID]; gone || !adopt || req.MemberID == "" {
				return HeartbeatResponse{}, ErrUnknownMember
			}
			if len(g.members) >= cfg.MaxGroupMembers {
				return HeartbeatResponse{}, tooManyMembers(g.id, cfg.MaxGroupMembers)
			}
			m = g.adoptMember(req, now)
		} else if req.MemberEpoch != m.epoch && req.MemberEpoch != m.prevEpoch {
			return HeartbeatResponse{}, fmt.Errorf("%w: member %s sent epoch %d, current %d", ErrFencedMemberEpoch, m.id, req.MemberEpoch, m.epoch)
		}
	default:
		return HeartbeatResponse{}, invalidf("member epoch %d is not valid", req.MemberEpoch)
	}
	m.lastSeen = now
	m.departed = false
	m.clientID, m.clientHost = req.ClientID, req.ClientHost
	m.mayRead = req.MayRead
	if req.RebalanceTimeout > 0 {
		m.rebalanceTimeout = req.RebalanceTimeout
	}
	if err := g.subscribe(m, req); err != nil {
		return HeartbeatResponse{}, err
	}
	g.refreshTopology(topics)
	g.updateTarget(topics)
	g.reconcile(m, req.Owned, req.AppliedSeq, now)
	answer := sortedTPs(m.assigned, g.targetSet(m.id))
	if !slices.Equal(answer, m.lastAnswer) {
		m.assignSeq++
		m.lastAnswer = answer
		for _, tp := range answer {
			if _, ok := m.handed[tp]; !ok {
				m.handed[tp] = m.assignSeq
			}
		}
	}
	return HeartbeatResponse{MemberID: m.id, MemberEpoch: m.epoch, HeartbeatInterval: cfg.HeartbeatInterval,
		Assignment: answer, AssignmentSeq: m.assignSeq}, nil
}

// join adds a member, or hands a static member's place to its new
// incarnation.
func (g *group) join(req HeartbeatRequest, cfg *Config, now time.Time) (*member, error) {
	if req.InstanceID != "" {
		for _, old := range g.members {
			if old.instanceID != req.InstanceID {
				continue
			}
			// The restarted instance takes over the old one's partitions
			// under a new member id; the old id is fenced.
			m := *old
			m.id = newMemberID()
			m.assigned = maps.Clone(old.assigned)
			m.handed = maps.Clone(old.handed)
			delete(g.members, old.id)
			g.fenced[old.id] = now
			g.members[m.id] = &m
			g.target[m.id] = g.target[old.id]
			delete(g.target, old.id)
			for tp, owner := range g.owner {
				if owner == old.id {
					g.owner[tp] = m.id
				}
			}
			return &m, nil
		}
	}
	if len(g.members) >= cfg.MaxGroupMembers {
		return nil, tooManyMembers(g.id, cfg.MaxGroupMembers)
	}
	m := &member{id: newMemberID(), instanceID: req.InstanceID, assigned: map[TopicPartition]bool{},
		handed: map[TopicPartition]int64{}, rebalanceTimeout: cfg.RebalanceTimeout}
	g.members[m.id] = m
	g.bump()
	return m, nil
}

// adoptMember takes in a member of a previous coordinator with the
// partitions it reports owning that nobody else holds.
func (g *group) adoptMember(req HeartbeatRequest, now time.Time) *member {
	m := &member{id: req.MemberID, instanceID: req.InstanceID, epoch: req.MemberEpoch, prevEpoch: req.MemberEpoch,
		assigned: map[TopicPartition]bool{}, handed: map[TopicPartition]int64{}, assignSeq: req.AppliedSeq}
	for _, tp := range req.Owned {
		if _, taken := g.owner[tp]; !taken {
			g.owner[tp] = m.id
			m.assigned[tp] = true
		}
	}
	g.members[m.id] = m
	if req.MemberEpoch >= g.epoch {
		g.epoch = req.MemberEpoch
	}
	g.bump()
	return m
}

// subscribe records the member's subscription, bumping the epoch when it
// changed.
func (g *group) subscribe(m *member, req HeartbeatRequest) error {
	if req.Pattern != "" && len(req.Topics) > 0 {
		return invalidf("subscribe to topic names or to a pattern, not both")
	}
	if req.Pattern == "" && len(req.Topics) == 0 {
		return invalidf("subscription is empty: name topics or a pattern")
	}
	topics := slices.Sorted(slices.Values(req.Topics))
	topics = slices.Compact(topics)
	if req.Pattern == m.pattern && slices.Equal(topics, m.topics) && (m.matcher != nil || req.Pattern == "") {
		return nil
	}
	var matcher Matcher
	if req.Pattern != "" {
		var err error
		if matcher, err = ParseSubscription(req.Pattern); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidArgument, err)
		}
	}
	m.topics, m.pattern, m.matcher = topics, req.Pattern, matcher
	g.bump()
	return nil
}

// subscribed resolves a member's subscription against the cluster's topics.
func (m *member) subscribed(topics map[string]int32) []string {
	if m.matcher != nil {
		names := MatchTopics(m.matcher, slices.Collect(maps.Keys(topics)))
		if m.mayRead != nil {
			names = slices.DeleteFunc(names, func(t string) bool { return !m.mayRead(t) })
		}
		return names
	}
	out := make([]string, 0, len(m.topics))
	for _, t := range m.topics {
		if _, ok := topics[t]; ok {
			out = append(out, t)
		}
	}
	return out
}

// refreshTopology bumps the epoch when what a member's subscription
// resolves to changed: its topics appeared, vanished or grew, or (for a
// pattern) its read permission on them changed.
// The signature is a hash: it is kept in the group's snapshots, and the
// resolved subscriptions of many members can be long.
func (g *group) refreshTopology(topics map[string]int32) {
	h := fnv.New64a()
	for _, id := range slices.Sorted(maps.Keys(g.members)) {
		fmt.Fprintf(h, "%s=", id)
		for _, t := range slices.Sorted(slices.Values(g.members[id].subscribed(topics))) {
			fmt.Fprintf(h, "%s:%d,", t, topics[t])
		}
		h.Write([]byte{';'})
	}
	if sig := strconv.FormatUint(h.Sum64(), 16); sig != g.topology {
		g.topology = sig
		g.bump()
	}
}

// updateTarget recomputes the target assignment if the epoch moved.
func (g *group) updateTarget(topics map[string]int32) {
	if g.targetEpoch == g.epoch && len(g.target) == len(g.members) {
		return
	}
	in := make([]AssignMember, 0, len(g.members))
	for _, id := range slices.Sorted(maps.Keys(g.members)) {
		m := g.members[id]
		// Stickiness is to what members really hold, then to what they
		// were headed for.
		current := sortedTPs(m.assigned, m.assigned)
		current = append(current, g.target[id]...)
		in = append(in, AssignMember{ID: id, Topics: m.subscribed(topics), Current: current})
	}
	g.target = Assign(in, topics)
	g.targetEpoch = g.epoch
}

func (g *group) targetSet(id string) map[TopicPartition]bool {
	out := make(map[TopicPartition]bool, len(g.target[id]))
	for _, tp := range g.target[id] {
		out[tp] = true
	}
	return out
}

// reconcile moves m towards its target: partitions it no longer reports
// owning and must give up are released; target partitions nobody holds are
// handed to it. Its epoch reaches the group's once it holds nothing outside
// its target.
func (g *group) reconcile(m *member, owned []TopicPartition, applied int64, now time.Time) {
	target := g.targetSet(m.id)
	reported := make(map[TopicPartition]bool, len(owned))
	for _, tp := range owned {
		reported[tp] = true
	}
	for tp := range m.assigned {
		// Released: given up by an assignment the member has applied. A
		// partition handed out in an answer the member has not applied
		// yet may be being taken right now.
		if !target[tp] && !reported[tp] && m.handed[tp] <= applied {
			g.dirty = true
			delete(m.assigned, tp)
			delete(m.handed, tp)
			if g.owner[tp] == m.id {
				delete(g.owner, tp)
			}
		}
	}
	revoking := false
	for tp := range m.assigned {
		if !target[tp] {
			revoking = true
			break
		}
	}
	if revoking {
		if m.revokingSince.IsZero() {
			m.revokingSince = now
		}
		return
	}
	m.revokingSince = time.Time{}
	for _, tp := range g.target[m.id] {
		if _, taken := g.owner[tp]; !taken {
			g.owner[tp] = m.id
			m.assigned[tp] = true
			g.dirty, g.granted = true, true
		}
	}
	if m.epoch != g.targetEpoch {
		m.prevEpoch, m.epoch = m.epoch, g.targetEpoch
	}
}

// remove drops a member and frees its partitions.
func (g *group) remove(m *member, now time.Time) {
	for tp := range m.assigned {
		if g.owner[tp] == m.id {
			delete(g.owner, tp)
		}
	}
	delete(g.members, m.id)
	delete(g.target, m.id)
	g.fenced[m.id] = now
	g.bump()
}

// expire removes members whose session timed out or that held on to
// partitions past their rebalance timeout, and forgets fenced ids after a
// while. It reports the ids it removed.
func (g *group) expire(cfg *Config, now time.Time) []string {
	var gone []string
	for _, id := range slices.Sorted(maps.Keys(g.members)) {
		m := g.members[id]
		late := now.Sub(m.lastSeen) > cfg.SessionTimeout
		stuck := !m.revokingSince.IsZero() && now.Sub(m.revokingSince) > m.rebalanceTimeout
		if late || stuck {
			g.remove(m, now)
			gone = append(gone, id)
		}
	}
	for id, at := range g.fenced {
		if now.Sub(at) > 10*cfg.SessionTimeout {
			delete(g.fenced, id)
		}
	}
	return gone
}

// canCommit checks that member id at epoch may commit offsets for tps.
func (g *group) canCommit(id string, epoch int32, tps []TopicPartition) error {
	m := g.members[id]
	if m == nil {
		return ErrUnknownMember
	}
	if epoch != m.epoch && epoch != m.prevEpoch {
		return fmt.Errorf("%w: member %s committed with epoch %d, current %d", ErrFencedMemberEpoch, id, epoch, m.epoch)
	}
	for _, tp := range tps {
		if !m.assigned[tp] {
			return fmt.Errorf("%w: %s/%d is not owned by member %s", ErrNotAssigned, tp.Topic, tp.Partition, id)
		}
	}
	return nil
}

// sortedTPs returns the partitions in a that are also in keep, sorted.
func sortedTPs(a, keep map[TopicPartition]bool) []TopicPartition {
	out := make([]TopicPartition, 0, len(a))
	for tp := range a {
		if keep[tp] {
			out = append(out, tp)
		}
	}
	slices.SortFunc(out, compareTP)
	return out
}
