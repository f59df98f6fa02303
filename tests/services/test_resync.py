"""``ResyncRequired`` starts a full resync of the stream; it is not a failed run (issue 7, sections 1 and 3).

The provider answers 410 Gone for an expired sync token: the run ends ``resynced``, the
integration stays ``connected`` with no dead letter, a new run of the stream starts at once
from an empty state with ``full_resync``, records are kept, and the complete listing it
makes tombstones what is gone. Real queue, worker glue and HTTP sandbox.
"""

from __future__ import annotations

from typing import Any

from shared.domain import Checkpoint, RunStatus
from shared.ports.documents import Where
from tests.conftest import TENANT
from tests.services.ledger import LedgerSandbox, connect, ledger, lhub, pump, records, sync

__all__ = ["ledger", "lhub"]


def test_an_expired_sync_token_resyncs_the_stream_and_keeps_the_records(lhub: Any, ledger: LedgerSandbox) -> None:
    ledger.seed("items", 5)
    connect(lhub)
    first = sync(lhub, "items")
    kept = records(lhub, "item")["i001"]
    ledger.expire_tokens()
    ledger.remove("items", "i003")  # gone while the token was expired: only a full listing can tell
    ledger.put("items", "i009", "new")

    expired = sync(lhub, "items")

    assert expired.status is RunStatus.RESYNCED and "resync_required" in (expired.error or "")
    [resync] = lhub.repos.runs.query(TENANT, [Where("resync_of", "=", expired.id)])
    assert resync.status is RunStatus.SUCCEEDED and resync.trigger == "manual"
    assert resync.full_listing and resync.start_state.full_resync and resync.start_state.sync_token is None
    assert (resync.records_created, resync.records_unchanged, resync.records_deleted) == (1, 4, 1)
    live = records(lhub, "item", deleted=False)
    assert sorted(live) == ["i000", "i001", "i002", "i004", "i009"]
    assert records(lhub, "item")["i003"].deleted
    assert live["i001"].etag != kept.etag and live["i001"].data == kept.data  # kept, only marked as listed
    integration = lhub.admin.get_integration(TENANT, "led-1")
    assert integration.status == "connected", integration.status_reason
    assert lhub.repos.dead_letters.count(TENANT) == 0
    state = lhub.repos.checkpoints.get(TENANT, Checkpoint.key(TENANT, "led-1", "items")).state
    assert state.sync_token == f"tok-{ledger.gen}" and not state.full_resync
    assert first.id != resync.id

    after = sync(lhub, "items")  # and the stream is incremental again
    assert after.status is RunStatus.SUCCEEDED and not after.full_listing and after.records_seen == 0


def test_a_redelivered_page_of_a_resynced_run_starts_the_resync_once(lhub: Any, ledger: LedgerSandbox) -> None:
    from shared.api import inbound_worker

    ledger.seed("items", 2)
    connect(lhub)
    sync(lhub, "items")
    ledger.expire_tokens()
    integration = lhub.admin.get_integration(TENANT, "led-1")
    run_id = lhub.sync.start_run(integration, "items", "manual")
    queue = lhub.settings.sync_inbound_queue
    [page0] = lhub.ports.queue.receive(queue)
    inbound_worker(page0.body, page0.message_id, 1, page0.session_id)
    lhub.ports.queue.complete(queue, page0.lock_token)
    assert inbound_worker(page0.body, page0.message_id, 2, page0.session_id) == "completed"  # delivered again
    pump(lhub)
    assert lhub.repos.runs.get(TENANT, run_id).status is RunStatus.RESYNCED
    assert lhub.repos.runs.count(TENANT, [Where("resync_of", "=", run_id)]) == 1
    assert lhub.repos.runs.count(TENANT, [Where("status", "=", "succeeded")]) == 2


def test_a_provider_that_keeps_answering_gone_fails_the_stream_instead_of_looping(
    lhub: Any, ledger: LedgerSandbox
) -> None:
    ledger.seed("items", 2)
    connect(lhub)
    ledger.always_gone = True
    first = sync(lhub, "items")

    runs = lhub.admin.list_runs(TENANT, "led-1")
    assert first.status is RunStatus.RESYNCED
    assert sorted(r.status.value for r in runs) == ["failed", "resynced", "resynced", "resynced"]
    [failed] = [r for r in runs if r.status is RunStatus.FAILED]
    assert failed.resyncs == 3 and "resync_loop" in (failed.error or "")
    integration = lhub.admin.get_integration(TENANT, "led-1")
    assert integration.status == "error" and "resync_loop" in (integration.status_reason or "")
    [dead] = lhub.admin.list_dead_letters(TENANT)
    assert dead.reason == "resync_loop"
