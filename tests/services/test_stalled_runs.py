"""No run stays stuck, and re-processing a page is a no-op (issue 5, sections 1 and 2).

The scheduler resumes a run whose page message was lost, fails it after a few resumes, and
fails a run that never became its stream's active run; a checkpoint that still names a run
that ended (a crash between the two writes) is released by the next start. Messages go
through the real queue and the real worker glue (``shared.api.inbound_worker``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.api import inbound_worker
from shared.domain import Checkpoint, RunStatus, SyncRun, utcnow
from tests.conftest import SANDBOX_TOKEN, TENANT, WEBHOOK_SECRET

STALE = 600


def _connect(hub: Any) -> Any:
    body = {"id": "gh-1", "provider": "github", "display_name": "repo", "config": {"owner": "acme", "repo": "widgets"}}
    hub.admin.create_integration(TENANT, body)
    integration = hub.admin.set_credential(
        TENANT, "gh-1", {"access_token": SANDBOX_TOKEN, "webhook_secret": WEBHOOK_SECRET}
    )
    for schedule in hub.repos.schedules.query(TENANT):  # not due: only what the test does happens
        schedule.next_run_at = utcnow() + timedelta(days=1)
        hub.repos.schedules.save(schedule)
    return integration


def _pump(hub: Any, limit: int = 1000) -> list[str]:
    """Deliver inbound messages to the worker as the host does, until none is visible; their ids."""
    queue = hub.settings.sync_inbound_queue
    handled: list[str] = []
    while len(handled) < limit and (messages := hub.ports.queue.receive(queue)):
        for message in messages:
            inbound_worker(message.body, message.message_id, message.delivery_count, message.session_id)
            hub.ports.queue.complete(queue, message.lock_token)
            handled.append(message.message_id)
    return handled


def _lose_messages(hub: Any) -> None:
    hub.ports.queue.purge(hub.settings.sync_inbound_queue)


def _age(hub: Any, run_id: str, seconds: float = STALE + 60) -> None:
    def apply(run: SyncRun) -> bool:
        run.updated_at = utcnow() - timedelta(seconds=seconds)
        return True

    hub.repos.runs.update(TENANT, run_id, apply)


def test_a_run_whose_page_message_was_lost_is_resumed_and_completes(hub: Any, github_sandbox: Any) -> None:
    github_sandbox.seed(250)
    integration = _connect(hub)
    run_id = hub.sync.start_run(integration, "issues", "manual")
    assert _pump(hub, limit=1) == [f"{run_id}:0"]
    _lose_messages(hub)  # page 1's message is gone (a crash between the write and the send)
    assert hub.sync.schedule_due(stale_after_seconds=STALE) == []  # not stale yet: nothing happens
    assert _pump(hub) == []

    _age(hub, run_id)
    hub.sync.schedule_due(stale_after_seconds=STALE)
    assert _pump(hub) == [f"{run_id}:1~resume1", f"{run_id}:2"]

    run = hub.repos.runs.get(TENANT, run_id)
    assert run.status == RunStatus.SUCCEEDED and run.resumes == 1 and run.records_created == 250
    assert hub.repos.records.count(TENANT) == 250


def test_a_run_that_stays_stalled_fails_after_three_resumes_and_says_so(hub: Any, github_sandbox: Any) -> None:
    github_sandbox.seed(10)
    integration = _connect(hub)
    run_id = hub.sync.start_run(integration, "issues", "manual")
    for resume in range(1, 4):
        _lose_messages(hub)
        _age(hub, run_id)
        hub.sync.schedule_due(stale_after_seconds=STALE)
        assert hub.repos.runs.get(TENANT, run_id).resumes == resume
    _lose_messages(hub)
    _age(hub, run_id)
    hub.sync.schedule_due(stale_after_seconds=STALE)

    run = hub.repos.runs.get(TENANT, run_id)
    assert run.status == RunStatus.FAILED and "run_stalled" in run.error and "3 resumes" in run.error
    integration = hub.admin.get_integration(TENANT, "gh-1")
    assert integration.status == "error" and "run_stalled" in integration.status_reason
    again = hub.sync.start_run(integration, "issues", "manual")
    assert again != run_id


def test_a_run_that_never_became_active_is_failed_as_abandoned(hub: Any, github_sandbox: Any) -> None:
    _connect(hub)
    orphan = SyncRun(id="run-orphan", tenant_id=TENANT, integration_id="gh-1", stream="issues", trigger="manual")
    hub.repos.runs.create(orphan)  # the process stopped before the checkpoint named it
    _age(hub, orphan.id)
    hub.sync.schedule_due(stale_after_seconds=STALE)
    run = hub.repos.runs.get(TENANT, orphan.id)
    assert run.status == RunStatus.FAILED and "abandoned" in run.error
    assert hub.admin.get_integration(TENANT, "gh-1").status == "connected"  # nothing was wrong with it


def test_a_run_waiting_on_a_long_rate_limit_is_not_stalled(hub: Any, github_sandbox: Any) -> None:
    integration = _connect(hub)
    run_id = hub.sync.start_run(integration, "issues", "manual")

    def waiting(run: SyncRun) -> bool:
        run.updated_at = utcnow() - timedelta(seconds=STALE + 60)
        run.waiting_until = utcnow() + timedelta(minutes=30)
        return True

    hub.repos.runs.update(TENANT, run_id, waiting)
    _lose_messages(hub)
    hub.sync.schedule_due(stale_after_seconds=STALE)
    assert _pump(hub) == []
    assert hub.repos.runs.get(TENANT, run_id).resumes == 0


def test_a_checkpoint_naming_a_run_that_ended_is_released_by_the_next_start(hub: Any, github_sandbox: Any) -> None:
    github_sandbox.seed(3)
    integration = _connect(hub)
    first = hub.sync.start_run(integration, "issues", "manual")

    def ended(run: SyncRun) -> bool:  # the last page was stored, then the process stopped
        run.status = RunStatus.SUCCEEDED
        run.pending_state = run.pending_state.advanced("2024-01-01T00:03:00Z")
        return True

    hub.repos.runs.update(TENANT, first, ended)
    _lose_messages(hub)
    second = hub.sync.start_run(integration, "issues", "manual")

    assert second != first
    checkpoint = hub.repos.checkpoints.get(TENANT, Checkpoint.key(TENANT, "gh-1", "issues"))
    assert checkpoint.active_run_id == second and checkpoint.last_run_id == first
    assert checkpoint.state.watermark == "2024-01-01T00:03:00Z"  # the ended run's state was committed
    assert hub.repos.runs.get(TENANT, second).start_state.watermark == "2024-01-01T00:03:00Z"


def test_a_redelivered_page_is_a_no_op(hub: Any, github_sandbox: Any) -> None:
    github_sandbox.seed(150)
    integration = _connect(hub)
    run_id = hub.sync.start_run(integration, "issues", "manual")
    [[page0]] = [hub.ports.queue.receive(hub.settings.sync_inbound_queue)]
    inbound_worker(page0.body, page0.message_id, 1, page0.session_id)
    hub.ports.queue.complete(hub.settings.sync_inbound_queue, page0.lock_token)
    after_first = hub.repos.runs.get(TENANT, run_id)
    requests = github_sandbox.request_count

    # the same page again: its second delivery, as after a completion that was lost
    assert inbound_worker(page0.body, page0.message_id, 2, page0.session_id) == "completed"

    assert github_sandbox.request_count == requests  # not fetched again
    again = hub.repos.runs.get(TENANT, run_id)
    assert again.etag == after_first.etag  # nothing written
    assert _pump(hub) == [f"{run_id}:1"]  # the baton was passed once (duplicate detection)
    run = hub.repos.runs.get(TENANT, run_id)
    assert run.status == RunStatus.SUCCEEDED and run.records_created == 150 and run.pages == 2
