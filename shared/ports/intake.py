"""The intake ledger port: store what was received and enqueue its work, as one step.

A webhook delivery is accepted only once its event is durable *and* its work is queued. The
ledger owns where intake records (webhook events) live and how the two writes are combined:

- embedded (:class:`shared.backends.sqlite_intake.SqliteIntakeLedger`): the events live in
  the queue's own SQLite file, so each event and its message are one transaction - one
  durable commit, no crash window between them;
- Azure (:class:`SplitIntakeLedger`): one Cosmos DB create, then one Service Bus send; a
  crash between the two leaves an event ``received`` with no message, which the sweeper
  (``WebhookIntake.sweep``) enqueues later under the same message id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from shared.ports.documents import Document, DocumentExists, DocumentStore
from shared.ports.queue import OutgoingMessage, WorkQueue


class IntakeLedger(Protocol):
    """Where intake records live, and the one operation that accepts new ones."""

    @property
    def store(self) -> DocumentStore:
        """The document store holding intake records (read, update and query them through it)."""
        ...

    def accept(self, container: str, queue: str, items: Sequence[tuple[Document, OutgoingMessage]]) -> list[bool]:
        """Create each document that does not exist yet and send its message.

        Args:
            container: The container of the documents.
            queue: The queue the messages go to.
            items: ``(document, message)`` pairs; the message is sent only when its document is new.

        Returns:
            Per item, True when its document was created (and its message sent), False when it
            already existed (nothing written for it).
        """
        ...

    def close(self) -> None:
        """Release what the ledger opened itself."""
        ...


class SplitIntakeLedger:
    """Documents and queue as two services: create each document, then send the new ones' messages.

    Used with Cosmos DB and Service Bus (and any mix without a shared transaction); the
    sweeper covers a crash between the writes.
    """

    def __init__(self, documents: DocumentStore, queue: WorkQueue) -> None:
        self._documents = documents
        self._queue = queue

    @property
    def store(self) -> DocumentStore:
        return self._documents

    def accept(self, container: str, queue: str, items: Sequence[tuple[Document, OutgoingMessage]]) -> list[bool]:
        created: list[bool] = []
        for doc, _ in items:
            try:
                self._documents.create(container, doc)
                created.append(True)
            except DocumentExists:
                created.append(False)
        messages = [message for (_, message), new in zip(items, created, strict=True) if new]
        if len(messages) == 1:
            self._queue.send(queue, messages[0])
        elif messages:
            self._queue.send_many(queue, messages)
        return created

    def close(self) -> None:
        """Nothing of its own: the documents and the queue are closed by their owner."""
