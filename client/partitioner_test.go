package client

import (
	"testing"
)

// Vectors from Kafka's own tests (UtilsTest.testMurmur2) and librdkafka's
// (rdmurmur2.c), which check the same Java algorithm.
func TestMurmur2MatchesKafka(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
		{"kafka", -798503068},
		{"1", -1993445489},
		{"12", 126087238},
		{"123", -267702483},
		{"1234", -1614185708},
		{"12345", -1188365604},
		// Derived by hand from the Java algorithm: no 4-byte block, no tail
		// (h = seed ^ 0, then the final mix), and a one-byte tail.
		{"", 275646681},
		{"a", -1563381124},
	} {
		if got := murmur2([]byte(tc.key)); got != tc.want {
			t.Errorf("murmur2(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
}

func TestKeyPartitionerPlacesKeysWhereKafkaDoes(t *testing.T) {
	p := KeyPartitioner()
	for _, tc := range []struct {
		key  string
		n    int
		want int32
	}{
		// toPositive(murmur2(key)) % n, with the vectors above.
		{"21", 3, (-973932308 & 0x7fffffff) % 3},
		{"abc", 3, 479470107 % 3},
		{"kafka", 10, (-798503068 & 0x7fffffff) % 10},
		{"", 7, 275646681 % 7},
		{"a", 3, 1},
		{"foobar", 100, (-790332482 & 0x7fffffff) % 100},
	} {
		got, err := p.Partition(&Record{Topic: "t", Key: []byte(tc.key)}, tc.n)
		if err != nil || got != tc.want {
			t.Errorf("key %q of %d partitions: %d %v, want %d", tc.key, tc.n, got, err, tc.want)
		}
	}
}

func TestKeylessRecordsStickUntilTheBatchIsSealed(t *testing.T) {
	p := KeyPartitioner()
	first, _ := p.Partition(&Record{Topic: "t"}, 100)
	for i := 0; i < 10; i++ {
		if got, _ := p.Partition(&Record{Topic: "t"}, 100); got != first {
			t.Fatalf("keyless record %d went to %d, sticky partition is %d", i, got, first)
		}
	}
	// An empty key is a key, not a missing one.
	if got, _ := p.Partition(&Record{Topic: "t", Key: []byte{}}, 100); got != kafkaPartition(nil, 100) {
		t.Fatalf("empty key went to %d", got)
	}
	moved := false
	for i := 0; i < 20 && !moved; i++ {
		cur, _ := p.Partition(&Record{Topic: "t"}, 100)
		p.(batchObserver).batchSealed("t", cur)
		next, _ := p.Partition(&Record{Topic: "t"}, 100)
		moved = next != cur
	}
	if !moved {
		t.Fatal("keyless records never moved on after their batch was sealed")
	}
}

func TestManualPartitionerChecksTheRange(t *testing.T) {
	p := ManualPartitioner()
	if got, err := p.Partition(&Record{Partition: 2}, 3); err != nil || got != 2 {
		t.Fatalf("partition 2 of 3: %d %v", got, err)
	}
	if _, err := p.Partition(&Record{Partition: 3}, 3); err == nil {
		t.Fatal("partition 3 of 3 accepted")
	}
	if _, err := p.Partition(&Record{Partition: -1}, 3); err == nil {
		t.Fatal("partition -1 accepted")
	}
}

func TestRoundRobinPartitionerCycles(t *testing.T) {
	p := RoundRobinPartitioner()
	for i := 0; i < 7; i++ {
		if got, _ := p.Partition(&Record{Topic: "t", Key: []byte("same")}, 3); got != int32(i%3) {
			t.Fatalf("record %d to %d", i, got)
		}
	}
}
