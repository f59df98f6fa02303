"""SQL and row mapping of the embedded work queue (:mod:`shared.backends.sqlite_queue`).

Schema (with the in-place upgrade of files written by earlier versions), the statements the
queue runs, and how a row becomes a :class:`~shared.ports.queue.ReceivedMessage` or a
:class:`PeekedMessage`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.ports.queue import DEAD_LETTER_DESCRIPTION, DEAD_LETTER_REASON, ReceivedMessage

SCHEMA = """
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
-- Each session's messages in send order: the session heads are found by seeking, not scanning.
CREATE INDEX IF NOT EXISTS ix_messages_session ON messages (queue, session_id, seq) WHERE state = 'active';
-- Message ids seen within the duplicate-detection window (pruned every _PRUNE_EVERY_SENDS sends).
CREATE TABLE IF NOT EXISTS duplicate_ids (
    queue TEXT NOT NULL, message_id TEXT NOT NULL, sent_at REAL NOT NULL, PRIMARY KEY (queue, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_duplicate_ids_sent ON duplicate_ids (sent_at);
"""
MIGRATIONS = (("expires_at", "ALTER TABLE messages ADD COLUMN expires_at REAL"),)
POST_MIGRATION = (
    "CREATE INDEX IF NOT EXISTS ix_messages_expiry ON messages (queue, expires_at) WHERE expires_at IS NOT NULL"
)

# Inserts a new id, or refreshes one whose window expired; changes nothing (rowcount 0) for a duplicate.
INSERT_DUP = (
    "INSERT INTO duplicate_ids (queue, message_id, sent_at) VALUES (?, ?, ?)"
    " ON CONFLICT (queue, message_id) DO UPDATE SET sent_at = excluded.sent_at WHERE sent_at <= ?"
)
INSERT_MSG = (
    "INSERT INTO messages (queue, message_id, session_id, body, content_type, props, enqueued_at,"
    " visible_at, scheduled_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
MSG_COLS = (
    "seq, message_id, session_id, body, content_type, props, enqueued_at, scheduled_at,"
    " lock_token, locked_until, delivery_count, expires_at, state, dl_reason, dl_description"
)
UNLOCKED = "(locked_until IS NULL OR locked_until <= :now)"
# Distinct sessions with active messages, by seeking the session index (one probe per session).
SESSIONS = """
WITH RECURSIVE s(sid) AS (
    SELECT (SELECT MIN(session_id) FROM messages WHERE queue = :q AND state = 'active' AND session_id IS NOT NULL)
    UNION ALL
    SELECT (SELECT MIN(session_id) FROM messages WHERE queue = :q AND state = 'active' AND session_id > s.sid)
    FROM s WHERE s.sid IS NOT NULL
) SELECT sid FROM s WHERE sid IS NOT NULL
"""
SESSION_HEAD = (
    "SELECT seq FROM messages WHERE queue = :q AND session_id = :sid AND state = 'active'"
    f" AND visible_at <= :now AND {UNLOCKED} ORDER BY seq LIMIT 1"
)
NO_SESSION = (
    "SELECT seq FROM messages WHERE queue = :q AND session_id IS NULL AND state = 'active'"
    f" AND visible_at <= :now AND {UNLOCKED} ORDER BY seq LIMIT :limit"
)
LOCKED_SESSIONS = (
    "SELECT DISTINCT session_id FROM messages WHERE queue = :q AND locked_until > :now"
    " AND session_id IS NOT NULL AND state = 'active'"
)
DEAD_HEADS = (
    f"SELECT seq FROM messages WHERE queue = :q AND state = 'dead' AND {UNLOCKED}"
    " ORDER BY dead_lettered_at, seq LIMIT :limit"
)


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


def to_datetime(value: float) -> datetime:
    """An epoch time stored in the file, as an aware UTC datetime."""
    return datetime.fromtimestamp(value, tz=UTC)


def optional_datetime(value: float | None) -> datetime | None:
    """:func:`to_datetime`, or None for a NULL column."""
    return None if value is None else to_datetime(value)


def epoch(value: datetime) -> float:
    """Seconds since the epoch of ``value`` (a naive datetime is taken as UTC)."""
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).timestamp()


def common_fields(r: tuple[Any, ...]) -> dict[str, Any]:
    """Fields common to received and peeked messages, from a row of ``MSG_COLS``."""
    props = json.loads(r[5])
    return {
        "body": r[3], "message_id": r[1], "sequence_number": r[0], "enqueued_at": to_datetime(r[6]),
        "delivery_count": r[10], "session_id": r[2], "scheduled_at": optional_datetime(r[7]), "content_type": r[4],
        "application_properties": props,
    }  # fmt: skip


def to_received(r: tuple[Any, ...]) -> ReceivedMessage:
    """A locked row of ``MSG_COLS`` as the message a receiver gets (dead-letter fields for a DLQ row)."""
    fields = common_fields(r)
    dead = r[12] == "dead"
    if dead:  # as Service Bus: the reason travels as application properties too
        fields["application_properties"] = {
            **fields["application_properties"],
            DEAD_LETTER_REASON: r[13] or "",
            DEAD_LETTER_DESCRIPTION: r[14] or "",
        }
    return ReceivedMessage(
        **fields,
        lock_token=r[8],
        locked_until=to_datetime(r[9]),
        expires_at=optional_datetime(r[11]),
        dead_letter_reason=(r[13] or "") if dead else None,
        dead_letter_error_description=(r[14] or "") if dead else None,
    )
