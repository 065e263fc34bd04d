"""Produce and consume rates of the Python client.

    python -m skiff.bench produce --brokers 127.0.0.1:9400 --topic bench --records 200000 --size 100
    python -m skiff.bench consume --brokers 127.0.0.1:9400 --topic bench --records 200000

``produce`` creates the topic when missing and reports acknowledged
records/s; ``consume`` reads every partition from the start (``--mode
read``, plain reads) or as one consumer-group member (``--mode group``).
``-o json`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid

from . import errors
from .client import Client


def _client(a) -> Client:
    return Client(a.brokers.split(","), request_timeout=a.request_timeout)


def produce(a) -> dict:
    c = _client(a)
    try:
        try:
            c.admin.create_topic(a.topic, partitions=a.partitions)
        except errors.TopicExistsError:
            pass
        value = os.urandom(a.size)
        keys = [b"key-%d" % i for i in range(a.keys)] if a.keys > 0 else None
        p = c.producer(linger_ms=a.linger_ms)
        start = time.monotonic()
        futs = []
        for i in range(a.records):
            futs.append(p.send(a.topic, value=value, key=keys[i % len(keys)] if keys else None))
        p.flush()
        elapsed = time.monotonic() - start
        failed = sum(1 for f in futs if f.exception() is not None)
        p.close()
    finally:
        c.close()
    return {"op": "produce", "records": a.records, "failed": failed, "record_bytes": a.size,
            "seconds": round(elapsed, 3), "records_per_sec": round(a.records / elapsed),
            "mb_per_sec": round(a.records * a.size / elapsed / 1e6, 2)}


def consume(a) -> dict:
    c = _client(a)
    n = 0
    try:
        parts = c.topic(a.topic).partitions
        start = time.monotonic()
        if a.mode == "read":
            # Each partition up to its end: no idle timeout in the figure.
            for part in range(parts):
                first = c.list_offset(a.topic, part, "earliest")
                want = min(c.list_offset(a.topic, part, "latest") - first, a.records - n)
                if want <= 0:
                    continue
                for _ in c.read(a.topic, partition=part, start=first, max_records=want, timeout=10.0):
                    n += 1
                if n >= a.records:
                    break
        else:
            g = c.group_consumer("bench-" + uuid.uuid4().hex[:8], [a.topic], auto_offset_reset="earliest")
            idle = time.monotonic()
            while n < a.records and time.monotonic() - idle < 10:
                got = len(g.poll(1.0))
                if got:
                    idle = time.monotonic()
                n += got
            g.close()
        elapsed = time.monotonic() - start
    finally:
        c.close()
    return {"op": "consume", "mode": a.mode, "records": n, "seconds": round(elapsed, 3),
            "records_per_sec": round(n / elapsed) if elapsed > 0 else 0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m skiff.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("op", choices=["produce", "consume"])
    ap.add_argument("--brokers", default=os.environ.get("SKIFF_BROKERS", "127.0.0.1:9400"))
    ap.add_argument("--topic", default="bench-python")
    ap.add_argument("--records", type=int, default=200000)
    ap.add_argument("--size", type=int, default=100, help="value bytes (produce)")
    ap.add_argument("--keys", type=int, default=0, help="distinct keys (produce; 0: no keys)")
    ap.add_argument("--partitions", type=int, default=1, help="partitions when the topic is created")
    ap.add_argument("--linger-ms", type=float, default=5.0)
    ap.add_argument("--mode", choices=["read", "group"], default="read", help="consume: plain reads or a group")
    ap.add_argument("--request-timeout", type=float, default=30.0)
    ap.add_argument("-o", "--output", choices=["text", "json"], default="text")
    a = ap.parse_args(argv)
    if a.records <= 0 or a.size < 0:
        ap.error("--records must be positive and --size not negative")
    res = produce(a) if a.op == "produce" else consume(a)
    if a.output == "json":
        json.dump(res, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(" ".join("%s=%s" % kv for kv in res.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
