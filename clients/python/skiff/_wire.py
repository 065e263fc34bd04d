"""Decoding of the gRPC rich-status trailer (google.rpc.Status).

The broker's status details travel as a serialized google.rpc.Status in the
``grpc-status-details-bin`` trailer. Three of its detail types are
google.rpc messages (ErrorInfo, BadRequest) that this package would need
googleapis-common-protos for; their wire format is tiny and stable, so they
are read here with a minimal protobuf reader instead. Skiff's own details
(NotLeader, OffsetOutOfRange) parse with the generated stubs.

The bytes come from the network: every read is bounds-checked, and a
malformed trailer yields empty details rather than an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

from .v1 import skiff_pb2 as pb

_TYPE_PREFIX = "type.googleapis.com/"


@dataclass
class Details:
    reason: str = ""
    field: str = ""
    description: str = ""
    not_leader: Optional[pb.NotLeader] = None
    offset_out_of_range: Optional[pb.OffsetOutOfRange] = None


class _Malformed(ValueError):
    pass


def _varint(b: bytes, i: int) -> Tuple[int, int]:
    shift = 0
    out = 0
    while True:
        if i >= len(b) or shift > 63:
            raise _Malformed("truncated varint")
        c = b[i]
        i += 1
        out |= (c & 0x7F) << shift
        if c < 0x80:
            return out, i
        shift += 7


def _fields(b: bytes) -> Iterator[Tuple[int, int, object]]:
    """Yields (field number, wire type, value): ints for varints and fixed
    fields, bytes for length-delimited ones."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 1:
            if i + 8 > len(b):
                raise _Malformed("truncated fixed64")
            v, i = int.from_bytes(b[i:i + 8], "little"), i + 8
        elif wt == 2:
            n, i = _varint(b, i)
            if i + n > len(b):
                raise _Malformed("truncated bytes")
            v, i = b[i:i + n], i + n
        elif wt == 5:
            if i + 4 > len(b):
                raise _Malformed("truncated fixed32")
            v, i = int.from_bytes(b[i:i + 4], "little"), i + 4
        else:
            raise _Malformed("unsupported wire type %d" % wt)
        yield num, wt, v


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else ""


def status_details(raw: bytes) -> Details:
    """The details of a serialized google.rpc.Status (empty on any defect)."""
    d = Details()
    if not raw:
        return d
    try:
        for num, wt, v in _fields(raw):
            if num != 3 or wt != 2:  # 3: repeated google.protobuf.Any details
                continue
            type_url, value = "", b""
            for anum, awt, av in _fields(v):
                if anum == 1 and awt == 2:
                    type_url = _text(av)
                elif anum == 2 and awt == 2:
                    value = av
            name = type_url[len(_TYPE_PREFIX):] if type_url.startswith(_TYPE_PREFIX) else type_url
            if name == "google.rpc.ErrorInfo":
                for fnum, fwt, fv in _fields(value):
                    if fnum == 1 and fwt == 2:
                        d.reason = _text(fv)
            elif name == "google.rpc.BadRequest":
                for fnum, fwt, fv in _fields(value):
                    if fnum == 1 and fwt == 2 and not d.field:  # the first FieldViolation
                        for vnum, vwt, vv in _fields(fv):
                            if vnum == 1 and vwt == 2:
                                d.field = _text(vv)
                            elif vnum == 2 and vwt == 2:
                                d.description = _text(vv)
            elif name == "skiff.v1.NotLeader":
                d.not_leader = pb.NotLeader.FromString(value)
            elif name == "skiff.v1.OffsetOutOfRange":
                d.offset_out_of_range = pb.OffsetOutOfRange.FromString(value)
    except Exception:  # noqa: BLE001 - untrusted bytes: no detail rather than a crash
        return Details()
    return d
