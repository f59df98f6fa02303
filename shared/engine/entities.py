"""The entity side of a page: joins from dedupe, three-way merges of shared entities, conflicts, pushes.

An entity document (container ``entities``) exists once an entity is *shared*: two sources
feed it, or it has a local edit or a conflict. It holds:

- ``fields``: the hub's canonical values; ``times``/``field_source``: when and from where each
  field last changed (for ``last_write_wins`` and ``source_priority``);
- ``sources``: the external-id map, one entry per linked record (provider, integration, entity
  type, external id, stream, two-way or not) with its **base** snapshot: the last version that
  side and the hub agreed on;
- ``status``: ``waiting`` while a ``manual`` conflict is open.

A change from a source is merged against its base (:func:`shared.engine.merge.merge3`); the
stream's policy decides conflicts; each decided conflict is stored as resolved (with the
strategy that decided it) and each ``manual`` one as open. Every two-way source whose base
differs from the merged fields on a writable field gets a push (the outbox).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.domain import Integration, doc_id
from shared.engine.catalog import Catalog, policy_for, two_way
from shared.engine.dedupe import Join
from shared.engine.mapping import parse_date
from shared.engine.merge import Sides, merge3, resolve
from shared.ports.documents import BatchOp, DocumentStore, Where

if TYPE_CHECKING:
    from shared.engine.pipeline import Planned


def source_entry(integration: Integration, plan: Planned, stream: str | None) -> dict[str, Any]:
    """The external-id map entry of a record feeding an entity."""
    assert plan.doc is not None
    return {
        "provider": integration.provider,
        "integration_id": integration.id,
        "entity_type": plan.entity.entity_type,
        "external_id": plan.entity.external_id,
        "stream": stream,
        "two_way": two_way(integration, stream) and plan.derived_from is None,
        "base": dict(plan.doc["fields"]),
    }


def stored_entry(doc: dict[str, Any]) -> dict[str, Any]:
    """The external-id map entry of a stored record (its fields are its base: it was unshared)."""
    return {
        "provider": doc.get("provider"),
        "integration_id": doc.get("integration_id"),
        "entity_type": doc.get("entity_type"),
        "external_id": doc.get("external_id"),
        "stream": doc.get("stream"),
        "two_way": bool(doc.get("two_way", False)),
        "base": dict(doc.get("fields") or {}),
    }


def new_entity(tenant: str, entity_id: str, kind: str, owner_id: str, now: str) -> dict[str, Any]:
    return {
        "id": entity_id,
        "tenant_id": tenant,
        "type": "entity",
        "kind": kind,
        "primary": owner_id,
        "fields": {},
        "times": {},
        "field_source": {},
        "sources": {},
        "status": "ok",
        "created_at": now,
        "updated_at": now,
    }


def entity_op(entity: dict[str, Any]) -> BatchOp:
    """The write of an entity document: a create when new (a concurrent creator makes the page retry),
    else a replace conditional on the ETag it was read with."""
    etag = entity.get("_etag")
    if etag is None:
        return BatchOp("create", entity["id"], doc=entity)
    return BatchOp("replace", entity["id"], doc=entity, if_match=etag)


def pushes_for(entity: dict[str, Any], catalog: Catalog, fields: set[str] | None = None) -> list[dict[str, Any]]:
    """One push per two-way source whose base differs from the entity's fields on a writable field.

    ``fields``: only these fields (the ones a change just moved; None: every writable field). A
    merge of two sources moves nothing by itself, so it pushes nothing: each source keeps its
    own values until one of them, or the hub, changes a field.
    """
    out = []
    for rec_id, src in entity["sources"].items():
        if not src.get("two_way"):
            continue
        mapper = catalog.mapper(src["provider"], src["entity_type"])
        if mapper is None:
            continue
        base = src.get("base") or {}
        waiting = entity.get("pending") or {}  # a manual conflict holds its field until it is resolved
        names = [k for k in mapper.writable if (fields is None or k in fields) and k not in waiting]
        diff = {k: entity["fields"].get(k) for k in names if entity["fields"].get(k) != base.get(k)}
        changes = mapper.to_provider({k: v for k, v in diff.items() if v is not None})
        if changes:
            out.append(
                {
                    "integration_id": src["integration_id"],
                    "entity_type": src["entity_type"],
                    "external_id": src["external_id"],
                    "record_id": rec_id,
                    "entity_id": entity["id"],
                    "changes": changes,
                }
            )
    return out


class EntityMerger:
    """Applies one page's canonical changes to entity documents (see the module docstring)."""

    def __init__(
        self, store: DocumentStore, entities: str, conflicts: str, records: tuple[str, str], catalog: Catalog
    ) -> None:
        self._store = store
        self._entities = entities
        self._conflicts = conflicts
        self._records, self._derived = records
        self._catalog = catalog
        self.reads = 0
        self.decided: list[Any] = []

    def load(self, tenant: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        self.reads += 1
        docs = self._store.query(self._entities, partition_key=tenant, where=[Where("id", "in", sorted(set(ids)))])
        return {d["id"]: d for d in docs}

    def apply(
        self,
        integration: Integration,
        mapped: list[Planned],
        joins: dict[str, Join],
        stream: str | None,
        now: str,
        ops: dict[str, list[BatchOp]],
    ) -> list[dict[str, Any]]:
        """Joins and merges of the page; writes into ``ops``; returns the pushes asked for."""
        tenant = integration.tenant_id
        by_id = {p.rec_id: p for p in mapped}
        shared = [p for p in mapped if p.doc and p.doc.get("shared") and p.existing is not None]
        wanted = [j.entity_id for j in joins.values()] + [p.doc["entity_id"] for p in shared if p.doc]
        entities = self.load(tenant, wanted)
        touched: dict[str, dict[str, Any]] = {}
        moved: dict[str, set[str]] = {}  # per entity, the fields a source's change moved (what is pushed)
        for rec_id, join in joins.items():
            plan = by_id[rec_id]
            assert plan.doc is not None
            entity = touched.get(join.entity_id) or entities.get(join.entity_id)
            if entity is None:
                entity = new_entity(tenant, join.entity_id, plan.doc["kind"], join.owner_id, now)
                if join.owner is not None:
                    entity["sources"][join.owner_id] = stored_entry(join.owner)
                    self._absorb(entity, join.owner.get("fields") or {}, join.owner.get("provider", ""), now)
                    owner_container = self._derived if join.owner.get("derived_from") else self._records
                    marks: dict[str, Any] = {"shared": True}
                    if join.how == "external_id":  # the provider's own record of a derived object stands for it
                        marks["primary"] = False
                    ops[owner_container].append(
                        BatchOp("patch", join.owner_id, fields=marks, if_match=join.owner.get("_etag"))
                    )
                else:
                    owner = by_id[join.owner_id]
                    assert owner.doc is not None
                    entity["sources"][join.owner_id] = source_entry(integration, owner, stream)
                    self._absorb(entity, owner.doc["fields"], integration.provider, now)
                    owner.doc["shared"] = True
            primary = join.how == "external_id" and join.owner_id == rec_id
            plan.doc.update({"entity_id": join.entity_id, "primary": primary, "shared": True, "fkey": None})
            entity["sources"][rec_id] = source_entry(integration, plan, stream)
            entity.setdefault("merged", []).append({"record_id": rec_id, "how": join.how, "score": join.score})
            self._absorb(entity, plan.doc["fields"], integration.provider, now)
            touched[join.entity_id] = entity
        for plan in shared:
            assert plan.doc is not None
            eid = plan.doc["entity_id"]
            entity = touched.get(eid) or entities.get(eid)
            if entity is None:  # an entity document lost (never expected): the record is its own again
                plan.doc.update({"shared": False})
                continue
            before = dict(entity["fields"])
            self._merge(integration, entity, plan, stream, now, ops)
            after = entity["fields"]
            moved.setdefault(eid, set()).update(
                k for k in before.keys() | after.keys() if before.get(k) != after.get(k)
            )
            moved[eid].update(c.field for c in self.decided)  # a conflict decided for the hub's value
            touched[eid] = entity
        pushes: list[dict[str, Any]] = []
        for eid, entity in touched.items():
            entity["updated_at"] = now
            ops[self._entities].append(entity_op(entity))
            if moved.get(eid):
                pushes += pushes_for(entity, self._catalog, moved[eid])
        return pushes

    @staticmethod
    def _absorb(entity: dict[str, Any], fields: dict[str, Any], source: str, now: str) -> None:
        """A new source's fields join the entity: fields it lacks are added (the earlier source keeps its)."""
        for name, value in fields.items():
            if name not in entity["fields"]:
                entity["fields"][name] = value
                entity["times"][name] = now
                entity["field_source"][name] = source

    def _merge(
        self,
        integration: Integration,
        entity: dict[str, Any],
        plan: Planned,
        stream: str | None,
        now: str,
        ops: dict[str, list[BatchOp]],
    ) -> None:
        assert plan.doc is not None and plan.mapper is not None
        src = entity["sources"].setdefault(plan.rec_id, source_entry(integration, plan, stream))
        remote = plan.doc["fields"]
        merge = merge3(src.get("base") or {}, entity["fields"], remote)
        remote_time = parse_date(plan.entity.updated_at) or now
        sides = Sides(entity.get("times", {}), remote_time, entity.get("field_source", {}), integration.provider)
        policy = policy_for(integration, stream, plan.mapper)
        resolved, pending = resolve(merge, policy, sides)
        conflicted = {c.field for c in merge.conflicts}
        for name in merge.remote_changed - conflicted:
            entity["times"][name], entity["field_source"][name] = remote_time, integration.provider
        for conflict in merge.conflicts:
            chosen = resolved.get(conflict.field)
            waiting = any(c.field == conflict.field for c, _ in pending)
            if not waiting and chosen == conflict.remote:
                entity["times"][conflict.field] = remote_time
                entity["field_source"][conflict.field] = integration.provider
            cid = doc_id("conflict", f"{entity['id']}|{plan.rec_id}|{conflict.field}|{remote_time}")
            ops[self._conflicts].append(
                BatchOp(
                    "upsert",
                    cid,
                    doc={
                        "id": cid,
                        "tenant_id": integration.tenant_id,
                        "type": "conflict",
                        "entity_id": entity["id"],
                        "kind": entity["kind"],
                        "record_id": plan.rec_id,
                        "integration_id": integration.id,
                        "provider": integration.provider,
                        "stream": stream,
                        "field": conflict.field,
                        "base": _json(conflict.base),
                        "local": _json(conflict.local),
                        "remote": _json(conflict.remote),
                        "strategy": policy.configured(conflict.field),
                        "status": "open" if waiting else "resolved",
                        "resolution": None if waiting else _json(chosen),
                        "resolved_by": None if waiting else policy.for_field(conflict.field),
                        "created_at": now,
                        "resolved_at": None if waiting else now,
                    },
                )
            )
            if waiting:
                entity.setdefault("pending", {})[conflict.field] = cid
        entity["fields"] = resolved
        entity["status"] = "waiting" if entity.get("pending") else "ok"
        src["base"] = dict(remote)
        waiting_fields = {c.field for c, _ in pending}
        self.decided = [c for c in merge.conflicts if c.field not in waiting_fields]


def _json(value: Any) -> Any:
    from shared.engine.merge import MISSING

    return None if value is MISSING else value
