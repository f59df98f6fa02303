"""Event publisher backend on an SQLite event log (the embedded default).

The dev host reads ``pending()`` events, delivers them to the app's Event Grid functions
and calls ``mark_delivered()``. The log is one SQLite file in WAL mode with one connection
per thread (and per process), so several threads and processes may publish and deliver
at once. Publishing is idempotent on the event id.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any
from uuid import UUID

from shared.backends.sqlite_base import SqliteFile
from shared.errors import InvalidInput
from shared.ports.events import EventEnvelope, LoggedEvent

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS event_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    subject TEXT NOT NULL,
    data TEXT NOT NULL,
    event_time TEXT NOT NULL,
    data_version TEXT NOT NULL,
    topic TEXT NOT NULL DEFAULT '',
    delivered_at TEXT
)""",
    "CREATE INDEX IF NOT EXISTS event_log_pending ON event_log (seq) WHERE delivered_at IS NULL",
)

_COLUMNS = "seq, id, event_type, subject, data, event_time, data_version, topic, delivered_at"


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback: datetimes as ISO 8601 strings, and other common types.

    Raises:
        TypeError: The value has no JSON form.
    """
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    dump = getattr(value, "model_dump", None)  # pydantic models
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dump_data(data: dict[str, Any]) -> str:
    """The event data as compact JSON text.

    Raises:
        InvalidInput: The data cannot be expressed as JSON (including NaN and infinities).
    """
    if not isinstance(data, dict):
        raise InvalidInput(f"event data must be a JSON object, not {type(data).__name__}")
    try:
        return json.dumps(data, default=json_default, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"event data is not JSON serializable: {exc}") from exc


def to_json_data(data: dict[str, Any]) -> dict[str, Any]:
    """The event data as plain JSON types (what a subscriber will receive).

    Raises:
        InvalidInput: The data cannot be expressed as JSON.
    """
    result: dict[str, Any] = json.loads(dump_data(data))
    return result


def utc(moment: datetime) -> datetime:
    """A timezone-aware datetime (naive ones are taken as UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def check_event(event: EventEnvelope) -> None:
    """Reject events Event Grid would reject.

    Raises:
        InvalidInput: The id, type or subject is empty, or the time is not a datetime.
    """
    if not event.id or not event.event_type or not event.subject:
        raise InvalidInput("an event needs a non-empty id, event_type and subject")
    if not isinstance(event.event_time, datetime):
        raise InvalidInput(f"event {event.id}: event_time must be a datetime")


class LocalEventPublisher:
    """``EventLog`` in an SQLite file."""

    def __init__(self, path: Path, *, busy_timeout: float = 30.0) -> None:
        """Open (creating if needed) the event log.

        Args:
            path: The SQLite file.
            busy_timeout: Seconds to wait for another writer's lock.
        """
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = SqliteFile(self.path, owner="LocalEventPublisher", busy_timeout=busy_timeout)
        self._conn = self._db.conn
        self._transaction = self._db.write
        with self._transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    # --- EventLog -------------------------------------------------------------------------

    def publish(self, events: Sequence[EventEnvelope]) -> None:
        """Append events to the log; an id already in the log is not stored again.

        Raises:
            InvalidInput: An event is malformed or its data is not JSON serializable.
        """
        rows = []
        for event in events:
            check_event(event)
            rows.append(
                (
                    event.id,
                    event.event_type,
                    event.subject,
                    dump_data(event.data),
                    utc(event.event_time).isoformat(),
                    event.data_version,
                    event.topic,
                )
            )
        if not rows:
            return
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO event_log (id, event_type, subject, data, event_time, data_version, topic)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                rows,
            )

    @staticmethod
    def _row(row: tuple[Any, ...]) -> LoggedEvent:
        seq, event_id, event_type, subject, data, event_time, data_version, topic, delivered_at = row
        event = EventEnvelope(
            id=event_id,
            event_type=event_type,
            subject=subject,
            data=json.loads(data),
            event_time=datetime.fromisoformat(event_time),
            data_version=data_version,
            topic=topic,
        )
        return LoggedEvent(seq=int(seq), event=event, delivered=delivered_at is not None)

    def pending(self, limit: int = 100) -> list[LoggedEvent]:
        """Events not yet delivered, oldest first."""
        if limit <= 0:
            return []
        rows = self._conn().execute(
            f"SELECT {_COLUMNS} FROM event_log WHERE delivered_at IS NULL ORDER BY seq LIMIT ?", (limit,)
        )
        return [self._row(r) for r in rows.fetchall()]

    def mark_delivered(self, seq: int) -> None:
        """Mark one event delivered (no-op when it already is, or is unknown)."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE event_log SET delivered_at = ? WHERE seq = ? AND delivered_at IS NULL",
                (datetime.now(UTC).isoformat(), seq),
            )

    def all_events(self, limit: int = 1000) -> list[LoggedEvent]:
        """The newest ``limit`` events, oldest first."""
        if limit <= 0:
            return []
        rows = self._conn().execute(
            f"SELECT {_COLUMNS} FROM (SELECT {_COLUMNS} FROM event_log ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            (limit,),
        )
        return [self._row(r) for r in rows.fetchall()]

    def close(self) -> None:
        """Close every connection this instance opened in this process."""
        self._db.close()
