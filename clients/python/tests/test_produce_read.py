import collections
import json

import pytest

import skiff
from skiff._murmur2 import murmur2, partition_for_key


# Kafka's own vectors (UtilsTest.testMurmur2), as the Go client checks them.
@pytest.mark.parametrize("key,want", [
    ("21", -973932308), ("foobar", -790332482), ("a-little-bit-long-string", -985981536),
    ("a-little-bit-longer-string", -1486304829), ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    ("abc", 479470107), ("kafka", -798503068), ("1", -1993445489), ("12", 126087238), ("123", -267702483),
    ("1234", -1614185708), ("12345", -1188365604), ("", 275646681), ("a", -1563381124),
])
def test_murmur2_matches_kafka(key, want):
    assert murmur2(key.encode()) == want


def test_round_trip_of_keyed_records_keeps_per_key_order(client, topic_name):
    client.admin.create_topic(topic_name, partitions=3, replication=3)
    p = client.producer()
    sent = collections.defaultdict(list)
    futures = []
    for i in range(10000):
        key = b"key-%d" % (i % 97)
        value = b"%d" % i
        futures.append((key, value, p.send(topic_name, value=value, key=key, headers={"seq": b"%d" % i})))
    p.flush(timeout=60)
    for key, value, f in futures:
        md = f.result(timeout=0)
        assert md.topic == topic_name
        assert md.partition == partition_for_key(key, 3)
        sent[key].append((md.partition, md.offset, value))
    p.close()

    got = collections.defaultdict(list)
    total = 0
    for part in range(3):
        offsets = []
        for rec in client.read(topic_name, partition=part, start="earliest", timeout=2):
            assert rec.partition == part and rec.topic == topic_name
            assert rec.headers["seq"] == rec.value
            got[rec.key].append((part, rec.offset, rec.value))
            offsets.append(rec.offset)
            total += 1
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert total == 10000
    for key, recs in sent.items():
        assert got[key] == recs, "key %r: read back differs from what was sent, in order" % key


def test_nulls_empties_and_reading_from_an_offset(client, topic_name):
    client.admin.create_topic(topic_name, partitions=1, replication=3)
    p = client.producer(linger_ms=0)
    mds = [p.send(topic_name, value=None, key=b"tomb").result(10),
           p.send(topic_name, value=b"", key=None).result(10),
           p.send(topic_name, value=b"x", key=b"", timestamp_ms=1234, headers=[("h", b"1"), ("h", b"2")]).result(10)]
    p.close()
    assert [m.offset for m in mds] == [0, 1, 2]
    recs = list(client.read(topic_name, start="earliest", timeout=1))
    assert [(r.key, r.value) for r in recs] == [(b"tomb", None), (None, b""), (b"", b"x")]
    assert recs[2].timestamp == 1234 and recs[2].header_list == (("h", b"1"), ("h", b"2"))
    assert [r.offset for r in client.read(topic_name, start=1, timeout=1)] == [1, 2]
    assert list(client.read(topic_name, start="latest", timeout=0.5)) == []
    assert [r.offset for r in client.read(topic_name, start="earliest", max_records=2, timeout=5)] == [0, 1]


def test_keys_land_where_the_go_client_and_the_cli_put_them(cluster, client, topic_name):
    client.admin.create_topic(topic_name, partitions=6, replication=3)
    keys = ["user-%d" % i for i in range(200)]
    cluster.cli("produce", topic_name, "--key-delim", ":", input="".join("%s:from-cli\n" % k for k in keys).encode())
    p = client.producer()
    futures = {k: p.send(topic_name, value=b"from-python", key=k.encode()) for k in keys}
    p.flush(timeout=30)
    python_partition = {k: f.result(0).partition for k, f in futures.items()}
    p.close()

    cli_partition = {}
    for part in range(6):
        for rec in client.read(topic_name, partition=part, start="earliest", timeout=1):
            if rec.value == b"from-cli":
                cli_partition[rec.key.decode()] = part
    assert cli_partition == python_partition
    assert len(set(python_partition.values())) == 6, "200 keys should spread over all 6 partitions"

    described = json.loads(cluster.cli("topic", "describe", topic_name, "-o", "json"))
    assert len(described["partitions"]) == 6


def test_idempotent_producer_has_an_id_and_sequences(client, topic_name):
    client.admin.create_topic(topic_name, partitions=2, replication=3)
    p = client.producer(linger_ms=0)
    for i in range(20):
        p.send(topic_name, value=b"%d" % i, key=b"k")
    p.flush(timeout=30)
    assert p._producer_id >= 0
    k_partition = partition_for_key(b"k", 2)
    assert p._sequences[(topic_name, k_partition)] == 20
    p.close()
    values = [r.value for r in client.read(topic_name, partition=k_partition, start="earliest", timeout=1)]
    assert values == [b"%d" % i for i in range(20)]
    with pytest.raises(skiff.ClosedError):
        p.send(topic_name, value=b"late")


def test_record_futures_call_back_once_written(client, topic_name):
    client.admin.create_topic(topic_name, partitions=1, replication=3)
    p = client.producer(linger_ms=50)
    seen = []
    futs = [p.send(topic_name, value=b"%d" % i) for i in range(3)]
    for f in futs:
        f.add_done_callback(lambda fut: seen.append(fut.result(0).offset))
    assert not any(f.done() for f in futs) or seen  # lingering: usually not sent yet
    p.flush(timeout=30)
    assert sorted(seen) == [0, 1, 2]
    late = []
    futs[0].add_done_callback(lambda fut: late.append(fut.result(0).offset))
    assert late == [0]
    p.close()
