"""One page through mapping, dedupe, conflict detection and storage: the lean write path.

Per page, whatever its size:

- one query reads the page's existing records (hash, ETag, canonical fields, entity link);
  records derived from the changed ones (a GitHub issue's author) take a second query;
- an unchanged record writes nothing (a full listing marks it with a field-only patch);
- each record is serialized once with orjson: the raw data's sorted bytes are hashed and
  spliced into the document's bytes, which the store writes as they are;
- every write of the page goes to the store as one transactional batch per container
  (SQLite: one transaction; Cosmos: transactional batches per partition). Entity documents
  are written before records, so a crash in between is re-done by the redelivered page
  (the three-way merge of the same change is a no-op).

Canonical layer (when the stream has a :class:`~adapters.base.spec.MappingSpec`): the record
carries its canonical ``fields``, ``kind``, ``links``, natural key ``nkey``, fuzzy block ``fkey``
and ``entity_id``. A record that starts its own entity is its entity's only storage
(``primary``); an entity document (:mod:`shared.engine.entities`) exists only once an entity has
two sources, a local edit or a conflict (``shared`` records), and holds the merged fields,
each source's base snapshot (the external-id map) and field times.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from adapters.base.model import Entity
from shared.domain import Integration, StoredRecord, doc_id, iso, utcnow
from shared.engine import canonical
from shared.engine.catalog import CATALOG, Catalog, two_way
from shared.engine.dedupe import Deduper
from shared.engine.mapping import Derived, Mapper
from shared.ports.documents import BatchKind, BatchOp, DocumentExists, DocumentStore, PreconditionFailed, Where

_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
KNOWN_DERIVED = 10_000
"""Derived records a writer remembers as stored (author persons repeat on every page)."""
_IN_CHUNK = 500


class WriteResult(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    STALE = "stale"
    DELETED = "deleted"


def encode_data(data: Any) -> tuple[bytes, str]:
    """The raw data's canonical bytes (sorted keys) and their SHA-256: one serialization for both."""
    raw = orjson.dumps(data, option=_SORTED, default=str)
    return raw, hashlib.sha256(raw).hexdigest()


def entity_id_of(record_id: str) -> str:
    """The id of the entity a record starts: ``ent-`` and the record id's hash (deterministic)."""
    prefix, _, digest = record_id.partition("-")
    return f"ent-{digest}" if prefix == "rec" and digest else doc_id("ent", record_id)


@dataclass(slots=True)
class Planned:
    """One record's decision within a page."""

    entity: Entity
    rec_id: str
    data_bytes: bytes
    digest: str
    existing: dict[str, Any] | None
    result: WriteResult = WriteResult.UNCHANGED
    doc: dict[str, Any] | None = None
    mapper: Mapper | None = None
    derived_from: str | None = None
    container: str = ""
    derived: list[Derived] | None = None


@dataclass
class PageOutcome:
    """What a page did (results in input order) and the outbound pushes it asks for."""

    results: list[WriteResult]
    pushes: list[dict[str, Any]] = field(default_factory=list)
    writes: int = 0
    reads: int = 0


class PageWriter:
    """Writes pages of mapped entities; see the module docstring."""

    def __init__(
        self,
        store: DocumentStore,
        containers: Mapping[str, str],
        *,
        catalog: Catalog = CATALOG,
        outbox: Callable[[Integration, list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.store = store
        self.records = containers.get("records", "records")
        self.derived = containers.get("derived_records", "derived_records")
        self.entities = containers.get("entities", "entities")
        self.conflicts = containers.get("conflicts", "conflicts")
        self.proposals = containers.get("merge_proposals", "merge_proposals")
        self.catalog = catalog
        self.outbox = outbox
        self.dedupe = Deduper(store, (self.records, self.derived), self.proposals)
        self._known: dict[tuple[str, str], str] = {}  # (tenant, derived record id) -> the digest this writer stored

    # ------------------------------------------------------------------ reading

    def existing(self, tenant: str, ids: Sequence[str], container: str | None = None) -> dict[str, dict[str, Any]]:
        """The stored records among ``ids``, by id (one query per 500 ids)."""
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start : start + _IN_CHUNK]
            where = [Where("id", "in", chunk)]
            for doc in self.store.query(container or self.records, partition_key=tenant, where=where):
                found[doc["id"]] = doc
        return found

    # ------------------------------------------------------------------ the page

    def write(
        self,
        integration: Integration,
        entities: Sequence[Entity],
        *,
        stream: str | None = None,
        listing_run: str | None = None,
        version: str | None = None,
        new_stream: str | None = None,
    ) -> PageOutcome:
        """Decide and write one page; PreconditionFailed/DocumentExists after 3 lost races."""
        for _ in range(3):
            try:
                return self._write(integration, entities, stream, listing_run, version, new_stream)
            except (DocumentExists, PreconditionFailed):
                continue
        raise PreconditionFailed("records of this page kept changing under other writers; the page will be retried")

    def _write(
        self,
        integration: Integration,
        entities: Sequence[Entity],
        stream: str | None,
        listing_run: str | None,
        version: str | None,
        new_stream: str | None,
    ) -> PageOutcome:
        tenant, now = integration.tenant_id, iso(utcnow())
        mappers: dict[str, Mapper | None] = {}
        plans = [self._plan(integration, e, mappers) for e in entities]
        outcome = PageOutcome([])
        stored = self.existing(tenant, [p.rec_id for p in plans]) if plans else {}
        outcome.reads += 1 if plans else 0
        ops: list[BatchOp] = []
        derived_ops: list[BatchOp] = []
        changed: list[Planned] = []
        for plan in plans:
            plan.existing = stored.get(plan.rec_id)
            self._decide(plan, stream, listing_run, version, ops)
            if plan.result in (WriteResult.CREATED, WriteResult.UPDATED):
                changed.append(plan)
        derived = self._derived(integration, changed)
        listed = [p.rec_id for p in derived if self.catalog.also_listed(integration.provider, p.entity.entity_type)]
        if listed:  # the provider's own record of it is stored: that is the entity; no derived copy
            provider_copies = self.existing(tenant, listed)
            outcome.reads += 1
            derived = [p for p in derived if p.rec_id not in provider_copies]
        if derived:
            more = self.existing(tenant, [p.rec_id for p in derived], self.derived)
            outcome.reads += 1
            for plan in derived:
                plan.existing = more.get(plan.rec_id)
                self._decide(plan, None, None, None, derived_ops)
                if plan.result in (WriteResult.CREATED, WriteResult.UPDATED):
                    changed.append(plan)
        entity_ops = self._canonical(integration, changed, stream, now, outcome)
        for plan in changed:
            target = derived_ops if plan.derived_from is not None else ops
            target.append(self._record_op(integration, plan, stream, listing_run, version, new_stream, now))
        entity_ops.setdefault(self.derived, []).extend(derived_ops)
        records_ops = entity_ops.pop(self.records, [])
        for container, batch in entity_ops.items():
            if batch:
                self.store.batch(container, tenant, batch)
                outcome.writes += len(batch)
        if ops or records_ops:
            self.store.batch(self.records, tenant, [*records_ops, *ops])
            outcome.writes += len(ops) + len(records_ops)
        outcome.results = [p.result for p in plans]
        self._remember(tenant, derived)
        if outcome.pushes and self.outbox is not None:
            self.outbox(integration, outcome.pushes)
        return outcome

    def _remember(self, tenant: str, derived: list[Planned]) -> None:
        """Derived records now stored as planned (a bounded memory: it only saves re-reading them)."""
        if len(self._known) > KNOWN_DERIVED:
            self._known.clear()
        for plan in derived:
            if not plan.entity.deleted:
                self._known[(tenant, plan.rec_id)] = plan.digest

    def _plan(self, integration: Integration, entity: Entity, mappers: dict[str, Mapper | None]) -> Planned:
        rec_id = StoredRecord.make_id(integration.tenant_id, integration.id, entity.entity_type, entity.external_id)
        data_bytes, digest = encode_data(entity.data)
        if entity.entity_type not in mappers:
            mappers[entity.entity_type] = self.catalog.mapper(integration.provider, entity.entity_type)
        mapper = mappers[entity.entity_type]
        return Planned(entity, rec_id, data_bytes, digest, None, mapper=mapper)

    @staticmethod
    def _decide(
        plan: Planned, stream: str | None, listing_run: str | None, version: str | None, ops: list[BatchOp]
    ) -> None:
        """The record's fate (the same rules as ever: older data is stale, a tombstone soft-deletes)."""
        entity, existing = plan.entity, plan.existing
        if existing is None:
            plan.result = WriteResult.UNCHANGED if entity.deleted else WriteResult.CREATED
            return
        old_time = existing.get("source_updated_at")
        older = bool(entity.updated_at and old_time and entity.updated_at < old_time)
        if entity.deleted:
            if existing.get("deleted") or older:
                plan.result = WriteResult.UNCHANGED if existing.get("deleted") else WriteResult.STALE
                return
            plan.result = WriteResult.DELETED
            fields: dict[str, Any] = {"deleted": True, "deleted_at": iso(utcnow()), "updated_at": iso(utcnow())}
            if entity.updated_at:
                fields["source_updated_at"] = entity.updated_at
            if version is not None:
                fields["version"] = version
            ops.append(BatchOp("patch", plan.rec_id, fields=fields, if_match=existing.get("_etag")))
            return
        remap = plan.mapper is not None and existing.get("mv") != plan.mapper.version
        if not existing.get("deleted") and existing.get("content_hash") == plan.digest and not remap:
            plan.result = WriteResult.UNCHANGED
            _mark(plan, stream, listing_run, version, ops)
            return
        if older:
            plan.result = WriteResult.STALE
            _mark(plan, stream, listing_run, None, ops)
            return
        plan.result = WriteResult.UPDATED

    def remap(self, integration: Integration, *, batch: int = 200) -> int:
        """Re-map the integration's stored raw records whose mapping version is not the current one.

        Nothing is fetched: the stored ``data`` goes through the current mapping again (links,
        derived records and dedupe included). Returns how many records were re-mapped.
        """
        done, after = 0, ""
        while True:
            where = [Where("integration_id", "=", integration.id), Where("id", ">", after)]
            docs = self.store.query(
                self.records, partition_key=integration.tenant_id, where=where, order_by="id", limit=batch
            )
            if not docs:
                return done
            after = docs[-1]["id"]
            stale = [
                d
                for d in docs
                if not d.get("deleted")
                and (m := self.catalog.mapper(integration.provider, d["entity_type"])) is not None
                and d.get("mv") != m.version
            ]
            entities = [
                Entity(d["entity_type"], d["external_id"], d["data"], d.get("source_updated_at")) for d in stale
            ]
            if entities:
                outcome = self.write(integration, entities)
                done += sum(1 for r in outcome.results if r is WriteResult.UPDATED)

    def _derived(self, integration: Integration, changed: list[Planned]) -> list[Planned]:
        """Records derived from the page's changed records, one per id (the first copy wins)."""
        found: dict[str, Planned] = {}
        seen: set[tuple[str, str]] = set()
        for plan in changed:
            if plan.mapper is None or not plan.mapper.derived or plan.derived_from is not None:
                continue
            plan.derived = plan.mapper.derive(plan.entity.data)
            for d in plan.derived:
                if (d.entity_type, d.external_id) in seen:
                    continue  # one copy per page (the same author on many issues)
                seen.add((d.entity_type, d.external_id))
                entity = Entity(d.entity_type, d.external_id, d.data)
                rec_id = StoredRecord.make_id(integration.tenant_id, integration.id, d.entity_type, d.external_id)
                data_bytes, digest = encode_data(d.data)
                if self._known.get((integration.tenant_id, rec_id)) == digest:
                    continue  # this writer stored exactly this copy already (the same author, page after page)
                found[rec_id] = Planned(
                    entity,
                    rec_id,
                    data_bytes,
                    digest,
                    None,
                    mapper=d.mapper,
                    derived_from=plan.rec_id,
                    container=self.derived,
                )
        return list(found.values())

    # ------------------------------------------------------------------ canonical layer

    def _canonical(
        self, integration: Integration, changed: list[Planned], stream: str | None, now: str, outcome: PageOutcome
    ) -> dict[str, list[BatchOp]]:
        """Map changed records, dedupe new ones, three-way merge shared ones; entity-side writes."""
        mapped = [p for p in changed if p.mapper is not None]
        if not mapped:
            return {}
        ids = {(p.entity.entity_type, p.entity.external_id): p.rec_id for p in changed if p.derived_from}
        # link targets repeat within a page (one author, one account): each id is hashed once
        tenant, integ = integration.tenant_id, integration.id
        stream_two_way = two_way(integration, stream) if stream is not None else None
        for plan in mapped:
            assert plan.mapper is not None
            fields = plan.mapper.fields(plan.entity.data)
            kind = plan.mapper.kind
            name = canonical.norm_name(fields.get(canonical.NAME_FIELDS.get(kind, "name")), kind)
            links = plan.mapper.links(plan.entity.data, plan.derived) if plan.derived_from is None else []
            link_docs = []
            for link in links:
                key = (link.entity_type, link.external_id)
                target = ids.get(key)
                if target is None:
                    target = ids[key] = StoredRecord.make_id(tenant, integ, link.entity_type, link.external_id)
                link_docs.append({"rel": link.rel, "type": link.entity_type, "to": target})
            plan.doc = {
                "kind": kind,
                "fields": fields,
                "mv": plan.mapper.version,
                "nkey": canonical.natural_key(kind, fields),
                "fname": name,
                "fkey": None,
                "links": link_docs,
                "link_to": [link["to"] for link in link_docs],
            }
            existing = plan.existing
            if plan.derived_from is None:  # whether local changes flow out to this record (the stream's direction)
                known = existing.get("two_way", False) if existing is not None else False
                plan.doc["two_way"] = stream_two_way if stream_two_way is not None else known
            if existing is not None and existing.get("entity_id"):
                plan.doc["entity_id"] = existing["entity_id"]
                plan.doc["primary"] = existing.get("primary", True)
                plan.doc["shared"] = existing.get("shared", False)
            else:
                plan.doc["entity_id"] = entity_id_of(plan.rec_id)
                plan.doc["primary"] = True
                plan.doc["shared"] = False
            if plan.doc["nkey"] is None and not plan.doc["shared"]:
                plan.doc["fkey"] = canonical.fuzzy_block(kind, name)
        ops: dict[str, list[BatchOp]] = {
            self.entities: [],
            self.conflicts: [],
            self.proposals: [],
            self.records: [],
            self.derived: [],
        }
        new = [p for p in mapped if p.existing is None or not p.existing.get("entity_id")]
        joins = self.dedupe.match(integration, new, ops[self.proposals])
        outcome.reads += self.dedupe.reads
        from shared.engine.entities import EntityMerger  # the entity side (kept apart: a module of its own)

        merger = EntityMerger(self.store, self.entities, self.conflicts, (self.records, self.derived), self.catalog)
        pushes = merger.apply(integration, mapped, joins, stream, now, ops)
        outcome.reads += merger.reads
        outcome.pushes.extend(pushes)
        return ops

    def _record_op(
        self,
        integration: Integration,
        plan: Planned,
        stream: str | None,
        listing_run: str | None,
        version: str | None,
        new_stream: str | None,
        now: str,
    ) -> BatchOp:
        """The record's document, serialized once (the raw data's bytes spliced in)."""
        entity, existing = plan.entity, plan.existing
        if existing is None:
            head: dict[str, Any] = {
                "id": plan.rec_id,
                "tenant_id": integration.tenant_id,
                "integration_id": integration.id,
                "provider": integration.provider,
                "entity_type": entity.entity_type,
                "external_id": entity.external_id,
                "content_hash": plan.digest,
                "source_updated_at": entity.updated_at,
                "version": version,
                "stream": (stream or new_stream) if plan.derived_from is None else None,
                "listed_by": listing_run or "",
                "deleted": False,
                "deleted_at": None,
                "created_at": now,
                "updated_at": now,
                "type": "record",
            }
            kind: BatchKind = "create"
            if_match: str | None = None
        else:
            head = {k: v for k, v in existing.items() if k != "data" and not k.startswith("_")}
            head["content_hash"] = plan.digest
            head["source_updated_at"] = entity.updated_at or existing.get("source_updated_at")
            head["deleted"], head["deleted_at"], head["updated_at"] = False, None, now
            if stream is not None:
                head["stream"] = stream
            if listing_run is not None:
                head["listed_by"] = listing_run
            if version is not None:
                head["version"] = version
            kind, if_match = "replace", existing.get("_etag")
        if plan.derived_from is not None:
            head["derived_from"] = plan.derived_from
        if plan.doc is not None:
            head.update(plan.doc)
        encoded = orjson.dumps(head)[:-1] + b',"data":' + plan.data_bytes + b"}"
        head["data"] = entity.data  # the document as a dict too (the Cosmos SDK serializes its own)
        return BatchOp(kind, plan.rec_id, doc=head, encoded=encoded, if_match=if_match)


def _mark(plan: Planned, stream: str | None, listing_run: str | None, version: str | None, ops: list[BatchOp]) -> None:
    """The field-only patch of an unchanged record: listed by this run, in this stream, this version."""
    record = plan.existing
    assert record is not None
    fields: dict[str, Any] = {}
    if listing_run is not None and record.get("listed_by") != listing_run:
        fields["listed_by"] = listing_run
    if listing_run is not None and stream is not None and record.get("stream") != stream:
        fields["stream"] = stream
    if version is not None and record.get("version") != version:
        fields["version"] = version
    if fields:
        ops.append(BatchOp("patch", plan.rec_id, fields=fields, if_match=record.get("_etag")))


__all__ = ["PageOutcome", "PageWriter", "WriteResult", "encode_data"]
