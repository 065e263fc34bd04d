"""Kafka's key partitioner: toPositive(murmur2(key)) % partitions.

The 32-bit MurmurHash2 variant of Kafka's Java client (seed 0x9747b28c,
little-endian 4-byte blocks, 32-bit wrapping arithmetic), so that a key
lands on the same partition from Python, from the Go client and from any
Kafka client.
"""

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """The hash as Java's signed int."""
    n = len(data)
    h = (0x9747B28C ^ n) & _MASK
    end = n & ~3
    for i in range(0, end, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = n & 3
    if rest == 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions
