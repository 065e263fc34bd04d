package consumergroup

import (
	"maps"
)

// States of a record of a share-partition.
const (
	recAvailable    uint8 = iota // released: deliverable from AvailableAt on
	recAcquired                  // locked to Owner until LockUntil
	recAcked                     // done
	recDead                      // to be written to the dead-letter topic
	recDeadLettered              // in the dead-letter topic: done
)

// shareRec is the replicated state of one record that has been delivered at
// least once. Records never delivered have no entry.
type shareRec struct {
	State         uint8  `json:"s"`
	Deliveries    int32  `json:"d,omitempty"`
	Owner         string `json:"m,omitempty"`
	LockUntil     int64  `json:"l,omitempty"` // unix ms
	AvailableAt   int64  `json:"a,omitempty"` // unix ms
	FirstDelivery int64  `json:"f,omitempty"`
	LastDelivery  int64  `json:"t,omitempty"`
	LastError     string `json:"e,omitempty"`
}

func (r *shareRec) done() bool { return r.State == recAcked || r.State == recDeadLettered }

// quarantine holds a key back after one of its records went to the
// dead-letter topic, until the dead letter is discarded or its redriven
// copy (at RedriveOffset) is acknowledged.
type quarantine struct {
	DeadOffset    int64 `json:"dead"`
	RedriveOffset int64 `json:"redrive"` // -1 until redriven
}

// sharePartition is the replicated state of one share-partition.
type sharePartition struct {
	// Start is the share-partition start offset: every record below it is
	// done.
	Start int64               `json:"start"`
	Recs  map[int64]*shareRec `json:"recs,omitempty"`
	// Quarantined keys (key-ordered mode).
	Quarantine   map[string]*quarantine `json:"quarantine,omitempty"`
	Acked        int64                  `json:"acked,omitempty"`
	Redeliveries int64                  `json:"redeliveries,omitempty"`
	DeadLettered int64                  `json:"dead_lettered,omitempty"`
}

func (sp *sharePartition) rec(o int64) *shareRec {
	r := sp.Recs[o]
	if r == nil {
		r = &shareRec{}
		if sp.Recs == nil {
			sp.Recs = map[int64]*shareRec{}
		}
		sp.Recs[o] = r
	}
	return r
}

// advance moves Start past done records and forgets them.
func (sp *sharePartition) advance() {
	for {
		r, ok := sp.Recs[sp.Start]
		if !ok || !r.done() {
			return
		}
		delete(sp.Recs, sp.Start)
		sp.Start++
	}
}

// deadLetter is a record the group gave up on.
type deadLetter struct {
	Topic         string `json:"t"`
	Partition     int32  `json:"p"`
	Offset        int64  `json:"o"`
	DLQTopic      string `json:"dt"`
	DLQPartition  int32  `json:"dp"`
	DLQOffset     int64  `json:"do"`
	State         string `json:"st"` // pending, redriven, discarded
	Deliveries    int32  `json:"d"`
	LastError     string `json:"e,omitempty"`
	FirstDelivery int64  `json:"f,omitempty"`
	LastDelivery  int64  `json:"l,omitempty"`
	Key           []byte `json:"k,omitempty"`
	KeyNull       bool   `json:"kn,omitempty"`
	RedriveOffset int64  `json:"ro,omitempty"`
}

// Dead-letter states.
const (
	dlPending   = "pending"
	dlRedriven  = "redriven"
	dlDiscarded = "discarded"
)

// maxResolvedDeadLetters bounds the redriven and discarded dead letters a
// group remembers (pending ones are all kept).
const maxResolvedDeadLetters = 1000

// shareGroupState is the replicated state of a share group.
type shareGroupState struct {
	Config       map[string]string          `json:"config"`
	Partitions   map[string]*sharePartition `json:"partitions"` // "topic/partition"
	DeadLetters  []*deadLetter              `json:"dead_letters,omitempty"`
	Paused       bool                       `json:"paused,omitempty"`
	PausedReason string                     `json:"paused_reason,omitempty"`
	parsed       *shareConfig               // cache of Config
}

func newShareGroupState() *shareGroupState {
	return &shareGroupState{Config: shareDefaults(), Partitions: map[string]*sharePartition{}}
}

func tpKey(topic string, p int32) string { return topic + "/" + itoa(int64(p)) }

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// config returns the parsed settings. A stored config that no longer
// parses (a dlq.topic naming an internal topic, set before such names were
// refused) loses only its dead-letter topic when that is the fault, and
// falls back to the defaults otherwise: replay must not fail on it.
func (g *shareGroupState) config() shareConfig {
	if g.parsed == nil {
		c, err := parseShareConfig(g.Config)
		if err != nil && IsInternalTopic(g.Config["dlq.topic"]) {
			fixed := maps.Clone(g.Config)
			fixed["dlq.topic"] = shareDefaults()["dlq.topic"]
			c, err = parseShareConfig(fixed)
		}
		if err != nil {
			c, _ = parseShareConfig(shareDefaults())
		}
		g.parsed = &c
	}
	return *g.parsed
}

func (g *shareGroupState) partition(topic string, p int32) *sharePartition {
	return g.Partitions[tpKey(topic, p)]
}

func (g *shareGroupState) deadLetter(topic string, p int32, o int64) *deadLetter {
	for _, d := range g.DeadLetters {
		if d.Topic == topic && d.Partition == p && d.Offset == o {
			return d
		}
	}
	return nil
}

// clone deep-copies the state (for checkpoints). checkShareState keeps
// nil pointers out of replayed states; clone drops any that got in anyway,
// as it runs on them (share-state entries) and must not panic.
func (g *shareGroupState) clone() *shareGroupState {
	out := &shareGroupState{Config: maps.Clone(g.Config), Partitions: map[string]*sharePartition{},
		Paused: g.Paused, PausedReason: g.PausedReason}
	for k, sp := range g.Partitions {
		if sp == nil {
			continue
		}
		c := *sp
		c.Recs = map[int64]*shareRec{}
		for o, r := range sp.Recs {
			if r != nil {
				rc := *r
				c.Recs[o] = &rc
			}
		}
		c.Quarantine = map[string]*quarantine{}
		for k, q := range sp.Quarantine {
			if q != nil {
				qc := *q
				c.Quarantine[k] = &qc
			}
		}
		out.Partitions[k] = &c
	}
	for _, d := range g.DeadLetters {
		if d != nil {
			dc := *d
			out.DeadLetters = append(out.DeadLetters, &dc)
		}
	}
	return out
}

// trimDeadLetters forgets the oldest resolved dead letters beyond the
// bound.
func (g *shareGroupState) trimDeadLetters() {
	resolved := 0
	for _, d := range g.DeadLetters {
		if d.State != dlPending {
			resolved++
		}
	}
	if resolved <= maxResolvedDeadLetters {
		return
	}
	drop := resolved - maxResolvedDeadLetters
	kept := g.DeadLetters[:0]
	for _, d := range g.DeadLetters {
		if d.State != dlPending && drop > 0 {
			drop--
			continue
		}
		kept = append(kept, d)
	}
	g.DeadLetters = kept
}
