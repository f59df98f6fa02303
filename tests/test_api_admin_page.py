"""The admin page a newcomer opens (issue 5, section 6), over real HTTP against the dev host."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import SANDBOX_TOKEN, TENANT, connect_github


def test_manage_root_without_a_tenant_explains_what_to_send(devhost: Any) -> None:
    response = httpx.get(f"{devhost.base_url}/api/manage/")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "X-Tenant-Id" in response.text and "?tenant=" in response.text
    assert f"{'/api/manage'}/?tenant=demo-tenant" in response.text
    api = httpx.get(f"{devhost.base_url}/api/manage/integrations")
    assert api.status_code == 400 and api.json()["error"] == "tenant_required"
    assert "x-tenant-id" in api.json()["message"]


def test_admin_page_links_integrations_runs_records_and_dead_letters(
    github_sandbox: Any, devhost: Any, admin: httpx.Client
) -> None:
    github_sandbox.seed(3)
    connect_github(admin, github_sandbox)
    page = httpx.get(f"{devhost.base_url}/api/manage/", params={"tenant": TENANT, "code": "k-1"})
    assert page.status_code == 200 and "gh-1" in page.text
    links = set(re.findall(r"href='([^']+)'", page.text))
    suffix = f"?tenant={TENANT}&amp;code=k-1"
    for path in ("integrations", "integrations/gh-1", "integrations/gh-1/runs", "integrations/gh-1/records",
                 "integrations/gh-1/stats", "dead-letters"):
        assert f"/api/manage/{path}{suffix}" in links, (path, links)
    for link in links:  # every link answers, with the tenant (and key) it carries
        response = httpx.get(devhost.base_url + link.replace("&amp;", "&"))
        assert response.status_code == 200, (link, response.text)


def test_admin_page_reloads_itself_while_a_run_is_active(
    github_sandbox: Any, devhost: Any, admin: httpx.Client
) -> None:
    github_sandbox.seed(250)
    connect_github(admin, github_sandbox)
    page_url = f"{devhost.base_url}/api/manage/?tenant={TENANT}"
    assert "http-equiv='refresh'" not in httpx.get(page_url).text
    github_sandbox.latency_seconds = 0.5
    assert admin.post("/integrations/gh-1/sync", json={}).status_code == 202
    running = httpx.get(page_url).text
    assert "http-equiv='refresh'" in running and "running" in running
    assert devhost.drain(120)
    assert "http-equiv='refresh'" not in httpx.get(page_url).text


def test_stats_dead_letters_are_per_integration(github_sandbox: Any, devhost: Any, admin: httpx.Client) -> None:
    github_sandbox.seed(2)
    connect_github(admin, github_sandbox, "gh-1")
    connect_github(admin, github_sandbox, "gh-2")
    github_sandbox.set_token("rotated-elsewhere")  # gh-1's sync dead-letters as unauthorized
    assert admin.post("/integrations/gh-1/sync", json={}).status_code == 202
    assert devhost.drain(60)
    assert len(admin.get("/dead-letters").json()) == 1
    assert admin.get("/integrations/gh-1/stats").json()["dead_letters"] == 1
    assert admin.get("/integrations/gh-2/stats").json()["dead_letters"] == 0
    github_sandbox.set_token(SANDBOX_TOKEN)
