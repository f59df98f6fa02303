"""Full-listing deletes: after a complete listing, tombstone what the listing did not show.

A stream whose spec says ``deletes: full_listing`` learns of deletes only by comparing a
COMPLETE listing with what is stored; a ``tombstone`` stream does the same on its full
listings (a resync after its delta token died), since those carry no tombstones. A run is a
full listing when it starts from an empty state or a full resync (``SyncRun.full_listing``).
Such a run marks each record it sees with its id (``StoredRecord.listed_by``, see
:mod:`shared.services.records`); when it has stored its last page it does not succeed yet but
*sweeps*: the stream's stored, live records whose ``listed_by`` is another run are
tombstoned. Only then does it succeed.

Why marks on the records and not a list of seen ids: the run never holds the ids it saw
(a document of 50k ids, or all of them in memory, would grow with the stream); the store
answers "records of this stream not listed by run R" as one query, in pages. An unchanged
record gets its mark by a field-only patch, not a rewrite (see ``records``).

What is never deleted:
- anything, by a run that failed, stalled, was cut short (page ceiling, cycle, malformed
  page) or was resynced: those never reach the sweep;
- anything, by a full listing that skipped records it could not map: a skipped record is
  not "not listed", so the run succeeds without a sweep and says why (``SyncRun.note``);
- a record written since the run began by someone else (a webhook, a push): it is newer
  than the listing.

The sweep itself starts only after the listing is complete, so each tombstone it writes is
right on its own: a sweep interrupted by a crash is resumed (stalled-run recovery), and one
that fails part-way leaves correct tombstones and an unfinished run, never a wrong delete.
Records stored before these marks existed (no ``stream``/``listed_by``) are not in any
stream's scope until a full listing marks them.

The sweep is bounded work per message: :data:`SWEEP_BATCH` records per batch, resuming
after the last record id of the previous batch (``SyncRun.sweep_after``). The first batch
runs in the last page's message (after its records are stored), so a listing with little to
delete needs no extra message; each further batch is one page message of the run, so
redelivery, stalled-run recovery and session order apply as for pages.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.domain import StoredRecord, SyncRun, iso, utcnow
from shared.ports.documents import BatchOp, DocumentNotFound, PreconditionFailed, Where
from shared.services.repositories import Repository

SWEEP_BATCH = 500
"""Records examined per sweep message."""

SWEEPING_MODES = frozenset({"full_listing", "tombstone"})
"""Delete modes whose full listings sweep. A ``tombstone`` stream learns of deletes from its
delta, but a full listing (the first run, or a resync after a dead sync token) carries no
tombstones: what was deleted while the token was dead shows only by comparison."""


@dataclass(frozen=True)
class SweepBatch:
    """What one sweep message did."""

    deleted: int
    last_id: str | None
    done: bool


class ListingSweeper:
    """Finds and tombstones the records a complete listing did not show."""

    def __init__(self, records: Repository[StoredRecord], *, batch: int = SWEEP_BATCH) -> None:
        self._records = records
        self._batch = batch

    @staticmethod
    def applies(run: SyncRun, delete_mode: str, skipped_now: int = 0) -> bool:
        """Whether ``run`` sweeps when it has stored its last page (``skipped_now``: skipped on that page)."""
        return run.full_listing and delete_mode in SWEEPING_MODES and run.records_skipped + skipped_now == 0

    def sweep(self, run: SyncRun) -> SweepBatch:
        """Tombstone the next batch of the run's stream's records that it did not list."""
        where = [
            Where("integration_id", "=", run.integration_id),
            Where("stream", "=", run.key),
            Where("deleted", "=", False),
            Where("listed_by", "!=", run.id),
        ]
        if run.sweep_after is not None:
            where.append(Where("id", ">", run.sweep_after))
        found = self._records.query(run.tenant_id, where, order_by="id", limit=self._batch)
        deleted = self._tombstone_all(found, run)
        return SweepBatch(deleted, found[-1].id if found else run.sweep_after, len(found) < self._batch)

    def _tombstone_all(self, found: list[StoredRecord], run: SyncRun) -> int:
        """Tombstone a batch in one transaction (each write conditional on the ETag just read); if any
        record changed meanwhile, decide each one again on its own."""
        due = [r for r in found if not r.deleted and r.listed_by != run.id and r.updated_at < run.started_at]
        if not due:
            return 0
        stamp = iso(utcnow())
        fields = {"deleted": True, "deleted_at": stamp, "updated_at": stamp}
        ops = [BatchOp("patch", r.id, fields=fields, if_match=r.etag) for r in due]
        try:
            self._records.store.batch(self._records.container, run.tenant_id, ops)
        except (PreconditionFailed, DocumentNotFound):
            return sum(1 for record in due if self._tombstone(record, run))
        return len(due)

    def _tombstone(self, record: StoredRecord, run: SyncRun) -> bool:
        """Soft-delete one unlisted record, unless it was listed or written since the run began."""
        done = False

        def apply(fresh: StoredRecord) -> bool:
            nonlocal done
            done = False
            if fresh.deleted or fresh.listed_by == run.id or fresh.updated_at >= run.started_at:
                return False
            fresh.deleted = True
            fresh.deleted_at = fresh.updated_at = utcnow()
            done = True
            return True

        self._records.update(record.tenant_id, record.id, apply, current=record)
        return done
