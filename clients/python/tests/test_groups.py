import threading
import time

import skiff

from conftest import wait_for


class Member:
    """A group member polling in its own thread, committing after every
    poll, recording what it got."""

    def __init__(self, client, group, topic):
        self.consumer = client.group_consumer(group, [topic], auto_offset_reset="earliest")
        self.got = []
        self.error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                recs = self.consumer.poll(0.2)
                self.got.extend((r.partition, r.offset) for r in recs)
                if recs:
                    self.consumer.commit()
        except Exception as e:  # noqa: BLE001 - the test reports it
            self.error = e

    def stop(self):
        self._stop.set()
        self._thread.join(30)
        self.consumer.close()


def produce(client, topic, start, n):
    p = client.producer()
    for i in range(start, start + n):
        p.send(topic, value=b"%d" % i, key=b"k%d" % i)
    p.close(timeout=60)


def test_group_members_split_partitions_and_a_third_takes_some_without_duplicates(client, topic_name):
    client.admin.create_topic(topic_name, partitions=6, replication=3)
    group = topic_name + "-g"
    produce(client, topic_name, 0, 3000)
    a, b = Member(client, group, topic_name), Member(client, group, topic_name)
    members = [a, b]
    try:
        wait_for("two members to split the six partitions", lambda: (
            len(a.consumer.assignment()) == 3 and len(b.consumer.assignment()) == 3 and
            not set(a.consumer.assignment()) & set(b.consumer.assignment())))
        wait_for("the first 3000 records", lambda: len(a.got) + len(b.got) >= 3000)
        c = Member(client, group, topic_name)
        members.append(c)
        wait_for("the third member to take partitions", lambda: (
            len(c.consumer.assignment()) == 2 and len(a.consumer.assignment()) == 2 and
            len(b.consumer.assignment()) == 2))
        owned = a.consumer.assignment() + b.consumer.assignment() + c.consumer.assignment()
        assert len(set(owned)) == 6
        produce(client, topic_name, 3000, 3000)
        wait_for("all 6000 records", lambda: sum(len(m.got) for m in members) >= 6000)
        for m in members:
            assert m.error is None, m.error
        everything = [x for m in members for x in m.got]
        assert len(everything) == 6000 and len(set(everything)) == 6000, "duplicates after commits"
        assert c.got, "the third member read nothing from the partitions it took"
    finally:
        for m in members:
            m.stop()
    committed = client.admin.committed_offsets(group)
    assert sum(committed.values()) == 6000
    info = client.admin.describe_group(group)
    assert info.state == "Empty" and sum(o.lag for o in info.offsets) == 0


def test_a_restarted_member_resumes_at_the_committed_offsets(client, topic_name):
    client.admin.create_topic(topic_name, partitions=2, replication=3)
    group = topic_name + "-g"
    produce(client, topic_name, 0, 100)
    g = client.group_consumer(group, [topic_name], auto_offset_reset="earliest", auto_commit=False)
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 100 and time.monotonic() < deadline:
        got += g.poll(0.5)
    assert len(got) == 100
    g.commit()
    g.close()
    produce(client, topic_name, 100, 10)
    g = client.group_consumer(group, [topic_name], auto_offset_reset="earliest")
    again = []
    deadline = time.monotonic() + 30
    while len(again) < 10 and time.monotonic() < deadline:
        again += g.poll(0.5)
    g.close()
    assert sorted(int(r.value) for r in again) == list(range(100, 110))


def test_group_arguments_are_checked(client):
    for kwargs in ({"auto_offset_reset": "middle"},):
        try:
            client.group_consumer("g", ["t"], **kwargs)
        except skiff.InvalidArgumentError as e:
            assert e.field == "auto_offset_reset"
        else:
            raise AssertionError("accepted %r" % kwargs)
    try:
        client.group_consumer("g", [], pattern="")
    except skiff.InvalidArgumentError as e:
        assert e.field == "topics"
    else:
        raise AssertionError("a group consumer without a subscription was accepted")
