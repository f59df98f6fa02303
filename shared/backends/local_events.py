"""Event publisher backend on an SQLite event log (the embedded default).

The dev host reads ``pending()`` events and routes each to the subscriptions that match it
(``route()``: one row per delivery in ``event_deliveries``), then leases due deliveries
(``claim_deliveries()``), invokes the functions and records each outcome: done, failed
(due again later) or dead-lettered (listed by ``dead_lettered()``). The log is one SQLite file
in WAL mode with one connection per thread (and per process), so several threads and
processes may publish and deliver at once. Publishing is idempotent on the event id.
"""

from __future__ import annotations

import json
import time as _time
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
from shared.ports.events import DeadLetteredEvent, EventDelivery, EventEnvelope, LoggedEvent, PlannedDelivery

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
    """
CREATE TABLE IF NOT EXISTS event_deliveries (
    seq INTEGER NOT NULL,
    subscription TEXT NOT NULL,
    function TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'waiting',
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    due_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    routed_at REAL NOT NULL,
    leased_until REAL,
    last_error TEXT,
    dead_letter_reason TEXT,
    finished_at REAL,
    PRIMARY KEY (seq, subscription)
)""",
    "CREATE INDEX IF NOT EXISTS event_deliveries_due ON event_deliveries (due_at) WHERE state = 'waiting'",
    "CREATE INDEX IF NOT EXISTS event_deliveries_dead ON event_deliveries (finished_at) WHERE state = 'dead'",
)

_COLUMNS = "seq, id, event_type, subject, data, event_time, data_version, topic, delivered_at"
_EVENT_COLUMNS = ", ".join(f"e.{c}" for c in _COLUMNS.split(", "))
_DELIVERY_COLUMNS = "d.subscription, d.function, d.failed_attempts, d.max_attempts, d.expires_at, d.routed_at"


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


def _from_epoch(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


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

    # --- deliveries (the local stand-in for Event Grid's delivery side) ------------------------

    def route(self, seq: int, deliveries: Sequence[PlannedDelivery]) -> None:
        """Create the event's deliveries (due now) and mark it routed, at once and only once.

        When another process routed it first, nothing changes.
        """
        now = _time.time()
        with self._transaction() as conn:
            routed = conn.execute(
                "UPDATE event_log SET delivered_at = ? WHERE seq = ? AND delivered_at IS NULL",
                (datetime.fromtimestamp(now, UTC).isoformat(), seq),
            ).rowcount
            if routed:
                conn.executemany(
                    "INSERT INTO event_deliveries (seq, subscription, function, max_attempts, due_at, expires_at,"
                    " routed_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (seq, subscription) DO NOTHING",
                    [(seq, d.subscription, d.function, d.max_attempts, now, utc(d.expires_at).timestamp(), now)
                     for d in deliveries],
                )  # fmt: skip

    def claim_deliveries(self, limit: int, lease_seconds: float) -> list[EventDelivery]:
        """Lease up to ``limit`` due deliveries, oldest first (a lease that ran out is due again)."""
        if limit <= 0:
            return []
        now = _time.time()
        with self._transaction() as conn:
            rows = conn.execute(
                f"SELECT {_DELIVERY_COLUMNS}, {_EVENT_COLUMNS} FROM event_deliveries d"
                " JOIN event_log e ON e.seq = d.seq WHERE d.state = 'waiting' AND d.due_at <= ?"
                " AND (d.leased_until IS NULL OR d.leased_until <= ?) ORDER BY d.due_at, d.seq LIMIT ?",
                (now, now, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE event_deliveries SET leased_until = ? WHERE seq = ? AND subscription = ?",
                [(now + lease_seconds, row[6], row[0]) for row in rows],
            )
        return [
            EventDelivery(
                seq=row[6], subscription=row[0], function=row[1], event=self._row(row[6:]).event,
                failed_attempts=row[2], max_attempts=row[3], expires_at=_from_epoch(row[4]),
                routed_at=_from_epoch(row[5]),
            )
            for row in rows
        ]  # fmt: skip

    def _finish(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._transaction() as conn:
            conn.execute(sql, params)

    def delivery_succeeded(self, seq: int, subscription: str) -> None:
        """The function handled the event: the delivery is done."""
        self._finish(
            "UPDATE event_deliveries SET state = 'done', leased_until = NULL, finished_at = ?"
            " WHERE seq = ? AND subscription = ? AND state = 'waiting'",
            (_time.time(), seq, subscription),
        )

    def delivery_failed(self, seq: int, subscription: str, error: str, retry_at: datetime) -> None:
        """Count the failed attempt; the delivery is due again at ``retry_at``."""
        self._finish(
            "UPDATE event_deliveries SET failed_attempts = failed_attempts + 1, due_at = ?, leased_until = NULL,"
            " last_error = ? WHERE seq = ? AND subscription = ? AND state = 'waiting'",
            (utc(retry_at).timestamp(), error[:4000], seq, subscription),
        )

    def dead_letter_delivery(
        self, seq: int, subscription: str, reason: str, error: str, *, attempted: bool = True
    ) -> None:
        """Give up on a delivery (``attempted``: an attempt just failed and counts)."""
        self._finish(
            "UPDATE event_deliveries SET state = 'dead', failed_attempts = failed_attempts + ?, leased_until = NULL,"
            " dead_letter_reason = ?, last_error = COALESCE(NULLIF(?, ''), last_error), finished_at = ?"
            " WHERE seq = ? AND subscription = ? AND state = 'waiting'",
            (1 if attempted else 0, reason, error[:4000], _time.time(), seq, subscription),
        )

    def dead_lettered(self, limit: int = 100) -> list[DeadLetteredEvent]:
        """Dead-lettered deliveries, newest first."""
        rows = self._conn().execute(
            f"SELECT {_DELIVERY_COLUMNS}, d.dead_letter_reason, d.last_error, d.finished_at, {_EVENT_COLUMNS}"
            " FROM event_deliveries d JOIN event_log e ON e.seq = d.seq WHERE d.state = 'dead'"
            " ORDER BY d.finished_at DESC, d.seq DESC LIMIT ?",
            (max(0, limit),),
        )
        return [
            DeadLetteredEvent(
                event=self._row(row[9:]).event, subscription=row[0], function=row[1], reason=row[6] or "",
                delivery_attempts=row[2], last_error=row[7] or "", dead_lettered_at=_from_epoch(row[8]),
                routed_at=_from_epoch(row[5]),
            )
            for row in rows.fetchall()
        ]  # fmt: skip

    def next_delivery_at(self) -> datetime | None:
        """When the earliest waiting delivery is due (None when none waits)."""
        row = self._conn().execute("SELECT MIN(due_at) FROM event_deliveries WHERE state = 'waiting'").fetchone()
        return None if row is None or row[0] is None else _from_epoch(row[0])

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
