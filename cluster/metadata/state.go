package metadata

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/skiff-mq/skiff/cluster/placement"
	"github.com/skiff-mq/skiff/internal/acl"
)

// Broker is a node as registered in the metadata. Addresses are advertised
// host:port values ("" if the node does not serve that protocol).
type Broker struct {
	ID         string `json:"id"`
	GRPCAddr   string `json:"grpc_addr"`
	RaftAddr   string `json:"raft_addr"`
	HTTPAddr   string `json:"http_addr"`
	GossipAddr string `json:"gossip_addr"`
	// Rack is the failure domain used by placement; "" means none known.
	Rack string `json:"rack"`
	// Listeners are the node's named client listeners and the address
	// advertised for each (skiff server --listener): a client that
	// connected on listener L is given every broker's L address, so
	// clients inside and outside a container network can use the same
	// nodes. Empty for a node with only its GRPCAddr. Replaced whole by a
	// registration, never modified in place (clones share it).
	Listeners map[string]string `json:"listeners,omitempty"`
}

// DefaultListener names the listener on GRPCAddr, which every node has.
const DefaultListener = "default"

// Equal reports whether two registrations say the same.
func (b Broker) Equal(o Broker) bool {
	return b.ID == o.ID && b.GRPCAddr == o.GRPCAddr && b.RaftAddr == o.RaftAddr && b.HTTPAddr == o.HTTPAddr &&
		b.GossipAddr == o.GossipAddr && b.Rack == o.Rack && maps.Equal(b.Listeners, o.Listeners)
}

// ClientAddr is the address to give a client that connected on listener:
// that listener's advertised address. "" (a connection on no named
// listener) is GRPCAddr, and so is DefaultListener on a node that names
// no listeners. ok is false when the broker has no such listener.
func (b Broker) ClientAddr(listener string) (addr string, ok bool) {
	if listener == "" || (listener == DefaultListener && len(b.Listeners) == 0) {
		return b.GRPCAddr, b.GRPCAddr != ""
	}
	addr, ok = b.Listeners[listener]
	return addr, ok
}

// PartitionAssignment is the replica list of one partition.
type PartitionAssignment struct {
	Partition int32 `json:"partition"`
	// Replicas are distinct broker ids; Replicas[0] is the preferred leader.
	Replicas []string `json:"replicas"`
	// Initial is the replica list the partition was created with, for as
	// long as the set of replicas has not changed since (reordering, as
	// leader balancing does, keeps it); nil afterwards. It is set by the
	// FSM: a proposer's value is ignored.
	//
	// It says who may bootstrap the partition's Raft group, and with what
	// configuration: a replica listed here bootstraps with exactly Initial,
	// so every bootstrap writes the same first log entry (bootstrapping is
	// a no-op once a replica has Raft state). Once the set has changed,
	// nothing bootstraps: a replica without Raft state waits for the leader
	// to add it. This is what prevents a fork: hashicorp/raft grants votes
	// from a node that has no configuration yet, so a node re-added with an
	// empty directory and allowed to bootstrap an old configuration could
	// collect votes from other empty nodes and lead a second group with an
	// empty log.
	Initial []string `json:"initial,omitempty"`
}

// Topic is one topic. Partitions[i].Partition == i always holds.
type Topic struct {
	Name string `json:"name"`
	// ID is the Raft index of the entry that created the topic: unique per
	// creation, so a topic deleted and created again under the same name
	// has a new id, and commands or replicas referring to the old one can
	// tell.
	ID         uint64                `json:"id"`
	Config     TopicConfig           `json:"config"`
	Partitions []PartitionAssignment `json:"partitions"`
	// Internal topics (names starting with "__") are created by the nodes
	// themselves, such as the consumer offsets topic.
	Internal bool `json:"internal,omitempty"`
}

// ReplicationFactor is the replica count of partition 0 (partitions may
// differ while a reassignment changes it).
func (t *Topic) ReplicationFactor() int {
	if len(t.Partitions) == 0 {
		return 0
	}
	return len(t.Partitions[0].Replicas)
}

func (t *Topic) clone() *Topic {
	c := *t
	c.Partitions = make([]PartitionAssignment, len(t.Partitions))
	for i, p := range t.Partitions {
		c.Partitions[i] = PartitionAssignment{Partition: p.Partition, Replicas: slices.Clone(p.Replicas), Initial: slices.Clone(p.Initial)}
	}
	return &c
}

// State is the whole replicated metadata.
//
// A *State obtained from FSM.State is shared by every reader and never
// changes: treat it as read-only (Clone it to get a copy you may modify).
// The FSM builds each new state by copy-on-write: maps are copied, and a
// topic is copied only when a command changes it.
type State struct {
	// Brokers by id.
	Brokers map[string]Broker `json:"brokers"`
	// Topics by name.
	Topics map[string]*Topic `json:"topics"`
	// NextProducerID is the first producer id not yet handed out.
	NextProducerID int64 `json:"next_producer_id"`
	// MetaVoters are the ids of the nodes voting in the meta group, sorted
	// (bookkeeping set by the controller; Raft's configuration is the
	// authority).
	MetaVoters []string `json:"meta_voters,omitempty"`
	// ACLs are the authorization bindings, sorted (acls.go). A command
	// replaces the slice rather than changing it, so states share it.
	ACLs []acl.Binding `json:"acls,omitempty"`
	// Users by name: password hashes (never passwords). Omitted when
	// empty, so a snapshot without users reads the same in older versions.
	Users map[string]UserCredential `json:"users,omitempty"`
	// Quotas by principal (User:<name>, or User:* for the default).
	// Omitted when empty, so a snapshot without quotas reads the same in
	// older versions.
	Quotas map[string]Quota `json:"quotas,omitempty"`
	// NodeModes holds what operators asked of nodes (decommission,
	// maintenance), by broker id; nodes in normal service have no entry.
	// Replaced whole by SetNodeMode, never modified in place (states share
	// it). Omitted when empty, so older snapshots read the same.
	NodeModes map[string]NodeMode `json:"node_modes,omitempty"`
	// Index is the Raft index of the last entry that changed the state.
	// Rejected commands change nothing, not even Index; FSM.AppliedIndex
	// counts every entry.
	Index uint64 `json:"index"`
}

// NewState returns an empty state.
func NewState() *State {
	return &State{Brokers: map[string]Broker{}, Topics: map[string]*Topic{}, Users: map[string]UserCredential{}, Quotas: map[string]Quota{}}
}

// Clone returns a deep copy.
func (s *State) Clone() *State {
	c := s.cow()
	c.NodeModes = maps.Clone(s.NodeModes)
	for name, t := range c.Topics {
		c.Topics[name] = t.clone()
	}
	return c
}

// cow returns a copy that shares the topics with s: a command must replace a
// topic it changes (with clone) rather than modify it.
func (s *State) cow() *State {
	c := *s
	c.Brokers = make(map[string]Broker, len(s.Brokers))
	maps.Copy(c.Brokers, s.Brokers)
	c.Topics = make(map[string]*Topic, len(s.Topics))
	maps.Copy(c.Topics, s.Topics)
	c.MetaVoters = slices.Clone(s.MetaVoters)
	// Credentials are values whose byte slices are never modified in
	// place, so copying the map is enough.
	c.Users = make(map[string]UserCredential, len(s.Users))
	maps.Copy(c.Users, s.Users)
	c.Quotas = make(map[string]Quota, len(s.Quotas))
	maps.Copy(c.Quotas, s.Quotas)
	return &c
}

// Topic returns the topic of that name.
func (s *State) Topic(name string) (*Topic, bool) {
	t, ok := s.Topics[name]
	return t, ok
}

// TopicNames returns the names of all topics, sorted.
func (s *State) TopicNames() []string {
	return slices.Sorted(maps.Keys(s.Topics))
}

// BrokerIDs returns the ids of all registered brokers, sorted.
func (s *State) BrokerIDs() []string {
	return slices.Sorted(maps.Keys(s.Brokers))
}

// Nodes returns the placement nodes (with racks) for the given live broker
// ids, skipping ids that have not registered: a replica may only be
// assigned to a registered broker.
func (s *State) Nodes(live []string) []placement.Node {
	var out []placement.Node
	for _, id := range live {
		if b, ok := s.Brokers[id]; ok {
			out = append(out, placement.Node{ID: id, Rack: b.Rack})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return slices.CompactFunc(out, func(a, b placement.Node) bool { return a.ID == b.ID })
}

// Load counts, per broker id, the replicas and preferred leaderships of
// every partition, for placement.
func (s *State) Load() placement.Load {
	l := placement.Load{Replicas: map[string]int{}, Leaders: map[string]int{}}
	for _, t := range s.Topics {
		for _, p := range t.Partitions {
			l.Add(p.Replicas, 1)
		}
	}
	return l
}

// PartitionRef names one partition of one topic incarnation, with its
// replica list (a copy the caller may keep).
type PartitionRef struct {
	Topic     string
	TopicID   uint64
	Partition int32
	Replicas  []string
}

// Placement returns the partition in placement's terms.
func (r PartitionRef) Placement() placement.Partition {
	return placement.Partition{Topic: r.Topic, Partition: r.Partition, Replicas: slices.Clone(r.Replicas)}
}

// PartitionCount is the number of partitions of all topics together.
func (s *State) PartitionCount() int {
	n := 0
	for _, t := range s.Topics {
		n += len(t.Partitions)
	}
	return n
}

// Partitions returns every partition, sorted by topic name and partition.
func (s *State) Partitions() []PartitionRef {
	return s.partitions(func([]string) bool { return true })
}

// PartitionsOn returns the partitions that have a replica on the broker,
// sorted by topic name and partition: what the broker's reconciler must run.
func (s *State) PartitionsOn(brokerID string) []PartitionRef {
	return s.partitions(func(r []string) bool { return slices.Contains(r, brokerID) })
}

func (s *State) partitions(keep func([]string) bool) []PartitionRef {
	var out []PartitionRef
	for _, name := range s.TopicNames() {
		t := s.Topics[name]
		for _, p := range t.Partitions {
			if keep(p.Replicas) {
				out = append(out, PartitionRef{Topic: t.Name, TopicID: t.ID, Partition: p.Partition, Replicas: slices.Clone(p.Replicas)})
			}
		}
	}
	return out
}

// Validate checks every invariant of the state; Restore refuses a snapshot
// that breaks one, and tests use it after every command.
func (s *State) Validate() error {
	if s.Brokers == nil || s.Topics == nil || s.Users == nil || s.Quotas == nil {
		return fmt.Errorf("metadata state: nil brokers, topics, users or quotas map")
	}
	if err := validateACLs(s.ACLs); err != nil {
		return fmt.Errorf("metadata state: %w", err)
	}
	for _, id := range s.BrokerIDs() {
		b := s.Brokers[id]
		if b.ID != id {
			return fmt.Errorf("metadata state: broker %q stored under key %q", b.ID, id)
		}
		if err := ValidateBroker(b); err != nil {
			return fmt.Errorf("metadata state: broker %q: %w", id, err)
		}
	}
	ids := make(map[uint64]string, len(s.Topics))
	for _, name := range s.TopicNames() {
		t := s.Topics[name]
		if t == nil || t.Name != name {
			return fmt.Errorf("metadata state: topic under key %q is nil or misnamed", name)
		}
		if t.ID == 0 || t.ID > s.Index {
			return fmt.Errorf("metadata state: topic %q: id %d not in [1, index %d]", name, t.ID, s.Index)
		}
		if other, dup := ids[t.ID]; dup {
			return fmt.Errorf("metadata state: topics %q and %q share id %d", other, name, t.ID)
		}
		ids[t.ID] = name
		if err := validateTopic(t.Name, t.Internal, t.Config, t.Partitions, s.Brokers); err != nil {
			return fmt.Errorf("metadata state: topic %q: %w", name, err)
		}
		for _, p := range t.Partitions {
			if p.Initial != nil && !sameSet(p.Initial, p.Replicas) {
				return fmt.Errorf("metadata state: topic %q partition %d: initial replicas %v are not the replica set %v", name, p.Partition, p.Initial, p.Replicas)
			}
		}
	}
	if s.NextProducerID < 0 {
		return fmt.Errorf("metadata state: next producer id %d is negative", s.NextProducerID)
	}
	if err := s.validateUsers(); err != nil {
		return err
	}
	if err := s.validateQuotas(); err != nil {
		return err
	}
	if err := s.validateNodeModes(); err != nil {
		return err
	}
	if s.MetaVoters != nil {
		if err := validateVoters(s.MetaVoters); err != nil {
			return fmt.Errorf("metadata state: %w", err)
		}
		if !slices.IsSorted(s.MetaVoters) {
			return fmt.Errorf("metadata state: meta voters %v not sorted", s.MetaVoters)
		}
	}
	return nil
}

// validateTopic checks everything CreateTopic needs and Restore re-checks:
// the name, the config, and partitions numbered densely 0..n-1 with valid
// replica lists on registered brokers.
func validateTopic(name string, internal bool, cfg TopicConfig, parts []PartitionAssignment, brokers map[string]Broker) error {
	if err := validateTopicName("name", name, internal); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if len(parts) < 1 || len(parts) > MaxPartitionsCeiling {
		return invalid("partitions", "%d partitions: must be in [1, %d]", len(parts), MaxPartitionsCeiling)
	}
	for i, p := range parts {
		field := fmt.Sprintf("partitions[%d]", i)
		if p.Partition != int32(i) {
			return invalid(field+".partition", "partition %d at position %d: partitions must be numbered 0..n-1 in order", p.Partition, i)
		}
		if err := validateReplicas(field+".replicas", p.Replicas, brokers); err != nil {
			return err
		}
	}
	return nil
}

func validateVoters(ids []string) error {
	if len(ids) < 1 || len(ids) > MaxMetaVoters {
		return invalid("ids", "%d meta voters: must be in [1, %d]", len(ids), MaxMetaVoters)
	}
	for i, id := range ids {
		if err := validateBrokerID("ids", id); err != nil {
			return err
		}
		if slices.Contains(ids[:i], id) {
			return invalid("ids", "voter %q listed twice", id)
		}
	}
	return nil
}

// sameSet reports whether a and b hold the same ids (each list being free of
// duplicates).
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, id := range a {
		if !slices.Contains(b, id) {
			return false
		}
	}
	return true
}
