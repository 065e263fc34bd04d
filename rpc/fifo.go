package rpc

import "sync"

// partKey names a partition.
type partKey struct {
	topic     string
	partition int32
}

// partitionFIFO runs tasks one at a time per partition, in submission
// order, and concurrently across partitions. Order matters for produce:
// an idempotent producer's batches must reach Raft in sequence order, and
// every client expects offsets in the order it sent its batches.
//
// One worker goroutine per partition with queued tasks; it ends when its
// queue is empty. Whoever waits on wg waits for every worker.
type partitionFIFO struct {
	wg     *sync.WaitGroup
	mu     sync.Mutex
	queues map[partKey][]func() // guarded by mu; a key is present while its worker runs
}

func newPartitionFIFO(wg *sync.WaitGroup) *partitionFIFO {
	return &partitionFIFO{wg: wg, queues: make(map[partKey][]func())}
}

// submit queues task behind the earlier tasks of k.
func (f *partitionFIFO) submit(k partKey, task func()) {
	f.mu.Lock()
	q, running := f.queues[k]
	f.queues[k] = append(q, task)
	if !running {
		f.wg.Add(1)
	}
	f.mu.Unlock()
	if !running {
		go f.work(k)
	}
}

func (f *partitionFIFO) work(k partKey) {
	defer f.wg.Done()
	for {
		f.mu.Lock()
		q := f.queues[k]
		if len(q) == 0 {
			delete(f.queues, k)
			f.mu.Unlock()
			return
		}
		task := q[0]
		q[0] = nil
		f.queues[k] = q[1:]
		f.mu.Unlock()
		task()
	}
}
