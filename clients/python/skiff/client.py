"""The client: connections, cached metadata, retries, and plain reads."""

from __future__ import annotations

import base64
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union

import grpc

from . import errors
from .v1 import skiff_pb2 as pb
from .v1 import skiff_pb2_grpc as pbg

T = TypeVar("T")

# Big enough for any fetch answer the broker sends (its own bound is the
# request's max_bytes, at most 64 MiB).
_MAX_MESSAGE = 128 << 20


@dataclass(frozen=True)
class TLS:
    """TLS settings: the CA that signed the brokers' certificates, and a
    client certificate and key for mutual TLS (both or neither). Files are
    PEM. ``server_name`` overrides the name checked in the broker's
    certificate."""

    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    server_name: Optional[str] = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path):
            if path is None:
                return None
            with open(path, "rb") as f:
                return f.read()

        if (self.cert_file is None) != (self.key_file is None):
            raise errors.InvalidArgumentError("tls: give both cert_file and key_file, or neither")
        return grpc.ssl_channel_credentials(read(self.ca_file), read(self.key_file), read(self.cert_file))


@dataclass(frozen=True)
class Record:
    """A record read from a partition. ``key`` and ``value`` are None when
    null (not empty); ``headers`` maps names to bytes (a repeated name keeps
    its last value; ``header_list`` has them all, in order)."""

    topic: str
    partition: int
    offset: int
    timestamp: int  # milliseconds since the Unix epoch
    key: Optional[bytes]
    value: Optional[bytes]
    header_list: Tuple[Tuple[str, bytes], ...] = ()

    @property
    def headers(self) -> Dict[str, bytes]:
        return dict(self.header_list)


@dataclass(frozen=True)
class PartitionInfo:
    partition: int
    leader_id: str
    leader_addr: str
    replicas: Tuple[str, ...]
    in_sync: Tuple[str, ...]
    high_watermark: int
    log_start_offset: int


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    replication: int
    configs: Dict[str, str] = field(default_factory=dict)
    internal: bool = False
    partition_info: Tuple[PartitionInfo, ...] = ()


def topic_info(t: pb.TopicMetadata) -> TopicInfo:
    parts = tuple(sorted((PartitionInfo(p.partition, p.leader_id, p.leader_addr, tuple(p.replicas), tuple(p.in_sync),
                                        p.high_watermark, p.log_start_offset) for p in t.partitions),
                         key=lambda p: p.partition))
    replication = max((len(p.replicas) for p in parts), default=0)
    return TopicInfo(t.name, len(parts), replication, dict(t.configs), t.internal, parts)


def convert_record(topic: str, r) -> Record:
    return Record(topic, r.partition, r.offset, r.timestamp_ms,
                  None if r.key_null else bytes(r.key),
                  None if r.value_null else bytes(r.value),
                  tuple((h.key, bytes(h.value)) for h in r.headers))


class _Backoff:
    """Exponential backoff with jitter, 50 ms doubling to 1 s, as the Go
    client's."""

    def __init__(self):
        self._next = 0.05

    def delay(self) -> float:
        d = self._next
        self._next = min(2 * self._next, 1.0)
        return d / 2 + random.random() * d / 2

    def wait(self, deadline: float, err: Exception) -> None:
        """Sleeps the next delay, cut at deadline; raises err when the
        deadline has passed already."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise err
        time.sleep(min(self.delay(), left))


class Client:
    """A connection to a Skiff cluster.

    ``brokers`` are "host:port" gRPC addresses of any of its nodes; the
    others are learnt from metadata. ``tls`` is True (system roots), a
    :class:`TLS`, or None for plaintext. ``user`` and ``password`` are sent
    with every call, and only over TLS. ``request_timeout`` bounds each call,
    retries included. The client is safe to share between threads; close it
    (or use it as a context manager) to release its connections.
    """

    def __init__(self, brokers: Sequence[str], *, tls: Union[None, bool, TLS] = None,
                 user: Optional[str] = None, password: Optional[str] = None,
                 client_id: str = "skiff-python", request_timeout: float = 30.0):
        if isinstance(brokers, str):
            brokers = [b for b in brokers.split(",") if b]
        if not brokers:
            raise errors.InvalidArgumentError("no brokers: give at least one host:port")
        if (user is None) != (password is None):
            raise errors.InvalidArgumentError("give both user and password, or neither")
        if user is not None and not tls:
            raise errors.InvalidArgumentError("passwords travel only over TLS: pass tls=True or tls=skiff.TLS(ca_file=...)")
        if request_timeout <= 0:
            raise errors.InvalidArgumentError("request_timeout must be positive")
        self._seeds = list(brokers)
        self._client_id = client_id
        self.request_timeout = request_timeout
        if tls is True:
            self._creds = grpc.ssl_channel_credentials()
            self._server_name = None
        elif isinstance(tls, TLS):
            self._creds = tls.credentials()
            self._server_name = tls.server_name
        else:
            self._creds = None
            self._server_name = None
        self._metadata: Tuple[Tuple[str, str], ...] = ()
        if user is not None:
            token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
            self._metadata = (("authorization", "Basic " + token),)
        self._lock = threading.Lock()
        self._channels: Dict[str, grpc.Channel] = {}
        self._brokers: Dict[str, str] = {}  # node id -> address
        self._topics: Dict[str, TopicInfo] = {}
        self._coordinators: Dict[str, str] = {}
        self._closed = False
        from .admin import Admin  # noqa: WPS433 - the modules refer to each other

        self.admin = Admin(self)

    # ---- lifecycle ----

    def close(self) -> None:
        with self._lock:
            self._closed = True
            channels = list(self._channels.values())
            self._channels.clear()
        for ch in channels:
            ch.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- factories ----

    def producer(self, **kwargs):
        """A :class:`skiff.Producer`; see its arguments."""
        from .producer import Producer

        return Producer(self, **kwargs)

    def group_consumer(self, group: str, topics: Sequence[str], **kwargs):
        """A :class:`skiff.GroupConsumer` of ``group`` subscribed to ``topics``."""
        from .group import GroupConsumer

        return GroupConsumer(self, group, topics, **kwargs)

    def share_consumer(self, group: str, topics: Sequence[str], **kwargs):
        """A :class:`skiff.ShareConsumer` of share group ``group``."""
        from .share import ShareConsumer

        return ShareConsumer(self, group, topics, **kwargs)

    # ---- connections ----

    def _channel(self, addr: str) -> grpc.Channel:
        with self._lock:
            if self._closed:
                raise errors.ClosedError("client closed")
            ch = self._channels.get(addr)
            if ch is None:
                options = [("grpc.max_receive_message_length", _MAX_MESSAGE),
                           ("grpc.max_send_message_length", _MAX_MESSAGE),
                           ("grpc.primary_user_agent", self._client_id)]
                if self._server_name:
                    options.append(("grpc.ssl_target_name_override", self._server_name))
                if self._creds is not None:
                    ch = grpc.secure_channel(addr, self._creds, options=options)
                else:
                    ch = grpc.insecure_channel(addr, options=options)
                self._channels[addr] = ch
            return ch

    def _stub(self, addr: str, stub_cls):
        return stub_cls(self._channel(addr))

    def _broker_addrs(self) -> List[str]:
        with self._lock:
            known = list(self._brokers.values())
        seen = []
        for a in known + self._seeds:
            if a and a not in seen:
                seen.append(a)
        return seen

    def _invoke(self, method, request, timeout: float):
        try:
            return method(request, timeout=max(timeout, 0.001), metadata=self._metadata)
        except grpc.RpcError as e:  # noqa: PERF203
            raise errors.from_rpc_error(e) from None

    def _deadline(self, timeout: Optional[float]) -> float:
        return time.monotonic() + (self.request_timeout if timeout is None else timeout)

    def _any_broker(self, call: Callable[[str], T], timeout: Optional[float] = None) -> T:
        """Runs call(addr) against the brokers in turn until one answers;
        retriable errors move on to the next broker and, once every broker
        was tried, back off and start over until the deadline."""
        deadline = self._deadline(timeout)
        bo = _Backoff()
        last: Optional[Exception] = None
        while True:
            for addr in self._broker_addrs():
                if time.monotonic() >= deadline:
                    break
                try:
                    return call(addr)
                except errors.SkiffError as e:
                    if not (e.retriable or isinstance(e, errors.NotLeaderError)):
                        raise
                    last = e
            bo.wait(deadline, last or errors.RequestTimeoutError("no broker answered before the deadline"))

    # ---- metadata ----

    def _store_metadata(self, resp: pb.MetadataResponse, topics: Sequence[str]) -> None:
        with self._lock:
            for b in resp.brokers:
                if b.grpc_addr and b.state != "left":
                    self._brokers[b.id] = b.grpc_addr
            if not topics:
                self._topics = {}
            for t in resp.topics:
                self._topics[t.name] = topic_info(t)

    def metadata(self, topics: Sequence[str] = (), timeout: Optional[float] = None) -> Dict[str, TopicInfo]:
        """Fresh metadata of ``topics`` (every topic when empty)."""
        topics = list(topics)

        def call(addr):
            stub = self._stub(addr, pbg.AdminStub)
            return self._invoke(stub.Metadata, pb.MetadataRequest(topics=topics), self.request_timeout)

        resp = self._any_broker(call, timeout)
        self._store_metadata(resp, topics)
        return {t.name: topic_info(t) for t in resp.topics}

    def topic(self, name: str, refresh: bool = False) -> TopicInfo:
        """The cached metadata of one topic (fetched when missing)."""
        if not refresh:
            with self._lock:
                t = self._topics.get(name)
            if t is not None and t.partitions > 0:
                return t
        got = self.metadata([name])
        if name not in got or got[name].partitions == 0:
            raise errors.TopicNotFoundError("topic %s not found: create it first (skiff topic create %s)" % (name, name),
                                            grpc.StatusCode.NOT_FOUND)
        return got[name]

    def _leader_addr(self, topic: str, partition: int, refresh: bool = False) -> str:
        t = self.topic(topic, refresh)
        if partition < 0 or partition >= t.partitions:
            raise errors.InvalidArgumentError("topic %s has %d partitions: no partition %d" % (topic, t.partitions, partition),
                                              field="partition")
        addr = t.partition_info[partition].leader_addr
        if not addr and not refresh:
            return self._leader_addr(topic, partition, refresh=True)
        return addr

    def _set_leader(self, topic: str, partition: int, addr: str) -> None:
        with self._lock:
            t = self._topics.get(topic)
            if t is None or partition >= len(t.partition_info):
                return
            parts = list(t.partition_info)
            p = parts[partition]
            parts[partition] = PartitionInfo(p.partition, p.leader_id, addr, p.replicas, p.in_sync,
                                             p.high_watermark, p.log_start_offset)
            self._topics[topic] = TopicInfo(t.name, t.partitions, t.replication, t.configs, t.internal, tuple(parts))

    def _at_leader(self, topic: str, partition: int, call: Callable[[str], T], deadline: float) -> T:
        """Runs call(leader address) and follows leader changes: a
        NotLeaderError names the new leader (or metadata is asked again),
        unavailability backs off, until the deadline."""
        bo = _Backoff()
        refresh = False
        while True:
            try:
                addr = self._leader_addr(topic, partition, refresh)
                if not addr:
                    raise errors.UnavailableError("partition %s/%d has no leader right now" % (topic, partition))
                return call(addr)
            except errors.NotLeaderError as e:
                if e.leader_addr:
                    self._set_leader(topic, partition, e.leader_addr)
                    refresh = False
                    continue
                err = e
                refresh = True
            except errors.SkiffError as e:
                if not e.retriable:
                    raise
                err = e
                refresh = True
            bo.wait(deadline, err)

    # ---- coordinators ----

    def _coordinator(self, group: str, refresh: bool = False) -> str:
        if not refresh:
            with self._lock:
                addr = self._coordinators.get(group)
            if addr:
                return addr

        def call(addr):
            stub = self._stub(addr, pbg.GroupsStub)
            return self._invoke(stub.FindCoordinator, pb.FindCoordinatorRequest(group=group), self.request_timeout)

        resp = self._any_broker(call)
        with self._lock:
            self._coordinators[group] = resp.addr
        return resp.addr

    def _at_coordinator(self, group: str, call: Callable[[str], T], timeout: Optional[float] = None) -> T:
        deadline = self._deadline(timeout)
        bo = _Backoff()
        refresh = False
        while True:
            try:
                return call(self._coordinator(group, refresh))
            except (errors.NotCoordinatorError, errors.UnavailableError, errors.RequestTimeoutError) as e:
                err = e
                refresh = True
            bo.wait(deadline, err)

    # ---- offsets and reads ----

    def list_offset(self, topic: str, partition: int, spec: Union[str, int]) -> int:
        """The offset of "earliest", "latest", or the first record at or
        after a timestamp in milliseconds (an int)."""
        req = pb.ListOffsetsRequest(topic=topic, partition=partition)
        if spec == "earliest":
            req.spec = pb.OFFSET_SPEC_EARLIEST
        elif spec == "latest":
            req.spec = pb.OFFSET_SPEC_LATEST
        elif isinstance(spec, int) and not isinstance(spec, bool):
            req.spec, req.timestamp_ms = pb.OFFSET_SPEC_TIMESTAMP, spec
        else:
            raise errors.InvalidArgumentError("offset spec %r: use 'earliest', 'latest' or a timestamp in ms" % (spec,))

        def call(addr):
            return self._invoke(self._stub(addr, pbg.ConsumerStub).ListOffsets, req, self.request_timeout).offset

        return self._at_leader(topic, partition, call, self._deadline(None))

    def fetch(self, topic: str, partition: int, offset: int, *, max_wait: float = 0.5,
              max_bytes: int = 4 << 20) -> Tuple[List[Record], int, int]:
        """One fetch of decoded records from ``offset`` on, long-polling up to
        ``max_wait`` seconds at the end of the log. Returns (records, next
        offset, high watermark)."""
        req = pb.FetchRequest(topic=topic, partition=partition, offset=offset, max_bytes=max_bytes,
                              max_wait_ms=int(max_wait * 1000), format=pb.FETCH_FORMAT_RECORDS)

        def call(addr):
            stub = self._stub(addr, pbg.ConsumerStub)
            return self._invoke(stub.Fetch, req, max_wait + self.request_timeout)

        resp = self._at_leader(topic, partition, call, self._deadline(max_wait + self.request_timeout))
        recs = [convert_record(topic, r) for r in resp.records]
        return recs, max(resp.next_offset, offset), resp.high_watermark

    def read(self, topic: str, partition: int = 0, start: Union[str, int] = "earliest",
             max_records: Optional[int] = None, timeout: Optional[float] = 5.0) -> Iterator[Record]:
        """Records of one partition in offset order, from ``start``
        ("earliest", "latest" or an offset). Ends after ``max_records``, or
        once no record has arrived for ``timeout`` seconds (None: never).
        No group is involved and nothing is committed."""
        if isinstance(start, str):
            offset = self.list_offset(topic, partition, start)
        elif isinstance(start, int) and start >= 0:
            offset = start
        else:
            raise errors.InvalidArgumentError("start %r: use 'earliest', 'latest' or an offset >= 0" % (start,))
        if max_records is not None and max_records <= 0:
            return
        count = 0
        idle_since = time.monotonic()
        while True:
            wait = 0.5 if timeout is None else max(0.0, min(0.5, timeout - (time.monotonic() - idle_since)))
            recs, offset, _ = self.fetch(topic, partition, offset, max_wait=wait)
            if recs:
                idle_since = time.monotonic()
            for r in recs:
                yield r
                count += 1
                if max_records is not None and count >= max_records:
                    return
            if timeout is not None and time.monotonic() - idle_since >= timeout:
                return
