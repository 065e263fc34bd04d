import grpc
import pytest

import skiff
from skiff import _wire

from conftest import wait_for


def test_missing_topic(client):
    with pytest.raises(skiff.TopicNotFoundError):
        list(client.read("no-such-topic-anywhere"))
    p = client.producer()
    with pytest.raises(skiff.TopicNotFoundError):
        p.send("no-such-topic-anywhere", value=b"x")
    p.close()
    with pytest.raises(skiff.TopicNotFoundError):
        client.admin.delete_topic("no-such-topic-anywhere")


def test_bad_arguments_name_the_field(client, topic_name):
    with pytest.raises(skiff.InvalidArgumentError) as e:
        client.admin.create_topic("bad name!", partitions=1, replication=1)
    assert e.value.field == "name" and e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(skiff.InvalidArgumentError) as e:
        client.admin.create_topic(topic_name, partitions=0)
    assert e.value.field == "partitions"
    with pytest.raises(skiff.InvalidArgumentError) as e:
        client.admin.create_topic(topic_name, partitions=1, replication=1, configs={"retention.ms": "soon"})
    assert "retention.ms" in e.value.field + str(e.value)
    client.admin.create_topic(topic_name, partitions=2, replication=1)
    with pytest.raises(skiff.TopicExistsError):
        client.admin.create_topic(topic_name, partitions=2, replication=1)
    p = client.producer()
    with pytest.raises(skiff.InvalidArgumentError) as e:
        p.send(topic_name, value=b"x", partition=7)
    assert e.value.field == "partition"
    with pytest.raises(skiff.InvalidArgumentError):
        p.send(topic_name, value=12345)
    p.close()
    with pytest.raises(skiff.InvalidArgumentError):
        list(client.read(topic_name, start="middle"))
    with pytest.raises(skiff.OffsetOutOfRangeError) as e:
        list(client.read(topic_name, start=1000, timeout=1))
    assert e.value.high_watermark == 0


def test_internal_topics_are_out_of_reach(client, topic_name):
    # The offsets topic exists once a group has used it.
    client.admin.create_topic(topic_name, partitions=1, replication=1)
    g = client.group_consumer(topic_name + "-g", [topic_name])
    wait_for("the group to own its partition", lambda: g.poll(0.1) == [] and g.assignment())
    g.close()
    with pytest.raises(skiff.InvalidArgumentError):
        client.admin.alter_share_group(topic_name + "-w", {"dlq.topic": "__consumer_offsets"})
    p = client.producer(linger_ms=0)
    with pytest.raises(skiff.AuthorizationError) as e:
        p.send("__consumer_offsets", value=b"x").result(30)
    assert isinstance(e.value, skiff.InternalTopicError)
    p.close()


def test_client_arguments():
    with pytest.raises(skiff.InvalidArgumentError):
        skiff.Client([])
    with pytest.raises(skiff.InvalidArgumentError):
        skiff.Client(["127.0.0.1:1"], user="alice", password="pw")  # a password needs TLS


def test_status_details_from_untrusted_bytes():
    # A Status with ErrorInfo{reason: "NOT_HELD"} and BadRequest{field "f"}.
    def ld(num, payload):
        return bytes([num << 3 | 2, len(payload)]) + payload

    error_info = ld(1, b"NOT_HELD") + ld(2, b"skiff")
    bad_request = ld(1, ld(1, b"f") + ld(2, b"why"))
    status = (bytes([0x08, 9]) + ld(2, b"msg") +
              ld(3, ld(1, b"type.googleapis.com/google.rpc.ErrorInfo") + ld(2, error_info)) +
              ld(3, ld(1, b"type.googleapis.com/google.rpc.BadRequest") + ld(2, bad_request)))
    d = _wire.status_details(status)
    assert (d.reason, d.field, d.description) == ("NOT_HELD", "f", "why")
    for junk in (b"\xff", status[:-3], b"\x1a\xff\xff\xff\xff\x0f", b"\x0f" * 10, bytes(range(256))):
        assert _wire.status_details(junk) == _wire.Details()


def test_full_bounded_topic(client, topic_name):
    client.admin.create_topic(topic_name, partitions=1, replication=1,
                              configs={"max.messages": "2", "overflow.policy": "reject"})
    p = client.producer(linger_ms=0)
    for i in range(2):
        p.send(topic_name, value=b"v%d" % i).result(30)
    with pytest.raises(skiff.TopicFullError) as e:
        p.send(topic_name, value=b"one too many").result(30)
    assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and e.value.reason == "TOPIC_FULL"
    assert "is full (max.messages=2)" in str(e.value)
    p.close()
    assert [r.value for r in client.read(topic_name, partition=0, start="earliest", max_records=10, timeout=2)] == [b"v0", b"v1"]
