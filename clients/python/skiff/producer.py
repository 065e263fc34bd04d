"""A batching, idempotent producer."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Deque, Dict, List, NamedTuple, Optional, Tuple, Union

from . import errors
from ._murmur2 import partition_for_key
from .v1 import skiff_pb2 as pb
from .v1 import skiff_pb2_grpc as pbg

# What a record costs in a batch beyond its key, value and headers (the
# Kafka v2 record framing: length, attributes, deltas, varint lengths).
_RECORD_OVERHEAD = 24

# How long a producer trusts a topic's partition count.
_METADATA_MAX_AGE = 30.0


class RecordMetadata(NamedTuple):
    topic: str
    partition: int
    offset: int  # -1 with acks="none"


# Guards the callback lists of every batch (short critical sections only;
# callbacks run outside it).
_CALLBACK_LOCK = threading.Lock()


class _Batch:
    __slots__ = ("topic", "partition", "records", "size", "created", "sealed", "sequence",
                 "done", "base", "error", "callbacks")

    def __init__(self, topic: str, partition: int):
        self.topic = topic
        self.partition = partition
        self.records: List[pb.Record] = []
        self.size = 0
        self.created = time.monotonic()
        self.sealed = False
        self.sequence = -1  # given when first sent, kept for its retries
        # The outcome, shared by the futures of its records: one event per
        # batch rather than a lock and a condition per record.
        self.done = threading.Event()
        self.base = -1
        self.error: Optional[BaseException] = None
        self.callbacks: List = []

    def finish(self, base: int, error: Optional[BaseException]) -> None:
        with _CALLBACK_LOCK:
            self.base, self.error = base, error
            self.done.set()
            callbacks, self.callbacks = self.callbacks, []
        for fut, fn in callbacks:
            _run_callback(fn, fut)


def _run_callback(fn, fut) -> None:
    try:
        fn(fut)
    except Exception:  # noqa: BLE001 - as concurrent.futures: a callback's failure is logged, not raised
        logging.getLogger("skiff").exception("producer callback failed")


class RecordFuture:
    """The outcome of one sent record: the same methods as
    concurrent.futures.Future for a caller (result, exception, done,
    add_done_callback)."""

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: _Batch, index: int):
        self._batch = batch
        self._index = index

    def done(self) -> bool:
        return self._batch.done.is_set()

    def result(self, timeout: Optional[float] = None) -> RecordMetadata:
        """The record's metadata once written; raises its SkiffError if the
        write failed, RequestTimeoutError if not done within timeout."""
        err = self.exception(timeout)
        if err is not None:
            raise err
        b = self._batch
        return RecordMetadata(b.topic, b.partition, b.base + self._index if b.base >= 0 else -1)

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        if not self._batch.done.wait(timeout):
            raise errors.RequestTimeoutError("the record is not written yet (waited %ss)" % timeout)
        return self._batch.error

    def add_done_callback(self, fn) -> None:
        """Calls fn(future) once the outcome is known (at once if it is),
        on the producer's thread: keep it short."""
        b = self._batch
        with _CALLBACK_LOCK:
            if not b.done.is_set():
                b.callbacks.append((self, fn))
                return
        _run_callback(fn, self)



def _as_bytes(v, what: str) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, str):
        return v.encode("utf-8")
    raise errors.InvalidArgumentError("%s: want bytes or str, got %s" % (what, type(v).__name__), field=what)


HeadersArg = Union[None, Dict[str, Optional[bytes]], List[Tuple[str, Optional[bytes]]]]


class Producer:
    """Sends records in batches, one batch in flight per partition, so that
    records of a partition are written in the order they were sent.

    ``send`` returns a future of :class:`RecordMetadata`. A record with a
    key goes to ``murmur2(key) % partitions`` (Kafka's and the Go client's
    placement); one without sticks to a partition per topic until its batch
    is sealed. With ``idempotent`` (the default) the producer takes a
    producer id and numbers its records, so a batch retried after a lost
    answer is written once.

    ``linger_ms`` waits for a batch to fill (0: send at once);
    ``batch_bytes`` and ``batch_records`` seal a batch; ``buffer_bytes``
    bounds what is waiting, and ``send`` blocks up to ``max_block`` seconds
    for room. A batch that cannot be written within ``delivery_timeout``
    seconds fails its futures.
    """

    def __init__(self, client, *, linger_ms: float = 5.0, batch_bytes: int = 512 << 10, batch_records: int = 10000,
                 buffer_bytes: int = 32 << 20, max_block: float = 60.0, delivery_timeout: float = 120.0,
                 idempotent: bool = True, acks: str = "all", max_parallel: int = 8):
        if acks not in ("all", "none"):
            raise errors.InvalidArgumentError("acks %r: use 'all' or 'none'" % (acks,), field="acks")
        if acks == "none" and idempotent:
            idempotent = False  # nothing to deduplicate against without answers
        for name, v in (("linger_ms", linger_ms), ("max_block", max_block), ("delivery_timeout", delivery_timeout)):
            if v < 0:
                raise errors.InvalidArgumentError("%s must not be negative" % name, field=name)
        for name, v in (("batch_bytes", batch_bytes), ("batch_records", batch_records),
                        ("buffer_bytes", buffer_bytes), ("max_parallel", max_parallel)):
            if v <= 0:
                raise errors.InvalidArgumentError("%s must be positive" % name, field=name)
        self._c = client
        self._linger = linger_ms / 1000.0
        self._batch_bytes = batch_bytes
        self._batch_records = batch_records
        self._buffer_bytes = buffer_bytes
        self._max_block = max_block
        self._delivery_timeout = delivery_timeout
        self._idempotent = idempotent
        self._acks = pb.ACKS_ALL if acks == "all" else pb.ACKS_NONE
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queues: Dict[Tuple[str, int], Deque[_Batch]] = {}
        self._in_flight: Dict[Tuple[str, int], bool] = {}
        self._sticky: Dict[str, int] = {}
        self._partition_counts: Dict[str, Tuple[int, float]] = {}
        self._buffered = 0
        self._pending = 0  # batches queued or in flight
        self._flushing = 0
        self._closed = False
        self._producer_id = -1
        self._epoch = 0
        self._sequences: Dict[Tuple[str, int], int] = {}
        self._id_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="skiff-producer")
        self._sender = threading.Thread(target=self._run, name="skiff-producer-sender", daemon=True)
        self._sender.start()

    # ---- the caller's side ----

    def send(self, topic: str, value: Optional[bytes] = None, key: Optional[bytes] = None,
             headers: HeadersArg = None, partition: Optional[int] = None,
             timestamp_ms: Optional[int] = None) -> "RecordFuture":
        """Queues a record; the future resolves once it is written (or fails
        with a :class:`skiff.SkiffError`). ``value`` or ``key`` None is a
        null (a tombstone value), distinct from b""."""
        if key is not None and type(key) is not bytes:
            key = _as_bytes(key, "key")
        if value is not None and type(value) is not bytes:
            value = _as_bytes(value, "value")
        if key is None:
            rec = pb.Record(key_null=True, value_null=True) if value is None else pb.Record(key_null=True, value=value)
            size = _RECORD_OVERHEAD + (0 if value is None else len(value))
        else:
            rec = pb.Record(key=key, value_null=True) if value is None else pb.Record(key=key, value=value)
            size = _RECORD_OVERHEAD + len(key) + (0 if value is None else len(value))
        if headers:
            items = headers.items() if isinstance(headers, dict) else headers
            for hk, hv in items:
                hb = b"" if hv is None else _as_bytes(hv, "header %s" % hk)
                rec.headers.add(key=hk, value=hb)
                size += len(hk) + len(hb)
        if timestamp_ms is not None:
            if timestamp_ms < 0:
                raise errors.InvalidArgumentError("timestamp_ms must not be negative", field="timestamp_ms")
            rec.timestamp_ms = timestamp_ms
        partitions = self._partitions(topic)
        if partition is None:
            if key is not None:
                partition = partition_for_key(key, partitions)
            # else: the sticky partition, chosen under the lock
        elif not 0 <= partition < partitions:
            raise errors.InvalidArgumentError("topic %s has %d partitions: no partition %d" %
                                              (topic, partitions, partition), field="partition")
        with self._lock:
            deadline = None
            while self._buffered + size > self._buffer_bytes and self._buffered > 0 and not self._closed:
                if deadline is None:
                    deadline = time.monotonic() + self._max_block
                left = deadline - time.monotonic()
                if left <= 0:
                    raise errors.RequestTimeoutError("send: the producer's buffer (%d bytes) stayed full for %.1fs; "
                                                     "the cluster is slower than the sends" % (self._buffer_bytes,
                                                                                              self._max_block))
                self._cond.wait(left)
            if self._closed:
                raise errors.ClosedError("send: the producer is closed")
            if partition is None:
                partition = self._sticky.get(topic)
                if partition is None or partition >= partitions:
                    partition = random.randrange(partitions)
                    self._sticky[topic] = partition
            q = self._queues.setdefault((topic, partition), deque())
            b = q[-1] if q and not q[-1].sealed else None
            if b is None or (b.records and (b.size + size > self._batch_bytes)):
                if b is not None:
                    self._seal(b)
                b = _Batch(topic, partition)
                q.append(b)
                self._pending += 1
            fut = RecordFuture(b, len(b.records))
            b.records.append(rec)
            b.size += size
            self._buffered += size
            if len(b.records) >= self._batch_records or b.size >= self._batch_bytes:
                self._seal(b)
            if b.sealed or self._linger == 0 or len(b.records) == 1:
                self._cond.notify_all()
        return fut

    def _partitions(self, topic: str) -> int:
        """The topic's partition count, from metadata at most
        _METADATA_MAX_AGE seconds old (partitions can be added)."""
        hit = self._partition_counts.get(topic)
        now = time.monotonic()
        if hit is not None and now < hit[1]:
            return hit[0]
        n = self._c.topic(topic, refresh=hit is not None).partitions
        self._partition_counts[topic] = (n, now + _METADATA_MAX_AGE)
        return n

    def _seal(self, b: _Batch) -> None:
        b.sealed = True
        if self._sticky.get(b.topic) == b.partition:
            del self._sticky[b.topic]  # keyless records move on (KIP-480)

    def flush(self, timeout: Optional[float] = None) -> None:
        """Sends everything queued and waits until it is written or failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._pending > 0:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise errors.RequestTimeoutError("flush: %d batches still unwritten after %.1fs" %
                                                         (self._pending, timeout))
                    self._cond.wait(left)
            finally:
                self._flushing -= 1

    def close(self, timeout: Optional[float] = None) -> None:
        """Flushes, then stops the producer. Sends after close fail."""
        try:
            self.flush(timeout)
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._sender.join()
            self._pool.shutdown(wait=True)

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the sender ----

    def _run(self) -> None:
        while True:
            with self._cond:
                ready: List[_Batch] = []
                while True:
                    now = time.monotonic()
                    wake = None
                    for tp, q in self._queues.items():
                        if not q or self._in_flight.get(tp):
                            continue
                        b = q[0]
                        due = b.created + self._linger
                        if b.sealed or self._flushing or self._closed or now >= due:
                            ready.append(b)
                        elif wake is None or due < wake:
                            wake = due
                    if ready:
                        break
                    if self._closed and self._pending == 0:
                        return
                    self._cond.wait(None if wake is None else max(wake - now, 0.0005))
                for b in ready:
                    self._seal(b)
                    self._in_flight[(b.topic, b.partition)] = True
            for b in ready:
                self._pool.submit(self._deliver, b)

    def _deliver(self, b: _Batch) -> None:
        err: Optional[BaseException] = None
        resp = None
        try:
            resp = self._write(b)
        except BaseException as e:  # noqa: BLE001 - every failure goes to the futures
            err = e
        tp = (b.topic, b.partition)
        with self._cond:
            q = self._queues.get(tp)
            if q and q[0] is b:
                q.popleft()
            self._in_flight[tp] = False
            self._buffered -= b.size
            self._pending -= 1
            self._cond.notify_all()
        if err is not None and not isinstance(err, errors.SkiffError):
            err = errors.SkiffError("produce to %s/%d: %s" % (b.topic, b.partition, err))
        b.finish(-1 if err is not None else resp.base_offset, err)

    def _ids(self, b: _Batch) -> Tuple[int, int, int]:
        """The producer id, epoch and the batch's first sequence."""
        with self._id_lock:
            if self._producer_id < 0:
                c = self._c

                def call(addr):
                    return c._invoke(c._stub(addr, pbg.ProducerStub).InitProducerId, pb.InitProducerIdRequest(),
                                     c.request_timeout)

                r = c._any_broker(call)
                self._producer_id, self._epoch = r.producer_id, r.producer_epoch
                self._sequences.clear()
            if b.sequence < 0:
                tp = (b.topic, b.partition)
                b.sequence = self._sequences.get(tp, 0)
                self._sequences[tp] = (b.sequence + len(b.records)) % (1 << 31)
            return self._producer_id, self._epoch, b.sequence

    def _write(self, b: _Batch):
        c = self._c
        req = pb.ProduceRequest(topic=b.topic, partition=b.partition, records=b.records, acks=self._acks)
        if self._idempotent:
            req.idempotent = True
            req.producer_id, req.producer_epoch, req.base_sequence = self._ids(b)

        def call(addr):
            return c._invoke(c._stub(addr, pbg.ProducerStub).Produce, req, c.request_timeout)

        deadline = time.monotonic() + self._delivery_timeout
        while True:
            try:
                return c._at_leader(b.topic, b.partition, call, deadline)
            except errors.IndeterminateError:
                # Unknown outcome: the idempotent retry is answered as a
                # duplicate if the first write landed.
                if not self._idempotent or time.monotonic() >= deadline:
                    raise
            except (errors.OutOfOrderSequenceError, errors.ProducerFencedError):
                # This producer's numbering no longer matches the broker's:
                # start over with a new id for the batches after this one.
                with self._id_lock:
                    self._producer_id = -1
                raise
