"""The budgets where an operator meets them: the admin API over HTTP through the dev host, and a
sync whose budget runs out being rescheduled through the queue (never sent, never slept on)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import connect_github
from tests.services.test_failure_visibility import wait_for


def _buckets(admin: httpx.Client) -> dict[str, dict[str, Any]]:
    view = admin.get("/rate-limits")
    assert view.status_code == 200, view.text
    return {b["bucket"]: b for b in view.json()["buckets"]}


def test_buckets_are_shown_and_an_override_defers_the_sync_through_the_queue(
    admin: httpx.Client, devhost: Any, github_sandbox: Any
) -> None:
    connect_github(admin, github_sandbox)
    github_sandbox.seed(500)  # 5 pages
    assert admin.get("/rate-limits").json()["backend"] == "InProcessBudgets"
    shown = _buckets(admin)
    assert {"github:token:tenant-a:gh-1", "github:secondary:tenant-a:gh-1"} <= set(shown)  # from the spec
    token = shown["github:token:tenant-a:gh-1"]
    assert (token["budget"], token["level"], token["limit"], token["window_seconds"]) == (
        "token", "integration", 5000, 3600)

    override = {"provider": "github", "budget": "secondary", "integration": "gh-1", "limit": 2,
                "window_seconds": 3600}
    stored = admin.put("/rate-limits", json=override)
    assert stored.status_code == 200, stored.text
    assert stored.json()["tenant"] == "tenant-a" and stored.json()["limit"] == 2

    before = github_sandbox.stats()["request_count"]
    started = admin.post("/integrations/gh-1/sync", json={})
    assert started.status_code == 202, started.text
    assert wait_for(lambda: admin.get("/integrations/gh-1").json()["status"] == "rate_limited", devhost)
    integration = admin.get("/integrations/gh-1").json()
    assert "budget_deferred" in integration["status_reason"]
    assert github_sandbox.stats()["request_count"] - before == 1  # the rest waits in the queue, unsent
    secondary = _buckets(admin)["github:secondary:tenant-a:gh-1"]
    assert secondary["limit"] == 2 and secondary["deferred"] >= 1 and secondary["remaining"] == 0
    assert any(o["budget"] == "secondary" for o in admin.get("/rate-limits").json()["overrides"])


def test_bad_overrides_get_a_precise_4xx_and_change_nothing(admin: httpx.Client, github_sandbox: Any) -> None:
    connect_github(admin, github_sandbox)
    cases = [
        ({"provider": "github", "budget": "nope", "limit": 5}, 400, "unknown_budget"),
        ({"provider": "github", "budget": "app", "limit": 5}, 400, "app_budget"),
        ({"provider": "github", "budget": "token"}, 400, "invalid_override"),
        ({"provider": "github", "budget": "token", "limit": -1}, 400, "invalid_override"),
        ({"provider": "github", "budget": "token", "limit": 5, "tenant": "tenant-b"}, 400, "invalid_override"),
        ({"provider": "slack", "budget": "tier2", "limit": 5, "integration": "gh-1"}, 400, "invalid_override"),
        ({"provider": "github", "budget": "token", "limit": 5, "integration": "other-1"}, 404, "not_found"),
        ({"provider": "nosuch", "budget": "token", "limit": 5}, 404, "unknown_provider"),
    ]
    for body, status, code in cases:
        answer = admin.put("/rate-limits", json=body)
        assert (answer.status_code, answer.json().get("error")) == (status, code), (body, answer.text)
    assert admin.get("/rate-limits").json()["overrides"] == []


def test_a_provider_429_publishes_rate_limit_exceeded_naming_the_bucket_and_the_sync_recovers(
    admin: httpx.Client, devhost: Any, github_sandbox: Any, hub: Any
) -> None:
    connect_github(admin, github_sandbox)
    github_sandbox.seed(5)
    github_sandbox.secondary_limit(retry_after_seconds=1)
    started = admin.post("/integrations/gh-1/sync", json={})
    assert started.status_code == 202, started.text
    (run_id,) = started.json()["run_ids"]
    assert wait_for(lambda: next(r for r in admin.get("/integrations/gh-1/runs").json()
                                 if r["id"] == run_id)["status"] == "succeeded", devhost)
    exceeded = [e.event.data for e in hub.ports.events.all_events()
                if e.event.event_type == "IntegrationHub.RateLimitExceeded" and e.event.data.get("bucket")]
    assert exceeded and exceeded[0]["bucket"] == "github:token:tenant-a:gh-1"
    assert exceeded[0]["scope"] == "integration" and exceeded[0]["retry_at"]
    token = _buckets(admin)["github:token:tenant-a:gh-1"]
    assert token["aimd_factor"] < 1  # halved by the 429, recovering
