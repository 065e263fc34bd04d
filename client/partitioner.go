package client

import (
	"fmt"
	"math/rand/v2"
	"sync"
)

// Partitioner chooses the partition of each record a Producer sends. It is
// called from Produce, possibly from many goroutines at once.
type Partitioner interface {
	// Partition returns r's partition in [0, n), n being the topic's
	// partition count (at least 1).
	Partition(r *Record, n int) (int32, error)
}

// batchObserver is implemented by partitioners that want to know when the
// producer closes a partition's batch for sending (the sticky partitioner
// moves on then, as in Kafka's KIP-480).
type batchObserver interface {
	batchSealed(topic string, partition int32)
}

// ManualPartitioner sends every record to the partition in its Partition
// field.
func ManualPartitioner() Partitioner { return manualPartitioner{} }

type manualPartitioner struct{}

func (manualPartitioner) Partition(r *Record, n int) (int32, error) {
	if r.Partition < 0 || int(r.Partition) >= n {
		return 0, fmt.Errorf("%w: partition %d of topic %q (it has %d)", ErrUnknownTopic, r.Partition, r.Topic, n)
	}
	return r.Partition, nil
}

// KeyPartitioner is Kafka's default partitioner: a record with a key goes
// to toPositive(murmur2(key)) % n, so the same key always lands on the
// same partition, and on the one a Kafka client would pick. Records
// without a key (nil, not empty) stick to one partition per topic until its
// batch is full or sent, then move to another chosen at random: load
// spreads as with round-robin but batches stay big (Kafka's KIP-480).
func KeyPartitioner() Partitioner {
	return &keyPartitioner{sticky: make(map[string]int32)}
}

type keyPartitioner struct {
	mu     sync.Mutex       // guards sticky
	sticky map[string]int32 // topic -> partition for keyless records
}

func (p *keyPartitioner) Partition(r *Record, n int) (int32, error) {
	if r.Key != nil {
		return kafkaPartition(r.Key, n), nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	part, ok := p.sticky[r.Topic]
	if !ok || int(part) >= n {
		part = int32(rand.IntN(n))
		p.sticky[r.Topic] = part
	}
	return part, nil
}

// batchSealed moves keyless records of the topic on once the sticky
// partition's batch has been closed.
func (p *keyPartitioner) batchSealed(topic string, partition int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur, ok := p.sticky[topic]; ok && cur == partition {
		delete(p.sticky, topic) // the next keyless record picks afresh
	}
}

// RoundRobinPartitioner spreads records over all partitions in turn,
// ignoring keys.
func RoundRobinPartitioner() Partitioner { return &roundRobinPartitioner{next: make(map[string]int)} }

type roundRobinPartitioner struct {
	mu   sync.Mutex // guards next
	next map[string]int
}

func (p *roundRobinPartitioner) Partition(r *Record, n int) (int32, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := p.next[r.Topic] % n
	p.next[r.Topic] = i + 1
	return int32(i), nil
}
