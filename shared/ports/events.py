"""Event publisher port: domain events out (Event Grid in Azure).

Backends: ``shared.backends.local_events.LocalEventPublisher`` (an SQLite event log that the
dev host delivers to the app's Event Grid functions) and
``shared.backends.eventgrid_events.EventGridPublisher`` (``azure-eventgrid``, Event Grid schema).
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
    """An event in the local event log."""

    seq: int
    event: EventEnvelope
    delivered: bool


class EventPublisher(Protocol):
    """Publishes events."""

    def publish(self, events: Sequence[EventEnvelope]) -> None:
        """Publish events (at-least-once)."""

    def close(self) -> None:
        """Release resources."""


class EventLog(EventPublisher, Protocol):
    """Embedded backend: the published events can be read back and marked delivered."""

    def pending(self, limit: int = 100) -> list[LoggedEvent]:
        """Events not yet delivered, oldest first."""

    def mark_delivered(self, seq: int) -> None:
        """Mark one event delivered."""

    def all_events(self, limit: int = 1000) -> list[LoggedEvent]:
        """The newest ``limit`` events, oldest first."""
