"""Incremental sync: starting runs, one page per message, webhook work, and the scheduler.

A run's position lives in its stream's Checkpoint and advances only after the page it
describes is stored, so re-processing a redelivered page is a no-op: records have
deterministic ids and content hashes, and the next page's message has a deterministic id
that duplicate detection drops.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from shared.domain import (
    Checkpoint,
    DataSynced,
    Integration,
    IntegrationFailed,
    IntegrationStatus,
    RateLimitExceeded,
    RunStatus,
    SyncRun,
    WebhookStatus,
    doc_id,
    iso,
    parse_schedule,
    utcnow,
)
from shared.errors import HubError, NotFound, RateLimited, ReauthRequired
from shared.messages import PageMessage, WebhookMessage, encode
from shared.ports.blobs import BlobStore
from shared.ports.documents import PreconditionFailed, Where
from shared.ports.queue import OutgoingMessage, WorkQueue
from shared.services.connections import AdapterHub
from shared.services.events import DomainEvents
from shared.services.records import RecordWriter, WriteResult
from shared.services.repositories import Repositories

log = logging.getLogger("ihub.sync")

COUNTERS = {
    WriteResult.CREATED: "records_created",
    WriteResult.UPDATED: "records_updated",
    WriteResult.UNCHANGED: "records_unchanged",
    WriteResult.STALE: "records_unchanged",
}


def session_of(tenant_id: str, integration_id: str) -> str:
    """Service Bus session id: one integration's work is processed in order, one at a time."""
    return f"{tenant_id}:{integration_id}"


class SyncService:
    """Runs, pages and webhook work for the inbound queue."""

    def __init__(
        self,
        repos: Repositories,
        adapters: AdapterHub,
        queue: WorkQueue,
        queue_name: str,
        blobs: BlobStore,
        blob_container: str,
        events: DomainEvents,
    ) -> None:
        self._repos = repos
        self._adapters = adapters
        self._queue = queue
        self._queue_name = queue_name
        self._blobs = blobs
        self._blob_container = blob_container
        self._events = events
        self._writer = RecordWriter(repos.records)

    # ------------------------------------------------------------------ checkpoints & runs

    def ensure_checkpoints(self, integration: Integration, *, due_at: datetime | None = None) -> None:
        """Create missing checkpoints for the integration's streams (due at ``due_at``)."""
        for stream in integration.streams:
            key = Checkpoint.key(integration.tenant_id, integration.id, stream.name)
            if self._repos.checkpoints.get(integration.tenant_id, key) is None:
                self._repos.checkpoints.save(
                    Checkpoint(
                        id=key,
                        tenant_id=integration.tenant_id,
                        integration_id=integration.id,
                        stream=stream.name,
                        next_run_at=due_at or utcnow(),
                    )
                )

    def checkpoint(self, integration: Integration, stream: str) -> Checkpoint:
        """The stream's checkpoint (created on first use)."""
        key = Checkpoint.key(integration.tenant_id, integration.id, stream)
        found = self._repos.checkpoints.get(integration.tenant_id, key)
        if found is None:
            self.ensure_checkpoints(integration)
            found = self._repos.checkpoints.get(integration.tenant_id, key)
        if found is None:
            raise NotFound(f"no checkpoint for stream {stream} of {integration.id}")
        return found

    def start_run(self, integration: Integration, stream: str, trigger: str, *, run_id: str | None = None) -> str:
        """Start a run of ``stream`` (or note a re-run when one is active); returns the run id.

        Idempotent for a given ``run_id``: the checkpoint's conditional write lets one caller
        win, and the first page's message id is derived from the run id.
        """
        integration.stream(stream)
        for _ in range(5):
            cp = self.checkpoint(integration, stream)
            if cp.active_run_id:
                if cp.active_run_id == run_id:
                    return run_id
                cp.rerun_requested = True
                try:
                    self._repos.checkpoints.save(cp)
                except PreconditionFailed:
                    continue
                return cp.active_run_id
            new_id = run_id or doc_id("run", f"{cp.id}/{trigger}/{utcnow().isoformat()}")
            cp.active_run_id = new_id
            cp.page_number = 0
            cp.next_page = None
            cp.pending_watermark = None
            cp.rerun_requested = False
            cp.updated_at = utcnow()
            try:
                self._repos.checkpoints.save(cp)
            except PreconditionFailed:
                continue
            self._repos.runs.save(
                SyncRun(
                    id=new_id,
                    tenant_id=integration.tenant_id,
                    integration_id=integration.id,
                    stream=stream,
                    trigger=trigger,
                )
            )
            self._send_page(
                integration,
                PageMessage(
                    tenant_id=integration.tenant_id, integration_id=integration.id, stream=stream, run_id=new_id, page=0
                ),
            )
            return new_id
        raise PreconditionFailed(f"checkpoint of {integration.id}/{stream} kept changing; try again")

    def _send_page(self, integration: Integration, msg: PageMessage) -> None:
        self._queue.send(
            self._queue_name,
            OutgoingMessage(
                encode(msg),
                f"{msg.run_id}:{msg.page}",
                session_id=session_of(integration.tenant_id, integration.id),
            ),
        )

    # ------------------------------------------------------------------ one page

    def handle_page(self, msg: PageMessage) -> None:
        """Fetch, store and checkpoint one page; enqueue the next."""
        integration = self._repos.integrations.require(msg.tenant_id, msg.integration_id)
        cp = self.checkpoint(integration, msg.stream)
        if cp.active_run_id != msg.run_id:
            log.info("ignoring page %d of finished or superseded run %s", msg.page, msg.run_id)
            return
        if cp.page_number > msg.page:  # redelivered after the page was stored: just pass the baton
            if cp.next_page is not None:
                self._send_page(
                    integration, msg.model_copy(update={"page": cp.page_number, "token": cp.next_page, "attempt": 0})
                )
            return
        if integration.status in (IntegrationStatus.DISCONNECTED,):
            self._finish(integration, cp, msg.run_id, RunStatus.FAILED, "integration is disconnected")
            return
        adapter = self._adapters.adapter(integration.provider)
        page = adapter.fetch_page(self._adapters.connection(integration), msg.stream, cp.state.watermark, msg.token)
        counts: dict[str, int] = {"records_seen": len(page.entities), "records_skipped": len(page.skipped)}
        for entity in page.entities:
            key = COUNTERS[self._writer.upsert(integration, entity)]
            counts[key] = counts.get(key, 0) + 1
        if page.watermark and (cp.pending_watermark is None or page.watermark > cp.pending_watermark):
            cp.pending_watermark = page.watermark
        cp.page_number = msg.page + 1
        cp.next_page = page.next_token
        for name, value in counts.items():
            cp.run_counters[name] = cp.run_counters.get(name, 0) + value
        cp.run_counters["pages"] = cp.run_counters.get("pages", 0) + 1
        cp.updated_at = utcnow()
        if integration.status in (IntegrationStatus.RATE_LIMITED, IntegrationStatus.ERROR, IntegrationStatus.PENDING):
            self._set_status(integration, IntegrationStatus.CONNECTED, None)
        if page.next_token is None:
            self._finish(integration, cp, msg.run_id, RunStatus.SUCCEEDED, None)
            return
        self._repos.checkpoints.save(cp)  # PreconditionFailed -> retried by the runner
        self._write_run(cp, msg.run_id)
        self._send_page(
            integration, msg.model_copy(update={"page": msg.page + 1, "token": page.next_token, "attempt": 0})
        )

    def _finish(
        self, integration: Integration, cp: Checkpoint, run_id: str, status: RunStatus, error: str | None
    ) -> None:
        if status is RunStatus.SUCCEEDED and cp.pending_watermark:
            cp.state.watermark = cp.pending_watermark
        counters = dict(cp.run_counters)
        rerun = cp.rerun_requested
        cp.active_run_id = None
        cp.next_page = None
        cp.page_number = 0
        cp.pending_watermark = None
        cp.rerun_requested = False
        cp.last_run_at = utcnow()
        cp.updated_at = utcnow()
        cp.run_counters = {}
        self._repos.checkpoints.save(cp)
        run = self._write_run(cp, run_id, counters=counters, status=status, error=error)
        if status is RunStatus.SUCCEEDED:
            self._events.publish(
                DataSynced(
                    tenant_id=integration.tenant_id,
                    integration_id=integration.id,
                    provider=integration.provider,
                    stream=cp.stream,
                    run_id=run_id,
                    records_created=run.records_created if run else 0,
                    records_updated=run.records_updated if run else 0,
                    records_unchanged=run.records_unchanged if run else 0,
                )
            )
        if rerun:
            self.start_run(integration, cp.stream, "webhook")

    def _write_run(
        self,
        cp: Checkpoint,
        run_id: str,
        *,
        counters: dict[str, int] | None = None,
        status: RunStatus = RunStatus.RUNNING,
        error: str | None = None,
    ) -> SyncRun | None:
        """Project the checkpoint's counters onto the run document (idempotent overwrite)."""
        run = self._repos.runs.get(cp.tenant_id, run_id)
        if run is None:
            return None
        for name, value in (counters if counters is not None else cp.run_counters).items():
            setattr(run, name, value)
        run.status = status
        run.error = error
        if status is not RunStatus.RUNNING:
            run.finished_at = utcnow()
        run.etag = None  # the checkpoint is the source of truth; last writer wins here
        return self._repos.runs.save(run)

    # ------------------------------------------------------------------ failures

    def fail(
        self, tenant_id: str, integration_id: str, stream: str | None, run_id: str | None, error: HubError
    ) -> None:
        """Record a failed page/webhook: status transition, run failure, event."""
        integration = self._repos.integrations.get(tenant_id, integration_id)
        if integration is None:
            return
        if isinstance(error, RateLimited):
            self._set_status(integration, IntegrationStatus.RATE_LIMITED, str(error))
            self._events.publish(
                RateLimitExceeded(
                    tenant_id=tenant_id,
                    integration_id=integration_id,
                    provider=integration.provider,
                    retry_at=error.retry_at,
                )
            )
            return
        new_status = IntegrationStatus.UNAUTHORIZED if isinstance(error, ReauthRequired) else IntegrationStatus.ERROR
        self._set_status(integration, new_status, str(error))
        if stream and run_id:
            cp = self.checkpoint(integration, stream)
            if cp.active_run_id == run_id:
                self._finish(integration, cp, run_id, RunStatus.FAILED, f"{error.code}: {error}")
        self._events.publish(
            IntegrationFailed(
                tenant_id=tenant_id,
                integration_id=integration_id,
                provider=integration.provider,
                error_code=error.code,
                message=str(error),
                stream=stream,
            )
        )

    def _set_status(self, integration: Integration, status: IntegrationStatus, reason: str | None) -> None:
        for _ in range(3):
            if integration.status == status and integration.status_reason == reason:
                return
            integration.status = status
            integration.status_reason = reason
            integration.updated_at = utcnow()
            try:
                self._repos.integrations.save(integration)
                return
            except PreconditionFailed:
                fresh = self._repos.integrations.get(integration.tenant_id, integration.id)
                if fresh is None:
                    return
                integration = fresh

    # ------------------------------------------------------------------ webhooks

    def handle_webhook(self, msg: WebhookMessage) -> None:
        """Apply one persisted webhook event: store carried entities, start asked-for syncs."""
        event = self._repos.webhook_events.get(msg.tenant_id, msg.event_id)
        if event is None:
            raise NotFound(f"webhook event {msg.event_id} not found (expired or never stored)")
        if event.status == WebhookStatus.PROCESSED:
            return
        integration = self._repos.integrations.require(msg.tenant_id, msg.integration_id)
        payload = event.body
        if payload is None and event.body_blob:
            payload = json.loads(self._blobs.get(self._blob_container, event.body_blob))
        work = self._adapters.adapter(integration.provider).webhook_work(event.event_type, payload)
        for entity in work.entities:
            self._writer.upsert(integration, entity)
        for stream in work.sync_streams:
            if any(s.name == stream and s.enabled for s in integration.streams):
                self.start_run(integration, stream, "webhook")
        event.status = WebhookStatus.PROCESSED
        event.processed_at = utcnow()
        self._repos.webhook_events.save(event)

    # ------------------------------------------------------------------ scheduler

    def schedule_due(self, now: datetime | None = None, *, stale_after_seconds: int = 3600) -> list[str]:
        """Start every due stream once; resume runs that stalled. Returns the run ids started.

        Safe when two timer runs overlap: each start is a conditional checkpoint write
        (one winner) and the first page's message id comes from the run id, which is derived
        from the checkpoint's due time, so a duplicate send is dropped by the queue.
        """
        now = now or utcnow()
        started: list[str] = []
        due = self._repos.checkpoints.query(None, [Where("next_run_at", "<=", iso(now))], order_by="next_run_at")
        for cp in due:
            integration = self._repos.integrations.get(cp.tenant_id, cp.integration_id)
            if integration is None:
                continue
            try:
                stream = integration.stream(cp.stream)
            except HubError:
                continue
            next_run = parse_schedule(stream.schedule).next_after(now)
            if cp.active_run_id:
                if cp.updated_at < now - timedelta(seconds=stale_after_seconds):
                    log.warning("resuming stalled run %s at page %d", cp.active_run_id, cp.page_number)
                    self._send_page(
                        integration,
                        PageMessage(
                            tenant_id=cp.tenant_id,
                            integration_id=cp.integration_id,
                            stream=cp.stream,
                            run_id=cp.active_run_id,
                            page=cp.page_number,
                            token=cp.next_page,
                        ),
                    )
                continue
            run_id = doc_id("run", f"{cp.id}/schedule/{cp.next_run_at.isoformat() if cp.next_run_at else ''}")
            cp.next_run_at = next_run
            runnable = (
                integration.status
                in (IntegrationStatus.CONNECTED, IntegrationStatus.RATE_LIMITED, IntegrationStatus.ERROR)
                and stream.enabled
            )
            try:
                self._repos.checkpoints.save(cp)  # claims this due slot; the loser skips
            except PreconditionFailed:
                continue
            if runnable:
                started.append(self.start_run(integration, cp.stream, "schedule", run_id=run_id))
        return started
