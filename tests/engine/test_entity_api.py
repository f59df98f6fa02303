"""The entity admin API over loopback HTTP: pages with a cursor, links, precise 4xx, nothing half-done."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import connect_github


def _synced(admin: httpx.Client, devhost: Any, sandbox: Any, issues: int) -> None:
    sandbox.seed(issues)
    connect_github(admin, sandbox)
    assert admin.post("/integrations/gh-1/sync", json={}).status_code == 202
    assert devhost.drain(60)


def test_entities_page_with_a_cursor_and_carry_links_and_sources(
    github_sandbox: Any, devhost: Any, admin: httpx.Client
) -> None:
    _synced(admin, devhost, github_sandbox, 7)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"type": "task", "limit": "3", **({"cursor": cursor} if cursor else {})}
        page = admin.get("/entities", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [e["id"] for e in body["entities"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 7
    task = admin.get(f"/entities/{seen[0]}").json()
    assert task["type"] == "task" and task["sources"][0]["provider"] == "github"
    assert {link["rel"] for link in task["links"]} == {"author"}
    author = next(link for link in task["links"] if link["rel"] == "author")
    person = admin.get(f"/entities/{author['entity_id']}").json()
    assert person["type"] == "person"
    assert any(link["direction"] == "in" and link["rel"] == "author" for link in person["links"])


def test_bad_entity_requests_get_a_precise_4xx_and_change_nothing(
    github_sandbox: Any, devhost: Any, admin: httpx.Client
) -> None:
    _synced(admin, devhost, github_sandbox, 2)
    [task, _] = admin.get("/entities", params={"type": "task"}).json()["entities"]
    cases = [
        (admin.get("/entities", params={"type": "spaceship"}), 400, "invalid_type"),
        (admin.get("/entities", params={"limit": "0"}), 400, None),
        (admin.get("/entities/ent-0000"), 404, "unknown_entity"),
        (admin.post(f"/entities/{task['id']}/changes", json={"fields": {}}), 400, "invalid_change"),
        (admin.post(f"/entities/{task['id']}/changes", json=["title"]), 400, "invalid_change"),
        (admin.post(f"/entities/{task['id']}/split", json={"record_id": "rec-nope"}), 404, "unknown_source"),
        (admin.post("/conflicts/conflict-nope/resolve", json={"pick": "local"}), 404, "unknown_conflict"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, (response.request.url, response.text)
        if code:
            assert response.json()["error"] == code, response.text
    assert admin.get(f"/entities/{task['id']}").json()["fields"] == task["fields"]
    assert admin.get("/conflicts").json() == [] and admin.get("/merge-proposals").json() == []
