"""Webhook work: apply one persisted webhook event (store the entities it carries, start the syncs it asks for).

A payload that cannot be applied fails that event (``failed``, with the reason) and nothing
else: the integration's status is left alone. A record a webhook creates belongs to the
top-level stream that lists its entity type (the scope of that stream's full-listing deletes).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from adapters.base.adapter import Adapter
from shared.domain import WebhookEvent, WebhookStatus, utcnow
from shared.errors import HubError, RetryLater, SkipRecord, UnexpectedError
from shared.messages import WebhookMessage
from shared.ports.blobs import BlobStore
from shared.services.connections import AdapterHub
from shared.services.records import RecordWriter
from shared.services.repositories import Repositories
from shared.services.runs import describe

if TYPE_CHECKING:
    from shared.services.sync import SyncService


def listing_stream(adapter: Adapter, entity_type: str) -> str | None:
    """The top-level stream that lists ``entity_type`` (a record written outside a run belongs to it)."""
    streams = adapter.spec.streams
    companions = {spec.deleted_stream for spec in streams.values() if spec.deleted_stream}
    for name, spec in streams.items():
        if spec.entity_type == entity_type and spec.parent is None and name not in companions:
            return name
    return None


class WebhookApplier:
    """Applies webhook events on behalf of the sync service (which starts the asked-for runs)."""

    def __init__(
        self,
        repos: Repositories,
        adapters: AdapterHub,
        blobs: BlobStore,
        blob_container: str,
        writer: RecordWriter,
        sync: SyncService,
    ) -> None:
        self._repos = repos
        self._adapters = adapters
        self._blobs = blobs
        self._blob_container = blob_container
        self._writer = writer
        self._sync = sync

    def apply(self, msg: WebhookMessage) -> None:
        """Apply one persisted webhook event: store carried entities, start asked-for syncs.

        A payload that cannot be applied fails that event (``failed``, with the reason) and
        nothing else: the integration's status is left alone.
        """
        event = self._repos.webhook_events.get(msg.tenant_id, msg.event_id)
        if event is None:
            raise SkipRecord(f"webhook event {msg.event_id} not found (expired or never stored)", code="no_event")
        if event.status == WebhookStatus.PROCESSED:
            return
        try:
            integration = self._repos.integrations.require(msg.tenant_id, msg.integration_id)
            payload = event.body
            if payload is None and event.body_blob:
                try:
                    payload = json.loads(self._blobs.get(self._blob_container, event.body_blob))
                except ValueError as exc:
                    raise SkipRecord(f"stored webhook body is not JSON: {exc}", code="bad_payload") from None
            try:
                adapter = self._adapters.adapter(integration.provider)
                work = adapter.webhook_work(event.event_type, payload)
                for entity in work.entities:
                    self._writer.upsert(integration, entity, new_stream=listing_stream(adapter, entity.entity_type))
            except SkipRecord as exc:
                raise SkipRecord(
                    f"{event.event_type} event {event.delivery_id} cannot be applied: {exc}", code="bad_payload"
                ) from None
            for stream in work.sync_streams:
                if any(s.name == stream and s.enabled for s in integration.streams):
                    self._sync.start_run(integration, stream, "webhook")
        except RetryLater:
            raise
        except HubError as exc:
            self.settle(event.tenant_id, event.id, WebhookStatus.FAILED, describe(exc))
            raise
        except Exception as exc:
            unexpected = UnexpectedError(f"{type(exc).__name__}: {exc}")
            self.settle(event.tenant_id, event.id, WebhookStatus.FAILED, describe(unexpected))
            raise
        self.settle(event.tenant_id, event.id, WebhookStatus.PROCESSED, None)

    def settle(self, tenant_id: str, event_id: str, status: WebhookStatus, error: str | None) -> None:
        """Record how the event ended (a processed event stays processed)."""

        def apply(event: WebhookEvent) -> bool:
            if event.status == WebhookStatus.PROCESSED:
                return False
            event.status = status
            event.error = error[:2000] if error else None
            event.processed_at = utcnow()
            return True

        self._repos.webhook_events.update(tenant_id, event_id, apply)
