"""Two-way for every provider whose API allows writes: a local edit of a canonical entity reaches the
provider's sandbox once per linked record, and the next sync sees its echo as no change (GitHub, Salesforce, Notion,
Slack messages, Google Calendar), over loopback HTTP through the dev host."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from adapters.base.paths import get_path
from adapters.registry import adapter_class
from tests.conformance.harnesses import HARNESSES, TOKEN, Harness
from tests.conformance.test_behaviour import INTEGRATION, sync

# provider -> (canonical type, writable field, the values the sandbox holds for it)
CASES: dict[str, tuple[str, str, Callable[[Harness], list[Any]]]] = {
    "github": ("task", "title", lambda h: [i["title"] for i in h.sandbox.issues]),
    "salesforce": ("organization", "phone", lambda h: [r["Phone"] for r in h.sandbox.records("Account")]),
    "notion": (
        "task",
        "title",
        lambda h: [get_path(p, "properties.Name.title.0.plain_text") for p in h.sandbox.pages()],
    ),
    "slack": ("message", "text", lambda h: [m["text"] for m in h.sandbox.workspace.messages(h.channel)]),
    "google": ("event", "title", lambda h: [e.get("summary") for e in h.sandbox.calendar.events]),
}


@pytest.fixture(params=sorted(CASES))
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    h = HARNESSES[request.param]()
    h.start(3)
    try:
        yield h
    finally:
        h.stop()


def test_a_local_edit_reaches_every_writable_provider_once(harness: Harness, devhost: Any, admin: httpx.Client) -> None:
    kind, field, values = CASES[harness.provider]
    streams = [{"name": n, "direction": "bidirectional"} for n in adapter_class(harness.provider).spec.streams]
    created = admin.post(
        "/integrations",
        json={
            "id": INTEGRATION,
            "provider": harness.provider,
            "display_name": "two-way",
            "config": harness.config(),
            "streams": streams,
        },
    )
    assert created.status_code == 201, created.text
    assert admin.put(f"/integrations/{INTEGRATION}/credential", json={"access_token": TOKEN}).status_code == 200
    harness.pushable()
    sync(admin, devhost, harness.stream)
    entities = admin.get("/entities", params={"type": kind, "limit": 200}).json()["entities"]
    if harness.provider == "slack":  # the bot may change only its own message
        entities = [e for e in entities if e["fields"].get("text") == "the bot's own message"]
    target = entities[0]
    linked = [s for s in target["sources"] if s["two_way"]]  # an organization may be two accounts at one domain
    assert linked, target
    before = harness.writes()
    edited = admin.post(f"/entities/{target['id']}/changes", json={"fields": {field: "edited in the hub"}})
    assert edited.status_code == 200, edited.text
    devhost.drain(30)
    assert harness.writes() == before + len(linked)  # once per linked record
    assert values(harness).count("edited in the hub") == len(linked)
    sync(admin, devhost, harness.stream)  # the echo
    devhost.drain(10)
    assert harness.writes() == before + len(linked)
    assert admin.get("/conflicts").json() == []
    assert admin.get(f"/entities/{target['id']}").json()["fields"][field] == "edited in the hub"
    assert admin.get("/dead-letters").json() == []
