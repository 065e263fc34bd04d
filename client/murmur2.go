package client

// murmur2 is the 32-bit MurmurHash2 variant Kafka's Java client uses to
// partition keys (org.apache.kafka.common.utils.Utils.murmur2): seed
// 0x9747b28c, little-endian 4-byte blocks, Java's signed int arithmetic
// (which wraps exactly like Go's uint32). Written from the algorithm;
// murmur2_test.go checks it against Kafka's own test vectors.
func murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// toPositive is Kafka's Utils.toPositive: the hash with its sign bit
// cleared (not its absolute value, which would overflow for MinInt32).
func toPositive(v int32) int32 { return v & 0x7fffffff }

// kafkaPartition is the partition Kafka's default partitioner gives a
// non-null key among n partitions.
func kafkaPartition(key []byte, n int) int32 {
	return toPositive(murmur2(key)) % int32(n)
}
