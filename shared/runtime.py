"""Composition root: builds the services from settings and ports, once per process.

``function_app.py`` calls :func:`get_hub` inside function bodies, never at import time.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from shared import telemetry
from shared.backends.factory import Ports, build_ports
from shared.claim_check import ClaimCheckQueue
from shared.config import Settings, get_settings
from shared.credentials.wiring import wire as wire_credentials
from shared.engine.admin import EntityService
from shared.ratelimit.factory import build_rate_limiter
from shared.ratelimit.factory import event_hook as rate_limit_events
from shared.services.admin import AdminService
from shared.services.connections import AdapterHub
from shared.services.credentials import CredentialService
from shared.services.events import DomainEvents
from shared.services.outbound import OutboundService, QueueOutbox
from shared.services.repositories import Repositories
from shared.services.sync import SyncService
from shared.services.webhook_subscriptions import SubscriptionService
from shared.services.webhooks import WebhookIntake
from shared.services.work import WorkRunner

log = logging.getLogger("ihub")


class Hub:
    """Every service of the hub, wired to one set of ports."""

    def __init__(self, settings: Settings, ports: Ports) -> None:
        self.settings = settings
        self.ports = ports
        self.repos = Repositories(
            ports.documents, settings.containers, intake_store=ports.intake.store if ports.intake else None
        )
        self.credentials = CredentialService(ports.secrets)
        self.rate_limiter = build_rate_limiter(settings)  # budgets at every level (shared.ratelimit)
        self.adapters = AdapterHub(
            self.credentials,
            base_urls=settings.provider_base_urls,
            timeout=settings.http_timeout_seconds,
            max_wait_seconds=settings.max_retry_wait_seconds,
            rate_limits=self.rate_limiter,
        )
        self.queue = ClaimCheckQueue(  # what services send through: oversized bodies go to Blob
            ports.queue,
            ports.blobs,
            settings.blob_container_claim_checks,
            max_message_bytes=settings.queue_max_message_bytes,
        )
        self.events = DomainEvents(telemetry.MeteredEvents(ports.events, self._run_started))  # records, sync lag
        self.rate_limiter.on_exceeded = rate_limit_events(self.events)
        self.sync = SyncService(
            self.repos,
            self.adapters,
            self.queue,
            settings.sync_inbound_queue,
            ports.blobs,
            settings.blob_container_webhooks,
            self.events,
            max_pages_per_run=settings.max_pages_per_run,
            containers=settings.containers,
            outbound_queue=settings.sync_outbound_queue,
        )
        self.webhooks = WebhookIntake(
            self.repos,
            self.credentials,
            self.adapters,
            self.queue,
            settings.sync_inbound_queue,
            ports.blobs,
            settings.blob_container_webhooks,
            max_body_bytes=settings.webhook_max_body_bytes,
            inline_max_bytes=settings.webhook_inline_max_bytes,
            ttl_seconds=settings.webhook_event_ttl_seconds,
            sweep_after_seconds=settings.webhook_sweep_after_seconds,
            certs_urls=settings.webhook_certs_urls,
            ledger=ports.intake,
        )
        self.admin = AdminService(
            self.repos,
            self.credentials,
            self.adapters,
            self.sync,
            self.events,
            self.queue,
            settings.sync_outbound_queue,
            claims_container=settings.container_id_claims,
        )
        self.subscriptions = SubscriptionService(self.repos, self.credentials, self.adapters)
        outbox = QueueOutbox(self.queue, settings.sync_outbound_queue)  # the sync engine's pushes
        self.outbound = OutboundService(self.repos, self.adapters, containers=settings.containers, outbox=outbox)
        self.entities = EntityService(
            ports.documents, settings.containers, integrations=self.repos.integrations.get, outbox=outbox
        )
        self.credential_services = wire_credentials(self)  # fenced refresh, OAuth connect, expiry notices
        self.tokens, self.oauth = self.credential_services.tokens, self.credential_services.oauth
        self.inbound_runner, self.outbound_runner = (
            WorkRunner(
                self.queue,
                queue_name,
                self.repos.dead_letters,
                max_delivery_count=settings.queue_max_delivery_count,
                max_wait_seconds=settings.max_retry_wait_seconds,
            )
            for queue_name in (settings.sync_inbound_queue, settings.sync_outbound_queue)
        )

    def _run_started(self, tenant_id: str, run_id: str) -> datetime | None:
        run = self.repos.runs.get(tenant_id, run_id)
        return run.started_at if run is not None else None

    def close(self) -> None:
        self.credential_services.close()
        self.adapters.close()
        self.rate_limiter.close()
        self.ports.close()


_hub: Hub | None = None
_lock = threading.Lock()


def get_hub() -> Hub:
    """The process-wide hub, built on first use from the environment's settings."""
    global _hub
    if _hub is None:
        with _lock:
            if _hub is None:
                telemetry.configure()  # once, on first use: logs with correlation ids, traces, metrics
                settings = get_settings()
                _hub = Hub(settings, build_ports(settings))
    return _hub


def reset_hub() -> None:
    """Forget the process-wide hub (tests and the dev host after changing settings)."""
    global _hub
    with _lock:
        if _hub is not None:
            _hub.close()
        _hub = None
    get_settings.cache_clear()
