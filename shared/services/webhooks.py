"""Webhook intake: verify, dedupe, persist, enqueue - then acknowledge.

Order matters: nothing is stored before the signature checks out against the raw bytes,
and the acknowledgement is sent only after the event is persisted and its work enqueued.
A redelivery (same delivery id) is answered 200 without new state; if its work had not
been enqueued yet (a crash between persist and enqueue), it is enqueued now, and the
queue's duplicate detection makes that safe either way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.domain import WebhookEvent, WebhookStatus, doc_id
from shared.errors import InvalidInput, NotFound, PayloadTooLarge, Unauthenticated
from shared.messages import WebhookMessage, encode
from shared.ports.blobs import BlobStore
from shared.ports.documents import DocumentExists
from shared.ports.queue import OutgoingMessage, WorkQueue
from shared.services.connections import AdapterHub
from shared.services.credentials import CredentialService
from shared.services.repositories import Repositories
from shared.services.sync import session_of

log = logging.getLogger("ihub.webhooks")

KEPT_HEADERS = ("content-type", "user-agent")


@dataclass(frozen=True)
class IntakeResult:
    """HTTP status and JSON body to answer the provider with."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


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

    def receive(self, provider: str, integration_id: str, headers: Mapping[str, str], body: bytes) -> IntakeResult:
        """Handle one delivery; errors come back as results with a precise status."""
        try:
            return self._receive(provider, integration_id, headers, body)
        except InvalidInput as exc:  # NotFound, Unauthenticated, PayloadTooLarge included
            status = getattr(exc, "status", 400)
            if status >= 500 or status == 401:
                log.warning("webhook %s/%s rejected: %s", provider, integration_id, exc)
            return IntakeResult(status, {"error": exc.code, "message": str(exc)})

    def _receive(self, provider: str, integration_id: str, headers: Mapping[str, str], body: bytes) -> IntakeResult:
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
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidInput(f"body is not valid JSON: {exc}", code="malformed_body") from None
        if not isinstance(payload, dict):
            raise InvalidInput("body must be a JSON object", code="malformed_body")
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
        duplicate = False
        try:
            self._repos.webhook_events.insert(event)
        except DocumentExists:
            duplicate = True
            existing = self._repos.webhook_events.get(integration.tenant_id, event_id)
            if existing is not None and existing.status == WebhookStatus.PROCESSED:
                return IntakeResult(200, {"status": "duplicate", "event_id": event_id})
        message = WebhookMessage(tenant_id=integration.tenant_id, integration_id=integration.id, event_id=event_id)
        self._queue.send(
            self._queue_name,
            OutgoingMessage(encode(message), event_id, session_id=session_of(integration.tenant_id, integration.id)),
        )
        if duplicate:
            return IntakeResult(200, {"status": "duplicate", "event_id": event_id})
        return IntakeResult(202, {"status": "accepted", "event_id": event_id})
