"""Skiff's Python client: produce, read, consumer groups and share groups
over the broker's gRPC API.

    import skiff
    c = skiff.Client(["127.0.0.1:9400"])
    c.admin.create_topic("orders", partitions=3, replication=3)
    p = c.producer()
    p.send("orders", value=b"v", key=b"alice").result(timeout=10)
    p.close()
    for rec in c.read("orders", partition=0, start="earliest", max_records=100, timeout=5):
        print(rec.offset, rec.key, rec.value)
"""

from .admin import Admin, BrokerInfo, ClusterInfo, DeadLetter, GroupInfo, GroupOffset
from .client import TLS, Client, PartitionInfo, Record, TopicInfo
from .errors import *  # noqa: F401,F403 - the error vocabulary is part of the package's surface
from .errors import __all__ as _error_names
from .group import GroupConsumer
from .producer import Producer, RecordFuture, RecordMetadata
from .share import AckResult, ShareConsumer, ShareRecord

__version__ = "0.1.0"

__all__ = [
    "Admin", "AckResult", "BrokerInfo", "Client", "ClusterInfo", "DeadLetter", "GroupConsumer", "GroupInfo",
    "GroupOffset", "PartitionInfo", "Producer", "Record", "RecordFuture", "RecordMetadata", "ShareConsumer", "ShareRecord",
    "TLS", "TopicInfo",
] + list(_error_names)
