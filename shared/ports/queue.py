"""Work queue port, shaped like Azure Service Bus.

The *sender* side is used by services on every backend. The *receiver* side
(peek-lock, complete, abandon, dead-letter) exists on the embedded backend only, where the
local dev host plays the part of the Functions host; in Azure the host receives.

Semantics of the embedded backend (``shared.backends.sqlite_queue.SqliteWorkQueue``),
matching Service Bus:
- duplicate detection: a message whose ``message_id`` was sent to the same queue within the
  duplicate-detection window is silently dropped (``send`` returns False);
- scheduled delivery: a message is invisible until ``scheduled_at``;
- peek-lock: ``receive`` locks a message for the lock duration and increments its delivery
  count; ``complete`` removes it; ``abandon`` (or lock expiry) makes it visible again; when
  the delivery count reaches ``max_delivery_count`` it moves to the dead-letter queue with
  reason ``MaxDeliveryCountExceeded``;
- sessions: messages with the same ``session_id`` are delivered in send order, one at a time
  (the next is not handed out while an earlier one is locked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared.errors import HubError


class LockLost(HubError):
    """The lock token is unknown or its lock expired."""

    code = "lock_lost"


@dataclass(frozen=True)
class OutgoingMessage:
    """A message to send."""

    body: bytes
    message_id: str
    session_id: str | None = None
    scheduled_at: datetime | None = None
    content_type: str = "application/json"
    application_properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReceivedMessage:
    """A locked message handed to a receiver."""

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
        the Azure backend always returns True because Service Bus drops silently)."""

    def send_many(self, queue: str, messages: Sequence[OutgoingMessage]) -> int:
        """Send several; returns how many were accepted (not duplicates)."""

    def close(self) -> None:
        """Release resources."""


class ReceivingWorkQueue(WorkQueue, Protocol):
    """Receiver side, embedded backend only (the dev host uses it)."""

    def receive(self, queue: str, *, max_messages: int = 1, lock_seconds: float | None = None) -> list[ReceivedMessage]:
        """Lock and return up to ``max_messages`` visible messages."""

    def complete(self, queue: str, lock_token: str) -> None:
        """Remove a locked message. Raises LockLost."""

    def abandon(self, queue: str, lock_token: str, *, error: str | None = None) -> None:
        """Release the lock; dead-letter when the delivery count is exhausted. Raises LockLost."""

    def dead_letter(self, queue: str, lock_token: str, *, reason: str, description: str = "") -> None:
        """Move a locked message to the dead-letter queue. Raises LockLost."""

    def dead_letters(self, queue: str) -> list[DeadLetteredMessage]:
        """The dead-letter queue's messages, oldest first."""

    def active_count(self, queue: str) -> int:
        """Messages not yet completed or dead-lettered (scheduled ones included)."""
