"""The scheduler's work: start due streams once, resume or fail stalled runs.

Called by the ``SyncScheduler`` timer through :meth:`SyncService.schedule_due`. Safe when two
timer runs overlap (one conditional write per due slot wins) and when a run's page message
was lost (the run is resumed a few times, then failed as stalled).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.domain import SYNCABLE_STATUSES, RunStatus, StreamSchedule, SyncRun, doc_id, iso, parse_schedule, utcnow
from shared.errors import FailRun, HubError
from shared.ports.documents import PreconditionFailed, Where
from shared.services.repositories import Repositories
from shared.services.runs import RunLedger, describe

if TYPE_CHECKING:
    from shared.services.sync import SyncService

log = logging.getLogger("ihub.sync")


class StreamScheduler:
    """Due streams and stalled runs, on behalf of the sync service."""

    def __init__(self, repos: Repositories, ledger: RunLedger, sync: SyncService, *, max_resumes: int) -> None:
        self._repos = repos
        self._ledger = ledger
        self._sync = sync
        self._max_resumes = max_resumes

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
        return self._sync.start_run(integration, stream.name, "schedule", run_id=run_id)

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
            self._sync.fail(
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
            self._sync.send_page(claimed, suffix=f"~resume{claimed.resumes}")
