"""Incremental sync: starting runs, one page per message, webhook work, failures and the scheduler.

A run's position lives in its run document and advances only after the page it describes
is stored, so re-processing a redelivered page is a no-op: records have deterministic ids
and content hashes, and the next page's message has a deterministic id that duplicate
detection drops. The document layout and its crash windows are described in
:mod:`shared.services.runs`.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from shared.domain import (
    SYNCABLE_STATUSES,
    Checkpoint,
    DataSynced,
    Integration,
    IntegrationFailed,
    IntegrationStatus,
    RateLimitExceeded,
    RunStatus,
    StreamSchedule,
    SyncRun,
    WebhookEvent,
    WebhookStatus,
    doc_id,
    iso,
    parse_schedule,
    utcnow,
)
from shared.errors import (
    FailRun,
    HubError,
    RateLimited,
    ReauthRequired,
    RetryLater,
    SkipRecord,
    UnexpectedError,
    WriteConflict,
)
from shared.http import redact_text
from shared.messages import OutboundMessage, PageMessage, WebhookMessage, encode
from shared.ports.blobs import BlobStore
from shared.ports.documents import PreconditionFailed, Where
from shared.ports.queue import OutgoingMessage, WorkQueue, fit_id
from shared.services.connections import AdapterHub
from shared.services.events import DomainEvents
from shared.services.records import RecordWriter, WriteResult
from shared.services.repositories import Repositories
from shared.services.runs import RunLedger
from shared.services.status import IntegrationHealth
from shared.sessions import integration_session

log = logging.getLogger("ihub.sync")

COUNTERS = {
    WriteResult.CREATED: "records_created",
    WriteResult.UPDATED: "records_updated",
    WriteResult.UNCHANGED: "records_unchanged",
    WriteResult.STALE: "records_unchanged",
}
DEFAULT_MAX_RESUMES = 3


def session_of(tenant_id: str, integration_id: str) -> str:
    """Service Bus session id: one integration's work is processed in order, one at a time."""
    return integration_session(tenant_id, integration_id)  # always fits 128 characters


def describe(error: HubError) -> str:
    """``code: message`` with secrets redacted, for statuses, runs and dead letters."""
    return f"{error.code}: {redact_text(str(error))}"


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
        *,
        max_pages_per_run: int | None = None,
        max_resumes: int = DEFAULT_MAX_RESUMES,
    ) -> None:
        self._repos = repos
        self._adapters = adapters
        self._queue = queue
        self._queue_name = queue_name
        self._blobs = blobs
        self._blob_container = blob_container
        self._events = events
        self._max_pages = max_pages_per_run
        self._max_resumes = max_resumes
        self._writer = RecordWriter(repos.records)
        self._ledger = RunLedger(repos)
        self.health = IntegrationHealth(repos.integrations)

    # ------------------------------------------------------------------ streams & runs

    def ensure_checkpoints(self, integration: Integration, *, due_at: datetime | None = None) -> None:
        """Create missing checkpoints and schedules for the integration's streams (due at ``due_at``)."""
        for stream in integration.streams:
            self._ledger.ensure_stream(integration, stream.name, due_at=due_at)

    def checkpoint(self, integration: Integration, stream: str) -> Checkpoint:
        """The stream's checkpoint (created on first use)."""
        return self._ledger.ensure_stream(integration, stream)

    def start_run(self, integration: Integration, stream: str, trigger: str, *, run_id: str | None = None) -> str:
        """Start a run of ``stream``, or ask for a re-run after the active one; returns the run id.

        Idempotent for a given ``run_id``: the checkpoint's conditional write lets one caller
        win, and the first page's message id is derived from the run id.
        """
        integration.stream(stream)
        run_id, started = self._ledger.claim(integration, stream, trigger, run_id)
        if started is not None:
            self._send_page(started)
        return run_id

    def _send_page(self, run: SyncRun, suffix: str = "") -> None:
        """Enqueue the run's next page; its message id is deterministic, so a repeat is dropped."""
        msg = PageMessage(
            tenant_id=run.tenant_id,
            integration_id=run.integration_id,
            stream=run.stream,
            run_id=run.id,
            page=run.next_page,
            token=run.next_token,
        )
        self._queue.send(
            self._queue_name,
            OutgoingMessage(
                encode(msg),
                fit_id(f"{run.id}:{run.next_page}{suffix}"),  # short already (hashed run id); fit_id keeps it so
                session_id=session_of(run.tenant_id, run.integration_id),
            ),
        )

    # ------------------------------------------------------------------ one page

    def handle_page(self, msg: PageMessage) -> None:
        """Fetch and store one page, advance the run, enqueue the next page (or end the run)."""
        run = self._repos.runs.get(msg.tenant_id, msg.run_id)
        if run is None or run.status is not RunStatus.RUNNING:
            log.info("ignoring page %d of finished or unknown run %s", msg.page, msg.run_id)
            return
        if run.next_page != msg.page:
            if run.next_page > msg.page and run.next_token is not None:  # redelivered after it was stored
                self._send_page(run)
            else:
                log.info("ignoring page %d of run %s, which is at page %d", msg.page, run.id, run.next_page)
            return
        integration = self._repos.integrations.require(msg.tenant_id, msg.integration_id)
        if integration.status is IntegrationStatus.DISCONNECTED:
            self._end_failed(run, "integration is disconnected")
            return
        adapter = self._adapters.adapter(integration.provider)
        ceiling = self._max_pages or adapter.spec.pagination_for(run.stream).max_pages_per_run
        if msg.page >= ceiling:
            raise FailRun(
                f"stream {run.stream} reached {ceiling} pages in one run without a last page (the ceiling is the "
                "spec's max_pages_per_run; the IHUB_MAX_PAGES_PER_RUN setting overrides it)",
                code="page_ceiling",
            )
        page = adapter.fetch_page(
            self._adapters.connection(integration), run.stream, run.start_state.watermark, run.next_token
        )
        trail = run.cursors.model_copy(deep=True)
        if page.next_token is not None:
            repeated = trail.follow(page.next_token, msg.page + 1)
            if repeated is not None:
                raise FailRun(
                    f"pagination cycle in stream {run.stream}: page {msg.page + 1} links to the page already "
                    f"fetched as page {repeated + 1} of this run; stopping instead of looping",
                    code="pagination_cycle",
                )
        counts = {"records_seen": len(page.entities), "records_skipped": len(page.skipped), "pages": 1}
        for entity in page.entities:
            key = COUNTERS[self._writer.upsert(integration, entity)]
            counts[key] = counts.get(key, 0) + 1

        def apply(fresh: SyncRun) -> None:
            for name, value in counts.items():
                setattr(fresh, name, getattr(fresh, name) + value)
            fresh.pending_state = fresh.pending_state.advanced(page.watermark)
            fresh.next_page = msg.page + 1
            fresh.next_token = page.next_token
            fresh.cursors = trail
            if page.next_token is None:
                fresh.status = RunStatus.SUCCEEDED
                fresh.finished_at = utcnow()

        saved = self._ledger.advance(run, msg.page, apply)
        if saved is None:
            log.info("page %d of run %s was stored by another delivery", msg.page, run.id)
            return
        self.health.recovered(integration)
        if saved.next_token is None:
            self._after_success(integration, saved)
        else:
            self._send_page(saved)

    def _after_success(self, integration: Integration, run: SyncRun) -> None:
        rerun = self._ledger.release_run(run)
        self._events.publish(
            DataSynced(
                tenant_id=integration.tenant_id,
                integration_id=integration.id,
                provider=integration.provider,
                stream=run.stream,
                run_id=run.id,
                records_created=run.records_created,
                records_updated=run.records_updated,
                records_unchanged=run.records_unchanged,
            )
        )
        if rerun:
            self.start_run(integration, run.stream, rerun)

    def _end_failed(self, run: SyncRun, reason: str) -> SyncRun | None:
        closed = self._ledger.close(run.tenant_id, run.id, RunStatus.FAILED, reason)
        if closed is not None:
            self._ledger.release_run(closed)
        return closed

    # ------------------------------------------------------------------ failures

    def fail(
        self, tenant_id: str, integration_id: str, stream: str | None, run_id: str | None, error: HubError
    ) -> None:
        """Apply the outcome of a failed message to the run and the integration's status.

        - ``RetryLater`` (the message was rescheduled): ``rate_limited`` or ``degraded`` with
          the reason; a write conflict changes nothing (it is not the connection's health).
        - ``SkipRecord``: a per-item problem, reported where the item is; no status change.
        - anything else ends the message: its run fails, and the integration becomes
          ``unauthorized`` (a rejected credential) or ``error``, with a reason naming the run.
        """
        if isinstance(error, RetryLater):
            self._note_retry(tenant_id, integration_id, run_id, error)
            return
        if isinstance(error, SkipRecord):
            log.info("%s/%s: item skipped: %s", tenant_id, integration_id, describe(error))
            return
        reason = describe(error)
        if run_id:
            run = self._repos.runs.get(tenant_id, run_id)
            if run is not None:
                self._end_failed(run, reason)
        integration = self._repos.integrations.get(tenant_id, integration_id)
        if integration is None:
            return
        if isinstance(error, ReauthRequired):
            self.health.set(tenant_id, integration_id, IntegrationStatus.UNAUTHORIZED, reason)
        else:
            where = f"run {run_id} of stream {stream} failed" if run_id else "work failed"
            self.health.set(tenant_id, integration_id, IntegrationStatus.ERROR, f"{where}: {reason}")
        self._events.publish(
            IntegrationFailed(
                tenant_id=tenant_id,
                integration_id=integration_id,
                provider=integration.provider,
                error_code=error.code,
                message=redact_text(str(error)),
                stream=stream,
            )
        )

    def fail_message(self, msg: PageMessage | WebhookMessage | OutboundMessage, error: HubError) -> None:
        """:meth:`fail` for a whole message (the queue dead-lettered it): also fails its webhook event."""
        if isinstance(msg, WebhookMessage):
            self._settle_event(msg.tenant_id, msg.event_id, WebhookStatus.FAILED, describe(error))
        self.fail(
            msg.tenant_id,
            msg.integration_id,
            msg.stream if isinstance(msg, PageMessage) else None,
            msg.run_id if isinstance(msg, PageMessage) else None,
            error,
        )

    def _note_retry(self, tenant_id: str, integration_id: str, run_id: str | None, error: RetryLater) -> None:
        if isinstance(error, WriteConflict):
            return
        integration = self._repos.integrations.get(tenant_id, integration_id)
        if integration is None:
            return
        when = f" (next attempt at {iso(error.retry_at)})" if error.retry_at else ""
        if isinstance(error, RateLimited):
            self.health.set(tenant_id, integration_id, IntegrationStatus.RATE_LIMITED, f"{describe(error)}{when}")
            self._events.publish(
                RateLimitExceeded(
                    tenant_id=tenant_id,
                    integration_id=integration_id,
                    provider=integration.provider,
                    retry_at=error.retry_at,
                )
            )
        else:
            self.health.set(tenant_id, integration_id, IntegrationStatus.DEGRADED, f"retrying: {describe(error)}{when}")
        if run_id:
            self._ledger.touch(tenant_id, run_id, error.retry_at)

    # ------------------------------------------------------------------ webhooks

    def handle_webhook(self, msg: WebhookMessage) -> None:
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
                work = self._adapters.adapter(integration.provider).webhook_work(event.event_type, payload)
                for entity in work.entities:
                    self._writer.upsert(integration, entity)
            except SkipRecord as exc:
                raise SkipRecord(
                    f"{event.event_type} event {event.delivery_id} cannot be applied: {exc}", code="bad_payload"
                ) from None
            for stream in work.sync_streams:
                if any(s.name == stream and s.enabled for s in integration.streams):
                    self.start_run(integration, stream, "webhook")
        except RetryLater:
            raise
        except HubError as exc:
            self._settle_event(event.tenant_id, event.id, WebhookStatus.FAILED, describe(exc))
            raise
        except Exception as exc:
            unexpected = UnexpectedError(f"{type(exc).__name__}: {exc}")
            self._settle_event(event.tenant_id, event.id, WebhookStatus.FAILED, describe(unexpected))
            raise
        self._settle_event(event.tenant_id, event.id, WebhookStatus.PROCESSED, None)

    def _settle_event(self, tenant_id: str, event_id: str, status: WebhookStatus, error: str | None) -> None:
        def apply(event: WebhookEvent) -> bool:
            if event.status == WebhookStatus.PROCESSED:
                return False
            event.status = status
            event.error = error[:2000] if error else None
            event.processed_at = utcnow()
            return True

        self._repos.webhook_events.update(tenant_id, event_id, apply)

    # ------------------------------------------------------------------ scheduler

    def schedule_due(self, now: datetime | None = None, *, stale_after_seconds: int = 3600) -> list[str]:
        """Start every due stream once; resume or fail stalled runs. Returns the run ids started.

        Safe when two timer runs overlap: each due slot is claimed with a conditional write of
        the stream's schedule (one winner), and the run id is derived from the slot, so a
        duplicate start is idempotent and a duplicate first page is dropped by the queue.
        """
        now = now or utcnow()
        started: list[str] = []
        due = self._repos.schedules.query(
            None, [Where("next_run_at", "<=", iso(now))], order_by="next_run_at", limit=500
        )
        for schedule in due:
            try:
                run_id = self._start_scheduled(schedule, now)
            except HubError as exc:
                log.warning(
                    "could not start %s/%s %s: %s",
                    schedule.tenant_id,
                    schedule.integration_id,
                    schedule.stream,
                    describe(exc),
                )
                continue
            if run_id is not None:
                started.append(run_id)
        self.recover_stalled(now - timedelta(seconds=stale_after_seconds))
        return started

    def _start_scheduled(self, schedule: StreamSchedule, now: datetime) -> str | None:
        integration = self._repos.integrations.get(schedule.tenant_id, schedule.integration_id)
        stream = next((s for s in integration.streams if s.name == schedule.stream), None) if integration else None
        if integration is None or stream is None:  # the integration or its stream is gone
            self._repos.schedules.delete(schedule.tenant_id, schedule.id)
            return None
        slot = schedule.next_run_at or now
        schedule.next_run_at = parse_schedule(stream.schedule).next_after(now)
        schedule.updated_at = now
        try:
            self._repos.schedules.save(schedule)  # claims this due slot; the loser skips
        except PreconditionFailed:
            return None
        if integration.status not in SYNCABLE_STATUSES or not stream.enabled:
            return None
        run_id = doc_id("run", f"{schedule.id}/schedule/{iso(slot)}")
        return self.start_run(integration, stream.name, "schedule", run_id=run_id)

    def recover_stalled(self, stale_before: datetime) -> None:
        """Resume runs with no activity since ``stale_before``; fail those that cannot go on.

        A run that never became its stream's active run (the process stopped while starting
        it) is failed as abandoned. An active one gets its next page sent again, at most
        ``max_resumes`` times; then it fails as stalled, and the integration says so.
        """
        for run in self._ledger.stale_runs(stale_before):
            try:
                self._recover(run, stale_before)
            except HubError as exc:
                log.warning("could not recover run %s: %s", run.id, describe(exc))

    def _recover(self, run: SyncRun, stale_before: datetime) -> None:
        if not self._ledger.is_active(run):
            self._ledger.close(
                run.tenant_id,
                run.id,
                RunStatus.FAILED,
                "abandoned: the run never became its stream's active run (stopped while starting)",
            )
            return
        if run.resumes >= self._max_resumes:
            self.fail(
                run.tenant_id,
                run.integration_id,
                run.stream,
                run.id,
                FailRun(
                    f"stalled at page {run.next_page + 1}: no progress after {run.resumes} resumes", code="run_stalled"
                ),
            )
            return
        claimed = self._ledger.claim_resume(run, stale_before)
        if claimed is not None:
            log.warning("resuming stalled run %s at page %d (resume %d)", run.id, claimed.next_page, claimed.resumes)
            self._send_page(claimed, suffix=f"~resume{claimed.resumes}")
