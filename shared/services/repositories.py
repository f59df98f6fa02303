"""Typed access to the document store, one small repository per model."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Generic, TypeVar

from shared.domain import Checkpoint, DeadLetter, Integration, Model, StoredRecord, SyncRun, WebhookEvent
from shared.errors import NotFound
from shared.ports.documents import DocumentStore, Where

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

    def save(self, obj: M) -> M:
        """Write with the object's ETag as the condition (insert when it has none)."""
        if obj.etag is None:
            doc = self.store.upsert(self.container, obj.to_doc())
        else:
            doc = self.store.replace(self.container, obj.to_doc(), if_match=obj.etag)
        return self.model.from_doc(doc)

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
    """Integrations, with an id -> tenant cache for webhook routing (URLs carry no tenant)."""

    def __init__(self, store: DocumentStore, container: str) -> None:
        super().__init__(store, container, Integration)
        self._tenant_of: dict[str, str] = {}
        self._lock = threading.Lock()

    def find(self, integration_id: str) -> Integration | None:
        """Look up by id alone (cached point read, else one cross-partition query)."""
        tenant = self._tenant_of.get(integration_id)
        if tenant is not None:
            found = self.get(tenant, integration_id)
            if found is not None:
                return found
        matches = self.query(None, [Where("id", "=", integration_id)], limit=1)
        if not matches:
            return None
        with self._lock:
            self._tenant_of[integration_id] = matches[0].tenant_id
        return matches[0]

    def require(self, tenant_id: str, integration_id: str) -> Integration:
        """The tenant's integration, or NotFound (another tenant's id is simply not found)."""
        found = self.get(tenant_id, integration_id)
        if found is None:
            raise NotFound(f"integration {integration_id} not found for tenant {tenant_id}")
        return found


class Repositories:
    """All repositories over one document store."""

    def __init__(self, store: DocumentStore, containers: Mapping[str, str]) -> None:
        self.store = store
        self.integrations = IntegrationRepository(store, containers["integrations"])
        self.checkpoints = Repository(store, containers["checkpoints"], Checkpoint)
        self.runs = Repository(store, containers["runs"], SyncRun)
        self.records = Repository(store, containers["records"], StoredRecord)
        self.webhook_events = Repository(store, containers["webhook_events"], WebhookEvent)
        self.dead_letters = Repository(store, containers["dead_letters"], DeadLetter)
