"""Writes mapped entities as stored records: deterministic ids, content hashes, ETags, tombstones.

Deletes are soft: an ``Entity(deleted=True)`` sets ``deleted``/``deleted_at`` on the stored
record and keeps its data; a later live version of the record revives it.

A full-listing run marks every record it sees with its run id (``listed_by``), so that when
it ends, the stream's records it did not see can be found by one query
(:mod:`shared.services.deletes`). A record the run creates or changes carries the mark in
the write it gets anyway; an unchanged record gets it by a field-only patch (two small
fields, the body stays where it is), never by rewriting the record. The patch is conditional
on the ETag just read, so a concurrent full write cannot silently drop the mark.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from adapters.base.adapter import Entity
from shared.domain import Integration, StoredRecord, content_hash, utcnow
from shared.ports.documents import DocumentExists, PreconditionFailed
from shared.services.repositories import Repository


class WriteResult(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    STALE = "stale"
    DELETED = "deleted"


class RecordWriter:
    """Upserts one entity at a time; re-processing the same data is a no-op."""

    def __init__(self, records: Repository[StoredRecord]) -> None:
        self._records = records

    def upsert(
        self,
        integration: Integration,
        entity: Entity,
        *,
        stream: str | None = None,
        listing_run: str | None = None,
        version: str | None = None,
        new_stream: str | None = None,
    ) -> WriteResult:
        """Create, update (when the content changed and is not older), tombstone, or leave alone.

        A concurrent writer of the same record (a webhook and a page, two pages) makes the
        conditional write fail; the record is then re-read and the decision made again.

        Args:
            integration: The record's integration.
            entity: The mapped entity (``deleted=True``: a tombstone).
            stream: The stream key whose listing holds the record (None: keep what is stored;
                a webhook's entity is created without one unless the caller names it).
            listing_run: The full-listing run that sees the record now: marks it as listed.
            version: The provider's version of the record (a push result).
            new_stream: The stream key a record created here belongs to when ``stream`` is
                None (a webhook's or a push's record: the stream that lists its entity type).

        Returns:
            What happened. A tombstone for a record the hub never stored changes nothing
            (``UNCHANGED``).
        """
        rec_id = StoredRecord.make_id(integration.tenant_id, integration.id, entity.entity_type, entity.external_id)
        digest = content_hash(entity.data)
        for _ in range(3):
            existing = self._records.get(integration.tenant_id, rec_id)
            try:
                if existing is None:
                    if entity.deleted:
                        return WriteResult.UNCHANGED
                    self._create(integration, entity, rec_id, digest, stream or new_stream, listing_run, version)
                    return WriteResult.CREATED
                return self._change(existing, entity, digest, stream, listing_run, version)
            except (DocumentExists, PreconditionFailed):
                continue
        # a WriteConflict: the queue handler reschedules the page, and re-processing it is a no-op
        raise PreconditionFailed(f"record {rec_id} kept changing under other writers; the page will be retried")

    def _create(
        self,
        integration: Integration,
        entity: Entity,
        rec_id: str,
        digest: str,
        stream: str | None,
        listing_run: str | None,
        version: str | None,
    ) -> None:
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
            version=version,
            stream=stream,
            listed_by=listing_run or "",
        )
        self._records.insert(record)

    def _change(
        self,
        existing: StoredRecord,
        entity: Entity,
        digest: str,
        stream: str | None,
        listing_run: str | None,
        version: str | None,
    ) -> WriteResult:
        """Decide and write one change of a stored record (PreconditionFailed: re-read and retry)."""
        older = bool(
            entity.updated_at and existing.source_updated_at and entity.updated_at < existing.source_updated_at
        )
        if entity.deleted:
            if existing.deleted or older:
                return WriteResult.UNCHANGED if existing.deleted else WriteResult.STALE
            existing.deleted = True
            existing.deleted_at = utcnow()
            if entity.updated_at and not older:
                existing.source_updated_at = entity.updated_at
            self._save(existing, None, None, version)  # a tombstone (maybe from a companion stream) keeps the scope
            return WriteResult.DELETED
        if not existing.deleted and existing.content_hash == digest:
            self._mark(existing, stream, listing_run, version)
            return WriteResult.UNCHANGED
        if older:
            self._mark(existing, stream, listing_run, None)
            return WriteResult.STALE
        existing.data = entity.data
        existing.content_hash = digest
        existing.source_updated_at = entity.updated_at or existing.source_updated_at
        existing.deleted = False  # a live version revives a tombstone
        existing.deleted_at = None
        self._save(existing, stream, listing_run, version)
        return WriteResult.UPDATED

    def _save(self, record: StoredRecord, stream: str | None, listing_run: str | None, version: str | None) -> None:
        if stream is not None:
            record.stream = stream
        if listing_run is not None:
            record.listed_by = listing_run
        if version is not None:
            record.version = version
        record.updated_at = utcnow()
        self._records.save(record)

    def _mark(self, record: StoredRecord, stream: str | None, listing_run: str | None, version: str | None) -> None:
        """The field-only patch of an unchanged record: listed by this run, in this stream, this version."""
        fields: dict[str, Any] = {}
        if listing_run is not None and record.listed_by != listing_run:
            fields["listed_by"] = listing_run
        if listing_run is not None and stream is not None and record.stream != stream:
            fields["stream"] = stream
        if version is not None and record.version != version:
            fields["version"] = version
        if fields and not self._records.patch(record.tenant_id, record.id, fields, if_match=record.etag):
            raise PreconditionFailed(f"record {record.id} was deleted while being marked")
