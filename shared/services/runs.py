"""Runs and their stream's documents: start, advance, close, release.

Each concern has its own document, so writers of one never collide with writers of another
(all partitioned by ``tenant_id``; ``<h>`` is a hash of ``tenant:integration:stream``):

- ``schedules/schedule-<h>`` (:class:`StreamSchedule`): when the stream is next due. Only the
  scheduler writes it. Child streams have none: they run when their parent's pages name them.
- ``checkpoints/checkpoint-<h>`` (:class:`Checkpoint`, ``<h>`` over the stream key, so one per
  parent record for a child stream): the committed incremental state and
  the claim on the stream's one active run. Written when a run starts and when it ends, and
  once per run when a re-run is asked for while it runs - never per page.
- ``runs/run-<id>`` (:class:`SyncRun`): the run's cursor (next page number and token), its
  counters, its candidate incremental state and the cursors it followed. Written once per
  page by the run's own page message (one at a time in the integration's session).

Every write is conditional and re-reads and re-applies on a conflict
(:meth:`Repository.update`). The order of the steps makes every crash window recoverable:
a run document is created before the checkpoint names it, and it is closed before the
checkpoint lets go of it, so a checkpoint naming a closed run is released by whoever sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from shared.domain import (
    Checkpoint,
    IncrementalState,
    Integration,
    RunStatus,
    StreamSchedule,
    SyncRun,
    doc_id,
    iso,
    stream_key,
    utcnow,
)
from shared.errors import HubError
from shared.http import redact_text
from shared.ports.documents import DocumentExists, PreconditionFailed, Where
from shared.services.repositories import Repositories

log = logging.getLogger("ihub.runs")

Trigger = str


def describe(error: HubError) -> str:
    """``code: message`` with secrets redacted, for statuses, runs and dead letters."""
    return f"{error.code}: {redact_text(str(error))}"


class RunLedger:
    """The document-level operations of runs; the sync service orchestrates them."""

    def __init__(self, repos: Repositories) -> None:
        self._repos = repos

    # ------------------------------------------------------------------ stream documents

    def ensure_stream(
        self,
        integration: Integration,
        stream: str,
        *,
        due_at: datetime | None = None,
        parent_id: str | None = None,
        scheduled: bool = True,
    ) -> Checkpoint:
        """The stream's checkpoint, creating it and (when ``scheduled``) its schedule, due at ``due_at``.

        A child stream's checkpoint is per parent record (``parent_id``) and has no schedule.
        """
        tenant = integration.tenant_id
        sched_id = StreamSchedule.key(tenant, integration.id, stream)
        if scheduled and parent_id is None and self._repos.schedules.get(tenant, sched_id) is None:
            schedule = StreamSchedule(
                id=sched_id,
                tenant_id=tenant,
                integration_id=integration.id,
                stream=stream,
                next_run_at=due_at or utcnow(),
            )
            try:
                self._repos.schedules.create(schedule)
            except DocumentExists:
                pass
        key = Checkpoint.key(tenant, integration.id, stream_key(stream, parent_id))
        found = self._repos.checkpoints.get(tenant, key)
        if found is not None:
            return found
        try:
            return self._repos.checkpoints.create(
                Checkpoint(id=key, tenant_id=tenant, integration_id=integration.id, stream=stream, parent_id=parent_id)
            )
        except DocumentExists:
            again = self._repos.checkpoints.get(tenant, key)
            assert again is not None
            return again

    # ------------------------------------------------------------------ starting

    def claim(
        self,
        integration: Integration,
        stream: str,
        trigger: Trigger,
        run_id: str | None,
        *,
        parent_id: str | None = None,
        resync_of: SyncRun | None = None,
        always_lists_everything: bool = False,
    ) -> tuple[str, SyncRun | None]:
        """Start a run of ``stream`` (for ``parent_id``, a child stream) unless one is active.

        Returns ``(run id, new run)``: the new run when this call started it (the caller
        sends its first page), else the active run's id and None (a re-run with ``trigger``
        is then requested for when it ends). Idempotent for a given ``run_id``. ``resync_of``:
        the resynced run this one replaces. ``always_lists_everything``: the stream has no
        delta, so every run is a full listing whatever its state.
        """
        tenant = integration.tenant_id
        for _ in range(25):
            cp = self.ensure_stream(integration, stream, parent_id=parent_id)
            if cp.active_run_id is not None:
                if cp.active_run_id == run_id:
                    return run_id, None
                active = self._repos.runs.get(tenant, cp.active_run_id)
                if active is not None and active.status is RunStatus.RUNNING:
                    if cp.rerun_trigger is None and not self._request_rerun(cp, active.id, trigger):
                        continue
                    return active.id, None
                self.release(tenant, cp.id, cp.active_run_id, active, checkpoint=cp)
                continue
            new_id = run_id or doc_id("run", f"{cp.id}/{trigger}/{utcnow().isoformat()}")
            run = self._create_run(integration, stream, trigger, new_id, cp, resync_of, always_lists_everything)
            if run is None:
                return new_id, None  # this very run (a replayed schedule slot) already ended
            cp.active_run_id = new_id
            cp.rerun_trigger = None
            cp.updated_at = utcnow()
            try:
                self._repos.checkpoints.save(cp)
            except PreconditionFailed:
                if run_id is None:  # a fresh id nobody else can hold: withdraw it
                    self._repos.runs.delete(tenant, new_id)
                continue
            return new_id, run
        raise PreconditionFailed(f"checkpoint of {integration.id}/{stream} kept changing; try again")

    def request_full_resync(self, integration: Integration, stream: str, parent_id: str | None = None) -> None:
        """Make the stream's next run a full listing (records kept; unlisted ones tombstoned when it succeeds)."""
        cp = self.ensure_stream(integration, stream, parent_id=parent_id, scheduled=parent_id is None)

        def apply(fresh: Checkpoint) -> bool:
            if fresh.state.full_resync:
                return False
            fresh.state = fresh.state.model_copy(update={"full_resync": True})
            fresh.updated_at = utcnow()
            return True

        self._repos.checkpoints.update(cp.tenant_id, cp.id, apply, current=cp)

    def _request_rerun(self, cp: Checkpoint, active_id: str, trigger: Trigger) -> bool:
        """Ask for one more run after ``active_id``; False when the checkpoint moved on meanwhile."""
        cp.rerun_trigger = trigger  # type: ignore[assignment]
        cp.updated_at = utcnow()
        try:
            self._repos.checkpoints.save(cp)
        except PreconditionFailed:
            return False
        log.info("run %s is active; a %s re-run will follow it", active_id, trigger)
        return True

    def _create_run(
        self,
        integration: Integration,
        stream: str,
        trigger: Trigger,
        run_id: str,
        cp: Checkpoint,
        resync_of: SyncRun | None = None,
        always_lists_everything: bool = False,
    ) -> SyncRun | None:
        """Create the run document (before any checkpoint names it); None if it exists and ended.

        The run starts from the checkpoint's committed state; its candidate starts there too
        (a run that finds nothing new keeps the position) and moves on page by page.
        """
        start = cp.state.model_copy()
        run = SyncRun(
            id=run_id,
            tenant_id=integration.tenant_id,
            integration_id=integration.id,
            stream=stream,
            parent_id=cp.parent_id,
            trigger=trigger,
            start_state=start,
            pending_state=start.model_copy(update={"full_resync": False}),
            full_listing=start.lists_everything or always_lists_everything,
            resync_of=resync_of.id if resync_of is not None else None,
            resyncs=resync_of.resyncs + 1 if resync_of is not None else 0,
        )
        try:
            return self._repos.runs.create(run)
        except DocumentExists:
            existing = self._repos.runs.get(integration.tenant_id, run_id)
            return existing if existing is not None and existing.status is RunStatus.RUNNING else None

    # ------------------------------------------------------------------ progress

    def advance(self, run: SyncRun, page: int, change: Callable[[SyncRun], None]) -> SyncRun | None:
        """Apply ``change`` for ``page`` if the run is still running and still at that page.

        Returns the run as written, or None when the change no longer applies (the run was
        closed, or another delivery of the same page already advanced it).
        """
        applied = False

        def apply(fresh: SyncRun) -> bool:
            nonlocal applied
            if fresh.status is not RunStatus.RUNNING or fresh.next_page != page:
                return False
            change(fresh)
            fresh.updated_at = utcnow()
            fresh.waiting_until = None
            applied = True
            return True

        saved = self._repos.runs.update(run.tenant_id, run.id, apply, current=run)
        return saved if applied else None

    def touch(self, tenant_id: str, run_id: str, waiting_until: datetime | None) -> None:
        """Note that a running run's page was rescheduled (for ``waiting_until``): it is not stalled."""

        def apply(fresh: SyncRun) -> bool:
            if fresh.status is not RunStatus.RUNNING:
                return False
            fresh.updated_at = utcnow()
            fresh.waiting_until = waiting_until
            return True

        self._repos.runs.update(tenant_id, run_id, apply)

    # ------------------------------------------------------------------ ending

    def close(self, tenant_id: str, run_id: str, status: RunStatus, error: str | None) -> SyncRun | None:
        """End a running run with ``status``; returns it when this call ended it, else None."""
        closed = False

        def apply(fresh: SyncRun) -> bool:
            nonlocal closed
            if fresh.status is not RunStatus.RUNNING:
                return False
            fresh.status = status
            fresh.error = error[:2000] if error else None
            fresh.finished_at = fresh.updated_at = utcnow()
            closed = True
            return True

        saved = self._repos.runs.update(tenant_id, run_id, apply)
        return saved if closed else None

    def release(
        self,
        tenant_id: str,
        checkpoint_id: str,
        run_id: str,
        run: SyncRun | None,
        *,
        checkpoint: Checkpoint | None = None,
    ) -> str | None:
        """Let the stream's checkpoint go of run ``run_id`` (closed, or missing: ``run`` None).

        Commits the run's candidate incremental state when it succeeded; a resynced run
        leaves a state that asks for a full resync (so whichever run comes next lists
        everything, even if the resync run itself never starts). Returns the re-run trigger
        requested while it was active (None when there was none, or when the run did not
        succeed: a failed run is reported, not repeated; a resynced one is replaced).
        """
        rerun: str | None = None

        def apply(cp: Checkpoint) -> bool:
            nonlocal rerun
            if cp.active_run_id != run_id:
                return False
            succeeded = run is not None and run.status is RunStatus.SUCCEEDED
            if run is not None and succeeded:
                cp.state = run.pending_state
            elif run is not None and run.status is RunStatus.RESYNCED:
                cp.state = IncrementalState(full_resync=True)
            rerun = cp.rerun_trigger if succeeded else None
            cp.active_run_id = None
            cp.rerun_trigger = None
            cp.last_run_id = run_id
            cp.last_run_at = (run.finished_at if run is not None else None) or utcnow()
            cp.updated_at = utcnow()
            return True

        self._repos.checkpoints.update(tenant_id, checkpoint_id, apply, current=checkpoint)
        return rerun

    def release_run(self, run: SyncRun) -> str | None:
        """:meth:`release` for a run just closed."""
        key = Checkpoint.key(run.tenant_id, run.integration_id, run.key)
        return self.release(run.tenant_id, key, run.id, run)

    # ------------------------------------------------------------------ recovery

    def stale_runs(self, before: datetime, limit: int = 200) -> list[SyncRun]:
        """Running runs with no activity since ``before`` (every tenant).

        A run whose page was rescheduled for a time after ``before`` (a long rate limit) is
        waiting, not stalled.
        """
        found = self._repos.runs.query(
            None,
            [Where("status", "=", RunStatus.RUNNING.value), Where("updated_at", "<", iso(before))],
            order_by="updated_at",
            limit=limit,
        )
        return [run for run in found if run.waiting_until is None or run.waiting_until < before]

    def is_active(self, run: SyncRun) -> bool:
        """Whether the stream's checkpoint names ``run`` as its active run."""
        cp = self._repos.checkpoints.get(run.tenant_id, Checkpoint.key(run.tenant_id, run.integration_id, run.key))
        return cp is not None and cp.active_run_id == run.id

    def claim_resume(self, run: SyncRun, stale_before: datetime) -> SyncRun | None:
        """Count one resume of a stalled run (one scheduler wins); the run as written, or None."""
        claimed = False

        def apply(fresh: SyncRun) -> bool:
            nonlocal claimed
            if fresh.status is not RunStatus.RUNNING or fresh.updated_at >= stale_before:
                return False
            fresh.resumes += 1
            fresh.updated_at = utcnow()
            fresh.waiting_until = None
            claimed = True
            return True

        saved = self._repos.runs.update(run.tenant_id, run.id, apply, current=run)
        return saved if claimed else None
