"""Outbound: push one local change to the provider, then store what the provider returns.

Storing the provider's answer under the record's content hash is the echo suppression:
when the provider's webhook for our own change arrives, its content hashes the same and the
record is left unchanged.

A change the hub cannot apply (an unknown record or entity type) or the provider refuses
for that one item is a per-item problem (:class:`~shared.errors.SkipRecord`): it is dead-
lettered with its reason and the integration's status is left alone. A rejected credential,
a rate limit and transient failures are the connection's and are reported as such.
"""

from __future__ import annotations

from shared.domain import StoredRecord
from shared.errors import FailRun, SkipRecord
from shared.messages import OutboundMessage
from shared.services.connections import AdapterHub
from shared.services.records import RecordWriter
from shared.services.repositories import Repositories
from shared.services.status import IntegrationHealth


class OutboundService:
    """The SyncOutboundWorker's service."""

    def __init__(self, repos: Repositories, adapters: AdapterHub) -> None:
        self._repos = repos
        self._adapters = adapters
        self._writer = RecordWriter(repos.records)
        self._health = IntegrationHealth(repos.integrations)

    def handle(self, msg: OutboundMessage) -> None:
        """Push ``msg``'s change and store the provider's new version of the record."""
        integration = self._repos.integrations.require(msg.tenant_id, msg.integration_id)
        adapter = self._adapters.adapter(integration.provider)
        stream = next((name for name, s in adapter.spec.streams.items() if s.entity_type == msg.entity_type), None)
        if stream is None:
            raise SkipRecord(
                f"{integration.provider} has no stream of entity type {msg.entity_type!r}", code="unknown_entity_type"
            )
        rec_id = StoredRecord.make_id(integration.tenant_id, integration.id, msg.entity_type, msg.external_id)
        record = self._repos.records.get(integration.tenant_id, rec_id)
        if record is None:
            raise SkipRecord(f"no stored {msg.entity_type} {msg.external_id} to change", code="unknown_record")
        conn = self._adapters.connection(integration)
        try:
            entities = adapter.push(conn, stream, record.data, msg.changes, msg.idempotency_key)
        except FailRun as exc:
            raise SkipRecord(
                f"change {msg.idempotency_key} to {msg.entity_type} {msg.external_id} was refused: {exc}",
                code=exc.code if exc.code != FailRun.code else "change_refused",
            ) from None
        for entity in entities:
            self._writer.upsert(integration, entity)
        self._health.recovered(integration)
