"""Webhook intake: verify, dedupe, persist, enqueue - then acknowledge. And the sweeper.

Order matters: nothing is stored before the signature checks out against the raw bytes and
the body has parsed under the hub's JSON limits (:mod:`shared.jsonio`), and the
acknowledgement is sent only after the event is persisted and its work enqueued.

The crash window between persist and enqueue is closed twice over:

- a redelivery (same delivery id) of an event not yet processed re-sends its message;
- :meth:`WebhookIntake.sweep` (called on every SyncScheduler tick) finds events still
  ``received`` a while after they arrived and sends their message.

Both send with the event id as the message id, so when the original send did happen, the
queue's duplicate detection drops the copy; past the duplicate-detection window the worker's
own check (an event already ``processed`` is skipped) keeps the effect exactly-once. The
sweeper marks what it sent ``enqueued``, so each event is re-sent at most once. The intake
itself does not write that marker: it would cost a third write per delivery and race the
worker's own update of the event.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared import jsonio
from shared.domain import WebhookEvent, WebhookStatus, doc_id, iso, utcnow
from shared.errors import HubError, InvalidInput, NotFound, PayloadTooLarge, RetryLater, Unauthenticated
from shared.messages import WebhookMessage, encode, valid_id
from shared.ports.blobs import BlobStore
from shared.ports.documents import DocumentExists, DocumentNotFound, PreconditionFailed, Where
from shared.ports.queue import OutgoingMessage, WorkQueue
from shared.services.connections import AdapterHub
from shared.services.credentials import CredentialService
from shared.services.repositories import Repositories
from shared.sessions import webhook_session

log = logging.getLogger("ihub.webhooks")

KEPT_HEADERS = ("content-type", "user-agent")
SWEEP_AFTER_SECONDS = 120
SWEEP_BATCH = 200


@dataclass(frozen=True)
class IntakeResult:
    """HTTP status and JSON body to answer the provider with."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


class WebhookIntake:
    """The WebhookReceiver's service."""

    def __init__(
        self,
        repos: Repositories,
        credentials: CredentialService,
        adapters: AdapterHub,
        queue: WorkQueue,
        queue_name: str,
        blobs: BlobStore,
        blob_container: str,
        *,
        max_body_bytes: int,
        inline_max_bytes: int,
        ttl_seconds: int,
        sweep_after_seconds: int = SWEEP_AFTER_SECONDS,
    ) -> None:
        self._repos = repos
        self._credentials = credentials
        self._adapters = adapters
        self._queue = queue
        self._queue_name = queue_name
        self._blobs = blobs
        self._blob_container = blob_container
        self._max_body = max_body_bytes
        self._inline_max = inline_max_bytes
        self._ttl = ttl_seconds
        self._sweep_after = sweep_after_seconds

    def receive(self, provider: str, integration_id: str, headers: Mapping[str, str], body: bytes) -> IntakeResult:
        """Handle one delivery; errors come back as results with a precise status."""
        try:
            return self._receive(provider, integration_id, headers, body)
        except InvalidInput as exc:  # NotFound, Unauthenticated, PayloadTooLarge, InvalidJson included
            status = getattr(exc, "status", 400)
            if status == 401:
                log.warning("webhook %.40r/%.80r rejected: %s", provider, integration_id, exc)
            return IntakeResult(status, {"error": exc.code, "message": str(exc)})
        except RetryLater as exc:  # the store or the queue is unavailable: not acknowledged, send again
            log.warning("webhook %.40r/%.80r not accepted now: %s", provider, integration_id, exc)
            return IntakeResult(503, {"error": exc.code, "message": str(exc)}, {"Retry-After": "30"})

    def _receive(self, provider: str, integration_id: str, headers: Mapping[str, str], body: bytes) -> IntakeResult:
        if not valid_id(provider) or not valid_id(integration_id):
            raise NotFound("no such webhook endpoint", code="unknown_integration")
        adapter = self._adapters.adapter(provider)
        spec = adapter.spec.webhook
        if spec is None:
            raise NotFound(f"{provider} does not send webhooks", code="no_webhooks")
        limit = min(self._max_body, spec.max_body_bytes)
        if len(body) > limit:
            raise PayloadTooLarge(f"body is {len(body)} bytes; the limit for {provider} is {limit}")
        integration = self._repos.integrations.find(integration_id)
        if integration is None or integration.provider != provider:
            raise NotFound(f"no {provider} integration {integration_id}", code="unknown_integration")
        secret = self._credentials.webhook_secret(integration)
        if secret is None:
            raise Unauthenticated(
                f"integration {integration_id} has no webhook secret configured", code="no_webhook_secret"
            )
        verdict = adapter.verify_webhook(headers, body, secret.get_secret_value())
        if not verdict.valid:
            raise Unauthenticated(verdict.reason, code="bad_signature")
        payload = jsonio.loads_object(body, what="body")
        info = adapter.webhook_info(headers, payload)
        event_id = doc_id("wh", f"{integration.id}/{info.delivery_id}")
        event = WebhookEvent(
            id=event_id,
            tenant_id=integration.tenant_id,
            integration_id=integration.id,
            provider=provider,
            delivery_id=info.delivery_id,
            event_type=info.event_type,
            body_size=len(body),
            headers={k.lower(): v for k, v in headers.items() if k.lower() in KEPT_HEADERS},
            ttl=self._ttl,
        )
        if len(body) > self._inline_max:
            blob_name = f"{integration.tenant_id}/{integration.id}/{event_id}.json"
            if not self._blobs.exists(self._blob_container, blob_name):
                self._blobs.put(self._blob_container, blob_name, body, content_type="application/json")
            event.body_blob = blob_name
        else:
            event.body = payload
        try:
            self._repos.webhook_events.insert(event)
        except DocumentExists:
            existing = self._repos.webhook_events.get(integration.tenant_id, event_id)
            if existing is None or existing.status in (WebhookStatus.RECEIVED, WebhookStatus.ENQUEUED):
                self._send(event)  # maybe never enqueued (a crash): duplicate detection drops a second copy
            return IntakeResult(200, {"status": "duplicate", "event_id": event_id})
        self._send(event)
        return IntakeResult(202, {"status": "accepted", "event_id": event_id})

    def _send(self, event: WebhookEvent) -> None:
        message = WebhookMessage(tenant_id=event.tenant_id, integration_id=event.integration_id, event_id=event.id)
        self._queue.send(
            self._queue_name,
            OutgoingMessage(
                encode(message), event.id, session_id=webhook_session(event.tenant_id, event.integration_id, event.id)
            ),
        )

    # ------------------------------------------------------------------ the sweeper

    def sweep(self, now: datetime | None = None, *, limit: int = SWEEP_BATCH) -> list[str]:
        """Enqueue events stored but never enqueued (a crash between persist and enqueue).

        Finds events still ``received`` ``sweep_after_seconds`` after they arrived (oldest
        first, at most ``limit``), sends each one's message under the event id - a copy of a
        message that was sent is dropped by duplicate detection - and marks the event
        ``enqueued`` so it is not sent again. A failure on one event is logged and the sweep
        goes on; the next tick retries it.

        Args:
            now: The current time (tests).
            limit: Most events handled in one sweep.

        Returns:
            The ids of the events (re-)enqueued.
        """
        cutoff = (now or utcnow()) - timedelta(seconds=self._sweep_after)
        stale = self._repos.webhook_events.query(
            None,
            [Where("status", "=", WebhookStatus.RECEIVED.value), Where("received_at", "<=", iso(cutoff))],
            order_by="received_at",
            limit=limit,
        )
        swept: list[str] = []
        for event in stale:
            try:
                self._send(event)
                event.status = WebhookStatus.ENQUEUED
                self._repos.webhook_events.save(event)
            except (PreconditionFailed, DocumentNotFound):
                pass  # the worker moved it on (or it expired) meanwhile: the message was sent, nothing to mark
            except HubError as exc:
                log.warning("sweeper could not enqueue webhook event %s: %s", event.id, exc)
                continue
            swept.append(event.id)
        if swept:
            log.warning("sweeper enqueued %d webhook event(s) stored but never enqueued", len(swept))
        return swept
