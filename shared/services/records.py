"""Writes mapped entities as stored records: deterministic ids, content hashes, ETags, tombstones.

A page goes through :class:`shared.engine.pipeline.PageWriter` (one query for the page's
existing records, nothing written for unchanged ones, one transactional batch for the rest,
each record serialized once, canonical mapping, dedupe and three-way merge on the way).

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

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from adapters.base.adapter import Entity
from shared.domain import Integration, StoredRecord
from shared.engine.pipeline import PageOutcome, PageWriter, WriteResult
from shared.services.repositories import Repository

__all__ = ["RecordWriter", "WriteResult"]

Outbox = Callable[[Integration, list[dict[str, Any]]], None]


class RecordWriter:
    """Writes pages (or one entity) of records; re-processing the same data is a no-op.

    Args:
        records: The records repository (its store and container are used).
        containers: Logical -> configured container names (``entities``, ``conflicts``,
            ``merge_proposals``); defaults to the logical names.
        outbox: Receives the pushes a page asks for (local values a two-way source lacks).
    """

    def __init__(
        self,
        records: Repository[StoredRecord],
        *,
        containers: Mapping[str, str] | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self._records = records
        names = {**(containers or {}), "records": records.container}
        self.pages = PageWriter(records.store, names, outbox=outbox)

    def write_page(
        self,
        integration: Integration,
        entities: Sequence[Entity],
        *,
        stream: str | None = None,
        listing_run: str | None = None,
        version: str | None = None,
        new_stream: str | None = None,
    ) -> PageOutcome:
        """Write one page of entities (see :meth:`upsert` for the arguments); results in input order."""
        return self.pages.write(
            integration, entities, stream=stream, listing_run=listing_run, version=version, new_stream=new_stream
        )

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
        outcome = self.write_page(
            integration, [entity], stream=stream, listing_run=listing_run, version=version, new_stream=new_stream
        )
        return outcome.results[0]
