"""A webhook never waits behind a page fetch of the same integration (issue 5, section 5).

Page messages hold the integration's session while the provider answers; webhook events go to
the integration's webhook lanes (``shared.sessions``), so a delivery that only stores the
entity it carries is applied while the page is still being fetched. Over real HTTP: the dev
host, the admin API and the GitHub sandbox answering slowly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from shared.sessions import integration_session
from tests.conftest import TENANT, WEBHOOK_SECRET, connect_github

SLOW_PROVIDER_SECONDS = 6.0


def _wait(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def test_a_webhook_is_applied_while_a_page_of_its_integration_is_being_fetched(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    github_sandbox.seed(5)
    connect_github(admin, github_sandbox)
    assert admin.post("/integrations/gh-1/sync", json={}).status_code == 202
    assert devhost.drain(30)

    queue_name = hub.settings.sync_inbound_queue
    session = integration_session(TENANT, "gh-1")

    def page_in_flight() -> bool:
        return any(m.session_id == session and m.locked_until for m in hub.ports.queue.peek(queue_name))

    github_sandbox.latency_seconds = SLOW_PROVIDER_SECONDS
    try:
        assert admin.post("/integrations/gh-1/sync", json={}).status_code == 202
        assert _wait(page_in_flight, 10)  # the page's handler is waiting for the provider

        issue = github_sandbox.update_issue(2, title="Renamed while a page is fetched")
        hook = f"{devhost.base_url}/api/webhooks/github/gh-1"
        sent = github_sandbox.send_webhook(hook, WEBHOOK_SECRET, "issues", github_sandbox.issue_event_payload(issue))
        assert sent.status_code == 202, sent.text

        def renamed() -> bool:
            records = admin.get("/integrations/gh-1/records").json()
            return any(r["data"]["title"] == "Renamed while a page is fetched" for r in records)

        assert _wait(renamed, SLOW_PROVIDER_SECONDS)
        assert page_in_flight()  # applied before the page it would once have queued behind
    finally:
        github_sandbox.latency_seconds = 0.0
    assert devhost.drain(60)
    runs = admin.get("/integrations/gh-1/runs").json()
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    titles = {r["data"]["number"]: r["data"]["title"] for r in admin.get("/integrations/gh-1/records").json()}
    assert titles[2] == "Renamed while a page is fetched"  # the slower page did not undo it
