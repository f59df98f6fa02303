"""Bad input gets a precise 4xx, never a 500, on every JSON entry point (issue 5, section 3).

Over real HTTP against the dev host: webhook bodies (validly signed), admin create,
credential, sync and change bodies, query strings, headers and path segments. Queue
messages are fed to the real inbound/outbound worker functions and must dead-letter with a
reason instead of crashing. Every rejection leaves no state behind.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from shared import jsonio
from tests.conftest import TENANT, WEBHOOK_SECRET, connect_github

DEEP = b'{"a":' * 1000 + b"1" + b"}" * 1000
DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
SURROGATE = b'{"action":"edited","issue":{"id":1,"title":"\\ud800"}}'
SURROGATE_KEY = b'{"\\udfff":1}'
RAW_SURROGATE = b'{"title":"\xed\xa0\x80"}'  # CESU-style bytes of U+D800: not UTF-8 either
NOT_UTF8 = b'{"title":"\xff"}'
JUST_OVER = b"[" * (jsonio.MAX_DEPTH + 1) + b"]" * (jsonio.MAX_DEPTH + 1)
AT_LIMIT = b'{"a":' + b"[" * (jsonio.MAX_DEPTH - 1) + b"]" * (jsonio.MAX_DEPTH - 1) + b"}"
BAD_BODIES = [DEEP, DEEP_ARRAY, SURROGATE, SURROGATE_KEY, RAW_SURROGATE, NOT_UTF8, JUST_OVER, b"NaN", b"1e999"]


def _hook(devhost: Any, integration_id: str = "gh-1") -> str:
    return f"{devhost.base_url}/api/webhooks/github/{integration_id}"


def _signed(sandbox: Any, body: bytes) -> dict[str, str]:
    return {
        "X-Hub-Signature-256": sandbox.sign(WEBHOOK_SECRET, body),
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "Content-Type": "application/json",
    }


def _state(hub: Any) -> dict[str, Any]:
    """Everything a request could have written."""
    repos = hub.repos
    return {
        "integrations": repos.integrations.count(None),
        "checkpoints": repos.checkpoints.count(None),
        "runs": repos.runs.count(None),
        "records": repos.records.count(None),
        "events": repos.webhook_events.count(None),
        "dead_letters": repos.dead_letters.count(None),
        "inbound": hub.ports.queue.active_count(hub.settings.sync_inbound_queue),
        "outbound": hub.ports.queue.active_count(hub.settings.sync_outbound_queue),
        "blobs": len(hub.ports.blobs.list(hub.settings.blob_container_webhooks)),
        "secrets": len(list(hub.ports.secrets.list_properties())),
        "integration": [i.model_dump(mode="json") for i in repos.integrations.query(None)],
    }


@pytest.mark.parametrize("body", BAD_BODIES, ids=lambda b: repr(b[:12]))
def test_signed_webhook_with_hostile_json_gets_400_and_leaves_no_trace(
    body: bytes, github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    connect_github(admin, github_sandbox)
    before = _state(hub)
    response = httpx.post(_hook(devhost), content=body, headers=_signed(github_sandbox, body), timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_json"
    assert _state(hub) == before


def test_rejection_messages_name_the_problem(github_sandbox: Any, devhost: Any, admin: httpx.Client) -> None:
    connect_github(admin, github_sandbox)

    def message(body: bytes) -> str:
        response = httpx.post(_hook(devhost), content=body, headers=_signed(github_sandbox, body), timeout=30)
        return str(response.json()["message"])

    assert f"nested more than {jsonio.MAX_DEPTH} levels" in message(DEEP)
    assert "lone surrogate" in message(SURROGATE)
    assert "not valid UTF-8" in message(NOT_UTF8)


def test_nesting_at_the_limit_is_accepted(github_sandbox: Any, devhost: Any, admin: httpx.Client) -> None:
    connect_github(admin, github_sandbox)
    response = httpx.post(_hook(devhost), content=AT_LIMIT, headers=_signed(github_sandbox, AT_LIMIT), timeout=30)
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("body", BAD_BODIES, ids=lambda b: repr(b[:12]))
def test_admin_bodies_with_hostile_json_get_400_and_leave_no_trace(
    body: bytes, github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    connect_github(admin, github_sandbox)
    before = _state(hub)
    for method, path in (
        ("POST", "/integrations"),
        ("PUT", "/integrations/gh-1/credential"),
        ("POST", "/integrations/gh-1/sync"),
        ("POST", "/integrations/gh-1/changes"),
    ):
        response = admin.request(method, path, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, (method, path, response.text)
        assert response.json()["error"] == "invalid_json", response.text
    assert _state(hub) == before


def test_valid_json_with_hostile_strings_never_500s(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    """Strings that are valid JSON but odd (NUL, huge, RTL, astral) are 4xx with a bounded echo."""
    connect_github(admin, github_sandbox)
    odd = ["\x00", "x" * 200_000, "\u202e\u0000\U0001f600", "a/b?c#d", "tenant-a\n"]
    for value in odd:
        for body in (
            {"id": value, "provider": "github", "display_name": "x", "config": {"owner": "o", "repo": "r"}},
            {"provider": value, "display_name": value},
            {value: value},
        ):
            response = admin.post("/integrations", json=body)
            assert 400 <= response.status_code < 500, response.text
            assert len(response.content) < 10_000
        assert admin.post("/integrations/gh-1/sync", json={"stream": value}).status_code in (400, 404)
        assert admin.put("/integrations/gh-1/credential", json={"webhook_secret": 1, value: 2}).status_code == 400


@pytest.mark.parametrize(
    "tenant",
    ["tenant-a\n", "tenant-a\r\n", " tenant-a", "tenant-a ", "-a", "a" * 129, "ten/ant", "\u00e9", "tenant-a\x00"],
)
def test_tenant_is_validated_with_a_full_match(tenant: str, devhost: Any) -> None:
    url = f"{devhost.base_url}/api/manage/integrations"
    response = httpx.get(url, params={"tenant": tenant})
    assert response.status_code == 400, response.text
    assert "tenant" in response.json()["message"]


@pytest.mark.parametrize("limit", ["\u00b2", "\u0661\u0662", "0", "1001", "-1", "1.5", "10\n", " 5", "", "1e3"])
def test_limit_must_be_ascii_digits_in_range(
    limit: str, github_sandbox: Any, devhost: Any, admin: httpx.Client
) -> None:
    connect_github(admin, github_sandbox)
    response = admin.get("/integrations/gh-1/runs", params={"limit": limit})
    assert response.status_code == 400, response.text
    assert "limit" in response.json()["message"]


@pytest.mark.parametrize("segment", ["%ED%A0%80", "%FF", "%00", "a%0A", "%E2%80%AE", "x" * 300])
def test_odd_path_segments_are_404_not_500(
    segment: str, github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    connect_github(admin, github_sandbox)
    before = _state(hub)
    base = devhost.base_url
    for method, url in (
        ("GET", f"{base}/api/manage/integrations/{segment}"),
        ("GET", f"{base}/api/manage/integrations/{segment}/runs"),
        ("POST", f"{base}/api/manage/integrations/{segment}/sync"),
        ("POST", f"{base}/api/webhooks/github/{segment}"),
        ("POST", f"{base}/api/webhooks/{segment}/gh-1"),
    ):
        response = httpx.request(method, url, headers={"x-tenant-id": TENANT}, content=b"{}")
        assert response.status_code == 404, (method, url, response.text)
    assert _state(hub) == before


def test_route_paths_with_a_trailing_newline_are_not_routes(devhost: Any, admin: httpx.Client) -> None:
    assert admin.get("/integrations%0A").status_code == 404
