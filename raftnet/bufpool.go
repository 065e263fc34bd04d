package raftnet

import (
	"math/bits"
	"sync"
)

// Frame buffers are pooled by power-of-two size class. Every AppendEntries
// is built in one buffer and read into another; allocating them afresh
// cost the Hub a large allocation, its zeroing and its garbage collection
// per RPC on both sides (with growth copies on top: ~15% of the CPU of a
// 1 KiB-record produce benchmark). sync.Pool drops what stays unused
// across two garbage collections, so an idle node keeps no large buffer.
const (
	minPoolShift = 12 // 4 KiB: smaller frames are cheap to allocate
	maxPoolShift = 24 // 16 MiB: a larger frame's buffer is not kept
	numPoolClass = maxPoolShift - minPoolShift + 1
)

// bufPool is a set of sync.Pools of byte buffers, one per size class. The
// zero value is ready; a nil *bufPool allocates every buffer and keeps
// none.
type bufPool struct {
	classes [numPoolClass]sync.Pool // of *[]byte with cap 1<<(minPoolShift+i)
}

// classUp is the smallest class whose buffers hold n bytes, or -1 when
// none does.
func classUp(n int) int {
	if n <= 1<<minPoolShift {
		return 0
	}
	c := bits.Len(uint(n-1)) - minPoolShift
	if c >= numPoolClass {
		return -1
	}
	return c
}

// classDown is the largest class whose buffers a buffer of capacity n can
// serve, or -1 when none.
func classDown(n int) int {
	if n < 1<<minPoolShift {
		return -1
	}
	c := bits.Len(uint(n)) - 1 - minPoolShift
	if c >= numPoolClass {
		return -1
	}
	return c
}

// get returns a buffer of length n: a pooled one, or a new one of its
// class's capacity (so that it can be pooled once put back).
func (p *bufPool) get(n int) []byte {
	if b, ok := p.tryGet(n); ok {
		return b
	}
	if c := classUp(n); c >= 0 {
		return make([]byte, n, 1<<(minPoolShift+c))
	}
	return make([]byte, n)
}

// tryGet returns a pooled buffer of length n, if the pool has one; it
// never allocates a buffer.
func (p *bufPool) tryGet(n int) ([]byte, bool) {
	if p == nil {
		return nil, false
	}
	c := classUp(n)
	if c < 0 {
		return nil, false
	}
	bp, _ := p.classes[c].Get().(*[]byte)
	if bp == nil {
		return nil, false
	}
	return (*bp)[:n], true
}

// put keeps b for reuse. The caller must not use b afterwards.
func (p *bufPool) put(b []byte) {
	if p == nil {
		return
	}
	c := classDown(cap(b))
	if c < 0 {
		return
	}
	b = b[:0]
	p.classes[c].Put(&b)
}
