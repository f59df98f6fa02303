"""Work queue port, shaped like Azure Service Bus.

The *sender* side is used by services on every backend. The *receiver* side
(peek-lock, complete, abandon, dead-letter, renew) exists on the embedded backend only, where
the local dev host plays the part of the Functions host; in Azure the host receives.

Every backend refuses what Service Bus refuses, with :class:`MessageRejected` (checked by
:func:`check_outgoing` before anything is written):

- a ``message_id`` that is empty or longer than :data:`MAX_ID_LENGTH` (128) characters, and a
  ``session_id`` longer than that;
- a message larger than the tier's limit (Standard: 256 KB, the ``IHUB_QUEUE_MAX_MESSAGE_BYTES``
  setting). The size is :func:`message_size`: body, ids, content type and application
  properties, as Service Bus counts them (its AMQP framing adds a little more; see there);
- a message without a session id on a session-enabled queue;
- a send to a dead-letter sub-queue (``<queue>/$DeadLetterQueue``).

Ids that are derived from long keys go through :func:`fit_id`, which always fits.

Semantics of the embedded backend (``shared.backends.sqlite_queue.SqliteWorkQueue``),
matching Service Bus:
- duplicate detection: a message whose ``message_id`` was sent to the same queue within the
  duplicate-detection window is silently dropped (``send`` returns False);
- scheduled delivery: a message is invisible until ``scheduled_at``;
- time to live: a message not received by ``time_to_live`` after it was sent is moved to the
  dead-letter queue (reason ``TTLExpiredException``, as with ``deadLetteringOnMessageExpiration``);
- peek-lock: ``receive`` locks a message for the lock duration and increments its delivery
  count; ``complete`` removes it; ``abandon`` (or lock expiry) makes it visible again;
  ``renew_lock`` extends a held lock; when the delivery count reaches ``max_delivery_count``
  it moves to the dead-letter queue with reason ``MaxDeliveryCountExceeded``;
- sessions: messages with the same ``session_id`` are delivered in send order, one at a time
  (the next is not handed out while an earlier one is locked);
- dead-letter queue: ``<queue>/$DeadLetterQueue`` (:func:`dead_letter_queue_of`) is received
  like any queue (not session-enabled); its messages carry the dead-letter reason and
  description, also as the ``DeadLetterReason`` / ``DeadLetterErrorDescription`` application
  properties, as Service Bus sets them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.errors import HubError, InvalidInput

MAX_ID_LENGTH = 128
"""Service Bus's limit for ``MessageId`` and ``SessionId``, in characters."""

DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
"""Service Bus Standard tier's message size limit (Premium allows up to 100 MB per entity)."""

DEAD_LETTER_SUFFIX = "/$DeadLetterQueue"
"""The dead-letter sub-queue's path suffix, as Service Bus names it."""

DEAD_LETTER_REASON = "DeadLetterReason"
DEAD_LETTER_DESCRIPTION = "DeadLetterErrorDescription"
"""Application properties Service Bus sets on a dead-lettered message."""

_DIGEST_CHARS = 32  # 128-bit BLAKE2b, hex
_SCALARS = (str, int, float, bool)


class LockLost(HubError):
    """The lock token is unknown or its lock expired."""

    code = "lock_lost"


class MessageRejected(InvalidInput):
    """The queue refuses this message, as Service Bus would.

    ``code`` says why: ``message_id_invalid``, ``session_id_too_long``, ``session_id_required``,
    ``message_too_large``, ``invalid_application_property`` or ``dead_letter_queue_send``.
    """

    code = "message_rejected"


def fit_id(key: str, *, limit: int = MAX_ID_LENGTH) -> str:
    """A message or session id for ``key`` that always fits Service Bus's 128 characters.

    A key that fits is returned unchanged. A longer one keeps a readable prefix and ends
    with ``~`` and the 128-bit BLAKE2b digest of the whole key, so distinct keys keep
    distinct ids and the same key always gives the same id (duplicate detection and session
    order depend on that).

    Args:
        key: The natural key, e.g. ``"<tenant>:<integration>"``.
        limit: The length to fit (at least 33).

    Returns:
        ``key`` itself, or ``key[:limit - 33] + "~" + <32 hex digits>``.

    Example:
        >>> fit_id("tenant-a:gh-1")
        'tenant-a:gh-1'
        >>> len(fit_id("t" * 300))
        128
    """
    if limit <= _DIGEST_CHARS:
        raise ValueError(f"limit must be more than {_DIGEST_CHARS} characters")
    if len(key) <= limit:
        return key
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=_DIGEST_CHARS // 2).hexdigest()
    return f"{key[: limit - _DIGEST_CHARS - 1]}~{digest}"


def dead_letter_queue_of(queue: str) -> str:
    """The path of ``queue``'s dead-letter sub-queue (``<queue>/$DeadLetterQueue``)."""
    return queue + DEAD_LETTER_SUFFIX


def split_dead_letter_path(path: str) -> tuple[str, bool]:
    """``(queue, True)`` for ``<queue>/$DeadLetterQueue`` (case-insensitive, as Service Bus), else ``(path, False)``."""
    if path.lower().endswith(DEAD_LETTER_SUFFIX.lower()):
        return path[: -len(DEAD_LETTER_SUFFIX)], True
    return path, False


def _utf8_len(value: object) -> int:
    if isinstance(value, bool):
        return 1
    if isinstance(value, int | float):
        return 8
    return len(str(value).encode("utf-8", "surrogatepass"))


def message_size(message: OutgoingMessage) -> int:
    """The size Service Bus holds against the message size limit, in bytes (approximately).

    Service Bus counts the body plus the system and user properties. This sums the body, the
    UTF-8 lengths of ``message_id``, ``session_id`` and ``content_type``, and for each
    application property its name plus its value (strings by UTF-8 length, numbers as 8
    bytes, booleans as 1). The AMQP encoding adds a few bytes per field that are not counted,
    so code that wants to stay under the limit keeps some headroom (the claim check does).
    """
    size = len(message.body) + _utf8_len(message.message_id) + _utf8_len(message.content_type or "")
    if message.session_id:
        size += _utf8_len(message.session_id)
    for name, value in message.application_properties.items():
        size += _utf8_len(name) + _utf8_len(value)
    return size


def check_outgoing(queue: str, message: OutgoingMessage, *, max_message_bytes: int, requires_session: bool) -> None:
    """Refuse what Service Bus refuses (see the module docstring).

    Args:
        queue: The queue sent to.
        message: The message.
        max_message_bytes: The tier's message size limit.
        requires_session: The queue is session-enabled.

    Raises:
        MessageRejected: The message breaks a limit; the message names the field and the limit.
    """
    where = f"queue {queue!r}"
    if split_dead_letter_path(queue)[1]:
        raise MessageRejected(f"{where}: messages cannot be sent to a dead-letter queue", code="dead_letter_queue_send")
    mid = message.message_id
    if not isinstance(mid, str) or not mid:
        raise MessageRejected(f"{where}: message_id must be a non-empty string", code="message_id_invalid")
    if len(mid) > MAX_ID_LENGTH:
        raise MessageRejected(
            f"{where}: message_id is {len(mid)} characters; Service Bus allows at most {MAX_ID_LENGTH}"
            f" (derive long ids with fit_id): {mid[:40]!r}...",
            code="message_id_invalid",
        )
    sid = message.session_id
    if sid is not None and len(sid) > MAX_ID_LENGTH:
        raise MessageRejected(
            f"{where}: session_id of message {mid!r} is {len(sid)} characters; Service Bus allows at most"
            f" {MAX_ID_LENGTH} (derive long ids with fit_id)",
            code="session_id_too_long",
        )
    if requires_session and not sid:
        raise MessageRejected(
            f"{where} is session-enabled: message {mid!r} must have a session_id", code="session_id_required"
        )
    for name, value in message.application_properties.items():
        if not isinstance(value, _SCALARS):
            raise MessageRejected(
                f"application property {name!r} of message {mid!r} is a {type(value).__name__}:"
                " Service Bus accepts only str, int, float or bool",
                code="invalid_application_property",
            )
    size = message_size(message)
    if size > max_message_bytes:
        raise MessageRejected(
            f"{where}: message {mid!r} is {size} bytes; the limit is {max_message_bytes}"
            " (IHUB_QUEUE_MAX_MESSAGE_BYTES; keep large payloads in Blob Storage as a claim check)",
            code="message_too_large",
        )
    ttl = message.time_to_live
    if ttl is not None and ttl <= timedelta(0):
        raise MessageRejected(f"{where}: time_to_live of message {mid!r} must be positive", code="invalid_ttl")


@dataclass(frozen=True)
class OutgoingMessage:
    """A message to send.

    Attributes:
        body: The payload.
        message_id: Up to 128 characters (see :func:`fit_id`); duplicate detection key.
        session_id: Up to 128 characters; required on session-enabled queues.
        scheduled_at: Invisible until then.
        content_type: MIME type of ``body``.
        application_properties: str/int/float/bool values only.
        time_to_live: Dead-lettered (``TTLExpiredException``) when not received within this.
    """

    body: bytes
    message_id: str
    session_id: str | None = None
    scheduled_at: datetime | None = None
    content_type: str = "application/json"
    application_properties: dict[str, Any] = field(default_factory=dict)
    time_to_live: timedelta | None = None


@dataclass(frozen=True)
class ReceivedMessage:
    """A locked message handed to a receiver.

    ``dead_letter_reason`` and ``dead_letter_error_description`` are set on messages received
    from a dead-letter queue (and are also in ``application_properties``, as Service Bus puts them).
    """

    body: bytes
    message_id: str
    lock_token: str
    delivery_count: int
    enqueued_at: datetime
    locked_until: datetime
    sequence_number: int
    session_id: str | None = None
    scheduled_at: datetime | None = None
    content_type: str = "application/json"
    application_properties: dict[str, Any] = field(default_factory=dict)
    expires_at: datetime | None = None
    dead_letter_reason: str | None = None
    dead_letter_error_description: str | None = None


@dataclass(frozen=True)
class DeadLetteredMessage:
    """A message in the dead-letter queue, with a reason a person can read."""

    body: bytes
    message_id: str
    delivery_count: int
    reason: str
    description: str
    dead_lettered_at: datetime
    session_id: str | None = None


class WorkQueue(Protocol):
    """Sender side of a work queue (all backends)."""

    def send(self, queue: str, message: OutgoingMessage) -> bool:
        """Send one message. Returns False when dropped as a duplicate (embedded backend;
        the Azure backend always returns True because Service Bus drops silently).

        Raises:
            MessageRejected: The message breaks a Service Bus limit (nothing is sent).
        """

    def send_many(self, queue: str, messages: Sequence[OutgoingMessage]) -> int:
        """Send several; returns how many were accepted (not duplicates).

        Raises:
            MessageRejected: A message breaks a Service Bus limit (none is sent).
        """

    def close(self) -> None:
        """Release resources."""


class ReceivingWorkQueue(WorkQueue, Protocol):
    """Receiver side, embedded backend only (the dev host uses it).

    ``queue`` may be a dead-letter path (``<queue>/$DeadLetterQueue``) everywhere below.
    """

    def declare_queue(self, queue: str, *, requires_session: bool) -> None:
        """Say whether ``queue`` is session-enabled (then it refuses messages without a session id)."""

    def receive(
        self,
        queue: str,
        *,
        max_messages: int = 1,
        lock_seconds: float | None = None,
        session_id: str | None = None,
    ) -> list[ReceivedMessage]:
        """Lock and return up to ``max_messages`` visible messages (of one session, if named)."""

    def complete(self, queue: str, lock_token: str) -> None:
        """Remove a locked message. Raises LockLost."""

    def abandon(self, queue: str, lock_token: str, *, error: str | None = None) -> None:
        """Release the lock; dead-letter when the delivery count is exhausted. Raises LockLost."""

    def dead_letter(self, queue: str, lock_token: str, *, reason: str, description: str = "") -> None:
        """Move a locked message to the dead-letter queue. Raises LockLost."""

    def renew_lock(self, queue: str, lock_token: str, *, lock_seconds: float | None = None) -> datetime:
        """Extend a held lock; returns the new ``locked_until``. Raises LockLost."""

    def dead_letters(self, queue: str) -> list[DeadLetteredMessage]:
        """The dead-letter queue's messages, oldest first."""

    def active_count(self, queue: str) -> int:
        """Messages not yet completed or dead-lettered (scheduled ones included)."""

    def subscribe(self, queue: str, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` when this process sends to or settles on ``queue``; returns an unsubscribe.

        Only changes made in this process call it; other processes' changes are seen by the
        receiver's next poll (keep the interval short).
        """
