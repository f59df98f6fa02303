"""Embedded work queue in a SQLite file, with Azure Service Bus semantics.

Peek-lock, delivery count, dead-lettering (``MaxDeliveryCountExceeded``), scheduled delivery,
duplicate detection by ``message_id`` and session FIFO, as described in
:mod:`shared.ports.queue`. The file may be shared by threads (one connection each) and by
processes (WAL): a process killed while it holds a lock simply lets the lock expire, and the
message is delivered again to whoever receives next.

A session's next message is its lowest-sequence *visible* message (a scheduled message enters
the session when its time comes, like in Service Bus), and none is handed out while another
message of the same session is locked.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.backends.sqlite_base import SqliteFile, transaction
from shared.errors import InvalidInput
from shared.ports.queue import DeadLetteredMessage, LockLost, OutgoingMessage, ReceivedMessage

MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"
_PRUNE_EVERY_SENDS = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, message_id TEXT NOT NULL, session_id TEXT,
    body BLOB NOT NULL, content_type TEXT NOT NULL, props TEXT NOT NULL, enqueued_at REAL NOT NULL,
    visible_at REAL NOT NULL, scheduled_at REAL, lock_token TEXT, locked_until REAL,
    delivery_count INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'active',
    dl_reason TEXT, dl_description TEXT, dead_lettered_at REAL
);
-- (queue, state) entries are ordered by rowid = seq: receive walks them in send order.
CREATE INDEX IF NOT EXISTS ix_messages_queue_state ON messages (queue, state);
-- Partial indexes stay small (locked messages only) and cost nothing on send.
CREATE INDEX IF NOT EXISTS ix_messages_locked ON messages (queue, locked_until) WHERE locked_until IS NOT NULL;
CREATE INDEX IF NOT EXISTS ix_messages_lock_token ON messages (lock_token) WHERE lock_token IS NOT NULL;
-- Message ids seen within the duplicate-detection window (pruned every _PRUNE_EVERY_SENDS sends).
CREATE TABLE IF NOT EXISTS duplicate_ids (
    queue TEXT NOT NULL, message_id TEXT NOT NULL, sent_at REAL NOT NULL, PRIMARY KEY (queue, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_duplicate_ids_sent ON duplicate_ids (sent_at);
"""

# Inserts a new id, or refreshes one whose window expired; changes nothing (rowcount 0) for a duplicate.
_INSERT_DUP = (
    "INSERT INTO duplicate_ids (queue, message_id, sent_at) VALUES (?, ?, ?)"
    " ON CONFLICT (queue, message_id) DO UPDATE SET sent_at = excluded.sent_at WHERE sent_at <= ?"
)
_INSERT_MSG = (
    "INSERT INTO messages (queue, message_id, session_id, body, content_type, props, enqueued_at,"
    " visible_at, scheduled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_MSG_COLS = (
    "seq, message_id, session_id, body, content_type, props, enqueued_at, scheduled_at,"
    " lock_token, locked_until, delivery_count"
)
_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class PeekedMessage:
    """An active message seen without locking it (admin and tests)."""

    body: bytes
    message_id: str
    sequence_number: int
    enqueued_at: datetime
    delivery_count: int
    session_id: str | None = None
    scheduled_at: datetime | None = None
    locked_until: datetime | None = None
    content_type: str = "application/json"
    application_properties: dict[str, Any] = field(default_factory=dict)


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def _opt_dt(value: float | None) -> datetime | None:
    return None if value is None else _dt(value)


def _epoch(value: datetime) -> float:
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).timestamp()


def _fields(r: tuple[Any, ...]) -> dict[str, Any]:
    """Fields common to received and peeked messages, from a row of ``_MSG_COLS``."""
    return {
        "body": r[3], "message_id": r[1], "sequence_number": r[0], "enqueued_at": _dt(r[6]),
        "delivery_count": r[10], "session_id": r[2], "scheduled_at": _opt_dt(r[7]), "content_type": r[4],
        "application_properties": json.loads(r[5]),
    }  # fmt: skip


def _props_json(message: OutgoingMessage) -> str:
    props = message.application_properties
    if not props:
        return "{}"
    for key, value in props.items():
        if not isinstance(value, _SCALARS):
            raise InvalidInput(
                f"application property {key!r} of message {message.message_id!r} is a {type(value).__name__}:"
                " Service Bus accepts only str, int, float or bool",
                code="invalid_message",
            )
    return json.dumps(props)


class SqliteWorkQueue:
    """The embedded work queue (sender and receiver sides).

    Args:
        path: The SQLite file (created with its parent folders).
        lock_seconds: Default peek-lock duration.
        max_delivery_count: Deliveries after which a message is dead-lettered.
        duplicate_window_seconds: Duplicate-detection window per queue (0 disables it).
        clock: Seconds since the epoch; injectable for tests.
    """

    def __init__(
        self,
        path: Path,
        *,
        lock_seconds: float = 30.0,
        max_delivery_count: int = 10,
        duplicate_window_seconds: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lock_seconds <= 0 or max_delivery_count < 1 or duplicate_window_seconds < 0:
            raise ValueError("lock_seconds must be > 0, max_delivery_count >= 1, duplicate_window_seconds >= 0")
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_seconds = lock_seconds
        self._max_deliveries = max_delivery_count
        self._window = duplicate_window_seconds
        self._clock = clock
        self._db = SqliteFile(self._path, owner="SqliteWorkQueue", pragmas=("wal_autocheckpoint=4000",))
        self._conn = self._db.conn
        self._sends = _PRUNE_EVERY_SENDS
        conn = self._conn()
        conn.executescript(_SCHEMA)
        self._count_sends(conn, 0, self._clock())

    _write = staticmethod(transaction)

    # --- sender side -------------------------------------------------------------------

    def send(self, queue: str, message: OutgoingMessage) -> bool:
        """Send one message.

        Returns:
            False when dropped as a duplicate (same ``message_id`` on this queue within the
            duplicate-detection window), else True.

        Raises:
            InvalidInput: An application property is not a str, int, float or bool.
        """
        props = _props_json(message)  # validate before taking the write lock
        conn = self._conn()
        now = self._clock()
        conn.execute("BEGIN IMMEDIATE")
        try:
            accepted = self._insert(conn, queue, message, props, now)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._count_sends(conn, 1, now)
        return accepted

    def send_many(self, queue: str, messages: Sequence[OutgoingMessage]) -> int:
        """Send several messages in one transaction.

        Returns:
            How many were accepted (not duplicates).
        """
        props = [_props_json(m) for m in messages]
        if not props:
            return 0
        conn = self._conn()
        now = self._clock()
        with self._write(conn):
            accepted = sum(self._insert(conn, queue, m, p, now) for m, p in zip(messages, props, strict=True))
        self._count_sends(conn, len(props), now)
        return accepted

    def _insert(self, conn: sqlite3.Connection, queue: str, m: OutgoingMessage, props: str, now: float) -> bool:
        if self._window > 0 and conn.execute(_INSERT_DUP, (queue, m.message_id, now, now - self._window)).rowcount == 0:
            return False  # seen within the window: dropped silently, like Service Bus
        scheduled = None if m.scheduled_at is None else _epoch(m.scheduled_at)
        visible = now if scheduled is None or scheduled < now else scheduled
        values = (queue, m.message_id, m.session_id, m.body, m.content_type, props, now, visible, scheduled)
        conn.execute(_INSERT_MSG, values)
        return True

    def _count_sends(self, conn: sqlite3.Connection, n: int, now: float) -> None:
        """Every _PRUNE_EVERY_SENDS sends, forget message ids older than the duplicate-detection window."""
        self._sends += n
        if self._sends >= _PRUNE_EVERY_SENDS:
            self._sends = 0
            conn.execute("DELETE FROM duplicate_ids WHERE sent_at <= ?", (now - self._window,))

    # --- receiver side -----------------------------------------------------------------

    def receive(self, queue: str, *, max_messages: int = 1, lock_seconds: float | None = None) -> list[ReceivedMessage]:
        """Lock and return up to ``max_messages`` visible messages, in send order.

        Messages whose lock expired after their last allowed delivery are dead-lettered
        (``MaxDeliveryCountExceeded``) instead of being delivered again.

        Args:
            queue: Queue name.
            max_messages: Upper bound of messages returned.
            lock_seconds: Lock duration (default: the queue's).
        """
        lock_for = self._lock_seconds if lock_seconds is None else lock_seconds
        if lock_for <= 0:
            raise ValueError("lock_seconds must be > 0")
        if max_messages < 1:
            return []
        conn = self._conn()
        now = self._clock()
        received: list[ReceivedMessage] = []
        with self._write(conn):
            self._dead_letter_exhausted(conn, queue, now)
            for seq in self._pick(conn, queue, now, max_messages):
                row = conn.execute(
                    f"UPDATE messages SET lock_token = ?, locked_until = ?, delivery_count = delivery_count + 1"
                    f" WHERE seq = ? RETURNING {_MSG_COLS}",
                    (str(uuid.uuid4()), now + lock_for, seq),
                ).fetchall()[0]
                received.append(ReceivedMessage(**_fields(row), lock_token=row[8], locked_until=_dt(row[9])))
        return received

    def _pick(self, conn: sqlite3.Connection, queue: str, now: float, limit: int) -> list[int]:
        """Sequence numbers of deliverable messages: unlocked, visible, heads of unlocked sessions."""
        locked_sessions = (
            "SELECT session_id FROM messages WHERE queue = ? AND locked_until > ? AND session_id IS NOT NULL"
            " AND state = 'active'"
        )
        excluded = {r[0] for r in conn.execute(locked_sessions, (queue, now))}
        picked: list[int] = []
        after = 0
        while len(picked) < limit:
            want = limit - len(picked)
            rows = conn.execute(
                "SELECT seq, session_id FROM messages WHERE queue = ? AND state = 'active' AND seq > ?"
                " AND visible_at <= ? AND (locked_until IS NULL OR locked_until <= ?)"
                " AND (session_id IS NULL OR session_id NOT IN (SELECT value FROM json_each(?)))"
                " ORDER BY seq LIMIT ?",
                (queue, after, now, now, json.dumps(sorted(excluded)), want),
            ).fetchall()
            for seq, session_id in rows:
                if session_id is not None:
                    if session_id in excluded:
                        continue  # a later message of a session picked in this batch
                    excluded.add(session_id)
                picked.append(seq)
            if len(rows) < want:
                break
            after = rows[-1][0]
        return picked

    def _dead_letter_exhausted(self, conn: sqlite3.Connection, queue: str, now: float) -> int:
        """Dead-letter messages whose lock expired on their last allowed delivery."""
        return conn.execute(
            "UPDATE messages SET state = 'dead', lock_token = NULL, locked_until = NULL, dl_reason = ?,"
            " dl_description = 'Message could not be consumed after ' || delivery_count || ' delivery attempts.'"
            " || ' The last lock expired without the message being settled (the receiver crashed or timed out).',"
            " dead_lettered_at = ?"
            " WHERE queue = ? AND locked_until <= ? AND delivery_count >= ? AND state = 'active'",
            (MAX_DELIVERY_COUNT_EXCEEDED, now, queue, now, self._max_deliveries),
        ).rowcount

    def _sweep(self, queue: str) -> sqlite3.Connection:
        """Apply lock expiry dead-lettering before a read, taking the write lock only if needed."""
        conn = self._conn()
        now = self._clock()
        if conn.execute(
            "SELECT 1 FROM messages WHERE queue = ? AND locked_until <= ? AND delivery_count >= ?"
            " AND state = 'active' LIMIT 1",
            (queue, now, self._max_deliveries),
        ).fetchone():
            with self._write(conn):
                self._dead_letter_exhausted(conn, queue, now)
        return conn

    def complete(self, queue: str, lock_token: str) -> None:
        """Remove a locked message.

        Raises:
            LockLost: The token is unknown or its lock expired.
        """
        self._settle(
            queue,
            lock_token,
            "DELETE FROM messages WHERE lock_token = ? AND queue = ? AND state = 'active' AND locked_until > ?",
            (lock_token, queue, self._clock()),
        )

    def _settle(self, queue: str, lock_token: str, sql: str, params: Sequence[Any] | dict[str, Any]) -> None:
        """Run a statement that settles one locked message; LockLost when it matched none."""
        if self._conn().execute(sql, params).rowcount == 0:
            raise LockLost(f"lock {lock_token} on queue {queue!r} is unknown or expired")

    def abandon(self, queue: str, lock_token: str, *, error: str | None = None) -> None:
        """Release the lock so the message is delivered again, or dead-letter it when this was
        its last allowed delivery (reason ``MaxDeliveryCountExceeded``, ``error`` in the description).

        Raises:
            LockLost: The token is unknown or its lock expired.
        """
        last_error = f" Last error: {error}" if error else ""
        self._settle(
            queue,
            lock_token,
            "UPDATE messages SET lock_token = NULL, locked_until = NULL,"
            " state = CASE WHEN delivery_count >= :max THEN 'dead' ELSE 'active' END,"
            " dl_reason = CASE WHEN delivery_count >= :max THEN :reason END,"
            " dl_description = CASE WHEN delivery_count >= :max THEN"
            "   'Message could not be consumed after ' || delivery_count || ' delivery attempts.' || :err END,"
            " dead_lettered_at = CASE WHEN delivery_count >= :max THEN :now END"
            " WHERE lock_token = :token AND queue = :queue AND state = 'active' AND locked_until > :now",
            {"max": self._max_deliveries, "reason": MAX_DELIVERY_COUNT_EXCEEDED, "err": last_error,
             "now": self._clock(), "token": lock_token, "queue": queue},
        )  # fmt: skip

    def dead_letter(self, queue: str, lock_token: str, *, reason: str, description: str = "") -> None:
        """Move a locked message to the dead-letter queue with a reason a person can read.

        Raises:
            LockLost: The token is unknown or its lock expired.
        """
        now = self._clock()
        self._settle(
            queue,
            lock_token,
            "UPDATE messages SET state = 'dead', lock_token = NULL, locked_until = NULL, dl_reason = ?,"
            " dl_description = ?, dead_lettered_at = ? WHERE lock_token = ? AND queue = ? AND state = 'active'"
            " AND locked_until > ?",
            (reason, description, now, lock_token, queue, now),
        )

    def dead_letters(self, queue: str) -> list[DeadLetteredMessage]:
        """The dead-letter queue of ``queue``, oldest first."""
        rows = (
            self._sweep(queue)
            .execute(
                "SELECT body, message_id, delivery_count, dl_reason, dl_description, dead_lettered_at, session_id"
                " FROM messages WHERE queue = ? AND state = 'dead' ORDER BY dead_lettered_at, seq",
                (queue,),
            )
            .fetchall()
        )
        return [
            DeadLetteredMessage(body=r[0], message_id=r[1], delivery_count=r[2], reason=r[3] or "",
                                description=r[4] or "", dead_lettered_at=_dt(r[5]), session_id=r[6])
            for r in rows
        ]  # fmt: skip

    def active_count(self, queue: str) -> int:
        """Messages not completed or dead-lettered (scheduled and locked ones included)."""
        row = (
            self._sweep(queue)
            .execute("SELECT COUNT(*) FROM messages WHERE queue = ? AND state = 'active'", (queue,))
            .fetchone()
        )
        return int(row[0])

    # --- admin helpers (not part of the port) ----------------------------------------------

    def peek(self, queue: str, *, max_messages: int | None = None) -> list[PeekedMessage]:
        """Active messages in send order, without locking them or counting a delivery."""
        rows = (
            self._sweep(queue)
            .execute(
                f"SELECT {_MSG_COLS} FROM messages WHERE queue = ? AND state = 'active' ORDER BY seq LIMIT ?",
                (queue, -1 if max_messages is None else max_messages),
            )
            .fetchall()
        )
        now = self._clock()
        return [PeekedMessage(**_fields(r), locked_until=_dt(r[9]) if r[9] and r[9] > now else None) for r in rows]

    def purge(self, queue: str) -> int:
        """Delete every message of ``queue`` (active and dead-lettered) and its duplicate-detection
        history. Returns how many messages were deleted."""
        conn = self._conn()
        with self._write(conn):
            deleted = conn.execute("DELETE FROM messages WHERE queue = ?", (queue,)).rowcount
            conn.execute("DELETE FROM duplicate_ids WHERE queue = ?", (queue,))
        return deleted

    def close(self) -> None:
        """Close every connection this queue opened (in any thread)."""
        self._db.close()

    def __repr__(self) -> str:
        return f"SqliteWorkQueue({str(self._path)!r})"
