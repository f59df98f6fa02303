"""One bad event does not poison its integration (issue 5, section 2).

Before: a signed webhook whose issue had no ``id``, or a pushed change for an unknown record,
set the integration to ``error`` (for good) and left the webhook event ``received``. Now the
item fails with its reason, and the integration's status reflects its connection only.
"""

from __future__ import annotations

from typing import Any

import httpx

from shared.domain import WebhookStatus
from tests.conftest import TENANT, WEBHOOK_SECRET, connect_github


def _hook(devhost: Any) -> str:
    return f"{devhost.base_url}/api/webhooks/github/gh-1"


def test_a_webhook_whose_issue_cannot_be_mapped_fails_that_event_only(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    github_sandbox.seed(2)
    connect_github(admin, github_sandbox)
    payload = github_sandbox.issue_event_payload(1)
    del payload["issue"]["id"]
    bad = github_sandbox.send_webhook(_hook(devhost), WEBHOOK_SECRET, "issues", payload)
    assert bad.status_code == 202, bad.text
    assert devhost.drain(30)

    event = hub.repos.webhook_events.get(TENANT, bad.json()["event_id"])
    assert event.status == WebhookStatus.FAILED
    assert "bad_payload" in event.error and "'id'" in event.error
    integration = admin.get("/integrations/gh-1").json()
    assert integration["status"] == "connected" and integration["status_reason"] is None
    [dead] = admin.get("/dead-letters").json()
    assert dead["reason"] == "bad_payload" and dead["integration_id"] == "gh-1"

    # the next good event of the same integration is applied as usual
    issue = github_sandbox.update_issue(2, title="Still flowing")
    good = github_sandbox.send_webhook(
        _hook(devhost), WEBHOOK_SECRET, "issues", github_sandbox.issue_event_payload(issue)
    )
    assert good.status_code == 202
    assert devhost.drain(30)
    assert hub.repos.webhook_events.get(TENANT, good.json()["event_id"]).status == WebhookStatus.PROCESSED
    titles = [r["data"]["title"] for r in admin.get("/integrations/gh-1/records").json()]
    assert titles == ["Still flowing"]
    assert admin.get("/integrations/gh-1").json()["status"] == "connected"


def test_a_change_for_an_unknown_record_is_dead_lettered_without_touching_the_status(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    connect_github(admin, github_sandbox)
    queued = admin.post(
        "/integrations/gh-1/changes",
        json={"entity_type": "issue", "external_id": "999999", "changes": {"title": "nobody"}},
    )
    assert queued.status_code == 202, queued.text
    assert devhost.drain(30)

    [dead] = admin.get("/dead-letters").json()
    assert dead["reason"] == "unknown_record" and "999999" in dead["description"]
    integration = admin.get("/integrations/gh-1").json()
    assert integration["status"] == "connected" and integration["status_reason"] is None
    assert github_sandbox.request_count == 0  # nothing was pushed


def test_a_change_the_provider_refuses_for_that_item_does_not_mark_the_integration(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    github_sandbox.seed(1)
    connect_github(admin, github_sandbox)
    admin.post("/integrations/gh-1/sync", json={})
    assert devhost.drain(30)
    [record] = admin.get("/integrations/gh-1/records").json()
    github_sandbox.fail_next(422)  # "Validation Failed" for this one change
    queued = admin.post(
        "/integrations/gh-1/changes",
        json={"entity_type": "issue", "external_id": record["external_id"], "changes": {"state": "weird"}},
    )
    assert queued.status_code == 202
    assert devhost.drain(30)
    [dead] = admin.get("/dead-letters").json()
    assert dead["reason"] == "http_422" and "refused" in dead["description"]
    assert admin.get("/integrations/gh-1").json()["status"] == "connected"
