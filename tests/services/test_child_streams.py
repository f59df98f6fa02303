"""Parent and child streams (issue 7, section 1): a parent page starts one run per child scope.

Each child (``messages`` of one channel) has its own checkpoint and state, keyed
``messages:<channel>``; the next parent run re-triggers every child it lists, and each child
resumes from its own watermark. Real queue, worker glue and HTTP sandbox.
"""

from __future__ import annotations

from typing import Any

from shared.domain import Checkpoint, RunStatus
from shared.ports.documents import Where
from tests.conftest import TENANT
from tests.services.ledger import LedgerSandbox, connect, ledger, lhub, pump, records, sync

__all__ = ["ledger", "lhub"]


def _child_runs(hub: Any, parent_id: str) -> list[Any]:
    found = hub.repos.runs.query(TENANT, [Where("parent_id", "=", parent_id)], order_by="started_at")
    return list(found)


def test_a_parent_page_starts_one_run_per_child_each_with_its_own_state(lhub: Any, ledger: LedgerSandbox) -> None:
    ledger.post("C1", "m1", "0001")
    ledger.post("C1", "m2", "0002")
    ledger.post("C2", "m3", "0005")
    connect(lhub)

    parent = sync(lhub, "channels")

    assert parent.status is RunStatus.SUCCEEDED and parent.children_started == 2
    [c1] = _child_runs(lhub, "C1")
    [c2] = _child_runs(lhub, "C2")
    assert (c1.stream, c1.key, c1.status, c1.records_created) == ("messages", "messages:C1", RunStatus.SUCCEEDED, 2)
    assert (c2.key, c2.status, c2.records_created) == ("messages:C2", RunStatus.SUCCEEDED, 1)
    assert records(lhub, "message")["m3"].stream == "messages:C2"
    state = {
        cid: lhub.repos.checkpoints.get(TENANT, Checkpoint.key(TENANT, "led-1", f"messages:{cid}")).state.watermark
        for cid in ("C1", "C2")
    }
    assert state == {"C1": "0002", "C2": "0005"}

    ledger.post("C1", "m4", "0003")
    again = sync(lhub, "channels")  # the parent lists both channels again: both children re-run

    assert again.children_started == 2
    c1_next, c2_next = _child_runs(lhub, "C1")[-1], _child_runs(lhub, "C2")[-1]
    assert c1_next.id != c1.id and c1_next.start_state.watermark == "0002" and c1_next.records_created == 1
    assert c2_next.start_state.watermark == "0005" and c2_next.records_seen == 0
    assert len(records(lhub, "message")) == 4


def test_a_child_stream_asked_for_on_its_own_runs_its_parent(lhub: Any, ledger: LedgerSandbox) -> None:
    ledger.post("C7", "m1", "0001")
    connect(lhub)
    [run_id] = lhub.admin.trigger_sync(TENANT, "led-1", {"stream": "messages"})
    pump(lhub)
    assert lhub.repos.runs.get(TENANT, run_id).stream == "channels"
    assert [r.status for r in _child_runs(lhub, "C7")] == [RunStatus.SUCCEEDED]


def test_syncing_every_stream_does_not_start_children_without_a_parent(lhub: Any, ledger: LedgerSandbox) -> None:
    ledger.post("C1", "m1", "0001")
    connect(lhub)
    run_ids = lhub.admin.trigger_sync(TENANT, "led-1", {})
    pump(lhub)
    streams = sorted(lhub.repos.runs.get(TENANT, r).stream for r in run_ids)
    assert streams == ["channels", "items", "notes"]
    assert lhub.repos.schedules.count(TENANT, [Where("stream", "=", "messages")]) == 0
    assert [r.status for r in _child_runs(lhub, "C1")] == [RunStatus.SUCCEEDED]


def test_a_child_already_running_when_its_parent_lists_it_again_runs_once_more(
    lhub: Any, ledger: LedgerSandbox
) -> None:
    from shared.api import inbound_worker

    ledger.post("C1", "m1", "0001")
    integration = connect(lhub)
    lhub.sync.start_run(integration, "channels", "manual")
    pump(lhub, limit=1)  # the parent page started the child run
    queue = lhub.settings.sync_inbound_queue
    [held] = lhub.ports.queue.receive(queue)  # the child's first page, taken aside for a moment
    lhub.ports.queue.complete(queue, held.lock_token)
    [child] = _child_runs(lhub, "C1")
    assert child.status is RunStatus.RUNNING
    lhub.sync.start_run(integration, "channels", "manual")  # a second parent run lists C1 while its child runs
    pump(lhub)
    assert lhub.repos.checkpoints.get(TENANT, Checkpoint.key(TENANT, "led-1", "messages:C1")).rerun_trigger == "manual"

    ledger.post("C1", "m2", "0002")
    inbound_worker(held.body, held.message_id, 1, held.session_id)  # the child's page, delivered now
    pump(lhub)

    runs = _child_runs(lhub, "C1")
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]
    assert runs[1].start_state.watermark == runs[0].pending_state.watermark
    assert len(records(lhub, "message")) == 2
