"""Outbound: push one local change to the provider, then store what the provider returns.

Storing the provider's answer under the record's content hash is the echo suppression:
when the provider's webhook for our own change arrives, its content hashes the same and the
record is left unchanged.

A pushed change reaches the provider once, however often its message is delivered: the
adapter sends the change's idempotency key (as a header where the provider honours one),
and once the provider has applied it the hub writes a :class:`~shared.domain.PushReceipt`
keyed by the key; a redelivered message finds the receipt and is done. (A crash between
the provider's answer and the receipt is covered by the provider's own idempotency where it
has one; the receipt covers every provider for every later delivery.)

A change the hub cannot apply (an unknown record or entity type) or the provider refuses
for that one item is a per-item problem (:class:`~shared.errors.SkipRecord`): it is dead-
lettered with its reason and the integration's status is left alone. A rejected credential,
a rate limit and transient failures are the connection's and are reported as such.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from adapters.base.adapter import Adapter, Entity
from shared.domain import IncrementalState, Integration, PushReceipt, StoredRecord, doc_id
from shared.engine.catalog import CATALOG
from shared.engine.entities import pushes_for
from shared.errors import FailRun, HubError, SkipRecord
from shared.messages import OutboundMessage, encode
from shared.ports.documents import DocumentExists
from shared.ports.queue import OutgoingMessage, WorkQueue, fit_id
from shared.services.connections import AdapterHub
from shared.services.records import RecordWriter
from shared.services.repositories import Repositories
from shared.services.status import IntegrationHealth
from shared.sessions import integration_session

log = logging.getLogger("ihub.outbound")
Outbox = Callable[[Integration, list[dict[str, Any]]], None]


ENGINE_PUSH = "epush"
"""Idempotency-key prefix of the pushes the sync engine asks for (their changes are re-derived at push time)."""


def outbound_message(tenant_id: str, push: dict[str, Any]) -> OutboundMessage:
    """The outbox item of one engine push; its idempotency key is derived from the record and the change."""
    changes = orjson.dumps(push["changes"], option=orjson.OPT_SORT_KEYS, default=str).decode()
    return OutboundMessage(
        tenant_id=tenant_id,
        integration_id=push["integration_id"],
        operation="update",
        entity_type=push["entity_type"],
        external_id=push["external_id"],
        changes=push["changes"],
        idempotency_key=doc_id(ENGINE_PUSH, f"{push['record_id']}|{changes}"),
    )


class QueueOutbox:
    """Sends the pushes a page (or a local change) asks for to the outbound queue, one message each.

    The message id is the idempotency key, so the queue's duplicate detection drops a repeat.
    """

    def __init__(self, queue: WorkQueue, queue_name: str) -> None:
        self._queue = queue
        self._name = queue_name

    def __call__(self, integration: Integration, pushes: list[dict[str, Any]]) -> None:
        for push in pushes:
            msg = outbound_message(integration.tenant_id, push)
            session = integration_session(msg.tenant_id, msg.integration_id)
            self._queue.send(self._name, OutgoingMessage(encode(msg), fit_id(msg.idempotency_key), session_id=session))


class OutboundService:
    """The SyncOutboundWorker's service."""

    def __init__(
        self,
        repos: Repositories,
        adapters: AdapterHub,
        *,
        containers: Mapping[str, str] | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self._repos = repos
        self._adapters = adapters
        self._writer = RecordWriter(repos.records, containers=containers, outbox=outbox)
        self._entities = (containers or {}).get("entities", "entities")
        self._health = IntegrationHealth(repos.integrations)

    def handle(self, msg: OutboundMessage) -> None:
        """Push ``msg``'s change (once) and store the provider's new version of the record."""
        integration = self._repos.integrations.require(msg.tenant_id, msg.integration_id)
        receipt_id = PushReceipt.key(integration.id, msg.idempotency_key)
        if self._repos.push_receipts.get(integration.tenant_id, receipt_id) is not None:
            log.info("change %s was already applied; not pushing it again", msg.idempotency_key)
            return
        adapter = self._adapters.adapter(integration.provider)
        stream = _push_stream(adapter, msg.entity_type)
        if stream is None:
            raise SkipRecord(
                f"{integration.provider} has no stream of entity type {msg.entity_type!r}", code="unknown_entity_type"
            )
        record = self._stored(integration, msg)
        changes = msg.changes
        if msg.idempotency_key.startswith(f"{ENGINE_PUSH}-") and record is not None:
            self._refresh(integration, adapter, record)
            changes = self._current_changes(integration, record, msg.changes)
            if not changes:
                log.info("push %s is no longer needed (the values already agree)", msg.idempotency_key)
                return
        conn = self._adapters.connection(integration)
        try:
            result = adapter.push(
                conn, stream, msg.operation, record.data if record else {}, changes, msg.idempotency_key
            )
        except FailRun as exc:
            raise SkipRecord(
                f"{msg.operation} {msg.idempotency_key} of {msg.entity_type} {msg.external_id} was refused: {exc}",
                code=exc.code if exc.code != FailRun.code else "change_refused",
            ) from None
        external_id = result.external_id or msg.external_id
        entities = result.entities if result.entities and msg.operation != "delete" else []
        for entity in entities or self._answer_entities(msg, record, external_id, changes):
            version = result.version if entity.external_id == external_id else None
            self._writer.upsert(integration, entity, version=version, new_stream=stream)
        try:
            self._repos.push_receipts.insert(
                PushReceipt(
                    id=receipt_id,
                    tenant_id=integration.tenant_id,
                    integration_id=integration.id,
                    idempotency_key=msg.idempotency_key,
                    operation=msg.operation,
                    entity_type=msg.entity_type,
                    external_id=external_id,
                    version=result.version,
                )
            )
        except DocumentExists:
            pass  # a concurrent delivery applied it too (the provider's idempotency key made it one change)
        self._health.recovered(integration)

    def _refresh(self, integration: Integration, adapter: Adapter, record: StoredRecord) -> None:
        """Read the provider's newer versions (one delta page from the record's own version) first.

        A remote edit the hub has not seen yet is three-way merged (the stream's strategy decides
        a conflict) before the push, so the push never overwrites it blindly. A stream with no
        delta, or a provider that fails here, is pushed as it stands.
        """
        spec = adapter.spec.streams.get((record.stream or "").split(":", 1)[0])
        delta = spec is not None and (spec.delta_param or spec.delta_params or spec.delta_body)
        if spec is None or not record.source_updated_at or not delta:
            return
        stream, _, parent = (record.stream or "").partition(":")
        try:
            page = adapter.fetch_page(
                self._adapters.connection(integration),
                stream,
                IncrementalState(watermark=record.source_updated_at),
                None,
                parent_id=parent or None,
            )
        except HubError as exc:
            log.info("could not re-read %s before pushing (%s); pushing as it stands", record.id, exc.code)
            return
        mine = [e for e in page.entities if e.entity_type == record.entity_type and e.external_id == record.external_id]
        if mine:
            self._writer.write_page(integration, mine, stream=record.stream)

    def _current_changes(
        self, integration: Integration, record: StoredRecord, asked: Mapping[str, Any]
    ) -> dict[str, Any]:
        """An engine push's changes as of now: the entity's fields against this source's base.

        A newer remote version stored since the push was asked for has been three-way merged
        into the entity already, so the push carries the resolved values, never stale ones.
        """
        doc = self._repos.store.read(self._repos.records.container, integration.tenant_id, record.id)
        entity_id = (doc or {}).get("entity_id")
        entity = self._repos.store.read(self._entities, integration.tenant_id, entity_id) if entity_id else None
        if entity is None:
            return {}
        for push in pushes_for(entity, CATALOG):
            if push["record_id"] == record.id:  # only what the item was for: other differences stay put
                return {k: v for k, v in push["changes"].items() if k in asked}
        return {}

    def _stored(self, integration: Integration, msg: OutboundMessage) -> StoredRecord | None:
        """The record the change is to (None for a create); SkipRecord when an update/delete names none."""
        if not msg.external_id:
            if msg.operation != "create":
                raise SkipRecord(f"an {msg.operation} needs the external_id of a stored record", code="unknown_record")
            return None
        rec_id = StoredRecord.make_id(integration.tenant_id, integration.id, msg.entity_type, msg.external_id)
        record = self._repos.records.get(integration.tenant_id, rec_id)
        if record is None and msg.operation != "create":
            raise SkipRecord(f"no stored {msg.entity_type} {msg.external_id} to change", code="unknown_record")
        return record

    @staticmethod
    def _answer_entities(
        msg: OutboundMessage, record: StoredRecord | None, external_id: str, changes: Mapping[str, Any]
    ) -> list[Entity]:
        """What to store when the provider's answer carries no record: the change applied locally."""
        if not external_id:
            return []
        if msg.operation == "delete":
            data: dict[str, Any] = record.data if record is not None else {}
            return [Entity(msg.entity_type, external_id, data, deleted=True)]
        base: dict[str, Any] = dict(record.data) if record is not None else {}
        return [Entity(msg.entity_type, external_id, {**base, **changes})]


def _push_stream(adapter: Adapter, entity_type: str) -> str | None:
    """The stream that accepts changes to ``entity_type`` (one with a push spec first)."""
    candidates = [name for name, spec in adapter.spec.streams.items() if spec.entity_type == entity_type]
    for name in candidates:
        spec = adapter.spec.streams[name]
        if spec.push is not None or spec.push_path is not None:
            return name
    return candidates[0] if candidates else None
