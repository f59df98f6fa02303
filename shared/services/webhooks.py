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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import SecretStr

from adapters.base.adapter import Adapter
from adapters.base.verify.config import ChannelTokenConfig
from adapters.base.verify.model import Answer, Delivery, Verdict, VerifiedEvent, header
from adapters.base.webhooks import choose_variant, strategy_for
from shared import telemetry
from shared.domain import Integration, WebhookEvent, WebhookStatus, doc_id, iso, utcnow
from shared.errors import Conflict, HubError, InvalidInput, NotFound, PayloadTooLarge, RetryLater, Unauthenticated
from shared.messages import WebhookMessage, encode, valid_id
from shared.ports.blobs import BlobStore
from shared.ports.documents import DocumentNotFound, PreconditionFailed, Where
from shared.ports.intake import IntakeLedger, SplitIntakeLedger
from shared.ports.queue import OutgoingMessage, WorkQueue, fit_id
from shared.services.connections import AdapterHub
from shared.services.credentials import CredentialInput, CredentialService
from shared.services.repositories import Repositories
from shared.sessions import webhook_session
from shared.webhook_domain import SubscriptionState, WebhookSubscription, channel_token, subscription_doc_id

log = logging.getLogger("ihub.webhooks")

KEPT_HEADERS = ("content-type", "user-agent")
SWEEP_AFTER_SECONDS = 120
SWEEP_BATCH = 200


@dataclass(frozen=True)
class IntakeResult:
    """HTTP status and body to answer the provider with.

    ``body`` is a JSON answer; ``raw`` (with ``content_type``) is an exact answer a scheme
    requires instead (a SOAP acknowledgement, a handshake's challenge, an empty 204).
    """

    status: int
    body: dict[str, Any] | None = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str | None = None


_REFUSALS: dict[int, type[InvalidInput]] = {401: Unauthenticated, 400: InvalidInput}


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
        certs_urls: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        ledger: IntakeLedger | None = None,
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
        self._certs_urls = dict(certs_urls or {})
        self._clock = clock
        self._ledger: IntakeLedger = ledger or SplitIntakeLedger(repos.webhook_events.store, queue)

    def receive(
        self,
        provider: str,
        integration_id: str,
        headers: Mapping[str, str],
        body: bytes,
        path_token: str | None = None,
    ) -> IntakeResult:
        """Handle one delivery; errors come back as results with a precise status."""
        started = time.perf_counter()
        try:
            return self._receive(provider, integration_id, headers, body, path_token)
        except InvalidInput as exc:  # NotFound, Unauthenticated, PayloadTooLarge, InvalidJson included
            status = getattr(exc, "status", 400)
            if status == 401:
                log.warning("webhook %.40r/%.80r rejected: %s", provider, integration_id, exc)
            return IntakeResult(status, {"error": exc.code, "message": str(exc)})
        except RetryLater as exc:  # the store or the queue is unavailable: not acknowledged, send again
            log.warning("webhook %.40r/%.80r not accepted now: %s", provider, integration_id, exc)
            return IntakeResult(503, {"error": exc.code, "message": str(exc)}, {"Retry-After": "30"})
        finally:
            self._check_deadline(provider, time.perf_counter() - started)

    def _check_deadline(self, provider: str, elapsed: float) -> None:
        """Warn when an answer took over half the provider's acknowledgement deadline (Slack 3 s, GitHub 10 s)."""
        if elapsed < 1.0:
            return
        try:
            spec = self._adapters.adapter(provider).spec.webhook
        except HubError:
            return
        if spec is not None and elapsed > spec.ack_deadline_seconds / 2:
            log.warning("webhook %s answered in %.1f s; the provider gives up after %.0f s", provider, elapsed,
                        spec.ack_deadline_seconds)

    def _receive(
        self, provider: str, integration_id: str, headers: Mapping[str, str], body: bytes, path_token: str | None
    ) -> IntakeResult:
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
        variant, verdict, subscription = self._judge(adapter, integration, headers, body, path_token)
        if not verdict.valid:
            refusal = _REFUSALS.get(verdict.status)
            if verdict.status == 503:
                raise RetryLater(verdict.reason, code=verdict.code)
            raise (refusal or InvalidInput)(verdict.reason, code=verdict.code)
        if verdict.handshake:
            if verdict.captured is not None:
                self._capture(integration, verdict.captured)
            return _answer(verdict.answer) if verdict.answer else IntakeResult(200, {"status": "handshake"})
        if not verdict.events:
            raise InvalidInput("the delivery carries no event", code="invalid_body")
        if len(verdict.events) == 1 and verdict.payload is not None and not isinstance(verdict.payload, dict):
            raise InvalidInput("body: must be a JSON object", code="invalid_json")
        kept = {k.lower(): v for k, v in headers.items() if k.lower() in KEPT_HEADERS}
        events = [self._event(integration, variant, subscription, body, verdict, e, kept) for e in verdict.events]
        if len(events) == 1:  # every log line of this delivery names it (several events: each message does)
            telemetry.bind(delivery_id=events[0].delivery_id, event_id=events[0].id)
        fresh = self._persist(integration.tenant_id, events)
        if verdict.answer is not None:
            return _answer(verdict.answer)
        if len(events) == 1:
            if fresh:
                return IntakeResult(202, {"status": "accepted", "event_id": events[0].id})
            return IntakeResult(200, {"status": "duplicate", "event_id": events[0].id})
        return IntakeResult(
            202 if fresh else 200,
            {"status": "accepted" if fresh else "duplicate", "events": len(events), "new": len(fresh)},
        )

    def _judge(
        self,
        adapter: Adapter,
        integration: Integration,
        headers: Mapping[str, str],
        body: bytes,
        path_token: str | None,
    ) -> tuple[str, Verdict, WebhookSubscription | None]:
        """Verify with the variant the headers select, against every secret the integration accepts now."""
        spec = adapter.spec.webhook
        assert spec is not None
        variant, config = choose_variant(spec, headers)
        secrets = self._credentials.webhook_secrets(integration)
        subscription = None
        extra: dict[str, Any] = {}
        if isinstance(config, ChannelTokenConfig):
            channel = header(headers, config.channel_id_header) or ""
            subscription = self._channel(integration, channel) if valid_id(channel) else None
            if subscription is None:
                raise Unauthenticated(f"{config.channel_id_header} names no channel of this integration",
                                      code="unknown_channel")
            extra = {"channel_id": subscription.channel_id, "resource_id": subscription.resource_id}
            secrets = [SecretStr(channel_token(s.get_secret_value(), channel)) for s in secrets]
        delivery = Delivery(headers, body, self._clock(), path_token)
        certs_url = self._certs_urls.get(adapter.spec.name)
        strategy = strategy_for(spec, config, certs_url=certs_url)
        verdict: Verdict | None = None
        candidates: list[SecretStr | None] = list(secrets) or [None]
        for secret in candidates:
            attempt = strategy.verify(delivery, adapter.webhook_key(integration.config, secret, **extra))
            if attempt.valid:
                return variant, attempt, subscription
            verdict = verdict or attempt
        assert verdict is not None
        return variant, verdict, subscription

    def _channel(self, integration: Integration, channel_id: str) -> WebhookSubscription | None:
        sub = self._repos.webhook_subscriptions.get(
            integration.tenant_id, subscription_doc_id(integration.id, channel_id)
        )
        if sub is None or sub.kind != "channel" or sub.state == SubscriptionState.STOPPED:
            return None
        return sub

    def _capture(self, integration: Integration, token: SecretStr) -> None:
        """Store a handshake's token as the integration's webhook secret: once, never replacing one."""
        if self._credentials.webhook_secrets(integration):
            raise Conflict(
                f"integration {integration.id} already has a webhook secret; a second verification token is "
                "refused (disconnect and reconnect to start over)",
                code="already_verified",
            )
        ref = self._credentials.store(integration, CredentialInput(webhook_secret=token))
        if integration.credential_ref != ref:
            def link(current: Integration) -> bool:
                current.credential_ref = ref
                return True

            self._repos.integrations.update(integration.tenant_id, integration.id, link)
        now = utcnow()
        self._repos.webhook_subscriptions.save(
            WebhookSubscription(
                id=subscription_doc_id(integration.id, "manual"),
                tenant_id=integration.tenant_id,
                integration_id=integration.id,
                provider=integration.provider,
                kind="manual",
                captured_at=now,
            )
        )
        log.info("webhook verification token captured for %s/%s", integration.tenant_id, integration.id)

    def _event(
        self,
        integration: Integration,
        variant: str,
        subscription: WebhookSubscription | None,
        raw: bytes,
        verdict: Verdict,
        carried: VerifiedEvent,
        kept_headers: dict[str, str],
    ) -> WebhookEvent:
        event_id = doc_id("wh", f"{integration.id}/{carried.id}")
        single = len(verdict.events) == 1 and isinstance(verdict.payload, dict) and carried.data is verdict.payload
        data = carried.data if isinstance(carried.data, dict) else {"value": carried.data}
        event = WebhookEvent(
            id=event_id,
            tenant_id=integration.tenant_id,
            integration_id=integration.id,
            provider=integration.provider,
            delivery_id=carried.id[:200],
            event_type=(carried.type or "unknown")[:100],
            body_size=len(raw),
            headers=kept_headers,
            variant=variant,
            subscription_id=subscription.id if subscription else None,
            ttl=self._ttl,
        )
        if single and len(raw) > self._inline_max:
            blob_name = f"{integration.tenant_id}/{integration.id}/{event_id}.json"
            if not self._blobs.exists(self._blob_container, blob_name):
                self._blobs.put(self._blob_container, blob_name, raw, content_type="application/json")
            event.body_blob = blob_name
        else:
            event.body = data
        return event

    def _persist(self, tenant_id: str, events: list[WebhookEvent]) -> list[WebhookEvent]:
        """Store each new event with its message (one commit on embedded backends); the fresh ones are returned.

        An event already stored is a duplicate: nothing is written for it, but if it was
        never worked on (a crash after the write, on a backend that writes and sends apart)
        its message is sent again - the queue's duplicate detection drops a second copy.
        """
        repo = self._repos.webhook_events
        items = [(e.to_doc(), self._message(e)) for e in events]
        created = self._ledger.accept(repo.container, self._queue_name, items)
        fresh = [e for e, new in zip(events, created, strict=True) if new]
        resend = []
        for event, new in zip(events, created, strict=True):
            if not new:
                existing = repo.get(tenant_id, event.id)
                if existing is None or existing.status in (WebhookStatus.RECEIVED, WebhookStatus.ENQUEUED):
                    resend.append(event)
        if resend:
            self._queue.send_many(self._queue_name, [self._message(e) for e in resend])
        return fresh

    def _message(self, event: WebhookEvent, message_id: str | None = None) -> OutgoingMessage:
        """The event's work message, carrying the delivery's correlation ids and trace context."""
        message = WebhookMessage(tenant_id=event.tenant_id, integration_id=event.integration_id, event_id=event.id)
        with telemetry.correlated(delivery_id=event.delivery_id, event_id=event.id):
            properties = telemetry.to_properties()
        return OutgoingMessage(
            encode(message),
            message_id or event.id,
            session_id=webhook_session(event.tenant_id, event.integration_id, event.id),
            application_properties=properties,
        )

    def _send(self, event: WebhookEvent, message_id: str | None = None) -> None:
        self._queue.send(self._queue_name, self._message(event, message_id))

    # ------------------------------------------------------------------ operators

    def list_events(
        self, tenant_id: str, *, status: str | None = None, integration_id: str | None = None, limit: int = 50
    ) -> list[WebhookEvent]:
        """A tenant's events, newest first, by status and integration."""
        where: list[Where] = []
        if status is not None:
            if status not in {s.value for s in WebhookStatus}:
                known = ", ".join(s.value for s in WebhookStatus)
                raise InvalidInput(f"status: must be one of {known}", code="invalid_status")
            where.append(Where("status", "=", status))
        if integration_id is not None:
            where.append(Where("integration_id", "=", integration_id))
        return self._repos.webhook_events.query(tenant_id, where, order_by="received_at", descending=True,
                                                limit=limit)

    def get_event(self, tenant_id: str, event_id: str) -> WebhookEvent:
        event = self._repos.webhook_events.get(tenant_id, event_id) if valid_id(event_id) else None
        if event is None:
            raise NotFound(f"no webhook event {event_id[:140]!r} for tenant {tenant_id}", code="unknown_event")
        return event

    def replay(self, tenant_id: str, event_id: str) -> WebhookEvent:
        """Re-process a stored event (after a fix): it goes back to ``received`` and its work is enqueued again.

        Raises:
            NotFound: No such event for this tenant (or it expired).
            Conflict: Its body is gone (expired from the archive), so it cannot be replayed.
        """
        event = self.get_event(tenant_id, event_id)
        if event.body is None and event.body_blob and not self._blobs.exists(self._blob_container, event.body_blob):
            raise Conflict(f"webhook event {event_id} has no stored body left to replay", code="body_gone")

        def reset(current: WebhookEvent) -> bool:
            current.status = WebhookStatus.RECEIVED
            current.error = None
            current.reason = None
            current.processed_at = None
            current.replays += 1
            return True

        updated = self._repos.webhook_events.update(tenant_id, event_id, reset)
        if updated is None:
            raise NotFound(f"webhook event {event_id} expired meanwhile", code="unknown_event")
        self._send(updated, fit_id(f"{updated.id}:replay-{updated.replays}"))
        log.info("webhook event %s replayed (%d)", event_id, updated.replays)
        return updated

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


def _answer(answer: Answer) -> IntakeResult:
    """A scheme's exact answer as an intake result."""
    return IntakeResult(answer.status, None, dict(answer.headers), answer.body, answer.content_type)
