"""Topic, cluster and group administration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from . import errors
from .client import TopicInfo, topic_info
from .v1 import skiff_pb2 as pb
from .v1 import skiff_pb2_grpc as pbg


@dataclass(frozen=True)
class BrokerInfo:
    id: str
    addr: str
    rack: str
    state: str


@dataclass(frozen=True)
class ClusterInfo:
    brokers: List[BrokerInfo]
    controller_id: str
    topics: int
    partitions: int
    under_replicated_partitions: int
    offline_partitions: int


@dataclass(frozen=True)
class GroupOffset:
    topic: str
    partition: int
    committed: int  # -1: nothing committed
    high_watermark: int
    lag: int
    owner: str


@dataclass(frozen=True)
class GroupInfo:
    group: str
    state: str
    members: List[str]
    offsets: List[GroupOffset]


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    dlq_topic: str
    dlq_offset: int
    state: str
    delivery_count: int
    last_error: str
    key: Optional[bytes]
    value: Optional[bytes]


class Admin:
    """``client.admin``: calls any broker; each is retried on another broker
    while the cluster is unavailable, until the client's request timeout."""

    def __init__(self, client):
        self._c = client

    def _admin(self, method: str, request):
        c = self._c

        def call(addr):
            return c._invoke(getattr(c._stub(addr, pbg.AdminStub), method), request, c.request_timeout)

        return c._any_broker(call)

    def create_topic(self, name: str, partitions: int = 1, replication: Optional[int] = None,
                     configs: Optional[Dict[str, str]] = None) -> TopicInfo:
        """Creates a topic and returns it; TopicExistsError if it exists.
        ``replication`` None is 3, or the number of live brokers when fewer
        (as ``skiff topic create``)."""
        if replication is None:
            alive = sum(1 for b in self.describe_cluster().brokers if b.state == "alive")
            replication = max(1, min(3, alive))
        for what, v in (("partitions", partitions), ("replication", replication)):
            if not isinstance(v, int) or v < 1 or v > 2**31 - 1:
                raise errors.InvalidArgumentError("%s %r: want an int >= 1" % (what, v), field=what)
        tm = self._admin("CreateTopic", pb.CreateTopicRequest(name=name, partitions=partitions,
                                                              replication_factor=replication, configs=configs or {}))
        info = topic_info(tm)
        with self._c._lock:
            self._c._topics[name] = info
        return info

    def delete_topic(self, name: str) -> None:
        self._admin("DeleteTopic", pb.DeleteTopicRequest(name=name))
        with self._c._lock:
            self._c._topics.pop(name, None)

    def describe_topic(self, name: str) -> TopicInfo:
        return topic_info(self._admin("DescribeTopic", pb.DescribeTopicRequest(name=name)))

    def list_topics(self) -> List[TopicInfo]:
        resp = self._admin("ListTopics", pb.ListTopicsRequest())
        return sorted((topic_info(t) for t in resp.topics), key=lambda t: t.name)

    def alter_topic_config(self, name: str, set: Optional[Dict[str, str]] = None,  # noqa: A002 - the proto's name
                           delete: Sequence[str] = ()) -> TopicInfo:
        return topic_info(self._admin("AlterTopicConfig", pb.AlterTopicConfigRequest(name=name, set=set or {},
                                                                                     delete=list(delete))))

    def describe_cluster(self) -> ClusterInfo:
        r = self._admin("DescribeCluster", pb.DescribeClusterRequest())
        return ClusterInfo([BrokerInfo(b.id, b.grpc_addr, b.rack, b.state) for b in r.brokers], r.controller_id,
                           r.topics, r.partitions, r.under_replicated_partitions, r.offline_partitions)

    # ---- groups ----

    def describe_group(self, group: str) -> GroupInfo:
        c = self._c

        def call(addr):
            return c._invoke(c._stub(addr, pbg.GroupsStub).DescribeGroup, pb.DescribeGroupRequest(group=group),
                             c.request_timeout)

        r = c._at_coordinator(group, call)
        return GroupInfo(r.group, r.state, [m.member_id for m in r.members],
                         [GroupOffset(o.topic, o.partition, o.committed, o.high_watermark, o.lag, o.owner)
                          for o in r.offsets])

    def committed_offsets(self, group: str) -> Dict[tuple, int]:
        """The group's committed offsets, {(topic, partition): offset}."""
        c = self._c

        def call(addr):
            return c._invoke(c._stub(addr, pbg.GroupsStub).FetchOffsets, pb.FetchOffsetsRequest(group=group),
                             c.request_timeout)

        r = c._at_coordinator(group, call)
        return {(o.topic, o.partition): o.offset for o in r.offsets}

    def delete_group(self, group: str) -> None:
        c = self._c

        def call(addr):
            return c._invoke(c._stub(addr, pbg.GroupsStub).DeleteGroup, pb.DeleteGroupRequest(group=group),
                             c.request_timeout)

        c._at_coordinator(group, call)

    # ---- share groups ----

    def alter_share_group(self, group: str, set: Dict[str, str]) -> Dict[str, str]:  # noqa: A002
        """Sets share-group settings (max.deliveries, dlq.topic, ...) and
        returns the group's whole configuration."""
        c = self._c

        def call(addr):
            return c._invoke(c._stub(addr, pbg.ShareGroupsStub).AlterShareGroup,
                             pb.AlterShareGroupRequest(group=group, set=set), c.request_timeout)

        return dict(c._at_coordinator(group, call).config)

    def list_dead_letters(self, group: str, topic: str = "") -> List[DeadLetter]:
        c = self._c

        def call(addr):
            return c._invoke(c._stub(addr, pbg.ShareGroupsStub).ListDeadLetters,
                             pb.ListDeadLettersRequest(group=group, topic=topic), c.request_timeout)

        r = c._at_coordinator(group, call)
        return [DeadLetter(d.topic, d.partition, d.offset, d.dlq_topic, d.dlq_offset, d.state, d.delivery_count,
                           d.last_error, None if d.key_null else bytes(d.key), bytes(d.value))
                for d in r.dead_letters]

    def resolve_dead_letters(self, group: str, topic: str, action: str, dlq_offsets: Sequence[int] = (),
                             all: bool = False) -> int:  # noqa: A002 - the proto's name
        """Redrives ("redrive": back to the source topic) or discards
        ("discard") dead letters of ``topic`` by their ``dlq_offset``, or
        every pending one with ``all``. Either releases the quarantined key.
        Returns how many were resolved."""
        kinds = {"redrive": pb.DEAD_LETTER_REDRIVE, "discard": pb.DEAD_LETTER_DISCARD}
        if action not in kinds:
            raise errors.InvalidArgumentError("action %r: use 'redrive' or 'discard'" % (action,), field="action")
        if bool(dlq_offsets) == bool(all):
            raise errors.InvalidArgumentError("give dlq_offsets or all=True (exactly one)", field="dlq_offsets")
        c = self._c
        req = pb.ResolveDeadLettersRequest(group=group, topic=topic, dlq_offsets=list(dlq_offsets), all=all,
                                           action=kinds[action])

        def call(addr):
            return c._invoke(c._stub(addr, pbg.ShareGroupsStub).ResolveDeadLetters, req, c.request_timeout)

        return c._at_coordinator(group, call).count
