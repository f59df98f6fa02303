"""Typed access to the document store, one small repository per model."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

from shared.domain import (
    Checkpoint,
    DeadLetter,
    Integration,
    Model,
    PushReceipt,
    StoredRecord,
    StreamSchedule,
    SyncRun,
    WebhookEvent,
)
from shared.errors import NotFound
from shared.ports.documents import DocumentStore, PreconditionFailed, Where
from shared.webhook_domain import WebhookSubscription

M = TypeVar("M", bound=Model)


class Repository(Generic[M]):
    """CRUD for one model in one container."""

    def __init__(self, store: DocumentStore, container: str, model: type[M]) -> None:
        self.store = store
        self.container = container
        self.model = model

    def get(self, tenant_id: str, doc_id: str) -> M | None:
        doc = self.store.read(self.container, tenant_id, doc_id)
        return self.model.from_doc(doc) if doc else None

    def create(self, obj: M) -> M:
        return self.model.from_doc(self.store.create(self.container, obj.to_doc()))

    def insert(self, obj: M) -> None:
        """Create without reading the result back (hot paths). Raises DocumentExists."""
        self.store.create(self.container, obj.to_doc())

    def save(self, obj: M) -> M:
        """Write with the object's ETag as the condition (insert when it has none)."""
        if obj.etag is None:
            doc = self.store.upsert(self.container, obj.to_doc())
        else:
            doc = self.store.replace(self.container, obj.to_doc(), if_match=obj.etag)
        return self.model.from_doc(doc)

    def update(
        self,
        tenant_id: str,
        doc_id: str,
        change: Callable[[M], bool],
        *,
        current: M | None = None,
        attempts: int = 25,
    ) -> M | None:
        """Read, apply ``change``, write conditionally; on a conflict re-read and re-apply.

        This is how every writer of a shared document survives another writer: the change
        is a function of the fresh document, never a blind overwrite.

        Args:
            tenant_id: Partition.
            doc_id: Document id.
            change: Mutates the fresh copy in place; returns False when there is nothing to
                write (the document is already as wanted, or the change no longer applies).
            current: A copy just read (saves the first read); must carry its ETag.
            attempts: Conflicts tolerated in a row before giving up.

        Returns:
            The document as written (or as read when ``change`` declined); None when absent.

        Raises:
            PreconditionFailed: Lost ``attempts`` times in a row (a retryable WriteConflict).
        """
        for _ in range(attempts):
            fresh = current if current is not None else self.get(tenant_id, doc_id)
            current = None
            if fresh is None:
                return None
            if not change(fresh):
                return fresh
            try:
                return self.save(fresh)
            except PreconditionFailed:
                continue
        raise PreconditionFailed(f"{self.container}/{doc_id} kept changing under other writers; try again")

    def patch(self, tenant_id: str, doc_id: str, fields: Mapping[str, object], *, if_match: str | None = None) -> bool:
        """Set top-level ``fields`` without rewriting the document (see ``DocumentStore.patch``)."""
        return self.store.patch(self.container, tenant_id, doc_id, fields, if_match=if_match)

    def delete(self, tenant_id: str, doc_id: str) -> bool:
        """Delete one document; False when it was absent."""
        return self.store.delete(self.container, tenant_id, doc_id)

    def query(
        self,
        tenant_id: str | None,
        where: Sequence[Where] = (),
        *,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[M]:
        docs = self.store.query(
            self.container, partition_key=tenant_id, where=where, order_by=order_by, descending=descending, limit=limit
        )
        return [self.model.from_doc(d) for d in docs]

    def count(self, tenant_id: str | None, where: Sequence[Where] = ()) -> int:
        return self.store.count(self.container, partition_key=tenant_id, where=where)


class IntegrationRepository(Repository[Integration]):
    """Integrations, with a short-lived cache for webhook routing (URLs carry no tenant).

    ``find`` serves the webhook hot path: a cached copy for ``cache_seconds``, else a point
    read when the tenant is known, else one cross-partition query. Writes through this
    repository refresh the cache; other instances see changes within ``cache_seconds``.
    """

    def __init__(
        self,
        store: DocumentStore,
        container: str,
        *,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(store, container, Integration)
        self._tenant_of: dict[str, str] = {}
        self._cached: dict[str, tuple[float, Integration]] = {}
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()

    def find(self, integration_id: str) -> Integration | None:
        """Look up by id alone. The result may be up to ``cache_seconds`` old: do not mutate it."""
        hit = self._cached.get(integration_id)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        tenant = self._tenant_of.get(integration_id)
        found = self.get(tenant, integration_id) if tenant is not None else None
        if found is None:
            matches = self.query(None, [Where("id", "=", integration_id)], limit=1)
            if not matches:
                return None
            found = matches[0]
        self._remember(found)
        return found

    def save(self, obj: Integration) -> Integration:
        saved = super().save(obj)
        self._remember(saved)
        return saved

    def create(self, obj: Integration) -> Integration:
        created = super().create(obj)
        self._remember(created)
        return created

    def _remember(self, integration: Integration) -> None:
        with self._lock:
            self._tenant_of[integration.id] = integration.tenant_id
            self._cached[integration.id] = (self._clock() + self._cache_seconds, integration.model_copy(deep=True))

    def require(self, tenant_id: str, integration_id: str) -> Integration:
        """The tenant's integration, or NotFound (another tenant's id is simply not found)."""
        found = self.get(tenant_id, integration_id)
        if found is None:
            raise NotFound(f"integration {integration_id} not found for tenant {tenant_id}")
        return found


class Repositories:
    """All repositories over one document store."""

    def __init__(
        self, store: DocumentStore, containers: Mapping[str, str], *, intake_store: DocumentStore | None = None
    ) -> None:
        """``intake_store``: where webhook events live when not in ``store`` (the embedded intake ledger's file)."""
        self.store = store
        self.integrations = IntegrationRepository(store, containers["integrations"])
        self.checkpoints = Repository(store, containers["checkpoints"], Checkpoint)
        self.runs = Repository(store, containers["runs"], SyncRun)
        self.records = Repository(store, containers["records"], StoredRecord)
        self.webhook_events = Repository(intake_store or store, containers["webhook_events"], WebhookEvent)
        self.dead_letters = Repository(store, containers["dead_letters"], DeadLetter)
        self.schedules = Repository(store, containers.get("schedules", "schedules"), StreamSchedule)
        self.push_receipts = Repository(store, containers.get("push_receipts", "push_receipts"), PushReceipt)
        self.webhook_subscriptions = Repository(
            store, containers.get("webhook_subscriptions", "webhook_subscriptions"), WebhookSubscription
        )
