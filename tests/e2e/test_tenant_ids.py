"""Tenants cannot collide (issue 5, section 4), over real HTTP against the dev host.

- Two tenants creating the same integration id at the same moment: exactly one 201.
- The 409 is the same text whether the id is the caller's own or another tenant's.
- The admin API hands out each integration's webhook URL; deliveries to it route to the owner.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx

from tests.conftest import TENANT, WEBHOOK_SECRET, connect_github

OTHER = "tenant-b"


def _body(integration_id: str) -> dict[str, Any]:
    return {"id": integration_id, "provider": "github", "display_name": "x", "config": {"owner": "o", "repo": "r"}}


def test_two_tenants_racing_for_one_id_get_exactly_one_201(devhost: Any, hub: Any) -> None:
    base = f"{devhost.base_url}/api/manage/integrations"
    clients = {t: httpx.Client(headers={"x-tenant-id": t}, timeout=30) for t in (TENANT, OTHER)}
    try:
        for attempt in range(15):
            integration_id = f"race-{attempt}"
            barrier = threading.Barrier(2)
            results: dict[str, httpx.Response] = {}

            def create(tenant: str, integration_id: str, barrier: threading.Barrier, results: dict[str, Any]) -> None:
                barrier.wait()
                results[tenant] = clients[tenant].post(base, json=_body(integration_id))

            threads = [
                threading.Thread(target=create, args=(t, integration_id, barrier, results)) for t in clients
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            statuses = sorted(r.status_code for r in results.values())
            assert statuses == [201, 409], (attempt, {t: r.text for t, r in results.items()})
            owners = [i.tenant_id for i in hub.repos.integrations.query(None) if i.id == integration_id]
            assert len(owners) == 1
            winner = next(t for t, r in results.items() if r.status_code == 201)
            assert owners == [winner]
    finally:
        for client in clients.values():
            client.close()


def test_409_does_not_reveal_whose_id_it_is(devhost: Any) -> None:
    base = f"{devhost.base_url}/api/manage/integrations"
    mine = httpx.Client(headers={"x-tenant-id": TENANT})
    theirs = httpx.Client(headers={"x-tenant-id": OTHER})
    assert mine.post(base, json=_body("taken-1")).status_code == 201
    again_mine = mine.post(base, json=_body("taken-1"))
    from_other = theirs.post(base, json=_body("taken-1"))
    assert again_mine.status_code == from_other.status_code == 409
    assert again_mine.json() == from_other.json()
    assert OTHER not in again_mine.text and TENANT not in from_other.text
    assert "not available" in from_other.json()["message"]
    # a generated id is always available
    generated = theirs.post(base, json={k: v for k, v in _body("x").items() if k != "id"})
    assert generated.status_code == 201 and generated.json()["id"].startswith("int-")


def test_admin_api_returns_the_webhook_url_and_deliveries_to_it_route_to_the_owner(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    github_sandbox.seed(2)
    created = connect_github(admin, github_sandbox)
    url = created["webhook_url"]
    assert url == f"{devhost.base_url}/api/webhooks/github/gh-1"
    assert admin.get("/integrations/gh-1").json()["webhook_url"] == url
    assert [i["webhook_url"] for i in admin.get("/integrations").json()] == [url]
    # the other tenant's same-named id is refused, so the URL can only ever mean tenant-a's integration
    other = httpx.Client(base_url=f"{devhost.base_url}/api/manage", headers={"x-tenant-id": OTHER})
    assert other.post("/integrations", json=_body("gh-1")).status_code == 409
    payload = github_sandbox.issue_event_payload(github_sandbox.update_issue(1, title="via the returned URL"))
    delivered = github_sandbox.send_webhook(url, WEBHOOK_SECRET, "issues", payload, delivery_id=str(uuid.uuid4()))
    assert delivered.status_code == 202, delivered.text
    assert devhost.drain(30)
    assert hub.repos.webhook_events.count(TENANT) == 1 and hub.repos.webhook_events.count(OTHER) == 0


def test_a_create_that_crashed_after_claiming_can_be_retried_by_its_tenant(devhost: Any, hub: Any) -> None:
    """The claim is written before the integration; the same tenant may finish the job later."""
    hub.admin._claim_id(TENANT, "half-made")  # the crash: claimed, never created
    base = f"{devhost.base_url}/api/manage/integrations"
    assert httpx.post(base, json=_body("half-made"), headers={"x-tenant-id": OTHER}).status_code == 409
    assert httpx.post(base, json=_body("half-made"), headers={"x-tenant-id": TENANT}).status_code == 201
