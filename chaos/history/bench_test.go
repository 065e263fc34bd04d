package history

import (
	"fmt"
	"testing"
)

// BenchmarkCheck shows the cost per event stays flat as histories grow
// (compare ns/op across sizes: it should scale linearly).
func BenchmarkCheck(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := &sim{logs: make([][]string, 4), now: t0}
			for i := range n {
				part := i % 4
				v := fmt.Sprint("v", i)
				off := int64(len(s.logs[part]))
				s.logs[part] = append(s.logs[part], v)
				s.emit(Event{Type: SendEvent, Process: "p", Value: v, Seq: int64(i)})
				s.emit(Event{Type: AckEvent, Process: "p", Value: v, Partition: int32(part), Offset: off})
				s.emit(Event{Type: ReadEvent, Process: "c", Value: v, Partition: int32(part), Offset: off})
			}
			final := s.final()
			b.ResetTimer()
			for b.Loop() {
				if r := Check(s.events, final); !r.Valid() {
					b.Fatal(r.String())
				}
			}
		})
	}
}
