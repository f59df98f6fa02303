"""Webhook work: apply one persisted webhook event (store the entities it carries, start the syncs it asks for).

A payload that cannot be applied fails that event (``failed``, with the reason) and nothing
else: the integration's status is left alone. A record a webhook creates belongs to the
top-level stream that lists its entity type (the scope of that stream's full-listing deletes).
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

from adapters.base.adapter import Adapter, Entity, WebhookWork
from shared.domain import Integration, WebhookEvent, WebhookStatus, utcnow
from shared.errors import HubError, RetryLater, SkipRecord, UnexpectedError
from shared.messages import WebhookMessage
from shared.ports.blobs import BlobStore
from shared.ratelimit.priority import work_priority
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
        if event.status in (WebhookStatus.PROCESSED, WebhookStatus.IGNORED):
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
                work = adapter.webhook_work(event.event_type, payload, subscription_stream=self._stream_of(event))
                stream_of = work.stream if work.stream and adapter.spec.streams[work.stream].parent is None else None
                entities = list(work.entities) + self._fetched(adapter, integration, work)
                for entity in entities:
                    self._writer.upsert(
                        integration, entity, new_stream=stream_of or listing_stream(adapter, entity.entity_type)
                    )
            except SkipRecord as exc:
                raise SkipRecord(
                    f"{event.event_type} event {event.delivery_id} cannot be applied: {exc}", code="bad_payload"
                ) from None
            enabled = [s for s in work.sync_streams if any(c.name == s and c.enabled for c in integration.streams)]
            for stream in enabled:
                self._sync.start_run(integration, stream, "webhook")
            ignored = work.ignored
            if ignored is None and not entities and work.sync_streams and not enabled:
                ignored = f"stream(s) {', '.join(work.sync_streams)} not enabled for this integration"
        except RetryLater:
            raise
        except HubError as exc:
            self.settle(event.tenant_id, event.id, WebhookStatus.FAILED, describe(exc))
            raise
        except Exception as exc:
            unexpected = UnexpectedError(f"{type(exc).__name__}: {exc}")
            self.settle(event.tenant_id, event.id, WebhookStatus.FAILED, describe(unexpected))
            raise
        if ignored is not None:
            self.settle(event.tenant_id, event.id, WebhookStatus.IGNORED, None, reason=ignored)
        else:
            self.settle(event.tenant_id, event.id, WebhookStatus.PROCESSED, None)

    def _stream_of(self, event: WebhookEvent) -> str | None:
        """The stream of the managed subscription (channel) the event came through."""
        if not event.subscription_id:
            return None
        sub = self._repos.webhook_subscriptions.get(event.tenant_id, event.subscription_id)
        return sub.stream if sub else None

    def _fetched(self, adapter: Adapter, integration: Integration, work: WebhookWork) -> list[Entity]:
        """Records the event names but does not carry, read from the API (a deleted one as a tombstone)."""
        found: list[Entity] = []
        if not work.fetch:
            return found
        conn = self._adapters.connection(integration)
        for fetch in work.fetch:
            with work_priority("webhook"):  # a webhook's fetch goes before scheduled backfill
                response = adapter.send(conn, "GET", conn.base_url.rstrip("/") + fetch.path)
            error = adapter.classify_error(response)
            if error is not None:
                raise error
            raw = adapter.decode(response)
            if not isinstance(raw, dict):
                raise SkipRecord(f"{fetch.path} did not answer a record")
            entities = adapter.map_record(fetch.stream, raw)
            if adapter.is_deleted(fetch.stream, raw):
                entities = [dataclasses.replace(e, deleted=True) for e in entities]
            found.extend(entities)
        return found

    def settle(
        self, tenant_id: str, event_id: str, status: WebhookStatus, error: str | None, *, reason: str | None = None
    ) -> None:
        """Record how the event ended (a processed or ignored event stays so)."""

        def apply(event: WebhookEvent) -> bool:
            if event.status in (WebhookStatus.PROCESSED, WebhookStatus.IGNORED):
                return False
            event.status = status
            event.error = error[:2000] if error else None
            event.reason = reason[:2000] if reason else None
            event.processed_at = utcnow()
            return True

        self._repos.webhook_events.update(tenant_id, event_id, apply)
