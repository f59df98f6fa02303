"""Deletes, never on a partial run (issue 7, section 3).

- A tombstone in the delta soft-deletes the stored record (``deleted``, ``deleted_at``, data
  kept); a later live version revives it; ``DataSynced`` and the run count the deletes.
- A stream that learns of deletes by full listing tombstones the records a COMPLETE full
  listing did not show, in bounded batches; a failed full listing deletes nothing.

Real queue, worker glue and HTTP sandbox.
"""

from __future__ import annotations

from typing import Any

from shared.domain import RunStatus
from tests.conftest import TENANT
from tests.services.ledger import LedgerSandbox, connect, ledger, lhub, pump, records, sync

__all__ = ["ledger", "lhub"]


def test_a_tombstone_in_the_delta_soft_deletes_and_a_later_version_revives(lhub: Any, ledger: LedgerSandbox) -> None:
    ledger.seed("notes", 4)
    connect(lhub)
    sync(lhub, "notes")
    before = records(lhub, "note")["n001"]
    ledger.remove("notes", "n001")

    run = sync(lhub, "notes")

    assert run.status is RunStatus.SUCCEEDED and run.records_deleted == 1 and run.records_seen == 1
    gone = records(lhub, "note")["n001"]
    assert gone.deleted and gone.deleted_at is not None and gone.data == before.data  # soft: data kept
    assert sorted(records(lhub, "note", deleted=False)) == ["n000", "n002", "n003"]
    assert lhub.admin.stats(TENANT, "led-1")["records"] == 3
    assert lhub.admin.stats(TENANT, "led-1")["records_deleted"] == 1
    assert sync(lhub, "notes").records_deleted == 0  # nothing new: nothing deleted twice

    ledger.put("notes", "n001", "back again")
    revived = sync(lhub, "notes")
    assert revived.records_updated == 1
    back = records(lhub, "note")["n001"]
    assert not back.deleted and back.deleted_at is None and back.data["name"] == "back again"


def test_data_synced_counts_the_deletes(lhub: Any, ledger: LedgerSandbox) -> None:
    from shared.domain import DataSynced

    seen: list[DataSynced] = []
    real = lhub.sync._events.publish
    lhub.sync._events.publish = lambda event: (seen.append(event), real(event))[1]
    ledger.seed("notes", 2)
    connect(lhub)
    sync(lhub, "notes")
    ledger.remove("notes", "n000")
    sync(lhub, "notes")
    assert [e.records_deleted for e in seen if isinstance(e, DataSynced)] == [0, 1]


def test_a_complete_full_listing_tombstones_what_it_did_not_show(lhub: Any, ledger: LedgerSandbox) -> None:
    ledger.seed("items", 8)
    connect(lhub)
    first = sync(lhub, "items")
    assert first.full_listing and first.records_deleted == 0  # the first listing has nothing to compare
    ledger.remove("items", "i002")
    ledger.remove("items", "i006")
    assert sync(lhub, "items").records_deleted == 0  # a delta cannot tell

    lhub.admin.trigger_sync(TENANT, "led-1", {"stream": "items", "full_resync": True})
    pump(lhub)

    [run] = [r for r in lhub.admin.list_runs(TENANT, "led-1") if r.start_state.full_resync]
    assert run.status is RunStatus.SUCCEEDED and run.full_listing
    assert (run.records_unchanged, run.records_deleted) == (6, 2)
    assert sorted(records(lhub, "item", deleted=True)) == ["i002", "i006"]
    assert len(records(lhub, "item", deleted=False)) == 6


def test_a_failed_full_listing_deletes_nothing(lhub: Any, ledger: LedgerSandbox) -> None:
    ledger.seed("items", 8)
    connect(lhub)
    sync(lhub, "items")
    for item_id in ("i001", "i004", "i007"):
        ledger.remove("items", item_id)
    integration = lhub.admin.get_integration(TENANT, "led-1")
    run_id = lhub.sync.start_run(integration, "items", "manual", full_resync=True)
    pump(lhub, limit=1)  # the first page is stored...
    ledger.fail("/items", 404)  # ...then the listing breaks off
    pump(lhub)

    run = lhub.repos.runs.get(TENANT, run_id)
    assert run.status is RunStatus.FAILED and run.records_deleted == 0
    assert records(lhub, "item", deleted=True) == {}
    assert len(records(lhub, "item", deleted=False)) == 8

    again = sync(lhub, "items")  # the full resync is still asked for; complete this time
    assert again.full_listing and again.status is RunStatus.SUCCEEDED and again.records_deleted == 3


def test_a_large_sweep_is_done_in_bounded_batches_one_message_each(lhub: Any, ledger: LedgerSandbox) -> None:
    lhub.sync._sweeper._batch = 2
    ledger.seed("items", 9)
    connect(lhub)
    sync(lhub, "items")
    for i in range(5):
        ledger.remove("items", f"i00{i}")
    integration = lhub.admin.get_integration(TENANT, "led-1")
    run_id = lhub.sync.start_run(integration, "items", "manual", full_resync=True)

    handled = pump(lhub)

    run = lhub.repos.runs.get(TENANT, run_id)
    assert run.status is RunStatus.SUCCEEDED and run.records_deleted == 5 and run.pages == 2
    assert handled == [f"{run_id}:{n}" for n in range(4)]  # 2 pages (the last sweeps 2), then sweeps of 2 and 1
    assert len(records(lhub, "item", deleted=True)) == 5


def test_a_record_written_by_a_webhook_during_the_listing_is_not_swept(lhub: Any, ledger: LedgerSandbox) -> None:
    from adapters.base.adapter import Entity

    ledger.seed("items", 4)
    integration = connect(lhub)
    sync(lhub, "items")
    run_id = lhub.sync.start_run(integration, "items", "manual", full_resync=True)
    pump(lhub, limit=1)
    # meanwhile a record the listing's pages will not show arrives from outside the run
    lhub.sync._writer.upsert(integration, Entity("item", "late", {"id": "late"}), new_stream="items")
    pump(lhub)
    run = lhub.repos.runs.get(TENANT, run_id)
    assert run.status is RunStatus.SUCCEEDED and run.records_deleted == 0
    assert not records(lhub, "item")["late"].deleted


def test_a_full_listing_that_skipped_records_deletes_nothing_and_says_why(lhub: Any, ledger: LedgerSandbox) -> None:
    ledger.seed("items", 5)
    connect(lhub)
    sync(lhub, "items")
    ledger.remove("items", "i001")
    ledger.put("items", "i003", "unmappable")  # listed, but the adapter cannot map it: not "unseen"
    lhub.admin.trigger_sync(TENANT, "led-1", {"stream": "items", "full_resync": True})
    pump(lhub)

    [run] = [r for r in lhub.admin.list_runs(TENANT, "led-1") if r.start_state.full_resync]
    assert run.status is RunStatus.SUCCEEDED and run.records_skipped == 1 and run.records_deleted == 0
    assert "deletes not applied" in (run.note or "")
    assert records(lhub, "item", deleted=True) == {}
