"""Outbound: push one local change to the provider, then store what the provider returns.

Storing the provider's answer under the record's content hash is the echo suppression:
when the provider's webhook for our own change arrives, its content hashes the same and the
record is left unchanged.
"""

from __future__ import annotations

from shared.domain import StoredRecord
from shared.errors import NotFound
from shared.messages import OutboundMessage
from shared.services.connections import AdapterHub
from shared.services.records import RecordWriter
from shared.services.repositories import Repositories


class OutboundService:
    """The SyncOutboundWorker's service."""

    def __init__(self, repos: Repositories, adapters: AdapterHub) -> None:
        self._repos = repos
        self._adapters = adapters
        self._writer = RecordWriter(repos.records)

    def handle(self, msg: OutboundMessage) -> None:
        integration = self._repos.integrations.require(msg.tenant_id, msg.integration_id)
        adapter = self._adapters.adapter(integration.provider)
        stream = next((name for name, s in adapter.spec.streams.items() if s.entity_type == msg.entity_type), None)
        if stream is None:
            raise NotFound(f"{integration.provider} has no stream of entity type {msg.entity_type!r}")
        rec_id = StoredRecord.make_id(integration.tenant_id, integration.id, msg.entity_type, msg.external_id)
        record = self._repos.records.get(integration.tenant_id, rec_id)
        if record is None:
            raise NotFound(f"no stored {msg.entity_type} {msg.external_id} to change")
        conn = self._adapters.connection(integration)
        for entity in adapter.push(conn, stream, record.data, msg.changes, msg.idempotency_key):
            self._writer.upsert(integration, entity)
