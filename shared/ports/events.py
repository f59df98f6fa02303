"""Event publisher port: domain events out (Event Grid in Azure).

Backends: ``shared.backends.local_events.LocalEventPublisher`` (an SQLite event log that the
dev host delivers to the app's Event Grid functions) and
``shared.backends.eventgrid_events.EventGridPublisher`` (``azure-eventgrid``, Event Grid schema).

The embedded backend is also the local stand-in for Event Grid's delivery side
(:class:`EventLog`): the dev host *routes* each new event to the subscriptions that match it
(one delivery each, or none), then delivers, retries with backoff and finally dead-letters each
delivery on its own, as Event Grid does per subscription. Deliveries are leased while they run,
so two dev hosts on one data folder do not deliver the same attempt twice, and a crashed host's
attempt is retried when its lease ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class EventEnvelope:
    """One event in Event Grid schema terms."""

    id: str
    event_type: str
    subject: str
    data: dict[str, Any]
    event_time: datetime
    data_version: str = "1.0"
    topic: str = ""


@dataclass(frozen=True)
class LoggedEvent:
    """An event in the local event log (``delivered``: routed to its subscriptions)."""

    seq: int
    event: EventEnvelope
    delivered: bool


@dataclass(frozen=True)
class PlannedDelivery:
    """A delivery of one event to one subscription, created when the event is routed.

    Attributes:
        subscription: The subscription's name.
        function: The function it delivers to.
        max_attempts: Attempts before the delivery is dead-lettered.
        expires_at: When it is dead-lettered if still undelivered (the event's time to live).
    """

    subscription: str
    function: str
    max_attempts: int
    expires_at: datetime


@dataclass(frozen=True)
class EventDelivery:
    """A delivery due now, leased to the caller until it reports the outcome."""

    seq: int
    subscription: str
    function: str
    event: EventEnvelope
    failed_attempts: int
    max_attempts: int
    expires_at: datetime
    routed_at: datetime


@dataclass(frozen=True)
class DeadLetteredEvent:
    """An event a subscription gave up on, with Event Grid's dead-letter fields."""

    event: EventEnvelope
    subscription: str
    function: str
    reason: str
    delivery_attempts: int
    last_error: str
    dead_lettered_at: datetime
    routed_at: datetime


class EventPublisher(Protocol):
    """Publishes events."""

    def publish(self, events: Sequence[EventEnvelope]) -> None:
        """Publish events (at-least-once)."""

    def close(self) -> None:
        """Release resources."""


class EventLog(EventPublisher, Protocol):
    """Embedded backend: the published events, their routing and their deliveries."""

    def pending(self, limit: int = 100) -> list[LoggedEvent]:
        """Events not yet routed, oldest first."""

    def mark_delivered(self, seq: int) -> None:
        """Mark one event routed, with no delivery (no subscription wants it)."""

    def route(self, seq: int, deliveries: Sequence[PlannedDelivery]) -> None:
        """Create the event's deliveries (due now) and mark it routed, at once and only once."""

    def claim_deliveries(self, limit: int, lease_seconds: float) -> list[EventDelivery]:
        """Lease up to ``limit`` deliveries that are due, oldest first."""

    def delivery_succeeded(self, seq: int, subscription: str) -> None:
        """The function handled the event: the delivery is done."""

    def delivery_failed(self, seq: int, subscription: str, error: str, retry_at: datetime) -> None:
        """The attempt failed: count it and make the delivery due again at ``retry_at``."""

    def dead_letter_delivery(
        self, seq: int, subscription: str, reason: str, error: str, *, attempted: bool = True
    ) -> None:
        """Give up on a delivery; it is then listed by :meth:`dead_lettered`.

        ``attempted``: an attempt just failed (it is counted); False when the time to live ran
        out before another attempt (``error`` may then be empty: the last attempt's error is kept).
        """

    def dead_lettered(self, limit: int = 100) -> list[DeadLetteredEvent]:
        """Dead-lettered deliveries, newest first."""

    def next_delivery_at(self) -> datetime | None:
        """When the earliest waiting delivery is due (None when none waits)."""

    def all_events(self, limit: int = 1000) -> list[LoggedEvent]:
        """The newest ``limit`` events, oldest first."""
