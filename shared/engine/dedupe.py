"""Dedupe of new canonical records: natural key, then fuzzy name match (external id and content
hash are the record id and hash themselves, applied before this: see :mod:`shared.engine.pipeline`).

- Natural key: a normalized email, phone or domain (``nkey``). A new record whose key is already
  held by a stored record (or an earlier record of the page) joins that record's entity.
- Fuzzy: only for canonical types configured with it, only for records with no natural key
  (two people with different email addresses are two people), and only within the tenant (every
  query is in the tenant's partition). Candidates share a blocking key (type and the first three
  letters of the normalized name); ``rapidfuzz.fuzz.token_sort_ratio`` scores them. At or above
  the type's ``merge_at`` the record joins; at or above ``propose_at`` a merge proposal is stored
  for review instead (``GET /api/manage/merge-proposals``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rapidfuzz import fuzz

from shared.domain import Integration, doc_id, iso, utcnow
from shared.engine.canonical import DEDUPE
from shared.ports.documents import BatchOp, DocumentStore, Where

if TYPE_CHECKING:
    from shared.engine.pipeline import Planned

_CHUNK = 500


@dataclass(frozen=True)
class Join:
    """A new record joins the entity ``entity_id`` (owned by ``owner``: a stored doc or a page plan)."""

    entity_id: str
    owner_id: str
    owner: dict[str, Any] | None
    how: str
    score: float = 100.0


class Deduper:
    """Finds the entity a new record belongs to."""

    def __init__(self, store: DocumentStore, containers: tuple[str, str], proposals: str) -> None:
        self._store = store
        self._containers = containers
        self._proposals = proposals
        self.reads = 0

    def _query(self, tenant: str, field: str, values: list[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for container in self._containers:  # provider records, then derived ones
            for start in range(0, len(values), _CHUNK):
                chunk = values[start : start + _CHUNK]
                self.reads += 1
                where = [Where(field, "in", chunk), Where("deleted", "=", False)]
                found += self._store.query(container, partition_key=tenant, where=where)
        return found

    def match(self, integration: Integration, new: list[Planned], proposals: list[BatchOp]) -> dict[str, Join]:
        """Joins by record id for the page's new canonical records; merge proposals appended to ``proposals``."""
        self.reads = 0
        tenant = integration.tenant_id
        joins: dict[str, Join] = {}
        self._same_object(integration, new, joins)
        keyed = [p for p in new if p.doc is not None and p.doc["nkey"] and p.rec_id not in joins]
        if keyed:
            owners: dict[str, dict[str, Any]] = {}
            for doc in self._query(tenant, "nkey", sorted({p.doc["nkey"] for p in keyed if p.doc})):
                held = owners.get(doc["nkey"])
                if held is None or (doc.get("primary") and not held.get("primary")):
                    owners[doc["nkey"]] = doc
            page_owner: dict[str, Planned] = {}
            for plan in keyed:
                assert plan.doc is not None
                key = plan.doc["nkey"]
                stored = owners.get(key)
                if stored is not None and stored["id"] != plan.rec_id and stored.get("entity_id"):
                    joins[plan.rec_id] = Join(stored["entity_id"], stored["id"], stored, "natural_key")
                elif key in page_owner:
                    owner = page_owner[key]
                    assert owner.doc is not None
                    joins[plan.rec_id] = Join(owner.doc["entity_id"], owner.rec_id, None, "natural_key")
                else:
                    page_owner[key] = plan
        fuzzy = [p for p in new if p.doc is not None and p.doc.get("fkey") and p.rec_id not in joins]
        if fuzzy:
            self._fuzzy(integration, fuzzy, joins, proposals)
        return joins

    def _same_object(self, integration: Integration, new: list[Planned], joins: dict[str, Join]) -> None:
        """External id across containers: a provider record whose object was derived earlier (a Slack
        member first seen as a message's author) joins that derived record's entity."""
        from shared.engine.catalog import CATALOG

        ids = [
            p.rec_id
            for p in new
            if p.derived_from is None and CATALOG.also_listed(integration.provider, p.entity.entity_type)
        ]
        if not ids:
            return
        self.reads += 1
        derived, where = self._containers[1], [Where("id", "in", ids)]
        for doc in self._store.query(derived, partition_key=integration.tenant_id, where=where):
            if doc.get("entity_id"):
                joins[doc["id"]] = Join(doc["entity_id"], doc["id"], doc, "external_id")

    def _fuzzy(
        self, integration: Integration, plans: list[Planned], joins: dict[str, Join], out: list[BatchOp]
    ) -> None:
        blocks = sorted({p.doc["fkey"] for p in plans if p.doc})
        candidates: dict[str, list[tuple[str, str, dict[str, Any] | None, str]]] = {}
        for doc in self._query(integration.tenant_id, "fkey", blocks):
            if doc.get("primary", True):
                candidates.setdefault(doc["fkey"], []).append((doc["id"], doc.get("fname", ""), doc, doc["entity_id"]))
        for plan in plans:
            assert plan.doc is not None
            config = DEDUPE[plan.doc["kind"]]
            best: tuple[float, str, dict[str, Any] | None, str] | None = None
            for cand_id, cand_name, cand_doc, cand_entity in candidates.get(plan.doc["fkey"], []):
                if cand_id == plan.rec_id:
                    continue
                score = fuzz.token_sort_ratio(plan.doc["fname"], cand_name)
                if best is None or score > best[0]:
                    best = (score, cand_id, cand_doc, cand_entity)
            if best is not None and best[0] >= config.merge_at:
                joins[plan.rec_id] = Join(best[3], best[1], best[2], "fuzzy", best[0])
            else:
                if best is not None and best[0] >= config.propose_at:
                    out.append(self._proposal(integration, plan, best))
                candidates.setdefault(plan.doc["fkey"], []).append(
                    (plan.rec_id, plan.doc["fname"], None, plan.doc["entity_id"])
                )

    def _proposal(
        self, integration: Integration, plan: Planned, best: tuple[float, str, dict[str, Any] | None, str]
    ) -> BatchOp:
        assert plan.doc is not None
        pid = doc_id("mp", f"{plan.rec_id}|{best[1]}")
        doc = {
            "id": pid,
            "tenant_id": integration.tenant_id,
            "type": "merge_proposal",
            "kind": plan.doc["kind"],
            "status": "open",
            "score": round(best[0], 1),
            "record_id": plan.rec_id,
            "entity_id": plan.doc["entity_id"],
            "name": plan.doc["fname"],
            "candidate_record_id": best[1],
            "candidate_entity_id": best[3],
            "candidate_name": (best[2] or {}).get("fname", ""),
            "created_at": iso(utcnow()),
        }
        return BatchOp("upsert", pid, doc=doc)
