"""GitHub end to end over real HTTP: admin API -> sync via the queue -> records; webhooks in.

The dev host serves function_app on loopback and delivers queue messages to the worker
functions as real ServiceBusMessage objects; the GitHub sandbox is the only provider.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import TENANT, WEBHOOK_SECRET, connect_github


def _run(admin: httpx.Client, devhost: Any, integration_id: str = "gh-1") -> dict[str, Any]:
    started = admin.post(f"/integrations/{integration_id}/sync", json={})
    assert started.status_code == 202, started.text
    assert devhost.drain(120)
    runs = admin.get(f"/integrations/{integration_id}/runs").json()
    run = next(r for r in runs if r["id"] == started.json()["run_ids"][0])
    return dict(run)


def wait_for(check: Callable[[], bool], devhost: Any, timeout: float = 30.0) -> bool:
    """Drain and re-check until ``check()`` holds (rescheduled messages become visible later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        devhost.drain(5)
        if check():
            return True
        time.sleep(0.1)
    return False


def _records(admin: httpx.Client, integration_id: str = "gh-1") -> list[dict[str, Any]]:
    return list(admin.get(f"/integrations/{integration_id}/records", params={"limit": 1000}).json())


def _hook(devhost: Any, integration_id: str = "gh-1") -> str:
    return f"{devhost.base_url}/api/webhooks/github/{integration_id}"


def test_sync_250_issues_then_webhook_update_and_duplicate(
    github_sandbox: Any, devhost: Any, admin: httpx.Client
) -> None:
    github_sandbox.seed(250)
    connect_github(admin, github_sandbox)

    run = _run(admin, devhost)
    assert run["status"] == "succeeded", run
    assert run["pages"] == 3 and run["records_created"] == 250
    records = _records(admin)
    assert len(records) == 250
    assert len({r["external_id"] for r in records}) == 250

    # an issue update arrives by webhook and changes exactly that record
    issue = github_sandbox.update_issue(7, title="Renamed by webhook")
    delivery = str(uuid.uuid4())
    payload = github_sandbox.issue_event_payload(issue, action="edited")
    first = github_sandbox.send_webhook(_hook(devhost), WEBHOOK_SECRET, "issues", payload, delivery_id=delivery)
    assert first.status_code == 202, first.text
    assert devhost.drain(60)
    by_number = {r["data"]["number"]: r for r in _records(admin)}
    assert by_number[7]["data"]["title"] == "Renamed by webhook"
    before = admin.get("/integrations/gh-1/stats").json()

    # the same delivery again changes nothing
    again = github_sandbox.send_webhook(_hook(devhost), WEBHOOK_SECRET, "issues", payload, delivery_id=delivery)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert devhost.drain(60)
    assert admin.get("/integrations/gh-1/stats").json() == before
    assert {r["id"]: r["updated_at"] for r in _records(admin)} == {r["id"]: r["updated_at"] for r in by_number.values()}

    # an incremental run picks up only what changed since the watermark
    github_sandbox.update_issue(8, title="Changed between runs")
    second = _run(admin, devhost)
    assert second["status"] == "succeeded"
    assert second["records_created"] == 0
    assert second["records_updated"] == 1
    assert second["records_seen"] <= 3
    assert len(_records(admin)) == 250


def test_bad_signature_gets_401_and_leaves_no_trace(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    github_sandbox.seed(3)
    connect_github(admin, github_sandbox)
    issue = github_sandbox.update_issue(1, title="forged")
    payload = github_sandbox.issue_event_payload(issue)
    forged = github_sandbox.send_webhook(_hook(devhost), "wrong-secret", "issues", payload)
    assert forged.status_code == 401
    assert forged.json()["error"] == "bad_signature"
    unsigned = httpx.post(
        _hook(devhost), content=b'{"zen":"hi"}', headers={"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d-1"}
    )
    assert unsigned.status_code == 401 and "missing X-Hub-Signature-256" in unsigned.json()["message"]
    assert hub.repos.webhook_events.count(TENANT) == 0
    assert hub.ports.queue.active_count(hub.settings.sync_inbound_queue) == 0
    assert hub.ports.blobs.list(hub.settings.blob_container_webhooks) == []
    assert _records(admin) == []


def test_webhook_error_statuses(github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any) -> None:
    connect_github(admin, github_sandbox)
    sign = github_sandbox.sign

    def post(url: str, body: bytes, **extra: str) -> httpx.Response:
        headers = {
            "X-Hub-Signature-256": sign(WEBHOOK_SECRET, body),
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            **extra,
        }
        return httpx.post(url, content=body, headers=headers)

    assert post(_hook(devhost), b"{not json").status_code == 400
    assert post(_hook(devhost), b"[1,2]").status_code == 400
    no_delivery = httpx.post(
        _hook(devhost), content=b"{}", headers={"X-Hub-Signature-256": sign(WEBHOOK_SECRET, b"{}")}
    )
    assert no_delivery.status_code == 400 and "delivery id" in no_delivery.json()["message"]
    assert post(_hook(devhost, "gh-nope"), b"{}").status_code == 404
    assert post(f"{devhost.base_url}/api/webhooks/nosuch/gh-1", b"{}").status_code == 404
    big = b'{"pad":"' + b"x" * (26 * 1024 * 1024) + b'"}'
    assert post(_hook(devhost), big).status_code == 413
    assert hub.repos.webhook_events.count(TENANT) == 0
    assert hub.ports.queue.active_count(hub.settings.sync_inbound_queue) == 0


def test_webhook_for_another_tenants_integration_is_rejected(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    connect_github(admin, github_sandbox)
    other = httpx.Client(base_url=f"{devhost.base_url}/api/manage", headers={"x-tenant-id": "tenant-b"})
    assert (
        other.post(
            "/integrations",
            json={
                "id": "gh-b",
                "provider": "github",
                "display_name": "B",
                "config": {"owner": "acme", "repo": "widgets"},
            },
        ).status_code
        == 201
    )
    assert other.put("/integrations/gh-b/credential", json={"webhook_secret": "tenant-b-secret"}).status_code == 200
    # tenant A's secret on tenant B's integration: not authentic for B
    issue = github_sandbox.create_issue(title="x")
    response = github_sandbox.send_webhook(
        _hook(devhost, "gh-b"), WEBHOOK_SECRET, "issues", github_sandbox.issue_event_payload(issue)
    )
    assert response.status_code == 401
    # and tenant B cannot read tenant A's integration through the admin API
    assert other.get("/integrations/gh-1").status_code == 404
    assert hub.repos.webhook_events.count(None) == 0


def test_large_webhook_body_is_claim_checked_to_blob(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    github_sandbox.seed(1)
    connect_github(admin, github_sandbox)
    issue = github_sandbox.update_issue(1, body="y" * 100_000)
    response = github_sandbox.send_webhook(
        _hook(devhost), WEBHOOK_SECRET, "issues", github_sandbox.issue_event_payload(issue)
    )
    assert response.status_code == 202
    assert devhost.drain(60)
    blobs = hub.ports.blobs.list(hub.settings.blob_container_webhooks)
    assert len(blobs) == 1 and blobs[0].size > 100_000
    assert _records(admin)[0]["data"]["body"] == "y" * 100_000


def test_rate_limited_page_is_rescheduled_not_slept(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    github_sandbox.seed(5)
    connect_github(admin, github_sandbox)
    github_sandbox.secondary_limit(retry_after_seconds=1, times=1)
    started = admin.post("/integrations/gh-1/sync", json={})
    assert started.status_code == 202
    assert wait_for(lambda: admin.get("/integrations/gh-1/runs").json()[0]["status"] != "running", devhost)
    run = admin.get("/integrations/gh-1/runs").json()[0]
    assert run["status"] == "succeeded" and run["records_created"] == 5
    events = [e.event.event_type for e in hub.ports.events.all_events()]
    assert "IntegrationHub.RateLimitExceeded" in events and "IntegrationHub.DataSynced" in events


def test_revoked_token_marks_unauthorized_and_dead_letters_with_reason(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    github_sandbox.seed(5)
    connect_github(admin, github_sandbox)
    github_sandbox.set_token("rotated-elsewhere")
    admin.post("/integrations/gh-1/sync", json={})
    assert devhost.drain(60)
    integ = admin.get("/integrations/gh-1").json()
    assert integ["status"] == "unauthorized"
    run = admin.get("/integrations/gh-1/runs").json()[0]
    assert run["status"] == "failed" and "unauthorized" in run["error"]
    dead = admin.get("/dead-letters").json()
    assert len(dead) == 1 and dead[0]["reason"] == "unauthorized" and "401" in dead[0]["description"]


def test_admin_api_validation_errors_name_the_field(devhost: Any, admin: httpx.Client) -> None:
    bad = admin.post("/integrations", json={"provider": "github", "display_name": "", "config": {}})
    assert bad.status_code == 400 and "display_name" in bad.json()["message"]
    missing_cfg = admin.post("/integrations", json={"provider": "github", "display_name": "x", "config": {}})
    assert missing_cfg.status_code == 400 and "owner" in missing_cfg.json()["message"]
    unknown = admin.post("/integrations", json={"provider": "myspace", "display_name": "x"})
    assert unknown.status_code == 404 and "unknown provider" in unknown.json()["message"]
    no_tenant = httpx.get(f"{devhost.base_url}/api/manage/integrations")
    assert no_tenant.status_code == 400 and "x-tenant-id" in no_tenant.json()["message"]
    assert admin.get("/integrations/none").status_code == 404
    dup = {"id": "gh-dup", "provider": "github", "display_name": "d", "config": {"owner": "a", "repo": "b"}}
    assert admin.post("/integrations", json=dup).status_code == 201
    assert admin.post("/integrations", json=dup).status_code == 409
    assert admin.get("/nothing-here").status_code == 404
    page = admin.get("/")
    assert page.status_code == 200 and "Integration Hub" in page.text
