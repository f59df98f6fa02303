"""Collisions between writers never fail a run (issue 5, section 1).

Before: an admin sync during a page made the page's conditional checkpoint write fail with
PreconditionFailed, which was classified as invalid input: the page was dead-lettered, the
run failed and the integration went to ``error``. Over real HTTP, the real queue and the
GitHub sandbox.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import httpx
import pytest

from shared.domain import SyncRun, utcnow
from shared.errors import InvalidInput, RetryLater, WriteConflict
from shared.ports.documents import PreconditionFailed
from tests.conftest import TENANT, connect_github

PAGES = 30
LATENCY = 0.1


def _make_due(hub: Any) -> None:
    for schedule in hub.repos.schedules.query(TENANT):
        schedule.next_run_at = utcnow() - timedelta(seconds=1)
        hub.repos.schedules.save(schedule)


def test_admin_syncs_and_scheduler_ticks_during_a_30_page_run(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    github_sandbox.seed(PAGES * 100)
    github_sandbox.latency_seconds = LATENCY  # each page fetch takes a while, so requests land inside one
    connect_github(admin, github_sandbox)
    fetching = threading.Event()  # set when the sandbox starts answering a page (then sleeps LATENCY)
    answer = github_sandbox.handle

    def observed(request: Any) -> Any:
        if request.path.endswith("/issues"):
            fetching.set()
        return answer(request)

    github_sandbox.handle = observed
    started = admin.post("/integrations/gh-1/sync", json={})
    assert started.status_code == 202, started.text
    [run_id] = started.json()["run_ids"]

    answers: list[list[str]] = []
    for i in range(20):  # each lands inside a page fetch: after the page read its state, before it writes
        fetching.clear()
        assert fetching.wait(30)
        response = admin.post("/integrations/gh-1/sync", json={"stream": "issues"})
        assert response.status_code == 202, response.text
        answers.append(response.json()["run_ids"])
        if i % 4 == 3:  # five scheduler ticks, each with the stream due
            _make_due(hub)
            devhost.fire_timer("SyncScheduler")
    first = hub.repos.runs.get(TENANT, run_id)
    assert first is not None and first.status == "running" and first.pages < PAGES  # all landed mid-run
    assert answers == [[run_id]] * 20  # the active run, not a second one

    assert devhost.drain(120)
    run = admin.get("/integrations/gh-1/runs", params={"limit": 100}).json()
    by_id = {r["id"]: r for r in run}
    assert by_id[run_id]["status"] == "succeeded", by_id[run_id]
    assert by_id[run_id]["pages"] == PAGES and by_id[run_id]["records_created"] == PAGES * 100
    assert all(r["status"] == "succeeded" for r in run), run  # the one follow-up run too
    assert len(run) == 2  # the requests during the run asked for one re-run, not 25
    assert hub.repos.records.count(TENANT) == PAGES * 100
    assert admin.get("/dead-letters").json() == []
    assert admin.get("/integrations/gh-1").json()["status"] == "connected"


def test_an_etag_conflict_is_retryable_never_invalid_input() -> None:
    conflict = PreconditionFailed("changed")
    assert isinstance(conflict, WriteConflict) and isinstance(conflict, RetryLater)
    assert not isinstance(conflict, InvalidInput)
    assert WriteConflict.status == 409  # an admin caller may simply try again


def test_a_conflict_that_escapes_a_page_is_rescheduled_not_dead_lettered(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    github_sandbox.seed(150)
    connect_github(admin, github_sandbox)
    real_save = type(hub.repos.runs).save
    lost = []

    def lose_the_first_write(self: Any, obj: Any) -> Any:
        if isinstance(obj, SyncRun) and obj.next_page == 1 and not lost:
            lost.append(obj.id)  # another writer got there first, over and over
            raise PreconditionFailed("run document changed")
        return real_save(self, obj)

    monkeypatch.setattr(type(hub.repos.runs), "update", _always_conflicting_once(type(hub.repos.runs).update, lost))
    monkeypatch.setattr(type(hub.repos.runs), "save", lose_the_first_write)
    started = admin.post("/integrations/gh-1/sync", json={})
    [run_id] = started.json()["run_ids"]
    assert _wait(lambda: hub.repos.runs.get(TENANT, run_id).status != "running", devhost)
    run = hub.repos.runs.get(TENANT, run_id)
    assert lost, "the conflict was never provoked"
    assert run.status == "succeeded" and run.pages == 2
    assert hub.repos.records.count(TENANT) == 150  # page 1 was stored again: a no-op
    assert admin.get("/dead-letters").json() == []
    assert admin.get("/integrations/gh-1").json()["status"] == "connected"


def _always_conflicting_once(update: Any, lost: list[str]) -> Any:
    """``Repository.update`` that gives up at once when the first write conflicts (as after 25 losses)."""

    def update_once(self: Any, tenant_id: str, doc_id: str, change: Any, **kwargs: Any) -> Any:
        if not lost:
            return update(self, tenant_id, doc_id, change, attempts=1, **kwargs)
        return update(self, tenant_id, doc_id, change, **kwargs)

    return update_once


def _wait(check: Any, devhost: Any, rounds: int = 60) -> bool:
    for _ in range(rounds):
        devhost.drain(5)
        if check():
            return True
    return False
