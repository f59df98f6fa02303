"""Mapping versions: when a stream's mapping changes, the integration's stored raw records are
re-mapped once, from what is stored, before its next run stores anything.

Each integration has a marker document (``mapping_versions`` in the ``entities`` container) with
the versions its records were mapped with; the first page of every run compares it with the
specs' current versions (one point read) and, when one changed, re-maps the records whose
``mv`` differs (:meth:`~shared.engine.pipeline.PageWriter.remap`) and then updates the marker.
"""

from __future__ import annotations

from shared.domain import Integration, doc_id, iso, utcnow
from shared.engine.pipeline import PageWriter
from shared.ports.documents import BatchOp


def marker_id(integration: Integration) -> str:
    return doc_id("mapv", f"{integration.tenant_id}\x1f{integration.id}")


def remap_if_needed(writer: PageWriter, integration: Integration) -> int:
    """Re-map the integration's records if a mapping version changed since they were mapped; how many."""
    want = writer.catalog.versions(integration.provider)
    key = marker_id(integration)
    marker = writer.store.read(writer.entities, integration.tenant_id, key)
    if marker is not None and marker.get("versions") == want:
        return 0
    done = writer.remap(integration)
    doc = {
        "id": key,
        "tenant_id": integration.tenant_id,
        "type": "mapping_versions",
        "integration_id": integration.id,
        "versions": want,
        "updated_at": iso(utcnow()),
    }
    writer.store.batch(writer.entities, integration.tenant_id, [BatchOp("upsert", key, doc=doc)])
    return done
