"""The operator's view of canonical entities: listing with links and sources, local edits,
conflicts and their resolution, splits, merge proposals, and re-mapping after a mapping change.

An entity is listed once, from its *primary* record (the record that started it); a shared
entity's fields and sources come from its entity document, a single-source entity's from its
record. Links are stored on the records that declare them (by the target record's id), so
they are read both ways: outgoing from the entity's records, incoming by ``link_to contains``;
a link whose target record is not stored yet is ``pending`` and resolves by itself when the
target arrives (the target id is deterministic).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.domain import Integration, iso, utcnow
from shared.engine import canonical
from shared.engine.catalog import CATALOG, Catalog
from shared.engine.entities import entity_op, pushes_for, stored_entry
from shared.engine.pipeline import entity_id_of
from shared.errors import Conflict, InvalidInput, NotFound
from shared.ports.documents import BatchOp, DocumentStore, Where

Outbox = Callable[[Integration, list[dict[str, Any]]], None]
MAX_PAGE = 200


class EntityService:
    """Admin operations on canonical entities (see the module docstring).

    Args:
        store: The document store.
        containers: Logical -> configured container names.
        integrations: Looks up an integration (``tenant, id -> Integration``) for pushes.
        outbox: Sends pushes (one outbound message each).
    """

    def __init__(
        self,
        store: DocumentStore,
        containers: Mapping[str, str],
        *,
        integrations: Callable[[str, str], Integration | None] | None = None,
        outbox: Outbox | None = None,
        catalog: Catalog = CATALOG,
    ) -> None:
        self._store = store
        self._records = containers.get("records", "records")
        self._derived = containers.get("derived_records", "derived_records")
        self._entities = containers.get("entities", "entities")
        self._conflicts = containers.get("conflicts", "conflicts")
        self._proposals = containers.get("merge_proposals", "merge_proposals")
        self._integrations = integrations
        self._outbox = outbox
        self._catalog = catalog

    # ------------------------------------------------------------------ reading

    def _record(self, tenant: str, rec_id: str) -> tuple[str, dict[str, Any]] | None:
        for container in (self._records, self._derived):
            doc = self._store.read(container, tenant, rec_id)
            if doc is not None:
                return container, doc
        return None

    def _primary(self, tenant: str, entity_id: str) -> dict[str, Any]:
        entity = self._store.read(self._entities, tenant, entity_id)
        rec_id = entity["primary"] if entity else None
        if rec_id is None and entity_id.startswith("ent-"):
            rec_id = "rec-" + entity_id[4:]
        found = self._record(tenant, rec_id) if rec_id else None
        if found is None:
            raise NotFound(f"no entity {entity_id!r} for tenant {tenant}", code="unknown_entity")
        return found[1]

    def list_entities(self, tenant: str, params: Mapping[str, str]) -> dict[str, Any]:
        """``?type=person&q=ada&cursor=...&limit=50``: a page of entities and the next cursor."""
        kind = params.get("type")
        if kind is not None and kind not in canonical.CANONICAL_TYPES:
            raise InvalidInput(f"type: one of {', '.join(canonical.CANONICAL_TYPES)}", code="invalid_type")
        try:
            limit = int(params.get("limit", "50"))
        except ValueError:
            raise InvalidInput("limit: a whole number from 1 to 200") from None
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput("limit: a whole number from 1 to 200")
        where = [Where("primary", "=", True)]
        if kind:
            where.append(Where("kind", "=", kind))
        query = (params.get("q") or "").strip()
        if query:
            email = canonical.norm_email(query)
            if email:
                where.append(Where("nkey", "=", f"email:{email}"))
            else:
                name = canonical.norm_name(query)
                where += [Where("fname", ">=", name), Where("fname", "<", name + "\uffff")]
        cursor = params.get("cursor")
        if cursor:
            where.append(Where("id", ">", cursor))
        docs: list[dict[str, Any]] = []
        for container in (self._records, self._derived):
            docs += self._store.query(container, partition_key=tenant, where=where, order_by="id", limit=limit + 1)
        docs.sort(key=lambda d: d["id"])
        page, more = docs[:limit], len(docs) > limit
        return {
            "entities": [
                v for v in (self.view(tenant, doc, incoming=False) for doc in page) if v["status"] != "deleted"
            ],
            "next_cursor": page[-1]["id"] if more and page else None,
        }

    def get(self, tenant: str, entity_id: str) -> dict[str, Any]:
        """One entity with its fields, sources (the external-id map) and links both ways."""
        return self.view(tenant, self._primary(tenant, entity_id))

    def view(self, tenant: str, primary: dict[str, Any], *, incoming: bool = True) -> dict[str, Any]:
        """The entity a primary record stands for; ``status`` ``deleted`` once every source is.

        ``incoming``: also the links other records hold to it (a scan of the tenant's records on
        SQLite, so a page of entities leaves them to ``GET /entities/{id}``).
        """
        entity_id = primary.get("entity_id") or entity_id_of(primary["id"])
        entity = self._store.read(self._entities, tenant, entity_id) if primary.get("shared") else None
        if entity is not None:
            sources = entity["sources"]
            fields, status = entity["fields"], entity.get("status", "ok")
        else:
            sources = {primary["id"]: stored_entry(primary)}
            fields, status = primary.get("fields") or {}, "ok"
        records = self._records_of(tenant, list(sources))
        gone = {r["id"] for r in records if r.get("deleted")}
        if records and len(gone) == len({r["id"] for r in records}):
            status = "deleted"  # every provider deleted it (a source that lives on keeps the entity)
        return {
            "id": entity_id,
            "type": primary.get("kind"),
            "fields": fields,
            "status": status,
            "sources": [
                {"record_id": rid, **{k: v for k, v in src.items() if k != "base"}, "deleted": rid in gone}
                for rid, src in sources.items()
            ],
            "links": self._links(tenant, records, incoming),
            "merged": (entity or {}).get("merged", []),
        }

    def _records_of(self, tenant: str, ids: list[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for container in (self._records, self._derived):
            found += self._store.query(container, partition_key=tenant, where=[Where("id", "in", ids)])
        return found

    def _links(self, tenant: str, records: list[dict[str, Any]], incoming: bool = True) -> list[dict[str, Any]]:
        out = []
        targets = [link["to"] for r in records for link in r.get("links") or []]
        stored = {d["id"]: d for d in self._records_of(tenant, targets)} if targets else {}
        for record in records:
            for link in record.get("links") or []:
                target = stored.get(link["to"])
                out.append(
                    {
                        "direction": "out",
                        "rel": link["rel"],
                        "type": (target or {}).get("kind") or link["type"],
                        "entity_id": target.get("entity_id") if target else None,
                        "status": "resolved" if target else "pending",
                    }
                )
        for record in records if incoming else []:
            holders = self._store.query(
                self._records, partition_key=tenant, where=[Where("link_to", "contains", record["id"])], limit=100
            )
            for source in holders:
                for link in source.get("links") or []:
                    if link["to"] == record["id"]:
                        out.append(
                            {
                                "direction": "in",
                                "rel": link["rel"],
                                "type": source.get("kind"),
                                "entity_id": source.get("entity_id"),
                                "status": "resolved",
                            }
                        )
        return out

    # ------------------------------------------------------------------ local changes

    def _materialize(self, tenant: str, primary: dict[str, Any]) -> dict[str, Any]:
        """The entity document of ``primary``'s entity (created from the record when single-source)."""
        entity_id = primary.get("entity_id") or entity_id_of(primary["id"])
        entity = self._store.read(self._entities, tenant, entity_id)
        if entity is not None:
            return entity
        now = iso(utcnow())
        fields = dict(primary.get("fields") or {})
        source = primary.get("provider", "")
        return {
            "id": entity_id,
            "tenant_id": tenant,
            "type": "entity",
            "kind": primary.get("kind"),
            "primary": primary["id"],
            "fields": fields,
            "times": {k: primary.get("source_updated_at") or now for k in fields},
            "field_source": dict.fromkeys(fields, source),
            "sources": {primary["id"]: self._entry(tenant, primary)},
            "status": "ok",
            "created_at": now,
            "updated_at": now,
        }

    def _entry(self, tenant: str, record: dict[str, Any]) -> dict[str, Any]:
        entry = stored_entry(record)
        integration = self._integrations(tenant, record["integration_id"]) if self._integrations else None
        if integration is not None and not record.get("derived_from"):
            from shared.engine.catalog import two_way

            entry["two_way"] = two_way(integration, record.get("stream"))
        return entry

    def _save(
        self, tenant: str, entity: dict[str, Any], primary_container: str, primary: dict[str, Any], fields: set[str]
    ) -> None:
        entity["updated_at"] = iso(utcnow())
        self._store.batch(self._entities, tenant, [entity_op(entity)])
        if not primary.get("shared"):
            self._store.batch(primary_container, tenant, [BatchOp("patch", primary["id"], fields={"shared": True})])
        self._push(tenant, entity, fields)

    def _push(self, tenant: str, entity: dict[str, Any], fields: set[str]) -> None:
        pushes = pushes_for(entity, self._catalog, fields)
        if not pushes or self._outbox is None or self._integrations is None:
            return
        for integration_id in {p["integration_id"] for p in pushes}:
            integration = self._integrations(tenant, integration_id)
            if integration is not None:
                self._outbox(integration, [p for p in pushes if p["integration_id"] == integration_id])

    def change(self, tenant: str, entity_id: str, body: Any) -> dict[str, Any]:
        """A local edit (``{"fields": {...}}``): stored at once, pushed to every two-way source."""
        if not isinstance(body, dict) or not isinstance(body.get("fields"), dict) or not body["fields"]:
            raise InvalidInput('body: {"fields": {name: value, ...}} with at least one field', code="invalid_change")
        primary = self._primary(tenant, entity_id)
        found = self._record(tenant, primary["id"])
        assert found is not None
        entity = self._materialize(tenant, primary)
        now = iso(utcnow())
        for name, value in body["fields"].items():
            if not isinstance(name, str) or not name:
                raise InvalidInput("field names are non-empty strings", code="invalid_change")
            if value is None:
                entity["fields"].pop(name, None)
            else:
                entity["fields"][name] = value
            entity["times"][name], entity["field_source"][name] = now, "local"
        self._save(tenant, entity, found[0], primary, set(body["fields"]))
        return self.get(tenant, entity["id"])

    # ------------------------------------------------------------------ conflicts

    def conflicts(self, tenant: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """Stored conflicts, newest first (``?status=open|resolved``, ``?entity_id=``)."""
        where = []
        if params.get("status"):
            where.append(Where("status", "=", params["status"]))
        if params.get("entity_id"):
            where.append(Where("entity_id", "=", params["entity_id"]))
        return self._store.query(
            self._conflicts, partition_key=tenant, where=where, order_by="created_at", descending=True, limit=200
        )

    def resolve(self, tenant: str, conflict_id: str, body: Any) -> dict[str, Any]:
        """Resolve an open conflict: ``{"pick": "local"|"remote"|"base"}`` or ``{"value": ...}``."""
        conflict = self._store.read(self._conflicts, tenant, conflict_id)
        if conflict is None:
            raise NotFound(f"no conflict {conflict_id!r} for tenant {tenant}", code="unknown_conflict")
        if conflict["status"] != "open":
            raise Conflict(f"conflict {conflict_id} is already {conflict['status']}", code="conflict_resolved")
        if not isinstance(body, dict) or (("pick" in body) == ("value" in body)):
            raise InvalidInput('body: {"pick": "local"|"remote"|"base"} or {"value": ...}', code="invalid_resolution")
        if "pick" in body:
            if body["pick"] not in ("local", "remote", "base"):
                raise InvalidInput('pick: "local", "remote" or "base"', code="invalid_resolution")
            value = conflict[body["pick"]]
        else:
            value = body["value"]
        entity = self._store.read(self._entities, tenant, conflict["entity_id"])
        if entity is None:
            raise NotFound(f"entity {conflict['entity_id']} of conflict {conflict_id} is gone", code="unknown_entity")
        now = iso(utcnow())
        name = conflict["field"]
        if value is None:
            entity["fields"].pop(name, None)
        else:
            entity["fields"][name] = value
        entity["times"][name], entity["field_source"][name] = now, "operator"
        entity.get("pending", {}).pop(name, None)
        entity["status"] = "waiting" if entity.get("pending") else "ok"
        entity["updated_at"] = now
        conflict.update(status="resolved", resolution=value, resolved_by="operator", resolved_at=now)
        self._store.batch(self._conflicts, tenant, [BatchOp("replace", conflict_id, doc=conflict)])
        self._store.batch(
            self._entities, tenant, [BatchOp("replace", entity["id"], doc=entity, if_match=entity["_etag"])]
        )
        self._push(tenant, entity, {name})
        return {k: v for k, v in conflict.items() if not k.startswith("_")}

    # ------------------------------------------------------------------ dedupe review

    def proposals(self, tenant: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """Fuzzy matches below the merge threshold, kept for review (``?status=open``)."""
        where = [Where("status", "=", params["status"])] if params.get("status") else []
        return self._store.query(
            self._proposals, partition_key=tenant, where=where, order_by="score", descending=True, limit=200
        )

    def split(self, tenant: str, entity_id: str, body: Any) -> dict[str, Any]:
        """Detach one source (``{"record_id": ...}``) into an entity of its own; the map follows."""
        if not isinstance(body, dict) or not isinstance(body.get("record_id"), str):
            raise InvalidInput('body: {"record_id": "<a source record of the entity>"}', code="invalid_split")
        entity = self._store.read(self._entities, tenant, entity_id)
        rec_id = body["record_id"]
        if entity is None or rec_id not in entity["sources"]:
            raise NotFound(f"record {rec_id!r} is not a source of entity {entity_id!r}", code="unknown_source")
        if rec_id == entity["primary"] or len(entity["sources"]) < 2:
            raise Conflict("the entity's first source stays; split off one of the others", code="cannot_split")
        found = self._record(tenant, rec_id)
        if found is None:
            raise NotFound(f"record {rec_id!r} is gone", code="unknown_source")
        container, record = found
        entity["sources"].pop(rec_id)
        entity.setdefault("split", []).append({"record_id": rec_id, "at": iso(utcnow())})
        entity["merged"] = [m for m in entity.get("merged", []) if m.get("record_id") != rec_id]
        own = entity_id_of(rec_id)
        fields = {"entity_id": own, "primary": True, "shared": False}
        self._store.batch(self._entities, tenant, [BatchOp("replace", entity_id, doc=entity, if_match=entity["_etag"])])
        self._store.batch(container, tenant, [BatchOp("patch", rec_id, fields=fields, if_match=record["_etag"])])
        return {"entity": self.get(tenant, entity_id), "split_off": self.get(tenant, own)}
