import time

import skiff

from conftest import wait_for


def test_share_consumers_ack_everything_once_and_poison_reaches_the_dlq(client, topic_name):
    client.admin.create_topic(topic_name, partitions=3, replication=3)
    group = topic_name + "-w"
    p = client.producer()
    for i in range(300):
        p.send(topic_name, value=b"poison" if i == 150 else b"job-%d" % i, key=b"k%d" % (i % 10))
    p.close(timeout=30)

    s1, s2 = client.share_consumer(group, [topic_name]), client.share_consumer(group, [topic_name])
    acked = []

    def work(until, seconds):
        deadline = time.monotonic() + seconds
        while len(acked) < until and time.monotonic() < deadline:
            for s in (s1, s2):
                for rec in s.poll(0.2):
                    if rec.value == b"poison":
                        rec.reject("cannot parse")
                    else:
                        rec.ack()
                        acked.append((rec.partition, rec.offset, rec.key, int(rec.value[4:])))
        for s in (s1, s2):
            assert [r for r in s.acknowledge() if r.error is not None] == []

    try:
        # The poison record is dead-lettered and quarantines its key: the
        # 14 later records of key k0 wait while every other key flows.
        work(285, 60)
        assert len(acked) == 285
        dead = wait_for("the poison record in the dead letters", lambda: client.admin.list_dead_letters(group))
        assert len(dead) == 1 and dead[0].value == b"poison" and dead[0].last_error == "cannot parse"
        assert dead[0].key == b"k0" and dead[0].state == "pending"
        assert not any(k == b"k0" and i > 150 for _, _, k, i in acked)
        # Discarding the dead letter releases the key.
        assert client.admin.resolve_dead_letters(group, topic_name, "discard", dlq_offsets=[dead[0].dlq_offset]) == 1
        work(299, 60)
    finally:
        s1.close()
        s2.close()
    assert len(acked) == 299 and len({(p, o) for p, o, _, _ in acked}) == 299
    per_key = {}
    for _, _, key, i in acked:
        per_key.setdefault(key, []).append(i)
    assert all(v == sorted(v) for v in per_key.values()), "a key's records were acked out of order"

    dlq = dead[0].dlq_topic
    assert dlq == "%s.dlq.%s" % (topic_name, group)
    copies = [r for part in range(client.topic(dlq).partitions)
              for r in client.read(dlq, partition=part, start="earliest", timeout=1)]
    assert [r.value for r in copies] == [b"poison"]


def test_released_records_come_back_and_max_deliveries_dead_letters_them(client, topic_name):
    client.admin.create_topic(topic_name, partitions=1, replication=3)
    group = topic_name + "-w"
    client.admin.alter_share_group(group, {"max.deliveries": "2"})
    p = client.producer()
    p.send(topic_name, value=b"flaky", key=b"k").result(10)
    p.close()
    s = client.share_consumer(group, [topic_name])
    deliveries = []
    try:
        deadline = time.monotonic() + 30
        while len(deliveries) < 2 and time.monotonic() < deadline:
            for rec in s.poll(0.5):
                deliveries.append(rec.delivery_count)
                rec.release(delay=0, error="try %d" % rec.delivery_count)
        s.acknowledge()
        assert deliveries == [1, 2]
        dead = wait_for("the record dead-lettered after 2 deliveries", lambda: client.admin.list_dead_letters(group))
        assert dead[0].value == b"flaky" and dead[0].delivery_count == 2
        assert s.poll(0.5) == []
    finally:
        s.close()


def test_settling_twice_and_acks_of_records_not_held(client, topic_name):
    client.admin.create_topic(topic_name, partitions=1, replication=3)
    group = topic_name + "-w"
    p = client.producer()
    p.send(topic_name, value=b"one").result(10)
    p.close()
    s = client.share_consumer(group, [topic_name])
    try:
        recs = wait_for("a record", lambda: s.poll(0.5))
        rec = recs[0]
        rec.ack()
        try:
            rec.ack()
        except skiff.InvalidArgumentError:
            pass
        else:
            raise AssertionError("a second settlement was accepted")
        assert [r.error for r in s.acknowledge()] == [None]
        # The same record settled again by a forged copy: the coordinator
        # no longer holds it for us.
        forged = skiff.ShareRecord(rec.topic, rec.partition, rec.offset, 0, None, None, (), 1, 0, s)
        forged.ack()
        results = s.acknowledge()
        assert len(results) == 1 and isinstance(results[0].error, (skiff.NotHeldError, skiff.UnknownRecordError))
    finally:
        s.close()
