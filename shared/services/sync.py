"""Incremental sync: starting runs, one page per message, webhook work, failures and the scheduler.

A run's position lives in its run document and advances only after the page it describes
is stored, so re-processing a redelivered page is a no-op: records have deterministic ids
and content hashes, and the next page's message has a deterministic id that duplicate
detection drops. The document layout and its crash windows: :mod:`shared.services.runs`.

The whole incremental state travels: every page is fetched with the run's committed
``start_state``; the run's candidate (``pending_state``) merges each page's ``state`` and is
committed to the checkpoint only when the run succeeds. ``ResyncRequired`` ends a run as
``resynced`` and starts a full resync of its stream at once. A parent stream's page names
child scopes; each starts (or re-triggers) a run of its own, keyed ``stream:parent_id``. A full
listing sweeps the records it did not see (:mod:`shared.services.deletes`) before it succeeds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from adapters.base.adapter import Adapter, Page
from shared.domain import (
    SYNCABLE_STATUSES,
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
    stream_key,
    utcnow,
)
from shared.engine.versions import remap_if_needed
from shared.errors import (
    BudgetDeferred,
    FailRun,
    HubError,
    InvalidInput,
    RateLimited,
    ReauthRequired,
    ResyncRequired,
    RetryLater,
    SkipRecord,
    WriteConflict,
)
from shared.http import redact_text
from shared.messages import OutboundMessage, PageMessage, WebhookMessage, encode
from shared.ports.blobs import BlobStore
from shared.ports.queue import OutgoingMessage, WorkQueue, fit_id
from shared.ratelimit.priority import priority_of_trigger, work_priority
from shared.services.connections import AdapterHub
from shared.services.deletes import ListingSweeper
from shared.services.events import DomainEvents
from shared.services.outbound import QueueOutbox
from shared.services.records import RecordWriter, WriteResult
from shared.services.repositories import Repositories
from shared.services.runs import RunLedger, describe
from shared.services.scheduling import StreamScheduler
from shared.services.status import IntegrationHealth
from shared.services.webhook_work import WebhookApplier
from shared.sessions import integration_session

log = logging.getLogger("ihub.sync")

COUNTERS = {
    WriteResult.CREATED: "records_created",
    WriteResult.UPDATED: "records_updated",
    WriteResult.UNCHANGED: "records_unchanged",
    WriteResult.STALE: "records_unchanged",
    WriteResult.DELETED: "records_deleted",
}
DEFAULT_MAX_RESUMES = 3
MAX_RESYNCS_IN_A_ROW = 3
"""A full resync that itself hears ``ResyncRequired`` this often fails instead of looping."""


def session_of(tenant_id: str, integration_id: str) -> str:
    """Service Bus session id: one integration's work is processed in order, one at a time."""
    return integration_session(tenant_id, integration_id)  # always fits 128 characters


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
        containers: Mapping[str, str] | None = None,
        outbound_queue: str | None = None,
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
        outbox = QueueOutbox(queue, outbound_queue) if outbound_queue else None
        self._writer = RecordWriter(repos.records, containers=containers, outbox=outbox)
        self._sweeper = ListingSweeper(repos.records)
        self._ledger = RunLedger(repos)
        self.health = IntegrationHealth(repos.integrations)
        self._scheduler = StreamScheduler(repos, self._ledger, self, max_resumes=max_resumes)
        self._webhooks = WebhookApplier(repos, adapters, blobs, blob_container, self._writer, self)

    # ------------------------------------------------------------------ streams & runs

    def ensure_checkpoints(self, integration: Integration, *, due_at: datetime | None = None) -> None:
        """Create missing checkpoints and schedules for the integration's top-level streams (due at ``due_at``).

        Child streams get theirs per parent record, when a parent page names them.
        """
        adapter = self._adapters.adapter(integration.provider)
        for stream in integration.streams:
            if self._parent_of(adapter, stream.name) is None:
                self._ledger.ensure_stream(integration, stream.name, due_at=due_at)

    def checkpoint(self, integration: Integration, stream: str, parent_id: str | None = None) -> Checkpoint:
        """The stream's checkpoint (for ``parent_id``: a child stream's, per parent record; created on first use)."""
        return self._ledger.ensure_stream(integration, stream, parent_id=parent_id, scheduled=parent_id is None)

    @staticmethod
    def _parent_of(adapter: Adapter, stream: str) -> str | None:
        spec = adapter.spec.streams.get(stream)
        return spec.parent if spec is not None else None

    def start_run(
        self,
        integration: Integration,
        stream: str,
        trigger: str,
        *,
        run_id: str | None = None,
        parent_id: str | None = None,
        resync_of: SyncRun | None = None,
        full_resync: bool = False,
    ) -> str:
        """Start a run of ``stream``, or ask for a re-run after the active one; returns the run id.

        Idempotent for a given ``run_id``: the checkpoint's conditional write lets one caller
        win, and the first page's message id is derived from the run id. A child stream runs
        per parent record (``parent_id``); asked for without one (a manual sync, a webhook),
        its parent stream runs instead and starts it for every parent record it lists.
        ``full_resync``: the run (or the re-run after the active one) lists everything, so a
        stream that learns of deletes by full listing finds them.
        """
        integration.stream(stream)
        adapter = self._adapters.adapter(integration.provider)
        parent = self._parent_of(adapter, stream)
        if parent is not None and parent_id is None:
            return self.start_run(integration, parent, trigger, run_id=run_id, full_resync=full_resync)
        if parent is None and parent_id is not None:
            raise InvalidInput(f"stream {stream!r} is not a child stream; it takes no parent id", code="not_a_child")
        if full_resync:
            self._ledger.request_full_resync(integration, stream, parent_id)
        spec = adapter.spec.streams.get(stream)
        run_id, started = self._ledger.claim(
            integration,
            stream,
            trigger,
            run_id,
            parent_id=parent_id,
            resync_of=resync_of,
            always_lists_everything=spec is not None and spec.lists_everything,
        )
        if started is not None:
            self.send_page(started)
        return run_id

    def send_page(self, run: SyncRun, suffix: str = "") -> None:
        """Enqueue the run's next page; its message id is deterministic, so a repeat is dropped."""
        msg = PageMessage(
            tenant_id=run.tenant_id,
            integration_id=run.integration_id,
            stream=run.stream,
            parent_id=run.parent_id,
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
        """Fetch and store one page (or sweep one batch), advance the run, enqueue the next page or end it."""
        run = self._repos.runs.get(msg.tenant_id, msg.run_id)
        if run is not None and run.status is RunStatus.RESYNCED and run.next_page == msg.page:
            self._start_resync(run)  # redelivered after the run ended: make sure its resync started
            return
        if run is None or run.status is not RunStatus.RUNNING:
            log.info("ignoring page %d of finished or unknown run %s", msg.page, msg.run_id)
            return
        if run.next_page != msg.page:
            if run.next_page > msg.page and (run.next_token is not None or run.sweeping):  # redelivered after storing
                self.send_page(run)
            else:
                log.info("ignoring page %d of run %s, which is at page %d", msg.page, run.id, run.next_page)
            return
        integration = self._repos.integrations.require(msg.tenant_id, msg.integration_id)
        if integration.status is IntegrationStatus.DISCONNECTED:
            self._end_failed(run, "integration is disconnected")
            return
        if run.sweeping:
            self._sweep(integration, run, msg.page)
            return
        adapter = self._adapters.adapter(integration.provider)
        ceiling = self._max_pages or adapter.spec.pagination_for(run.stream).max_pages_per_run
        if msg.page >= ceiling:
            raise FailRun(
                f"stream {run.key} reached {ceiling} pages in one run without a last page (the ceiling is the "
                "spec's max_pages_per_run; the IHUB_MAX_PAGES_PER_RUN setting overrides it)",
                code="page_ceiling",
            )
        try:
            with work_priority(priority_of_trigger(run.trigger)):  # webhook and admin runs before scheduled ones
                page = adapter.fetch_page(
                    self._adapters.connection(integration),
                    run.stream,
                    run.start_state,
                    run.next_token,
                    parent_id=run.parent_id,
                )
        except ResyncRequired as exc:
            self._resync(integration, run, exc)
            return
        trail = run.cursors.model_copy(deep=True)
        if page.next_token is not None:
            repeated = trail.follow(page.next_token, msg.page + 1)
            if repeated is not None:
                raise FailRun(
                    f"pagination cycle in stream {run.key}: page {msg.page + 1} links to the page already "
                    f"fetched as page {repeated + 1} of this run; stopping instead of looping",
                    code="pagination_cycle",
                )
        counts = self._store(integration, run, page)
        children = self._start_children(integration, run, page)
        delete_mode = adapter.stream_spec(run.stream).deletes
        last = page.next_token is None
        sweeps = last and self._sweeper.applies(run, delete_mode, len(page.skipped))
        sweep = self._sweeper.sweep(run) if sweeps else None

        def apply(fresh: SyncRun) -> None:
            for name, value in counts.items():
                setattr(fresh, name, getattr(fresh, name) + value)
            fresh.children_started += children
            fresh.pending_state = fresh.pending_state.merged(page.state)
            fresh.next_page = msg.page + 1
            fresh.next_token = page.next_token
            fresh.cursors = trail
            if sweep is not None:  # the listing is complete: its first delete sweep batch ran above
                fresh.records_deleted += sweep.deleted
                fresh.sweep_after = sweep.last_id
                fresh.sweeping = not sweep.done
            if last and not fresh.sweeping:
                self._succeed(fresh, delete_mode)

        saved = self._ledger.advance(run, msg.page, apply)
        if saved is None:
            log.info("page %d of run %s was stored by another delivery", msg.page, run.id)
            return
        self.health.recovered(integration)
        if saved.status is RunStatus.SUCCEEDED:
            self._after_success(integration, saved)
        else:
            self.send_page(saved)

    def _store(self, integration: Integration, run: SyncRun, page: Page) -> dict[str, int]:
        """Write one page's entities (marked as listed when the run is a full listing); the counters."""
        counts = {"records_seen": len(page.entities), "records_skipped": len(page.skipped), "pages": 1}
        if run.next_page == 0:  # a changed mapping re-maps what is stored first (one read when nothing did)
            remap_if_needed(self._writer.pages, integration)
        listing = run.id if run.full_listing else None
        outcome = self._writer.write_page(integration, page.entities, stream=run.key, listing_run=listing)
        for result in outcome.results:
            key = COUNTERS[result]
            counts[key] = counts.get(key, 0) + 1
        return counts

    def _start_children(self, integration: Integration, run: SyncRun, page: Page) -> int:
        """Start (or re-trigger) one run per child scope the page names; how many were asked for.

        Done before the page is recorded as stored, with run ids derived from this run and the
        child's key, so a redelivered page starts each child once.
        """
        enabled = {s.name for s in integration.streams if s.enabled}
        started = 0
        for scope in page.children:
            if scope.stream not in enabled:
                continue
            child_id = doc_id("run", f"{run.id}/{stream_key(scope.stream, scope.parent_id)}")
            self.start_run(  # a full resync asked of the parent reaches its children (their deletes show)
                integration,
                scope.stream,
                run.trigger,
                run_id=child_id,
                parent_id=scope.parent_id,
                full_resync=run.start_state.full_resync,
            )
            started += 1
        return started

    @staticmethod
    def _succeed(run: SyncRun, delete_mode: str) -> None:
        run.status = RunStatus.SUCCEEDED
        run.sweeping = False
        run.finished_at = utcnow()
        if run.full_listing and delete_mode == "full_listing" and run.records_skipped:
            run.note = (
                f"deletes not applied: {run.records_skipped} records of this full listing could not be mapped, "
                "so records it did not show may still exist"
            )

    def _sweep(self, integration: Integration, run: SyncRun, page: int) -> None:
        """One batch of a full listing's delete sweep; the run succeeds with the last batch."""
        batch = self._sweeper.sweep(run)

        def apply(fresh: SyncRun) -> None:
            fresh.records_deleted += batch.deleted
            fresh.sweep_after = batch.last_id
            fresh.next_page = page + 1
            if batch.done:
                self._succeed(fresh, "full_listing")

        saved = self._ledger.advance(run, page, apply)
        if saved is None:
            return
        if saved.status is RunStatus.SUCCEEDED:
            self._after_success(integration, saved)
        else:
            self.send_page(saved)

    def _resync(self, integration: Integration, run: SyncRun, error: ResyncRequired) -> None:
        """The run's delta position is gone: end it ``resynced`` and start a full resync of its stream."""
        if run.resyncs >= MAX_RESYNCS_IN_A_ROW:
            raise FailRun(
                f"stream {run.key} asked for a full resync {run.resyncs + 1} times in a row; "
                f"stopping instead of looping: {describe(error)}",
                code="resync_loop",
            )
        reason = f"full resync started: {describe(error)}"
        closed = self._ledger.close(run.tenant_id, run.id, RunStatus.RESYNCED, reason)
        if closed is None:
            return
        self._ledger.release_run(closed)
        self.health.recovered(integration)  # the provider answered; nothing is wrong with the connection
        self._start_resync(closed, integration)

    def _start_resync(self, run: SyncRun, integration: Integration | None = None) -> None:
        """Start the full resync that replaces resynced ``run`` (once: its id derives from the run's)."""
        new_id = doc_id("run", f"{run.id}/resync")
        if self._repos.runs.get(run.tenant_id, new_id) is not None:
            return
        integration = integration or self._repos.integrations.require(run.tenant_id, run.integration_id)
        if integration.status not in SYNCABLE_STATUSES:
            return
        started = self.start_run(
            integration, run.stream, run.trigger, run_id=new_id, parent_id=run.parent_id, resync_of=run
        )
        log.info("run %s of %s resynced: full resync %s", run.id, run.key, started)

    def _after_success(self, integration: Integration, run: SyncRun) -> None:
        rerun = self._ledger.release_run(run)
        self._events.publish(
            DataSynced(
                tenant_id=integration.tenant_id,
                integration_id=integration.id,
                provider=integration.provider,
                stream=run.stream,
                parent_id=run.parent_id,
                run_id=run.id,
                records_created=run.records_created,
                records_updated=run.records_updated,
                records_unchanged=run.records_unchanged,
                records_deleted=run.records_deleted,
            )
        )
        if rerun:
            self.start_run(integration, run.stream, rerun, parent_id=run.parent_id)

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
            self._webhooks.settle(msg.tenant_id, msg.event_id, WebhookStatus.FAILED, describe(error))
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
        if isinstance(error, BudgetDeferred):  # our own pacing: shown once, no event (the limiter tells of 429s)
            reason = f"budget_deferred: waiting for its rate budget {error.bucket}"
            self.health.set(tenant_id, integration_id, IntegrationStatus.RATE_LIMITED, reason,
                            only_from=frozenset(SYNCABLE_STATUSES) - {IntegrationStatus.RATE_LIMITED})
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
        """Apply one persisted webhook event (see :class:`shared.services.webhook_work.WebhookApplier`)."""
        self._webhooks.apply(msg)

    # ------------------------------------------------------------------ scheduler

    def schedule_due(self, now: datetime | None = None, *, stale_after_seconds: int = 3600) -> list[str]:
        """Start every due stream once; resume or fail stalled runs (see :mod:`shared.services.scheduling`)."""
        return self._scheduler.schedule_due(now, stale_after_seconds=stale_after_seconds)

    def recover_stalled(self, stale_before: datetime) -> None:
        """Resume runs with no activity since ``stale_before``; fail those that cannot go on."""
        self._scheduler.recover_stalled(stale_before)
