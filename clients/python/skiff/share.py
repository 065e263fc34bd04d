"""Share groups: queue semantics on a topic (per-record locks and acks,
redelivery, dead letters)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import List, NamedTuple, Optional, Sequence, Tuple

from . import errors
from .v1 import skiff_pb2 as pb
from .v1 import skiff_pb2_grpc as pbg

log = logging.getLogger("skiff")


class AckResult(NamedTuple):
    topic: str
    partition: int
    offset: int
    error: Optional[errors.SkiffError]  # None: applied


@dataclass(eq=False)
class ShareRecord:
    """A record locked to this member until ``lock_until`` (ms since the
    epoch). Settle it with exactly one of :meth:`ack`, :meth:`release` or
    :meth:`reject`; :meth:`renew` extends the lock. Settlements are sent
    with the consumer's next poll (or its :meth:`ShareConsumer.acknowledge`
    and close)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: Optional[bytes]
    value: Optional[bytes]
    header_list: Tuple[Tuple[str, bytes], ...]
    delivery_count: int
    lock_until: int
    _consumer: "ShareConsumer"
    _settled: bool = False

    @property
    def headers(self):
        return dict(self.header_list)

    def _settle(self, kind, delay_ms: int = 0, error: str = "") -> None:
        if self._settled:
            raise errors.InvalidArgumentError("record %s/%d@%d is already settled" % (self.topic, self.partition, self.offset))
        self._settled = True
        self._consumer._queue_ack(pb.ShareAck(topic=self.topic, partition=self.partition, offset=self.offset,
                                              type=kind, delay_ms=delay_ms, error=error))

    def ack(self) -> None:
        """Processed: never delivered again."""
        self._settle(pb.SHARE_ACK_ACCEPT)

    def release(self, delay: Optional[float] = None, error: str = "") -> None:
        """Deliver again: after ``delay`` seconds (0: at once; None: the
        group's backoff). ``error`` is kept as the record's last error."""
        if delay is not None and delay < 0:
            raise errors.InvalidArgumentError("release delay must not be negative (None: the group's backoff)")
        self._settle(pb.SHARE_ACK_RELEASE, -1 if delay is None else int(delay * 1000), error)

    def reject(self, reason: str = "") -> None:
        """Poison: to the group's dead-letter topic at once."""
        self._settle(pb.SHARE_ACK_REJECT, 0, reason)

    def renew(self) -> int:
        """Extends the lock by the group's lock timeout, now; returns the
        new lock_until."""
        if self._settled:
            raise errors.InvalidArgumentError("record %s/%d@%d is already settled" % (self.topic, self.partition, self.offset))
        res = self._consumer._send_acks([pb.ShareAck(topic=self.topic, partition=self.partition, offset=self.offset,
                                                     type=pb.SHARE_ACK_RENEW)])
        for r, until in res:
            if r.error is not None:
                raise r.error
            self.lock_until = until
        return self.lock_until


class ShareConsumer:
    """A member of share group ``group`` reading ``topics`` (or a
    ``pattern``). :meth:`poll` sends the settlements made since the last
    call, then returns up to ``max_records`` records locked to this member.
    One thread at a time may poll; records may be settled from any thread.
    """

    def __init__(self, client, group: str, topics: Sequence[str] = (), *, pattern: str = "",
                 max_records: int = 500, max_wait: float = 0.5):
        if not group:
            raise errors.InvalidArgumentError("group is empty", field="group")
        if isinstance(topics, str):
            topics = [topics]
        if bool(topics) == bool(pattern):
            raise errors.InvalidArgumentError("subscribe to topics or a pattern (exactly one)", field="topics")
        if not 1 <= max_records <= 10000:
            raise errors.InvalidArgumentError("max_records %d: want 1 to 10000" % max_records, field="max_records")
        self._c = client
        self.group = group
        self._topics = list(topics)
        self._pattern = pattern
        self._max_records = max_records
        self._max_wait = max_wait
        self._lock = threading.Lock()
        self._member_id = ""
        self._acks: List[pb.ShareAck] = []
        self._closed = False
        self.paused_reason = ""

    def _queue_ack(self, ack: pb.ShareAck) -> None:
        with self._lock:
            if self._closed:
                raise errors.ClosedError("the share consumer is closed: its records went back to the group")
            self._acks.append(ack)

    def _send_acks(self, acks: List[pb.ShareAck]) -> List[Tuple[AckResult, int]]:
        c = self._c
        with self._lock:
            member = self._member_id
        req = pb.ShareAckRequest(group=self.group, member_id=member, acks=acks)

        def call(addr):
            return c._invoke(c._stub(addr, pbg.ShareGroupsStub).ShareAcknowledge, req, c.request_timeout)

        resp = c._at_coordinator(self.group, call)
        out = []
        for r in resp.results:
            err = errors.share_reason_error(r.error_reason, r.error)
            out.append((AckResult(r.topic, r.partition, r.offset, err), r.lock_until_ms))
        return out

    def acknowledge(self) -> List[AckResult]:
        """Sends the settlements made so far and returns their outcomes
        (``error`` None where applied)."""
        with self._lock:
            acks, self._acks = self._acks, []
        if not acks:
            return []
        try:
            return [r for r, _ in self._send_acks(acks)]
        except errors.SkiffError:
            with self._lock:
                self._acks = acks + self._acks
            raise

    def _log_failed(self, results) -> None:
        for r in results:
            if r.error is not None:
                log.warning("share group %s: settling %s/%d@%d failed: %s", self.group, r.topic, r.partition,
                            r.offset, r.error)

    def poll(self, timeout: float = 1.0) -> List[ShareRecord]:
        """Sends the settlements made since the last call with the fetch
        (one call, as Kafka's share fetch), then waits up to ``timeout``
        seconds for records. A settlement that fails is logged; use
        :meth:`acknowledge` for outcomes. Raises GroupPausedError while the
        DLQ flood breaker holds the group."""
        c = self._c
        deadline = time.monotonic() + timeout
        with self._lock:
            acks, self._acks = self._acks, []
            member = self._member_id
        if acks and not member:
            # Acks need a member id; without one they go on their own.
            with self._lock:
                self._acks = acks + self._acks
            self._log_failed(self.acknowledge())
            acks = []
        while True:
            with self._lock:
                if self._closed:
                    raise errors.ClosedError("poll: the share consumer is closed")
                member = self._member_id
            wait = max(0.0, min(self._max_wait, deadline - time.monotonic()))
            req = pb.ShareFetchRequest(group=self.group, member_id=member, topics=self._topics, pattern=self._pattern,
                                       max_records=self._max_records, max_wait_ms=int(wait * 1000),
                                       client_id=c._client_id, acks=acks)

            def call(addr):
                return c._invoke(c._stub(addr, pbg.ShareGroupsStub).ShareFetch, req, wait + c.request_timeout)

            try:
                resp = c._at_coordinator(self.group, call, timeout=wait + c.request_timeout)
            except errors.UnknownMemberError:
                if acks:
                    log.warning("share group %s: membership expired; %d settlements dropped (their records "
                                "went back to the group)", self.group, len(acks))
                    acks = []
                with self._lock:
                    if self._member_id == member:
                        self._member_id = ""  # expired: join again
                continue
            except errors.SkiffError:
                if acks:
                    # Maybe applied: settle them again with the next call
                    # (a repeat is refused per record, not applied twice).
                    with self._lock:
                        self._acks = acks + self._acks
                raise
            if acks:
                self._log_failed(AckResult(r.topic, r.partition, r.offset, errors.share_reason_error(r.error_reason, r.error))
                                 for r in resp.ack_results)
                acks = []
            if resp.member_id:
                with self._lock:
                    self._member_id = resp.member_id
            if resp.paused:
                self.paused_reason = resp.paused_reason or "the DLQ flood breaker paused delivery"
                raise errors.GroupPausedError("share group %s paused: %s" % (self.group, self.paused_reason))
            if resp.records or time.monotonic() >= deadline:
                return [ShareRecord(r.topic, r.partition, r.offset, r.timestamp_ms,
                                    None if r.key_null else bytes(r.key), None if r.value_null else bytes(r.value),
                                    tuple((h.key, bytes(h.value)) for h in r.headers), r.delivery_count,
                                    r.lock_until_ms, self) for r in resp.records]

    def close(self) -> None:
        """Sends pending settlements and leaves: records still locked to
        this member go back to the group at once."""
        with self._lock:
            if self._closed:
                return
        try:
            self.acknowledge()
        finally:
            with self._lock:
                self._closed = True
                member = self._member_id
            if member:
                c = self._c

                def call(addr):
                    return c._invoke(c._stub(addr, pbg.ShareGroupsStub).ShareLeave,
                                     pb.ShareLeaveRequest(group=self.group, member_id=member), c.request_timeout)

                try:
                    c._at_coordinator(self.group, call)
                except errors.SkiffError as e:
                    log.debug("share group %s: leave failed: %s", self.group, e)

    def __enter__(self) -> "ShareConsumer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
