"""Pagination cycles of any length end the run with a readable reason (issue 5, section 2).

Before: page 2 linking back to page 1 made 121 pages and 11,900 redundant writes in 25 s and
never ended. Over real HTTP and the real queue, against the GitHub sandbox's link-cycle fault.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import connect_github, hub_environment


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, github_sandbox: Any) -> Iterator[Any]:
    """The conftest hub, with a page ceiling of 12 set through the IHUB_MAX_PAGES_PER_RUN setting."""
    from shared.runtime import get_hub, reset_hub

    env = hub_environment(
        tmp_path / "data",
        IHUB_PROVIDER_BASE_URLS=json.dumps({"github": github_sandbox.base_url}),
        IHUB_MAX_PAGES_PER_RUN="12",
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_hub()
    try:
        yield get_hub()
    finally:
        reset_hub()


def _run(admin: httpx.Client, devhost: Any) -> dict[str, Any]:
    started = admin.post("/integrations/gh-1/sync", json={})
    assert started.status_code == 202, started.text
    assert devhost.drain(60)
    [run_id] = started.json()["run_ids"]
    return dict(next(r for r in admin.get("/integrations/gh-1/runs").json() if r["id"] == run_id))


@pytest.mark.parametrize("cycle", [2, 3])
def test_a_link_cycle_fails_the_run_with_a_readable_reason(
    cycle: int, github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    github_sandbox.seed(500)  # 5 pages of 100
    connect_github(admin, github_sandbox)
    github_sandbox.link_cycle(cycle)

    run = _run(admin, devhost)

    assert run["status"] == "failed", run
    assert "pagination_cycle" in run["error"] and "links to the page already fetched" in run["error"]
    assert run["pages"] <= cycle + 1  # found at the first repeat, not after the page ceiling
    listed = [path for _, path, _ in github_sandbox.request_log if "/issues" in path]
    assert len(listed) <= cycle + 2
    assert hub.repos.records.count(None) == cycle * 100  # what was fetched is stored, once
    integration = admin.get("/integrations/gh-1").json()
    assert integration["status"] == "error" and "pagination_cycle" in integration["status_reason"]
    [dead] = admin.get("/dead-letters").json()
    assert dead["reason"] == "pagination_cycle" and dead["run_id"] == run["id"]

    # the provider is fixed: a new sync is a new run, and it completes with the exact count
    github_sandbox.link_cycle(None)
    again = _run(admin, devhost)
    assert again["id"] != run["id"]
    assert again["status"] == "succeeded", again
    assert hub.repos.records.count(None) == 500
    assert admin.get("/integrations/gh-1").json()["status"] == "connected"


def test_the_page_ceiling_setting_fails_a_run_that_never_ends(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    github_sandbox.seed(1500)  # 15 pages, ceiling 12 (IHUB_MAX_PAGES_PER_RUN)
    connect_github(admin, github_sandbox)

    run = _run(admin, devhost)

    assert run["status"] == "failed", run
    assert run["pages"] == 12
    assert "page_ceiling" in run["error"] and "IHUB_MAX_PAGES_PER_RUN" in run["error"]
    assert hub.repos.records.count(None) == 1200
