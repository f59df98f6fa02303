"""Document store port: JSON documents partitioned by tenant, with ETag concurrency and TTL.

Backends: ``shared.backends.sqlite_documents.SqliteDocumentStore`` (embedded) and
``shared.backends.cosmos_documents.CosmosDocumentStore`` (Azure Cosmos DB).

Every document is a JSON object with at least ``id`` (str) and the partition key field
``tenant_id`` (str). Stores add ``_etag`` (opaque str) and ``_ts`` (epoch seconds, int) on
every read/write result. An optional integer ``ttl`` (seconds, Cosmos semantics: counted
from the last write) makes a document expire; expired documents are never returned.

Queries are expressed with :class:`Where` conditions on top-level fields (dotted paths
allowed for nested objects), never with raw SQL. ``contains`` matches a document whose
array field holds the value.

:meth:`DocumentStore.batch` applies several writes to one partition as one transaction
(SQLite: one ``BEGIN IMMEDIATE``; Cosmos: transactional batches of at most
:data:`MAX_BATCH` operations each): the hot write path of a sync page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from shared.errors import Conflict, HubError, WriteConflict

Document = dict[str, Any]
Op = Literal["=", "!=", "<", "<=", ">", ">=", "in", "contains"]
BatchKind = Literal["create", "upsert", "replace", "patch", "delete"]

MAX_BATCH = 100
"""Operations per transactional batch on Cosmos DB (its limit); a longer batch is split."""

PARTITION_KEY = "tenant_id"


class DocumentExists(Conflict):
    """``create`` found a document with the same id in the partition."""

    code = "document_exists"


class PreconditionFailed(WriteConflict):
    """The ``if_match`` ETag no longer matches (someone else wrote first).

    A :class:`~shared.errors.WriteConflict`: retryable, never invalid input.
    """

    code = "precondition_failed"


class DocumentNotFound(HubError):
    """``replace``/``delete`` named a document that does not exist."""

    code = "document_not_found"


@dataclass(frozen=True)
class Where:
    """One query condition: ``field op value``. ``in`` takes a list/tuple value."""

    field: str
    op: Op
    value: Any


@dataclass(frozen=True)
class BatchOp:
    """One write of a :meth:`DocumentStore.batch`.

    Attributes:
        kind: ``create`` (DocumentExists when taken), ``upsert``, ``replace`` (DocumentNotFound),
            ``patch`` (set top-level ``fields``; DocumentNotFound when absent) or ``delete``.
        doc_id: The document id.
        doc: The whole document (``create``/``upsert``/``replace``).
        encoded: ``doc`` already serialized as compact JSON (without system keys), so the
            hot path serializes each record once; a backend that stores text uses it as is.
        fields: ``patch`` only: the top-level fields to set.
        if_match: The ETag the document must still have (PreconditionFailed otherwise).
    """

    kind: BatchKind
    doc_id: str
    doc: Document | None = None
    encoded: bytes | None = None
    fields: Mapping[str, Any] | None = None
    if_match: str | None = None


class DocumentStore(Protocol):
    """Partitioned JSON document store."""

    def create(self, container: str, doc: Document) -> Document:
        """Insert a new document. Raises DocumentExists if the id is taken in that partition."""

    def upsert(self, container: str, doc: Document, *, if_match: str | None = None) -> Document:
        """Insert or replace. With ``if_match`` the existing ETag must match (PreconditionFailed)."""

    def replace(self, container: str, doc: Document, *, if_match: str | None = None) -> Document:
        """Replace an existing document (DocumentNotFound / PreconditionFailed)."""

    def read(self, container: str, partition_key: str, doc_id: str) -> Document | None:
        """Point read; ``None`` when absent or expired."""

    def delete(self, container: str, partition_key: str, doc_id: str, *, if_match: str | None = None) -> bool:
        """Delete; returns False when absent. PreconditionFailed on ETag mismatch."""

    def patch(
        self, container: str, partition_key: str, doc_id: str, fields: Mapping[str, Any], *, if_match: str | None = None
    ) -> bool:
        """Set top-level ``fields`` of an existing document, leaving the rest as stored.

        Cheaper than a replace: the body does not travel (Cosmos ``patch_item`` with ``set``
        operations; SQLite ``json_set``). The document gets a new ETag. Returns False when the
        document is absent. PreconditionFailed when ``if_match`` no longer matches.
        """

    def query(
        self,
        container: str,
        *,
        partition_key: str | None = None,
        where: Sequence[Where] = (),
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[Document]:
        """Documents matching all conditions. ``partition_key=None`` means cross-partition."""

    def count(self, container: str, *, partition_key: str | None = None, where: Sequence[Where] = ()) -> int:
        """Number of documents matching all conditions."""

    def batch(self, container: str, partition_key: str, ops: Sequence[BatchOp]) -> list[str | None]:
        """Apply ``ops`` to one partition as a transaction: all of them, or none and the error.

        Every document must be in partition ``partition_key``. On Cosmos each run of
        :data:`MAX_BATCH` operations is one transactional batch (a longer list is several, in
        order); on SQLite the whole list is one transaction.

        Returns:
            The new ETag of each op's document (None for a delete), in order.

        Raises:
            DocumentExists: A ``create`` found its id taken.
            PreconditionFailed: An ``if_match`` no longer matches.
            DocumentNotFound: A ``replace``, ``patch`` or ``delete`` found nothing (unlike the
                single :meth:`delete`, a batch's delete of an absent document fails, as Cosmos does).
        """

    def close(self) -> None:
        """Release connections."""
