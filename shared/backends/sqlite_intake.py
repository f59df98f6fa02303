"""The embedded intake ledger: webhook events kept in the queue's SQLite file, each with its message in one commit.

A :class:`~shared.backends.sqlite_documents.SqliteDocumentStore` opened on the queue's own
file holds the intake records, so :meth:`SqliteIntakeLedger.accept` can insert an event and
its queue message in one transaction (:meth:`SqliteWorkQueue.send_with`): one durable
commit per delivery, no read-back, and no window in which a crash keeps one without the other.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence

from shared.backends.sqlite_documents import SqliteDocumentStore
from shared.backends.sqlite_queue import SqliteWorkQueue
from shared.ports.documents import Document
from shared.ports.queue import OutgoingMessage


class SqliteIntakeLedger:
    """Intake records and their messages in the embedded queue's file."""

    def __init__(self, queue: SqliteWorkQueue, *, clock: Callable[[], float] = time.time) -> None:
        self._queue = queue
        self._store = SqliteDocumentStore(queue.path, clock=clock)

    @property
    def store(self) -> SqliteDocumentStore:
        return self._store

    def accept(self, container: str, queue: str, items: Sequence[tuple[Document, OutgoingMessage]]) -> list[bool]:
        def writer(doc: Document) -> Callable[[sqlite3.Connection, float], bool]:
            return lambda conn, now: self._store.create_on(conn, container, doc, now)

        return self._queue.send_with(queue, [(message, writer(doc)) for doc, message in items])

    def close(self) -> None:
        self._store.close()
