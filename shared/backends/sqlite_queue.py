"""Embedded work queue in a SQLite file, with Azure Service Bus semantics.

Peek-lock, lock renewal, delivery count, dead-lettering (``MaxDeliveryCountExceeded``,
``TTLExpiredException``, explicit), a receivable dead-letter sub-queue, scheduled delivery,
duplicate detection by ``message_id``, session FIFO, and Service Bus's limits, as described in
:mod:`shared.ports.queue`. The file may be shared by threads (one connection each) and by
processes (WAL): a process killed while it holds a lock simply lets the lock expire, and the
message is delivered again to whoever receives next.

A session's next message is its lowest-sequence *visible* message (a scheduled message enters
the session when its time comes, like in Service Bus), and none is handed out while another
message of the same session is locked. Receiving looks at each session's head through an index,
so a long backlog in a locked session costs nothing to skip.

Within one process, writers of the same file take turns on a lock instead of SQLite's
sleep-and-retry busy handler, and every send or settlement notifies the queue's listeners
(:meth:`SqliteWorkQueue.subscribe`): the dev host's pumps wake when work arrives instead of
polling.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from shared import telemetry
from shared.backends.sqlite_base import SqliteFile
from shared.backends.sqlite_queue_signals import signals_for
from shared.backends.sqlite_queue_sql import (
    DEAD_HEADS,
    INSERT_DUP,
    INSERT_MSG,
    LOCKED_SESSIONS,
    MIGRATIONS,
    MSG_COLS,
    NO_SESSION,
    POST_MIGRATION,
    SCHEMA,
    SESSION_HEAD,
    SESSIONS,
    UNLOCKED,
    PeekedMessage,
    common_fields,
    epoch,
    to_datetime,
    to_received,
)
from shared.ports.queue import (
    DEAD_LETTER_SUFFIX,
    DEFAULT_MAX_MESSAGE_BYTES,
    DeadLetteredMessage,
    LockLost,
    MessageRejected,
    OutgoingMessage,
    ReceivedMessage,
    check_outgoing,
    split_dead_letter_path,
)

MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"
TTL_EXPIRED = "TTLExpiredException"
TTL_EXPIRED_DESCRIPTION = "The message expired and was dead lettered."
_PRUNE_EVERY_SENDS = 1000


class SqliteWorkQueue:
    """The embedded work queue (sender and receiver sides).

    Args:
        path: The SQLite file (created with its parent folders).
        lock_seconds: Default peek-lock duration.
        max_delivery_count: Deliveries after which a message is dead-lettered.
        duplicate_window_seconds: Duplicate-detection window per queue (0 disables it).
        max_message_bytes: Largest message accepted (:func:`shared.ports.queue.message_size`).
        session_queues: Queues that are session-enabled (see :meth:`declare_queue`).
        clock: Seconds since the epoch; injectable for tests.
    """

    def __init__(
        self,
        path: Path,
        *,
        lock_seconds: float = 30.0,
        max_delivery_count: int = 10,
        duplicate_window_seconds: float = 600.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        session_queues: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lock_seconds <= 0 or max_delivery_count < 1 or duplicate_window_seconds < 0 or max_message_bytes < 1:
            raise ValueError(
                "lock_seconds must be > 0, max_delivery_count >= 1, duplicate_window_seconds >= 0,"
                " max_message_bytes >= 1"
            )
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_seconds = lock_seconds
        self._max_deliveries = max_delivery_count
        self._window = duplicate_window_seconds
        self._max_bytes = max_message_bytes
        self._session_queues = {q.lower() for q in session_queues}
        self._clock = clock
        self._db = SqliteFile(self._path, owner="SqliteWorkQueue", pragmas=("wal_autocheckpoint=4000",))
        self._conn = self._db.conn
        self._signals = signals_for(self._path)
        self._sends = _PRUNE_EVERY_SENDS
        conn = self._conn()
        with self._signals.write_lock:
            conn.executescript(SCHEMA)
            have = {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
            for column, ddl in MIGRATIONS:
                if column not in have:
                    conn.execute(ddl)
            conn.execute(POST_MIGRATION)
        self._count_sends(conn, 0, self._clock())

    @contextmanager
    def _write(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """A write transaction; this process's writers take turns instead of busy-waiting."""
        with self._signals.write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # --- configuration ---------------------------------------------------------------------

    def declare_queue(self, queue: str, *, requires_session: bool) -> None:
        """Say whether ``queue`` is session-enabled, like the queue entity's ``requiresSession``.

        A session-enabled queue rejects messages without a session id.
        """
        if requires_session:
            self._session_queues.add(queue.lower())
        else:
            self._session_queues.discard(queue.lower())

    def requires_session(self, queue: str) -> bool:
        """Whether ``queue`` is session-enabled (queue names are case-insensitive, as in Service Bus)."""
        return queue.lower() in self._session_queues

    # --- sender side -------------------------------------------------------------------

    def _check(self, queue: str, message: OutgoingMessage) -> str:
        check_outgoing(queue, message, max_message_bytes=self._max_bytes, requires_session=self.requires_session(queue))
        props = {**telemetry.to_properties(), **message.application_properties}  # the sender's ids + trace
        return json.dumps(props) if props else "{}"

    def send(self, queue: str, message: OutgoingMessage) -> bool:
        """Send one message.

        Returns:
            False when dropped as a duplicate (same ``message_id`` on this queue within the
            duplicate-detection window), else True.

        Raises:
            MessageRejected: The message breaks a Service Bus limit (see :mod:`shared.ports.queue`).
        """
        return self.send_many(queue, [message]) == 1

    def send_many(self, queue: str, messages: Sequence[OutgoingMessage]) -> int:
        """Send several messages in one transaction (all or none).

        Returns:
            How many were accepted (not duplicates).

        Raises:
            MessageRejected: A message breaks a Service Bus limit; none is sent.
        """
        props = [self._check(queue, m) for m in messages]  # validate before taking the write lock
        if not props:
            return 0
        conn = self._conn()
        now = self._clock()
        with self._write(conn):
            accepted = sum(self._insert(conn, queue, m, p, now) for m, p in zip(messages, props, strict=True))
        self._count_sends(conn, len(props), now)
        if accepted:
            self._signals.bump(queue)
        return accepted

    @property
    def path(self) -> Path:
        """The database file (other embedded stores may keep tables in it, see :meth:`send_with`)."""
        return self._path

    def send_with(
        self, queue: str, items: Sequence[tuple[OutgoingMessage, Callable[[sqlite3.Connection, float], bool]]]
    ) -> list[bool]:
        """Run each item's write on this file's connection, sending its message when the write says so: one transaction.

        A table that lives in the same file (an intake record) and its message then commit
        together, or not at all.

        Returns:
            Per item, what its write returned (True: its message was sent, unless a duplicate).

        Raises:
            MessageRejected: A message breaks a Service Bus limit; nothing is written.
        """
        props = [self._check(queue, m) for m, _ in items]
        conn = self._conn()
        now = self._clock()
        done: list[bool] = []
        sent = 0
        with self._write(conn):
            for (message, write), prop in zip(items, props, strict=True):
                wrote = write(conn, now)
                done.append(wrote)
                if wrote:
                    sent += self._insert(conn, queue, message, prop, now)
        self._count_sends(conn, len(props), now)
        if sent:
            self._signals.bump(queue)
        return done

    def _insert(self, conn: sqlite3.Connection, queue: str, m: OutgoingMessage, props: str, now: float) -> bool:
        if self._window > 0 and conn.execute(INSERT_DUP, (queue, m.message_id, now, now - self._window)).rowcount == 0:
            return False  # seen within the window: dropped silently, like Service Bus
        scheduled = None if m.scheduled_at is None else epoch(m.scheduled_at)
        visible = now if scheduled is None or scheduled < now else scheduled
        expires = None if m.time_to_live is None else now + m.time_to_live.total_seconds()
        values = (queue, m.message_id, m.session_id, m.body, m.content_type, props, now, visible, scheduled, expires)
        conn.execute(INSERT_MSG, values)
        return True

    def _count_sends(self, conn: sqlite3.Connection, n: int, now: float) -> None:
        """Every _PRUNE_EVERY_SENDS sends, forget message ids older than the duplicate-detection window."""
        self._sends += n
        if self._sends >= _PRUNE_EVERY_SENDS:
            self._sends = 0
            with self._signals.write_lock:
                conn.execute("DELETE FROM duplicate_ids WHERE sent_at <= ?", (now - self._window,))

    # --- receiver side -----------------------------------------------------------------

    def receive(
        self,
        queue: str,
        *,
        max_messages: int = 1,
        lock_seconds: float | None = None,
        session_id: str | None = None,
    ) -> list[ReceivedMessage]:
        """Lock and return up to ``max_messages`` deliverable messages, in send order.

        Before picking, messages whose lock expired after their last allowed delivery are
        dead-lettered (``MaxDeliveryCountExceeded``), and so are expired ones (``TTLExpiredException``).

        Args:
            queue: Queue name, or its dead-letter path ``<queue>/$DeadLetterQueue``.
            max_messages: Upper bound of messages returned (one per session).
            lock_seconds: Lock duration (default: the queue's).
            session_id: Only this session's next message (what a session receiver gets).
        """
        lock_for = self._lock_seconds if lock_seconds is None else lock_seconds
        if lock_for <= 0:
            raise ValueError("lock_seconds must be > 0")
        if max_messages < 1:
            return []
        base, dlq = split_dead_letter_path(queue)
        conn = self._conn()
        now = self._clock()
        received: list[ReceivedMessage] = []
        with self._write(conn):
            moved = self._expire(conn, base, now)
            if dlq:
                picked = [r[0] for r in conn.execute(DEAD_HEADS, {"q": base, "now": now, "limit": max_messages})]
            else:
                picked = self._pick(conn, base, now, max_messages, session_id)
            for seq in picked:
                row = conn.execute(
                    f"UPDATE messages SET lock_token = ?, locked_until = ?, delivery_count = delivery_count + 1"
                    f" WHERE seq = ? RETURNING {MSG_COLS}",
                    (str(uuid.uuid4()), now + lock_for, seq),
                ).fetchall()[0]
                received.append(to_received(row))
        if moved:
            self._signals.bump(base + DEAD_LETTER_SUFFIX)
        return received

    def _pick(self, conn: sqlite3.Connection, queue: str, now: float, limit: int, session: str | None) -> list[int]:
        """Sequence numbers of deliverable messages: unlocked, visible, heads of unlocked sessions."""
        params: dict[str, Any] = {"q": queue, "now": now, "limit": limit}
        locked = {r[0] for r in conn.execute(LOCKED_SESSIONS, params)}
        if session is not None:
            sessions = [] if session in locked else [session]
            candidates: list[int] = []
        else:
            sessions = [r[0] for r in conn.execute(SESSIONS, params) if r[0] not in locked]
            candidates = [r[0] for r in conn.execute(NO_SESSION, params)]
        for sid in sessions:
            head = conn.execute(SESSION_HEAD, {**params, "sid": sid}).fetchone()
            if head is not None:
                candidates.append(head[0])
        return sorted(candidates)[:limit]

    def _expire(self, conn: sqlite3.Connection, queue: str, now: float) -> int:
        """Dead-letter messages whose lock expired on their last allowed delivery, and expired ones."""
        params = {"q": queue, "now": now, "max": self._max_deliveries}
        exhausted = conn.execute(
            "UPDATE messages SET state = 'dead', lock_token = NULL, locked_until = NULL, dl_reason = :reason,"
            " dl_description = 'Message could not be consumed after ' || delivery_count || ' delivery attempts.'"
            " || ' The last lock expired without the message being settled (the receiver crashed or timed out).',"
            " dead_lettered_at = :now"
            " WHERE queue = :q AND locked_until <= :now AND delivery_count >= :max AND state = 'active'",
            {**params, "reason": MAX_DELIVERY_COUNT_EXCEEDED},
        ).rowcount
        expired = conn.execute(
            "UPDATE messages SET state = 'dead', lock_token = NULL, locked_until = NULL, dl_reason = :reason,"
            f" dl_description = :description, dead_lettered_at = :now WHERE queue = :q AND expires_at <= :now"
            f" AND {UNLOCKED} AND state = 'active'",
            {**params, "reason": TTL_EXPIRED, "description": TTL_EXPIRED_DESCRIPTION},
        ).rowcount
        return int(exhausted) + int(expired)

    def _sweep(self, queue: str) -> sqlite3.Connection:
        """Apply lock-expiry and TTL dead-lettering before a read, taking the write lock only if needed."""
        conn = self._conn()
        now = self._clock()
        if conn.execute(
            "SELECT 1 FROM messages WHERE queue = ? AND state = 'active'"
            " AND ((locked_until <= ? AND delivery_count >= ?)"
            " OR (expires_at <= ? AND (locked_until IS NULL OR locked_until <= ?))) LIMIT 1",
            (queue, now, self._max_deliveries, now, now),
        ).fetchone():
            with self._write(conn):
                moved = self._expire(conn, queue, now)
            if moved:
                self._signals.bump(queue + DEAD_LETTER_SUFFIX)
        return conn

    def _settle(self, queue: str, lock_token: str, sql: str, params: dict[str, Any], *, bump: Sequence[str]) -> None:
        """Run a statement that settles one locked message; LockLost when it matched none."""
        conn = self._conn()
        with self._signals.write_lock:
            changed = conn.execute(sql, params).rowcount
        if changed == 0:
            raise LockLost(f"lock {lock_token} on queue {queue!r} is unknown or expired")
        self._signals.bump(*bump)

    @staticmethod
    def _state(dlq: bool) -> str:
        return "dead" if dlq else "active"

    def complete(self, queue: str, lock_token: str) -> None:
        """Remove a locked message (from the queue or its dead-letter queue).

        Raises:
            LockLost: The token is unknown or its lock expired.
        """
        base, dlq = split_dead_letter_path(queue)
        self._settle(
            queue,
            lock_token,
            "DELETE FROM messages WHERE lock_token = :token AND queue = :q AND state = :state AND locked_until > :now",
            {"token": lock_token, "q": base, "state": self._state(dlq), "now": self._clock()},
            bump=(queue,),
        )

    def abandon(self, queue: str, lock_token: str, *, error: str | None = None) -> None:
        """Release the lock so the message is delivered again, or dead-letter it when this was
        its last allowed delivery (reason ``MaxDeliveryCountExceeded``, ``error`` in the description).
        A message of a dead-letter queue is only released.

        Raises:
            LockLost: The token is unknown or its lock expired.
        """
        base, dlq = split_dead_letter_path(queue)
        now = self._clock()
        if dlq:
            self._settle(
                queue,
                lock_token,
                "UPDATE messages SET lock_token = NULL, locked_until = NULL"
                " WHERE lock_token = :token AND queue = :q AND state = 'dead' AND locked_until > :now",
                {"token": lock_token, "q": base, "now": now},
                bump=(queue,),
            )
            return
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
            " WHERE lock_token = :token AND queue = :q AND state = 'active' AND locked_until > :now",
            {"max": self._max_deliveries, "reason": MAX_DELIVERY_COUNT_EXCEEDED, "err": last_error,
             "now": now, "token": lock_token, "q": base},
            bump=(queue, queue + DEAD_LETTER_SUFFIX),
        )  # fmt: skip

    def dead_letter(self, queue: str, lock_token: str, *, reason: str, description: str = "") -> None:
        """Move a locked message to the dead-letter queue with a reason a person can read.

        Raises:
            LockLost: The token is unknown or its lock expired.
            MessageRejected: The message is in a dead-letter queue already.
        """
        base, dlq = split_dead_letter_path(queue)
        if dlq:
            raise MessageRejected(
                f"queue {queue!r}: a dead-lettered message cannot be dead-lettered again; complete or abandon it",
                code="dead_letter_queue_dead_letter",
            )
        self._settle(
            queue,
            lock_token,
            "UPDATE messages SET state = 'dead', lock_token = NULL, locked_until = NULL, dl_reason = :reason,"
            " dl_description = :description, dead_lettered_at = :now WHERE lock_token = :token AND queue = :q"
            " AND state = 'active' AND locked_until > :now",
            {"reason": reason, "description": description, "now": self._clock(), "token": lock_token, "q": base},
            bump=(queue, queue + DEAD_LETTER_SUFFIX),
        )

    def renew_lock(self, queue: str, lock_token: str, *, lock_seconds: float | None = None) -> datetime:
        """Extend a held lock by the lock duration from now (Service Bus ``RenewMessageLock``).

        Returns:
            The new ``locked_until``.

        Raises:
            LockLost: The token is unknown or its lock already expired.
        """
        base, dlq = split_dead_letter_path(queue)
        now = self._clock()
        until = now + (self._lock_seconds if lock_seconds is None else lock_seconds)
        self._settle(
            queue,
            lock_token,
            "UPDATE messages SET locked_until = :until WHERE lock_token = :token AND queue = :q AND state = :state"
            " AND locked_until > :now",
            {"until": until, "token": lock_token, "q": base, "state": self._state(dlq), "now": now},
            bump=(),
        )
        return to_datetime(until)

    def subscribe(self, queue: str, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` whenever this process sends to or settles a message on ``queue``.

        Any instance on the same file in this process triggers it (sends from other processes
        do not: a receiver still polls, with a short interval). A settlement counts because it
        may free a session's next message; a dead-lettering also triggers the dead-letter
        queue's listeners. The listener runs on the sender's thread: keep it short (set an event).

        Returns:
            A function that removes the listener.
        """
        return self._signals.subscribe(queue, listener)

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
                                description=r[4] or "", dead_lettered_at=to_datetime(r[5]), session_id=r[6])
            for r in rows
        ]  # fmt: skip

    def active_count(self, queue: str) -> int:
        """Messages not completed or dead-lettered (scheduled and locked ones included); for a
        dead-letter path, the messages in that dead-letter queue."""
        base, dlq = split_dead_letter_path(queue)
        row = (
            self._sweep(base)
            .execute("SELECT COUNT(*) FROM messages WHERE queue = ? AND state = ?", (base, self._state(dlq)))
            .fetchone()
        )
        return int(row[0])

    # --- admin helpers (not part of the port) ----------------------------------------------

    def peek(self, queue: str, *, max_messages: int | None = None) -> list[PeekedMessage]:
        """Active messages in send order, without locking them or counting a delivery."""
        rows = (
            self._sweep(queue)
            .execute(
                f"SELECT {MSG_COLS} FROM messages WHERE queue = ? AND state = 'active' ORDER BY seq LIMIT ?",
                (queue, -1 if max_messages is None else max_messages),
            )
            .fetchall()
        )
        now = self._clock()
        return [
            PeekedMessage(**common_fields(r), locked_until=to_datetime(r[9]) if r[9] and r[9] > now else None)
            for r in rows
        ]

    def purge(self, queue: str) -> int:
        """Delete every message of ``queue`` (active and dead-lettered) and its duplicate-detection
        history. Returns how many messages were deleted."""
        conn = self._conn()
        with self._write(conn):
            deleted = conn.execute("DELETE FROM messages WHERE queue = ?", (queue,)).rowcount
            conn.execute("DELETE FROM duplicate_ids WHERE queue = ?", (queue,))
        return int(deleted)

    def close(self) -> None:
        """Close every connection this queue opened (in any thread)."""
        self._db.close()

    def __repr__(self) -> str:
        return f"SqliteWorkQueue({str(self._path)!r})"
