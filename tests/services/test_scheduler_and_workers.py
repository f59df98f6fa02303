"""Scheduler overlap, outbound push, malformed work, token scan, Key Vault events."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import httpx

from shared.domain import utcnow
from shared.ports.events import EventEnvelope
from shared.ports.queue import OutgoingMessage
from tests.conftest import TENANT, connect_github


def _due(hub: Any) -> None:
    for schedule in hub.repos.schedules.query(TENANT):
        schedule.next_run_at = utcnow() - timedelta(minutes=1)
        hub.repos.schedules.save(schedule)


def test_overlapping_scheduler_runs_enqueue_a_due_stream_once(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    github_sandbox.seed(3)
    connect_github(admin, github_sandbox)
    _due(hub)
    queue_name = hub.settings.sync_inbound_queue
    barrier = threading.Barrier(2)
    real_query = hub.repos.schedules.query

    def query_then_wait(*args: Any, **kwargs: Any) -> Any:
        found = real_query(*args, **kwargs)
        barrier.wait(5)  # both timer runs have read the same due schedule before either writes
        return found

    hub.repos.schedules.query = query_then_wait
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(hub.sync.schedule_due())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    hub.repos.schedules.query = real_query
    started = [run for result in results for run in result]
    assert len(started) == 1
    assert hub.ports.queue.active_count(queue_name) == 1
    assert hub.repos.runs.count(TENANT) == 1
    # and the run completes through the worker
    assert devhost.drain(30)
    assert admin.get("/integrations/gh-1/runs").json()[0]["status"] == "succeeded"
    # the stream is not due again until its next scheduled time
    assert hub.sync.schedule_due() == []


def test_scheduler_timer_function_starts_due_runs(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    github_sandbox.seed(4)
    connect_github(admin, github_sandbox)
    _due(hub)
    devhost.fire_timer("SyncScheduler")
    assert devhost.drain(30)
    runs = admin.get("/integrations/gh-1/runs").json()
    assert [r["trigger"] for r in runs] == ["schedule"] and runs[0]["records_created"] == 4


def test_pending_integrations_are_not_synced(github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any) -> None:
    assert (
        admin.post(
            "/integrations",
            json={
                "id": "gh-p",
                "provider": "github",
                "display_name": "p",
                "config": {"owner": "acme", "repo": "widgets"},
            },
        ).status_code
        == 201
    )
    _due(hub)
    assert hub.sync.schedule_due() == []
    refused = admin.post("/integrations/gh-p/sync", json={})
    assert refused.status_code == 409 and "set a credential" in refused.json()["message"]


def test_outbound_change_is_pushed_and_stored(github_sandbox: Any, devhost: Any, admin: httpx.Client) -> None:
    github_sandbox.seed(2)
    connect_github(admin, github_sandbox)
    admin.post("/integrations/gh-1/sync", json={})
    assert devhost.drain(30)
    record = next(r for r in admin.get("/integrations/gh-1/records").json() if r["data"]["number"] == 2)
    queued = admin.post(
        "/integrations/gh-1/changes",
        json={"entity_type": "issue", "external_id": record["external_id"], "changes": {"title": "Set by the hub"}},
    )
    assert queued.status_code == 202, queued.text
    assert devhost.drain(30)
    assert next(i for i in github_sandbox.issues if i["number"] == 2)["title"] == "Set by the hub"
    stored = next(r for r in admin.get("/integrations/gh-1/records").json() if r["data"]["number"] == 2)
    assert stored["data"]["title"] == "Set by the hub"


def test_malformed_queue_message_is_dead_lettered_with_reason(devhost: Any, admin: httpx.Client, hub: Any) -> None:
    hub.ports.queue.send(
        hub.settings.sync_inbound_queue,
        OutgoingMessage(b'{"kind":"page","tenant_id":"tenant-a"}', "bad-1", session_id="tenant-a:gh-1"),
    )
    assert devhost.drain(30)
    dead = admin.get("/dead-letters").json()
    assert len(dead) == 1
    assert dead[0]["reason"] == "malformed_message"
    assert "integration_id" in dead[0]["description"]
    assert hub.ports.queue.active_count(hub.settings.sync_inbound_queue) == 0


def test_token_refresher_finds_credentials_near_expiry(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    connect_github(admin, github_sandbox)
    soon = (utcnow() + timedelta(minutes=5)).isoformat()
    assert (
        admin.put("/integrations/gh-1/credential", json={"access_token": "t2", "expires_at": soon}).status_code == 200
    )
    found = hub.tokens.scan()
    assert [(f.integration_id, f.provider) for f in found] == [("gh-1", "github")]
    devhost.fire_timer("TokenRefresher")  # the timer function runs the same scan


def test_keyvault_event_is_delivered_to_the_event_grid_function(devhost: Any, hub: Any, caplog: Any) -> None:
    hub.ports.events.publish(
        [
            EventEnvelope(
                id="kv-1",
                event_type="Microsoft.KeyVault.SecretNearExpiry",
                subject="ihub-gh-1-abc",
                data={"ObjectName": "ihub-gh-1-abc", "Version": "v1"},
                event_time=utcnow(),
                topic="/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/ihub-kv",  # its source
            )
        ]
    )
    with caplog.at_level("WARNING", logger="ihub.tokens"):
        assert devhost.drain(30)
    assert "SecretNearExpiry for secret ihub-gh-1-abc" in caplog.text
