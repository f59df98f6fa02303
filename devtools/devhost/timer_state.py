"""Timer state shared by every dev host using one data directory (an SQLite file).

Two things the Functions host keeps in storage for timer triggers:

- a **singleton lease** per timer function (the host's listener lock): only the host holding
  it runs that function's schedule; it renews the lease while running and releases it on stop,
  and another host takes over once it expires (a host killed with ``kill -9``);
- the **schedule monitor status** (``useMonitor``): ``Last`` and ``Next`` occurrences per
  function. A host starting after ``Next`` has passed fires once with ``past_due`` true.

Each occurrence is also claimed atomically before it runs (``Last`` only moves forward), so an
occurrence fires once even at the moment a lease changes hands.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["TimerStateStore", "TimerStatus"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS timer_status (
    function TEXT PRIMARY KEY,
    schedule TEXT,
    last TEXT,
    next TEXT,
    last_updated TEXT,
    owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0
)
"""


@dataclass(frozen=True)
class TimerStatus:
    """The monitor status of one timer function (UTC ISO-8601 occurrences)."""

    schedule: str | None
    last: datetime | None
    next: datetime | None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime) -> str:
    """One fixed-width UTC format, so stored occurrences compare correctly as text."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


class TimerStateStore:
    """Leases and monitor status of timer functions, in ``<data dir>/devhost-timers.sqlite``.

    Args:
        path: The SQLite file (created with its folder).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._time = time.time

    def acquire(self, function: str, owner: str, lease_seconds: float) -> bool:
        """Take or renew the singleton lease of a timer function.

        Args:
            function: The timer function's name.
            owner: This host's id.
            lease_seconds: How long the lease lasts without renewal.

        Returns:
            True when ``owner`` holds the lease now.
        """
        now = self._time()
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO timer_status (function) VALUES (?)", (function,))
            cursor = self._db.execute(
                "UPDATE timer_status SET owner = ?, lease_until = ? "
                "WHERE function = ? AND (owner IS NULL OR owner = ? OR lease_until < ?)",
                (owner, now + lease_seconds, function, owner, now),
            )
            return cursor.rowcount == 1

    def release(self, function: str, owner: str) -> None:
        """Give up the lease (on a graceful stop), so another host takes over at once."""
        with self._lock:
            self._db.execute(
                "UPDATE timer_status SET owner = NULL, lease_until = 0 WHERE function = ? AND owner = ?",
                (function, owner),
            )

    def status(self, function: str) -> TimerStatus | None:
        """The recorded monitor status, or None before the first record."""
        with self._lock:
            row = self._db.execute(
                "SELECT schedule, last, next FROM timer_status WHERE function = ?", (function,)
            ).fetchone()
        if row is None or row[2] is None:
            return None
        return TimerStatus(row[0], _parse(row[1]), _parse(row[2]))

    def record_next(self, function: str, owner: str, schedule: str, upcoming: datetime) -> None:
        """Record the next occurrence (and the schedule it came from) without a run."""
        with self._lock:
            self._db.execute(
                "UPDATE timer_status SET schedule = ?, next = ?, last_updated = ? WHERE function = ? AND owner = ?",
                (schedule, _iso(upcoming), _iso(datetime.fromtimestamp(self._time(), UTC)), function, owner),
            )

    def claim(self, function: str, owner: str, schedule: str, occurrence: datetime, upcoming: datetime) -> bool:
        """Claim an occurrence before running it: True for exactly one claimant per occurrence.

        Args:
            function: The timer function's name.
            owner: This host's id (must hold an unexpired lease).
            schedule: The expression in force.
            occurrence: The occurrence about to run.
            upcoming: The occurrence after it (recorded as ``Next``).

        Returns:
            True when this host may run the occurrence.
        """
        now = self._time()
        with self._lock:
            cursor = self._db.execute(
                "UPDATE timer_status SET schedule = ?, last = ?, next = ?, last_updated = ? "
                "WHERE function = ? AND owner = ? AND lease_until >= ? AND (last IS NULL OR last < ?)",
                (
                    schedule,
                    _iso(occurrence),
                    _iso(upcoming),
                    _iso(datetime.fromtimestamp(now, UTC)),
                    function,
                    owner,
                    now,
                    _iso(occurrence),
                ),
            )
            return cursor.rowcount == 1

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()
