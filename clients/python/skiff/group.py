"""Consumer groups: the server assigns partitions (KIP-848 style), the
member heartbeats, reads its partitions and commits what it consumed."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from typing import Dict, List, Optional, Sequence, Tuple

import grpc

from . import errors
from .client import Record, _Backoff, convert_record
from .v1 import skiff_pb2 as pb
from .v1 import skiff_pb2_grpc as pbg

log = logging.getLogger("skiff")

TP = Tuple[str, int]


class GroupConsumer:
    """A member of consumer group ``group`` reading ``topics`` (or a
    ``pattern`` such as ``"orders.*"``).

    A background thread heartbeats to the group's coordinator, which answers
    with the partitions this member should own; :meth:`poll` applies each
    new assignment (committing and releasing partitions taken away, starting
    partitions handed over from their committed offsets, or from
    ``auto_offset_reset`` — "earliest" or "latest" — where nothing is
    committed) and returns the next records of the owned partitions.

    :meth:`commit` commits the position after every record :meth:`poll`
    returned. With ``auto_commit`` (the default) that also happens every
    ``auto_commit_interval`` seconds, before a partition is released and on
    :meth:`close`. One thread at a time may call poll and commit.
    """

    def __init__(self, client, group: str, topics: Sequence[str] = (), *, pattern: str = "",
                 auto_offset_reset: str = "latest", auto_commit: bool = True, auto_commit_interval: float = 5.0,
                 instance_id: str = "", rebalance_timeout: float = 60.0, max_bytes: int = 4 << 20,
                 fetch_max_wait: float = 0.5):
        if not group:
            raise errors.InvalidArgumentError("group is empty", field="group")
        if isinstance(topics, str):
            topics = [topics]
        if bool(topics) == bool(pattern):
            raise errors.InvalidArgumentError("subscribe to topics or a pattern (exactly one)", field="topics")
        if auto_offset_reset not in ("earliest", "latest"):
            raise errors.InvalidArgumentError("auto_offset_reset %r: use 'earliest' or 'latest'" % (auto_offset_reset,),
                                              field="auto_offset_reset")
        self._c = client
        self.group = group
        self._topics = list(topics)
        self._pattern = pattern
        self._reset = auto_offset_reset
        self._auto_commit = auto_commit
        self._commit_interval = auto_commit_interval
        self._instance_id = instance_id
        self._rebalance_timeout_ms = int(rebalance_timeout * 1000)
        self._max_bytes = max_bytes
        self._fetch_wait_ms = int(fetch_max_wait * 1000)

        self._lock = threading.Lock()
        self._member_id = ""
        self._epoch = 0
        self._target: List[TP] = []
        self._target_num = 0  # the coordinator's assignment_seq
        self._target_version = 0  # bumped on every change the poller must apply
        self._lost = False
        self._fatal: Optional[BaseException] = None
        self._closed = False
        self._applied_num = 0  # assignment_seq the owned set reflects
        self._applied_version = 0
        # Owned partitions and the position after the last record returned
        # (None until their start offset is known); touched by poll's
        # thread, read by the heartbeat under _lock.
        self._owned: Dict[TP, Optional[int]] = {}
        self._committed: Dict[TP, int] = {}
        self._last_commit = time.monotonic()
        self._inflight: Dict[TP, Tuple[Future, int]] = {}
        self._ready = threading.Event()  # a fetch finished, or the assignment changed
        self._wake_heartbeat = threading.Event()
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._run_heartbeat, name="skiff-group-heartbeat", daemon=True)
        self._heartbeat.start()

    # ---- heartbeats ----

    def _run_heartbeat(self) -> None:
        interval = 0.5
        bo = _Backoff()
        while not self._stop.is_set():
            try:
                resp = self._send_heartbeat()
                if resp is not None:
                    bo = _Backoff()
                    if resp.heartbeat_interval_ms > 0:
                        interval = resp.heartbeat_interval_ms / 1000.0
            except (errors.UnknownMemberError, errors.FencedMemberEpochError) as e:
                log.warning("group %s: member fenced (%s); rejoining", self.group, e)
                with self._lock:
                    self._member_id, self._epoch, self._lost, self._target = "", 0, True, []
                    self._target_version += 1
                self._ready.set()
                continue
            except errors.InvalidArgumentError as e:
                with self._lock:
                    self._fatal = e
                self._ready.set()
                return
            except errors.SkiffError as e:
                log.debug("group %s heartbeat failed: %s", self.group, e)
                interval = bo.delay()
            self._wake_heartbeat.wait(interval)
            self._wake_heartbeat.clear()

    def _send_heartbeat(self, leave_epoch: int = 0):
        with self._lock:
            if self._lost and not leave_epoch:
                return None  # poll must give up the old partitions before we join again
            owned = set(self._owned) | set(self._target)
            req = pb.GroupHeartbeatRequest(group=self.group, member_id=self._member_id, instance_id=self._instance_id,
                                           member_epoch=leave_epoch or self._epoch, topics=self._topics,
                                           pattern=self._pattern, rebalance_timeout_ms=self._rebalance_timeout_ms,
                                           client_id=self._c._client_id, applied_assignment_seq=self._applied_num)
        by_topic: Dict[str, List[int]] = {}
        for t, p in sorted(owned):
            by_topic.setdefault(t, []).append(p)
        for t, ps in by_topic.items():
            req.owned.add(topic=t, partitions=ps)
        c = self._c

        def call(addr):
            return c._invoke(c._stub(addr, pbg.GroupsStub).Heartbeat, req, c.request_timeout)

        resp = c._at_coordinator(self.group, call)
        if leave_epoch:
            return resp
        target = sorted((a.topic, p) for a in resp.assignment for p in a.partitions)
        with self._lock:
            self._member_id, self._epoch = resp.member_id, resp.member_epoch
            if target != self._target or resp.assignment_seq != self._target_num:
                self._target, self._target_num = target, resp.assignment_seq
                self._target_version += 1
                self._ready.set()
        return resp

    # ---- assignment ----

    def assignment(self) -> List[TP]:
        """The partitions this member owns now."""
        with self._lock:
            return sorted(self._owned)

    def _reconcile(self) -> None:
        with self._lock:
            if self._fatal is not None:
                raise self._fatal
            if self._closed:
                raise errors.ClosedError("poll: the group consumer is closed")
            version, target, num, lost = self._target_version, list(self._target), self._target_num, self._lost
        if version == self._applied_version and not lost:
            return
        if lost:
            with self._lock:
                self._owned.clear()
                self._inflight.clear()
                self._applied_num = 0
                self._lost = False
            self._applied_version = version
            self._wake_heartbeat.set()
            return
        want = set(target)
        revoke = [tp for tp in self._owned if tp not in want]
        add = [tp for tp in target if tp not in self._owned]
        if revoke:
            if self._auto_commit:
                try:
                    self._commit_positions(revoke)
                except errors.SkiffError as e:
                    log.warning("group %s: commit on revoke failed: %s", self.group, e)
            with self._lock:
                for tp in revoke:
                    self._owned.pop(tp, None)
                    self._inflight.pop(tp, None)
        if add:
            with self._lock:
                for tp in add:
                    self._owned[tp] = None  # reported owned while it starts
            try:
                self._start(add)
            except errors.SkiffError:
                with self._lock:
                    for tp in add:
                        self._owned.pop(tp, None)
                raise
        with self._lock:
            self._applied_num = num
        self._applied_version = version
        if revoke or add:
            self._wake_heartbeat.set()

    def _start(self, tps: List[TP]) -> None:
        """Positions the partitions at their committed offsets."""
        c = self._c
        req = pb.FetchOffsetsRequest(group=self.group)
        by_topic: Dict[str, List[int]] = {}
        for t, p in tps:
            by_topic.setdefault(t, []).append(p)
        for t, ps in by_topic.items():
            req.partitions.add(topic=t, partitions=ps)

        def call(addr):
            return c._invoke(c._stub(addr, pbg.GroupsStub).FetchOffsets, req, c.request_timeout)

        resp = c._at_coordinator(self.group, call)
        committed = {(o.topic, o.partition): o.offset for o in resp.offsets if o.offset >= 0}
        for tp in tps:
            pos = committed.get(tp)
            if pos is None:
                pos = c.list_offset(tp[0], tp[1], self._reset)
            else:
                self._committed[tp] = pos
            with self._lock:
                if tp in self._owned:
                    self._owned[tp] = pos

    # ---- fetching ----

    def _start_fetch(self, tp: TP, offset: int) -> None:
        c = self._c
        try:
            addr = c._leader_addr(tp[0], tp[1])
        except errors.SkiffError as e:
            log.debug("group %s: no leader for %s/%d: %s", self.group, tp[0], tp[1], e)
            return
        if not addr:
            c._leader_addr(tp[0], tp[1], refresh=True)
            return
        req = pb.FetchRequest(topic=tp[0], partition=tp[1], offset=offset, max_bytes=self._max_bytes,
                              max_wait_ms=self._fetch_wait_ms, format=pb.FETCH_FORMAT_RECORDS)
        stub = c._stub(addr, pbg.ConsumerStub)
        fut = stub.Fetch.future(req, timeout=self._fetch_wait_ms / 1000.0 + c.request_timeout, metadata=c._metadata)
        fut.add_done_callback(lambda _f: self._ready.set())
        self._inflight[tp] = (fut, offset)

    def _collect(self, out: List[Record]) -> None:
        c = self._c
        for tp, (fut, offset) in list(self._inflight.items()):
            if not fut.done():
                continue
            del self._inflight[tp]
            with self._lock:
                pos = self._owned.get(tp)
            if pos != offset:
                continue  # released or moved meanwhile
            try:
                resp = fut.result()
            except grpc.RpcError as rpc_err:
                err = errors.from_rpc_error(rpc_err)
                if isinstance(err, errors.NotLeaderError) and err.leader_addr:
                    c._set_leader(tp[0], tp[1], err.leader_addr)
                elif isinstance(err, errors.OffsetOutOfRangeError):
                    reset = c.list_offset(tp[0], tp[1], self._reset)
                    log.warning("group %s: offset %d of %s/%d out of range; reset to %s (%d)",
                                self.group, offset, tp[0], tp[1], self._reset, reset)
                    with self._lock:
                        if self._owned.get(tp) == offset:
                            self._owned[tp] = reset
                elif isinstance(err, (errors.AuthorizationError, errors.TopicNotFoundError)):
                    raise err from None
                else:
                    c._leader_addr(tp[0], tp[1], refresh=True)
                continue
            recs = [convert_record(tp[0], r) for r in resp.records]
            with self._lock:
                if self._owned.get(tp) == offset:
                    self._owned[tp] = max(resp.next_offset, offset)
                    out.extend(recs)

    def poll(self, timeout: float = 1.0) -> List[Record]:
        """The next records of the owned partitions, waiting up to
        ``timeout`` seconds for some (an empty list when none came)."""
        deadline = time.monotonic() + timeout
        out: List[Record] = []
        while True:
            self._reconcile()
            self._maybe_auto_commit()
            self._ready.clear()
            with self._lock:
                owned = dict(self._owned)
            for tp, pos in owned.items():
                if pos is not None and tp not in self._inflight:
                    self._start_fetch(tp, pos)
            self._collect(out)
            if out:
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            self._ready.wait(min(left, 0.5))

    # ---- commits ----

    def _maybe_auto_commit(self) -> None:
        if self._auto_commit and time.monotonic() - self._last_commit >= self._commit_interval:
            try:
                self.commit()
            except errors.SkiffError as e:
                log.warning("group %s: auto-commit failed: %s", self.group, e)

    def commit(self, offsets: Optional[Dict[TP, int]] = None) -> None:
        """Commits ``offsets`` ({(topic, partition): next offset to read}),
        by default the position after every record poll returned."""
        if offsets is None:
            self._commit_positions(None)
            return
        self._commit_offsets(dict(offsets))

    def _commit_positions(self, tps: Optional[List[TP]]) -> None:
        with self._lock:
            owned = dict(self._owned)
        offsets = {tp: pos for tp, pos in owned.items()
                   if pos is not None and (tps is None or tp in tps) and self._committed.get(tp) != pos}
        self._last_commit = time.monotonic()
        if offsets:
            self._commit_offsets(offsets)

    def _commit_offsets(self, offsets: Dict[TP, int]) -> None:
        with self._lock:
            req = pb.CommitOffsetsRequest(group=self.group, member_id=self._member_id, member_epoch=self._epoch)
        for (t, p), off in sorted(offsets.items()):
            req.offsets.add(topic=t, partition=p, offset=off)
        c = self._c

        def call(addr):
            return c._invoke(c._stub(addr, pbg.GroupsStub).CommitOffsets, req, c.request_timeout)

        c._at_coordinator(self.group, call)
        self._committed.update(offsets)

    def close(self) -> None:
        """Commits (with auto_commit), leaves the group and stops."""
        with self._lock:
            if self._closed:
                return
        try:
            if self._auto_commit:
                try:
                    self._commit_positions(None)
                except errors.SkiffError as e:
                    log.warning("group %s: commit on close failed: %s", self.group, e)
        finally:
            with self._lock:
                self._closed = True
                member = self._member_id
            self._stop.set()
            self._wake_heartbeat.set()
            self._heartbeat.join()
            for fut, _ in self._inflight.values():
                fut.cancel()
            self._inflight.clear()
            if member:
                leave = -2 if self._instance_id else -1
                try:
                    self._send_heartbeat(leave_epoch=leave)
                except errors.SkiffError as e:
                    log.debug("group %s: leave failed: %s", self.group, e)

    def __enter__(self) -> "GroupConsumer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
