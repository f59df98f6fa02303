"""Two-way end to end against the GitHub sandbox, over loopback HTTP through the dev host.

A local edit of a canonical task (admin API) becomes an outbox item, the SyncOutboundWorker
pushes it once with an idempotency key, the provider's answer becomes the new base, and its
echo (webhook or delta) is not a remote change. A remote edit made at the same time as a
local one is read before the push and merged three-way: the stream's strategy decides the
field both changed, the field only the provider changed is kept.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import SANDBOX_TOKEN, TENANT, WEBHOOK_SECRET


def _connect(admin: httpx.Client, sandbox: Any, strategy: str) -> None:
    created = admin.post(
        "/integrations",
        json={
            "id": "gh-2way",
            "provider": "github",
            "display_name": "two-way",
            "config": {"owner": sandbox.owner, "repo": sandbox.repo},
            "streams": [{"name": "issues", "direction": "bidirectional", "conflict_strategy": strategy}],
        },
    )
    assert created.status_code == 201, created.text
    cred = admin.put(
        "/integrations/gh-2way/credential", json={"access_token": SANDBOX_TOKEN, "webhook_secret": WEBHOOK_SECRET}
    )
    assert cred.status_code == 200, cred.text


def _sync(admin: httpx.Client, devhost: Any) -> dict[str, Any]:
    started = admin.post("/integrations/gh-2way/sync", json={})
    assert started.status_code == 202, started.text
    assert devhost.drain(60)
    runs = admin.get("/integrations/gh-2way/runs").json()
    return next(r for r in runs if r["id"] == started.json()["run_ids"][0])


def _patches(sandbox: Any) -> list[tuple[str, str, int]]:
    return [entry for entry in sandbox.request_log if entry[0] == "PATCH"]


def _task(admin: httpx.Client, number: int) -> dict[str, Any]:
    tasks = admin.get("/entities", params={"type": "task", "limit": 200}).json()["entities"]
    return next(t for t in tasks if t["fields"]["number"] == number)


def test_a_local_edit_reaches_github_once_its_echo_is_no_remote_change_and_a_simultaneous_edit_merges(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    github_sandbox.seed(3)
    _connect(admin, github_sandbox, "local_wins")
    assert _sync(admin, devhost)["records_created"] == 3
    task = _task(admin, 1)
    assert [s["provider"] for s in task["sources"]] == ["github"] and task["sources"][0]["two_way"] is True

    changed = admin.post(f"/entities/{task['id']}/changes", json={"fields": {"title": "Local title"}})
    assert changed.status_code == 200, changed.text
    assert devhost.drain(60)
    assert len(_patches(github_sandbox)) == 1
    assert github_sandbox.issues[0]["title"] == "Local title"

    # the echo: the provider's webhook for our own change, then a delta sync that lists it again
    issue = github_sandbox.issues[0]
    hook = f"{devhost.base_url}/api/webhooks/github/gh-2way"
    assert (
        github_sandbox.send_webhook(
            hook, WEBHOOK_SECRET, "issues", github_sandbox.issue_event_payload(issue)
        ).status_code
        == 202
    )
    assert devhost.drain(60)
    run = _sync(admin, devhost)
    assert (run["records_created"], run["records_updated"]) == (0, 0)
    assert admin.get("/conflicts").json() == []
    assert len(_patches(github_sandbox)) == 1  # nothing pushed back again
    assert _task(admin, 1)["fields"]["title"] == "Local title"

    # simultaneous edits: GitHub changes the title and the body, the hub the title
    github_sandbox.update_issue(1, title="Remote title", body="Remote body")
    again = admin.post(f"/entities/{task['id']}/changes", json={"fields": {"title": "Local again"}})
    assert again.status_code == 200, again.text
    assert devhost.drain(60)
    assert len(_patches(github_sandbox)) == 2
    remote = github_sandbox.issues[0]
    assert (remote["title"], remote["body"]) == ("Local again", "Remote body")  # local_wins on title; body merged
    [conflict] = admin.get("/conflicts").json()
    assert (conflict["field"], conflict["local"], conflict["remote"]) == ("title", "Local again", "Remote title")
    assert (conflict["status"], conflict["resolved_by"]) == ("resolved", "local_wins")
    fields = _task(admin, 1)["fields"]
    assert (fields["title"], fields["description"]) == ("Local again", "Remote body")
    assert hub.repos.dead_letters.count(TENANT) == 0
