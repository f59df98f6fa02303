"""Managed webhook subscriptions against the GitHub sandbox: the hub creates the repository hook
with the integration's secret, the sandbox's deliveries to it are processed, the reconciling
timer is idempotent, and disconnecting removes the hook at the provider."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import WEBHOOK_SECRET, connect_github
from tests.services.test_failure_visibility import wait_for


def test_the_hub_creates_the_repository_hook_and_its_deliveries_are_processed(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    github_sandbox.seed(2)
    connect_github(admin, github_sandbox)
    made = admin.post("/integrations/gh-1/subscriptions")
    assert made.status_code == 200, made.text
    [sub] = made.json()
    [hook] = github_sandbox.hooks.values()
    assert sub["kind"] == "hook" and sub["provider_id"] == str(hook["id"])
    assert hook["config"]["url"] == f"{devhost.base_url}/api/webhooks/github/gh-1"
    assert hook["config"]["secret"] == WEBHOOK_SECRET and "issues" in hook["events"]

    again = admin.post("/integrations/gh-1/subscriptions")
    assert again.status_code == 200 and len(github_sandbox.hooks) == 1  # kept, not duplicated
    assert hub.subscriptions.reconcile(f"{devhost.base_url}/api") == 0 and len(github_sandbox.hooks) == 1

    issue = github_sandbox.update_issue(1, title="renamed at GitHub")
    assert github_sandbox.deliver("issues", github_sandbox.issue_event_payload(issue)) == [202]
    assert github_sandbox.deliver("push", {"ref": "refs/heads/main"}) == []  # not subscribed
    assert wait_for(lambda: any(r["data"]["title"] == "renamed at GitHub"
                                for r in admin.get("/integrations/gh-1/records").json()), devhost)

    setup = admin.get("/integrations/gh-1/webhook-setup").json()
    assert setup["managed"] is True and setup["subscriptions"][0]["state"] == "active"
    stopped = admin.post("/integrations/gh-1/subscriptions/stop")
    assert stopped.status_code == 200 and stopped.json()[0]["state"] == "stopped"
    assert github_sandbox.hooks == {}
