"""Typed errors, built from the gRPC status and the details the broker sends.

The broker answers every failure with a gRPC status code and, where the code
alone is ambiguous, an ``ErrorInfo`` detail (domain ``skiff``) whose reason
says which error it is, a ``BadRequest`` detail naming the invalid field, or
Skiff's own ``NotLeader`` and ``OffsetOutOfRange`` details. The same
vocabulary as the Go client's ``client.Err...`` values.
"""

from __future__ import annotations

from typing import Optional

import grpc

from . import _wire

__all__ = [
    "SkiffError",
    "TopicFullError",
    "DiskFullError",
    "NotLeaderError",
    "TopicNotFoundError",
    "TopicExistsError",
    "GroupNotFoundError",
    "InvalidArgumentError",
    "AuthenticationError",
    "AuthorizationError",
    "UnavailableError",
    "NotCoordinatorError",
    "UnknownMemberError",
    "FencedMemberEpochError",
    "NotAssignedError",
    "GroupNotEmptyError",
    "OffsetOutOfRangeError",
    "OutOfOrderSequenceError",
    "ProducerFencedError",
    "IndeterminateError",
    "RecordTooLargeError",
    "ThrottledError",
    "LimitExceededError",
    "InternalTopicError",
    "NotHeldError",
    "LockExpiredError",
    "UnknownRecordError",
    "GroupPausedError",
    "RequestTimeoutError",
    "ClosedError",
]


class SkiffError(Exception):
    """Every error the client raises. ``code`` is the gRPC status code
    (None for errors raised by the client itself), ``reason`` the broker's
    ErrorInfo reason when it sent one."""

    retriable = False

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None, reason: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason


class NotLeaderError(SkiffError):
    """The broker asked does not lead the partition. The client retries at
    the leader the error names; callers see it only when retries run out."""

    retriable = True

    def __init__(self, message, code=None, reason="", leader_id="", leader_addr=""):
        super().__init__(message, code, reason)
        self.leader_id = leader_id
        self.leader_addr = leader_addr


class TopicNotFoundError(SkiffError):
    pass


class TopicExistsError(SkiffError):
    pass


class GroupNotFoundError(SkiffError):
    pass


class InvalidArgumentError(SkiffError):
    """A request field the broker refused; ``field`` names it when known."""

    def __init__(self, message, code=None, reason="", field=""):
        super().__init__(message, code, reason)
        self.field = field


class AuthenticationError(SkiffError):
    """No identity, or a wrong user or password."""


class AuthorizationError(SkiffError):
    """The principal may not do this (an ACL, or an internal topic)."""


class UnavailableError(SkiffError):
    retriable = True


class NotCoordinatorError(SkiffError):
    retriable = True


class UnknownMemberError(SkiffError):
    pass


class FencedMemberEpochError(SkiffError):
    pass


class NotAssignedError(SkiffError):
    pass


class GroupNotEmptyError(SkiffError):
    pass


class OffsetOutOfRangeError(SkiffError):
    def __init__(self, message, code=None, reason="", offset=-1, log_start_offset=-1, high_watermark=-1):
        super().__init__(message, code, reason)
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.high_watermark = high_watermark


class OutOfOrderSequenceError(SkiffError):
    pass


class ProducerFencedError(SkiffError):
    pass


class IndeterminateError(SkiffError):
    """The outcome is unknown (the broker lost track mid-write): the
    request may or may not have been applied. Only an idempotent producer
    retries it by itself."""


class RecordTooLargeError(SkiffError):
    pass


class ThrottledError(SkiffError):
    retriable = True


class LimitExceededError(SkiffError):
    pass


class InternalTopicError(AuthorizationError):
    pass


class DiskFullError(SkiffError):
    """The partition's leader is short of disk space; it hands its
    leaderships to other nodes, so a retry after a metadata refresh
    usually succeeds."""
    retriable = True


class TopicFullError(SkiffError):
    """A bounded topic (max.messages or max.bytes with
    overflow.policy=reject) refused the batch; nothing was written.
    Consume, or raise the bound, before producing again."""


class NotHeldError(SkiffError):
    """A share ack for a record this member does not hold."""


class LockExpiredError(SkiffError):
    pass


class UnknownRecordError(SkiffError):
    pass


class GroupPausedError(SkiffError):
    pass


class RequestTimeoutError(SkiffError, TimeoutError):
    retriable = True


class ClosedError(SkiffError):
    pass


_BY_REASON = {
    "NOT_HELD": NotHeldError,
    "LOCK_EXPIRED": LockExpiredError,
    "UNKNOWN_RECORD": UnknownRecordError,
    "GROUP_PAUSED": GroupPausedError,
    "INTERNAL_TOPIC": InternalTopicError,
    "LIMIT_EXCEEDED": LimitExceededError,
    "TOPIC_FULL": TopicFullError,
    "DISK_FULL": DiskFullError,
    "NOT_COORDINATOR": NotCoordinatorError,
    "UNKNOWN_MEMBER": UnknownMemberError,
    "FENCED_MEMBER_EPOCH": FencedMemberEpochError,
    "NOT_ASSIGNED": NotAssignedError,
    "GROUP_NOT_EMPTY": GroupNotEmptyError,
    "GROUP_NOT_FOUND": GroupNotFoundError,
    "OUT_OF_ORDER_SEQUENCE": OutOfOrderSequenceError,
    "PRODUCER_FENCED": ProducerFencedError,
}

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def share_reason_error(reason: str, message: str) -> Optional[SkiffError]:
    """The error of a per-record share ack result, or None when applied."""
    if not reason:
        return None
    cls = _BY_REASON.get(reason, SkiffError)
    return cls(message or reason, None, reason)


def from_rpc_error(err: grpc.RpcError) -> SkiffError:
    """Translate a failed call into the typed error it stands for."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    message = (err.details() if hasattr(err, "details") else str(err)) or str(code)
    details = b""
    try:
        for key, value in err.trailing_metadata() or ():
            if key == _STATUS_DETAILS_KEY:
                details = value
    except Exception:  # a locally failed call may have no trailers
        details = b""
    return from_status(code, message, _wire.status_details(details))


def from_status(code, message: str, details: "_wire.Details") -> SkiffError:
    reason = details.reason
    if reason in ("NOT_HELD", "LOCK_EXPIRED", "UNKNOWN_RECORD", "GROUP_PAUSED", "INTERNAL_TOPIC", "LIMIT_EXCEEDED", "TOPIC_FULL", "DISK_FULL"):
        return _BY_REASON[reason](message, code, reason)
    C = grpc.StatusCode
    if code == C.UNAUTHENTICATED:
        return AuthenticationError(message, code, reason)
    if code == C.PERMISSION_DENIED:
        return AuthorizationError(message, code, reason)
    if code == C.NOT_FOUND:
        if reason == "GROUP_NOT_FOUND":
            return GroupNotFoundError(message, code, reason)
        if reason == "UNKNOWN_USER":
            return SkiffError(message, code, reason)
        return TopicNotFoundError(message, code, reason)
    if code == C.ALREADY_EXISTS:
        if reason == "USER_EXISTS":
            return SkiffError(message, code, reason)
        return TopicExistsError(message, code, reason)
    if code == C.INVALID_ARGUMENT:
        return InvalidArgumentError(message, code, reason, field=details.field)
    if code == C.FAILED_PRECONDITION:
        if details.not_leader is not None:
            nl = details.not_leader
            return NotLeaderError(message, code, reason, leader_id=nl.leader_id, leader_addr=nl.leader_addr)
        if reason in _BY_REASON:
            return _BY_REASON[reason](message, code, reason)
        return ProducerFencedError(message, code, reason)
    if code == C.OUT_OF_RANGE:
        if details.offset_out_of_range is not None:
            o = details.offset_out_of_range
            return OffsetOutOfRangeError(message, code, reason, offset=o.offset,
                                         log_start_offset=o.log_start_offset, high_watermark=o.high_watermark)
        return OutOfOrderSequenceError(message, code, reason)
    if code == C.ABORTED:
        return IndeterminateError(message, code, reason)
    if code == C.UNAVAILABLE:
        return UnavailableError("unavailable: " + message, code, reason)
    if code == C.DEADLINE_EXCEEDED:
        return RequestTimeoutError(message, code, reason)
    if code == C.RESOURCE_EXHAUSTED:
        if "larger than max" in message or "too large" in message:
            return RecordTooLargeError(message, code, reason)
        return ThrottledError(message, code, reason)
    if code == C.CANCELLED:
        return ClosedError(message, code, reason)
    return SkiffError(message, code, reason)

