"""Writes mapped entities as stored records: deterministic ids, content hashes, ETags."""

from __future__ import annotations

from enum import StrEnum

from adapters.base.adapter import Entity
from shared.domain import Integration, StoredRecord, content_hash, utcnow
from shared.ports.documents import DocumentExists, PreconditionFailed
from shared.services.repositories import Repository


class WriteResult(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    STALE = "stale"


class RecordWriter:
    """Upserts one entity at a time; re-processing the same data is a no-op."""

    def __init__(self, records: Repository[StoredRecord]) -> None:
        self._records = records

    def upsert(self, integration: Integration, entity: Entity) -> WriteResult:
        """Create, update (when the content changed and is not older), or leave alone.

        A concurrent writer of the same record (a webhook and a page, two pages) makes the
        conditional write fail; the record is then re-read and the decision made again.
        """
        rec_id = StoredRecord.make_id(integration.tenant_id, integration.id, entity.entity_type, entity.external_id)
        digest = content_hash(entity.data)
        for _ in range(3):
            existing = self._records.get(integration.tenant_id, rec_id)
            if existing is None:
                record = StoredRecord(
                    id=rec_id,
                    tenant_id=integration.tenant_id,
                    integration_id=integration.id,
                    provider=integration.provider,
                    entity_type=entity.entity_type,
                    external_id=entity.external_id,
                    data=entity.data,
                    content_hash=digest,
                    source_updated_at=entity.updated_at,
                )
                try:
                    self._records.create(record)
                except DocumentExists:
                    continue
                return WriteResult.CREATED
            if existing.content_hash == digest:
                return WriteResult.UNCHANGED
            if entity.updated_at and existing.source_updated_at and entity.updated_at < existing.source_updated_at:
                return WriteResult.STALE
            existing.data = entity.data
            existing.content_hash = digest
            existing.source_updated_at = entity.updated_at or existing.source_updated_at
            existing.updated_at = utcnow()
            try:
                self._records.save(existing)
            except PreconditionFailed:
                continue
            return WriteResult.UPDATED
        # a WriteConflict: the queue handler reschedules the page, and re-processing it is a no-op
        raise PreconditionFailed(f"record {rec_id} kept changing under other writers; the page will be retried")
