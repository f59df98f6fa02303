"""No failure is invisible, and no run stays stuck (issue 5, section 2).

Over real HTTP, the real queue and the GitHub sandbox:
- ``Retry-After: inf`` raised OverflowError and the 429 was ignored; Service Bus then
  dead-lettered the page, ``GET dead-letters`` showed nothing, the run stayed ``running``, the
  integration ``connected``, and a new manual sync returned the same stuck run id;
- an unexpected exception was left to the queue's own dead-letter queue, unseen;
- persistent 5xx showed ``connected`` for the whole time it was being retried.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TENANT, connect_github, hub_environment

MAX_WAIT = 0.2


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, github_sandbox: Any) -> Iterator[Any]:
    """The conftest hub with short waits: provider waits clamped to 0.2 s, 3 deliveries per message."""
    from shared.runtime import get_hub, reset_hub

    env = hub_environment(
        tmp_path / "data",
        IHUB_PROVIDER_BASE_URLS=json.dumps({"github": github_sandbox.base_url}),
        IHUB_MAX_RETRY_WAIT_SECONDS=str(MAX_WAIT),
        IHUB_QUEUE_MAX_DELIVERY_COUNT="3",
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_hub()
    try:
        yield get_hub()
    finally:
        reset_hub()


def wait_for(check: Callable[[], bool], devhost: Any, rounds: int = 300) -> bool:
    """Drain and re-check (rescheduled messages become visible later); bounded, not timed."""
    for _ in range(rounds):
        devhost.drain(5)
        if check():
            return True
        time.sleep(0.05)
    return False


def _run(admin: httpx.Client, run_id: str) -> dict[str, Any]:
    return dict(next(r for r in admin.get("/integrations/gh-1/runs").json() if r["id"] == run_id))


def _sync(admin: httpx.Client) -> str:
    started = admin.post("/integrations/gh-1/sync", json={})
    assert started.status_code == 202, started.text
    return str(started.json()["run_ids"][0])


def test_retry_after_inf_is_clamped_then_ends_visible_and_a_new_sync_is_a_new_run(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    github_sandbox.seed(5)
    connect_github(admin, github_sandbox)
    github_sandbox.inject(429, {"Retry-After": "inf"}, times=8)
    run_id = _sync(admin)

    assert wait_for(lambda: _run(admin, run_id)["status"] != "running", devhost)

    run = _run(admin, run_id)
    assert run["status"] == "failed" and "retries_exhausted" in run["error"] and "rate_limited" in run["error"]
    integration = admin.get("/integrations/gh-1").json()
    assert integration["status"] == "error" and "rate_limited" in integration["status_reason"]
    [dead] = admin.get("/dead-letters").json()
    assert dead["reason"] == "retries_exhausted" and dead["run_id"] == run_id
    assert hub.ports.queue.dead_letters(hub.settings.sync_inbound_queue) == []  # nothing left unseen
    limited = [e for e in hub.ports.events.all_events() if e.event.event_type.endswith("RateLimitExceeded")]
    assert limited, "the integration showed rate_limited while it waited"
    for envelope in limited:  # every wait was clamped to IHUB_MAX_RETRY_WAIT_SECONDS
        data = envelope.event.data
        waited = datetime.fromisoformat(data["retry_at"]) - datetime.fromisoformat(data["occurred_at"])
        assert waited.total_seconds() <= MAX_WAIT + 1

    again = _sync(admin)
    assert again != run_id
    assert wait_for(lambda: _run(admin, again)["status"] != "running", devhost)
    assert _run(admin, again)["status"] == "succeeded"
    assert hub.repos.records.count(TENANT) == 5
    assert admin.get("/integrations/gh-1").json()["status"] == "connected"


def test_an_unexpected_exception_on_the_last_delivery_is_recorded_and_fails_the_run(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    github_sandbox.seed(3)
    connect_github(admin, github_sandbox)
    adapter = hub.adapters.adapter("github")

    def bug(stream: str, raw: dict[str, Any]) -> list[Any]:
        raise KeyError("boom while mapping; token=s3cr3t-value Authorization: Bearer gho_abcdefgh")

    monkeypatch.setattr(adapter, "map_record", bug)
    run_id = _sync(admin)
    assert wait_for(lambda: _run(admin, run_id)["status"] != "running", devhost)

    [dead] = admin.get("/dead-letters").json()
    assert dead["reason"] == "unexpected_error" and dead["error_type"] == "KeyError"
    assert "boom while mapping" in dead["description"] and "delivery 3 of 3" in dead["description"]
    assert "s3cr3t" not in json.dumps(dead) and "gho_abcdefgh" not in json.dumps(dead)
    run = _run(admin, run_id)
    assert run["status"] == "failed" and "unexpected_error" in run["error"] and "s3cr3t" not in run["error"]
    integration = admin.get("/integrations/gh-1").json()
    assert integration["status"] == "error" and "KeyError" in integration["status_reason"]
    assert hub.ports.queue.dead_letters(hub.settings.sync_inbound_queue) == []  # completed, not left to the queue

    monkeypatch.undo()
    again = _sync(admin)
    assert again != run_id
    assert wait_for(lambda: _run(admin, again)["status"] != "running", devhost)
    assert _run(admin, again)["status"] == "succeeded"
    assert admin.get("/integrations/gh-1").json()["status"] == "connected"


def test_persistent_5xx_shows_degraded_while_retrying_then_connected(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    github_sandbox.seed(5)
    connect_github(admin, github_sandbox)
    github_sandbox.inject(503, {"Retry-After": "0"}, times=6)  # two whole attempts of three calls each
    seen: list[tuple[str, str | None]] = []
    real_set = hub.sync.health.set

    def record(*args: Any, **kwargs: Any) -> Any:
        saved = real_set(*args, **kwargs)
        if saved is not None:
            seen.append((saved.status.value, saved.status_reason))
        return saved

    hub.sync.health.set = record
    run_id = _sync(admin)
    assert wait_for(lambda: _run(admin, run_id)["status"] != "running", devhost)

    assert _run(admin, run_id)["status"] == "succeeded"
    degraded = [reason for status, reason in seen if status == "degraded"]
    assert degraded and all("503" in str(reason) and "retrying" in str(reason) for reason in degraded)
    assert seen[-1] == ("connected", None)
    assert admin.get("/integrations/gh-1").json()["status"] == "connected"
    assert admin.get("/dead-letters").json() == []


def test_a_page_the_queue_dead_letters_itself_reaches_the_dead_letter_function(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host dies on every delivery (here: the runner never sees a last one), so the queue
    dead-letters the page; the dev host delivers it to SyncInboundDeadLetters, bound to
    ``%SYNC_INBOUND_QUEUE%/$DeadLetterQueue``, which records it and fails the run."""
    github_sandbox.seed(3)
    connect_github(admin, github_sandbox)
    monkeypatch.setattr(hub.inbound_runner, "_max_deliveries", 1000)  # as if the app never got its last delivery

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError("worker died")

    monkeypatch.setattr(hub.sync, "handle_page", crash)
    run_id = _sync(admin)
    assert wait_for(lambda: _run(admin, run_id)["status"] != "running", devhost, rounds=100)

    [dead] = admin.get("/dead-letters").json()
    assert dead["reason"] == "queue:MaxDeliveryCountExceeded" and dead["run_id"] == run_id
    run = _run(admin, run_id)
    assert run["status"] == "failed" and "MaxDeliveryCountExceeded" in run["error"]
    integration = admin.get("/integrations/gh-1").json()
    assert integration["status"] == "error" and "MaxDeliveryCountExceeded" in integration["status_reason"]
