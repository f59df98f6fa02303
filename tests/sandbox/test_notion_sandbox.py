"""Tests of the Notion sandbox over real loopback HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.notion import NotionSandbox
from sandbox.notion_props import NotionError, compile_filter, parse_properties
from sandbox.notion_webhooks import MAX_ATTEMPTS
from sandbox.server import Request, Response, SandboxServer, json_response

TOKEN = "secret_notion_sandbox_token"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Notion-Version": "2022-06-28"}
ROOT = Path(__file__).resolve().parents[2]
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z$")


@pytest.fixture
def notion() -> Iterator[NotionSandbox]:
    with NotionSandbox(pages=53, databases=("Tasks", "Projects"), requests_per_second=None) as sandbox:
        yield sandbox


@pytest.fixture
def client(notion: NotionSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=notion.base_url, headers=HEADERS, timeout=10) as c:
        yield c


def walk(client: httpx.Client, db: str, body: dict[str, Any] | None = None) -> tuple[list[dict], list[dict]]:
    """Query a database following next_cursor until has_more is false; returns (pages, bodies)."""
    bodies: list[dict] = []
    cursor = None
    while True:
        answer = client.post(f"/v1/databases/{db}/query", json=(body or {}) | ({"start_cursor": cursor} if cursor
                                                                                 else {}))
        assert answer.status_code == 200, answer.text
        bodies.append(answer.json())
        if not bodies[-1]["has_more"]:
            assert bodies[-1]["next_cursor"] is None
            break
        cursor = bodies[-1]["next_cursor"]
        assert len(bodies) < 100, "pagination does not end"
    return [p for b in bodies for p in b["results"]], bodies


class Receiver(SandboxServer):
    """A webhook receiver that records requests and answers a configurable status."""

    def __init__(self, status: int = 200) -> None:
        super().__init__()
        self.status, self.received = status, []
        self.route("POST", "/hook", self._hook)

    def _hook(self, request: Request) -> Response:
        self.received.append(request)
        return json_response(self.status, {})


def basic(client_id: str = "notion-client-id", secret: str = "notion-client-secret") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def authorize(notion: NotionSandbox) -> str:
    answer = httpx.get(f"{notion.base_url}/v1/oauth/authorize", params={
        "client_id": "notion-client-id", "response_type": "code", "owner": "user",
        "redirect_uri": "http://127.0.0.1:7071/api/oauth/callback", "state": "xyz"})
    assert answer.status_code == 302
    params = parse_qs(urlsplit(answer.headers["location"]).query)
    assert params["state"] == ["xyz"]
    return params["code"][0]


# -- OAuth ----------------------------------------------------------------------------------------------


def test_oauth_code_exchange_and_rotating_refresh(notion: NotionSandbox) -> None:
    token_url = f"{notion.base_url}/v1/oauth/token"
    code = authorize(notion)
    tokens = httpx.post(token_url, headers=basic(), json={
        "grant_type": "authorization_code", "code": code, "redirect_uri": "http://127.0.0.1:7071/api/oauth/callback"})
    assert tokens.status_code == 200, tokens.text
    first = tokens.json()
    assert first["token_type"] == "bearer" and first["expires_in"] == 3600
    assert first["workspace_id"] == notion.workspace.workspace_id and first["bot_id"] == notion.workspace.bot_id
    assert first["owner"]["type"] == "user" and first["refresh_token"]
    api = httpx.get(f"{notion.base_url}/v1/users/me",
                    headers={"Authorization": f"Bearer {first['access_token']}", "Notion-Version": "2022-06-28"})
    assert api.json()["type"] == "bot"
    second = httpx.post(token_url, headers=basic(), json={"grant_type": "refresh_token",
                                                          "refresh_token": first["refresh_token"]}).json()
    assert second["refresh_token"] != first["refresh_token"]
    reused = httpx.post(token_url, headers=basic(), json={"grant_type": "refresh_token",
                                                          "refresh_token": first["refresh_token"]})
    assert reused.status_code == 400
    error = reused.json()
    assert error["object"] == "error" and error["status"] == 400 and error["code"] == "invalid_grant"
    assert "already been used" in error["message"]
    assert notion.oauth.refresh_calls == 2
    bad_client = httpx.post(token_url, headers=basic(secret="wrong"), json={"grant_type": "refresh_token"})
    assert bad_client.status_code == 401 and bad_client.json()["code"] == "unauthorized"
    reused_code = httpx.post(token_url, headers=basic(), json={"grant_type": "authorization_code", "code": code,
                                                               "redirect_uri": "http://127.0.0.1:7071/api/oauth/callback"})
    assert reused_code.json()["code"] == "invalid_grant"


def test_revoke_and_introspect(notion: NotionSandbox) -> None:
    grant = notion.oauth.issue("notion-client-id")
    headers = {"Authorization": f"Bearer {grant.access_token}", "Notion-Version": "2022-06-28"}
    introspect = httpx.post(f"{notion.base_url}/v1/oauth/introspect", headers=basic(),
                            json={"token": grant.access_token})
    assert introspect.json()["active"] is True
    assert httpx.post(f"{notion.base_url}/v1/oauth/revoke", headers=basic(),
                      json={"token": grant.refresh_token}).status_code == 200
    assert httpx.get(f"{notion.base_url}/v1/users/me", headers=headers).status_code == 401
    refused = httpx.post(f"{notion.base_url}/v1/oauth/token", headers=basic(),
                         json={"grant_type": "refresh_token", "refresh_token": grant.refresh_token})
    assert refused.json()["code"] == "invalid_grant"
    assert httpx.post(f"{notion.base_url}/v1/oauth/introspect", headers=basic(),
                      json={"token": grant.access_token}).json()["active"] is False


def test_non_expiring_tokens_have_null_refresh_token() -> None:
    with NotionSandbox(expiring_tokens=False) as notion:
        code = authorize(notion)
        tokens = httpx.post(f"{notion.base_url}/v1/oauth/token", headers=basic(), json={
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": "http://127.0.0.1:7071/api/oauth/callback"}).json()
        assert tokens["refresh_token"] is None and "expires_in" not in tokens
        notion.deny_authorizations = True
        denied = httpx.get(f"{notion.base_url}/v1/oauth/authorize", params={
            "client_id": "notion-client-id", "response_type": "code", "redirect_uri": "http://cb.test/", "state": "s"})
        assert parse_qs(urlsplit(denied.headers["location"]).query) == {"error": ["access_denied"], "state": ["s"]}


def test_expired_access_token_then_refresh(notion: NotionSandbox) -> None:
    grant = notion.oauth.issue("notion-client-id")
    notion.expire_access_tokens()
    headers = {"Authorization": f"Bearer {grant.access_token}", "Notion-Version": "2022-06-28"}
    assert httpx.get(f"{notion.base_url}/v1/users/me", headers=headers).status_code == 401
    fresh = httpx.post(f"{notion.base_url}/v1/oauth/token", headers=basic(),
                       json={"grant_type": "refresh_token", "refresh_token": grant.refresh_token}).json()
    headers["Authorization"] = f"Bearer {fresh['access_token']}"
    assert httpx.get(f"{notion.base_url}/v1/users/me", headers=headers).status_code == 200


# -- headers and auth -------------------------------------------------------------------------------------


def test_version_header_and_token_are_required(notion: NotionSandbox) -> None:
    url = f"{notion.base_url}/v1/databases/{notion.database_ids[0]}/query"
    missing = httpx.post(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert missing.status_code == 400 and missing.json()["code"] == "missing_version"
    assert missing.json()["object"] == "error" and missing.json()["request_id"]
    wrong = httpx.post(url, headers={"Authorization": f"Bearer {TOKEN}", "Notion-Version": "2099-01-01"})
    assert wrong.status_code == 400 and wrong.json()["code"] == "validation_error"
    unauthorized = httpx.post(url, headers={"Authorization": "Bearer nope", "Notion-Version": "2022-06-28"})
    assert unauthorized.status_code == 401 and unauthorized.json()["code"] == "unauthorized"
    notion.revoke_all_tokens()
    assert httpx.post(url, headers=HEADERS).status_code == 401


# -- queries ---------------------------------------------------------------------------------------------


def test_query_pages_cover_every_page_once(notion: NotionSandbox, client: httpx.Client) -> None:
    db = notion.database_ids[0]
    pages, bodies = walk(client, db, {"page_size": 10})
    ids = [p["id"] for p in pages]
    assert len(ids) == len(set(ids)) == 53 and set(ids) == {p["id"] for p in notion.pages(db)}
    assert [len(b["results"]) for b in bodies] == [10] * 5 + [3]
    first = bodies[0]
    assert first["object"] == "list" and first["type"] == "page_or_database" and first["page_or_database"] == {}
    assert first["next_cursor"] == pages[10]["id"]  # Notion's cursor is the next page's id
    default = client.post(f"/v1/databases/{db}/query").json()
    assert len(default["results"]) == 53 and default["has_more"] is False
    too_big = client.post(f"/v1/databases/{db}/query", json={"page_size": 101})
    assert too_big.status_code == 400 and too_big.json()["code"] == "validation_error"
    assert client.post(f"/v1/databases/{db}/query", json={"bogus": 1}).json()["code"] == "validation_error"
    assert client.post(f"/v1/databases/{db}/query", content=b"{nope").json()["code"] == "invalid_json"
    assert client.post(f"/v1/databases/{db}/query", json={"start_cursor": "abc"}).status_code == 400
    assert client.post("/v1/databases/not-a-uuid/query").status_code in (400, 404)


def test_page_object_shape(notion: NotionSandbox, client: httpx.Client) -> None:
    page = client.post(f"/v1/databases/{notion.database_ids[0]}/query", json={"page_size": 1}).json()["results"][0]
    assert page["object"] == "page" and STAMP.match(page["last_edited_time"]) and STAMP.match(page["created_time"])
    assert page["parent"] == {"type": "database_id", "database_id": notion.database_ids[0]}
    assert page["in_trash"] is False and page["archived"] is False
    assert page["url"].endswith(page["id"].replace("-", ""))
    props = page["properties"]
    assert {name: p["type"] for name, p in props.items()} == {
        "Name": "title", "Notes": "rich_text", "Assignee": "people", "Due": "date", "Priority": "select",
        "Status": "status"}
    assert props["Name"]["id"] == "title" and props["Name"]["title"][0]["plain_text"]
    assert props["Name"]["title"][0]["text"]["content"] == props["Name"]["title"][0]["plain_text"]
    assert props["Assignee"]["people"][0]["object"] == "user"
    assert set(props["Status"]["status"]) == {"id", "name", "color"}
    assert props["Due"]["date"] is None or set(props["Due"]["date"]) == {"start", "end", "time_zone"}
    db = client.get(f"/v1/databases/{notion.database_ids[0]}").json()
    assert db["object"] == "database" and db["properties"]["Status"]["status"]["options"]


def test_delta_filter_on_last_edited_time(notion: NotionSandbox, client: httpx.Client) -> None:
    db = notion.database_ids[0]
    sort = [{"timestamp": "last_edited_time", "direction": "ascending"}]
    everything, _ = walk(client, db, {"sorts": sort, "page_size": 20})
    stamps = [p["last_edited_time"] for p in everything]
    assert stamps == sorted(stamps)
    watermark = stamps[-1]
    changed = [notion.update_page(p["id"], Status="Done")["id"] for p in everything[:3]]
    on_or_after = {"timestamp": "last_edited_time", "last_edited_time": {"on_or_after": watermark}}
    delta, _ = walk(client, db, {"filter": on_or_after, "sorts": sort, "page_size": 2})
    delta_ids = [p["id"] for p in delta]
    assert set(changed) <= set(delta_ids)
    assert all(p["last_edited_time"] >= watermark for p in delta)
    expected = {p["id"] for p in notion.pages(db) if p["last_edited_time"] >= watermark}
    assert set(delta_ids) == expected and len(delta_ids) == len(expected)
    after = {"timestamp": "last_edited_time", "last_edited_time": {"after": delta[-1]["last_edited_time"]}}
    assert walk(client, db, {"filter": after})[0] == []
    descending = walk(client, db, {"sorts": [{"timestamp": "last_edited_time", "direction": "descending"}],
                                   "page_size": 7})[0]
    newest_first = [p["last_edited_time"] for p in descending]
    assert newest_first == sorted(newest_first, reverse=True)
    assert len(newest_first) == 53 and len({p["id"] for p in descending}) == 53
    both = {"and": [on_or_after, {"timestamp": "last_edited_time", "last_edited_time": {"before": "2999-01-01"}}]}
    assert {p["id"] for p in walk(client, db, {"filter": both})[0]} == expected


def test_minute_granularity_needs_on_or_after() -> None:
    with NotionSandbox(pages=5, requests_per_second=None) as notion, httpx.Client(
            base_url=notion.base_url, headers=HEADERS) as c:
        db, pages = notion.database_ids[0], notion.pages()
        assert len({p["last_edited_time"] for p in pages}) == 1  # 1 s clock steps, minute-rounded timestamps
        watermark = pages[-1]["last_edited_time"]
        notion.update_page(pages[0]["id"], Notes="edited in the same minute")
        flt = {"timestamp": "last_edited_time", "last_edited_time": {"after": watermark}}
        assert c.post(f"/v1/databases/{db}/query", json={"filter": flt}).json()["results"] == []
        flt = {"timestamp": "last_edited_time", "last_edited_time": {"on_or_after": watermark}}
        assert len(c.post(f"/v1/databases/{db}/query", json={"filter": flt}).json()["results"]) == 5


def test_property_filters_and_sorts_scan(notion: NotionSandbox, client: httpx.Client) -> None:
    db = notion.database_ids[0]
    done = {p["id"] for p in notion.pages(db) if p["properties"]["Status"]["status"]["name"] == "Done"}
    got = walk(client, db, {"filter": {"property": "Status", "status": {"equals": "Done"}}, "page_size": 5})[0]
    assert {p["id"] for p in got} == done
    either = {"or": [{"property": "Status", "status": {"equals": "Done"}},
                     {"property": "Priority", "select": {"equals": "High"}}]}
    high = {p["id"] for p in notion.pages(db) if (p["properties"]["Priority"]["select"] or {}).get("name") == "High"}
    assert {p["id"] for p in walk(client, db, {"filter": either})[0]} == done | high
    by_name = walk(client, db, {"sorts": [{"property": "Name", "direction": "ascending"}], "page_size": 9})[0]
    names = [p["properties"]["Name"]["title"][0]["plain_text"] for p in by_name]
    assert names == sorted(names) and len(by_name) == 53
    unknown = client.post(f"/v1/databases/{db}/query", json={"filter": {"property": "Nope", "status": {}}})
    assert unknown.status_code == 400


def test_trash_restore_and_patch(notion: NotionSandbox, client: httpx.Client) -> None:
    db = notion.database_ids[0]
    victim = notion.pages(db)[4]["id"]
    trashed = client.patch(f"/v1/pages/{victim}", json={"in_trash": True})
    assert trashed.status_code == 200 and trashed.json()["in_trash"] is True
    assert victim not in {p["id"] for p in walk(client, db)[0]}
    assert client.get(f"/v1/pages/{victim}").json()["in_trash"] is True
    locked = client.patch(f"/v1/pages/{victim}", json={"properties": {"Notes": {"rich_text": []}}})
    assert locked.status_code == 400 and "archived" in locked.json()["message"]
    assert client.patch(f"/v1/pages/{victim}", json={"archived": False}).json()["in_trash"] is False
    assert victim in {p["id"] for p in walk(client, db)[0]}
    user = notion.workspace.users[1]["id"]
    patched = client.patch(f"/v1/pages/{victim}", json={"properties": {
        "Name": {"title": [{"type": "text", "text": {"content": "Renamed"}}]}, "Notes": {"rich_text": []},
        "Assignee": {"people": [{"object": "user", "id": user}]}, "Due": {"date": {"start": "2024-05-01"}},
        "Priority": {"select": {"name": "Urgent"}}, "Status": {"status": {"name": "In progress"}}}}).json()
    props = patched["properties"]
    assert props["Name"]["title"][0]["plain_text"] == "Renamed" and props["Notes"]["rich_text"] == []
    assert props["Assignee"]["people"][0]["id"] == user and props["Due"]["date"]["start"] == "2024-05-01"
    assert props["Priority"]["select"]["name"] == "Urgent" and props["Status"]["status"]["name"] == "In progress"
    before = client.get(f"/v1/pages/{victim}").json()
    partial = client.patch(f"/v1/pages/{victim}", json={"properties": {
        "Name": {"title": [{"text": {"content": "Should not stick"}}]}, "Status": {"status": {"name": "Nope"}}}})
    assert partial.status_code == 400 and partial.json()["code"] == "validation_error"
    assert client.get(f"/v1/pages/{victim}").json() == before  # nothing partial
    assert client.patch(f"/v1/pages/{victim}", json={"properties": {"Name": {"rich_text": []}}}).status_code == 400
    missing = client.get("/v1/pages/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and missing.json()["code"] == "object_not_found"
    created = client.post("/v1/pages", json={"parent": {"database_id": db},
                                             "properties": {"Name": {"title": [{"text": {"content": "New"}}]}}})
    assert created.status_code == 200 and created.json()["properties"]["Status"]["status"]["name"] == "Not started"


def test_search_discovers_databases(notion: NotionSandbox, client: httpx.Client) -> None:
    found = client.post("/v1/search", json={"filter": {"property": "object", "value": "database"}}).json()
    assert [d["title"][0]["plain_text"] for d in found["results"]] == ["Tasks", "Projects"]
    assert {d["id"] for d in found["results"]} == set(notion.database_ids)
    notion.trash_database(notion.database_ids[1])
    after = client.post("/v1/search", json={"filter": {"property": "object", "value": "database"}}).json()
    assert len(after["results"]) == 1
    gone = client.post(f"/v1/databases/{notion.database_ids[1]}/query")
    assert gone.status_code == 404 and gone.json()["code"] == "object_not_found"
    paged = client.post("/v1/search", json={"query": "", "page_size": 30}).json()
    assert paged["has_more"] is True and len(paged["results"]) == 30


# -- limits and faults -------------------------------------------------------------------------------------


def test_rate_limit_per_connection() -> None:
    with NotionSandbox(pages=2, requests_per_second=0.5, burst=2) as notion:
        other = notion.oauth.issue("notion-client-id")
        url = f"{notion.base_url}/v1/users/me"
        statuses = [httpx.get(url, headers=HEADERS) for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        limited = statuses[-1]
        assert limited.json()["code"] == "rate_limited" and limited.headers["retry-after"].isdigit()
        assert int(limited.headers["retry-after"]) >= 1
        other_headers = {"Authorization": f"Bearer {other.access_token}", "Notion-Version": "2022-06-28"}
        assert httpx.get(url, headers=other_headers).status_code == 200  # a separate connection has its own budget
        notion.exhaust_rate_limit()
        assert httpx.get(url, headers=other_headers).status_code == 429


def test_injected_faults(notion: NotionSandbox, client: httpx.Client) -> None:
    db = notion.database_ids[0]
    notion.fail_next(529)
    notion.fail_next(429, retry_after=7)
    notion.fail_next(503)
    overload = client.post(f"/v1/databases/{db}/query")
    assert overload.status_code == 529 and overload.json()["code"] == "service_overload"
    limited = client.post(f"/v1/databases/{db}/query")
    assert limited.json()["code"] == "rate_limited" and limited.headers["retry-after"] == "7"
    assert client.post(f"/v1/databases/{db}/query").json()["code"] == "service_unavailable"
    notion.inject("timeout", seconds=0.5)
    with pytest.raises(httpx.ReadTimeout):
        client.post(f"/v1/databases/{db}/query", timeout=0.1)
    notion.inject("truncate")
    notion.inject("malformed")
    for _ in range(2):
        with pytest.raises(json.JSONDecodeError):
            json.loads(client.post(f"/v1/databases/{db}/query").content)
    assert client.post(f"/v1/databases/{db}/query").status_code == 200
    notion.fail_next(500)
    token = httpx.post(f"{notion.base_url}/v1/oauth/token", headers=basic(), json={"grant_type": "x"})
    assert token.status_code == 400  # OAuth endpoints are outside the default fault scope
    assert client.get("/v1/users/me").status_code == 500


def test_repeated_and_expired_cursor(notion: NotionSandbox, client: httpx.Client) -> None:
    db = notion.database_ids[0]
    first = client.post(f"/v1/databases/{db}/query", json={"page_size": 10}).json()
    notion.repeat_next_cursor()
    second = client.post(f"/v1/databases/{db}/query", json={"page_size": 10, "start_cursor": first["next_cursor"]})
    assert second.json()["next_cursor"] == first["next_cursor"]
    notion.expire_cursors()
    expired = client.post(f"/v1/databases/{db}/query", json={"page_size": 10, "start_cursor": first["next_cursor"]})
    assert expired.status_code == 400 and expired.json()["code"] == "validation_error"


@pytest.mark.parametrize("body", [
    {}, {"sorts": [{"timestamp": "last_edited_time", "direction": "descending"}]},
    {"filter": {"timestamp": "last_edited_time", "last_edited_time": {"on_or_after": "2000-01-01"}},
     "sorts": [{"timestamp": "last_edited_time", "direction": "ascending"}]},
    {"filter": {"timestamp": "created_time", "created_time": {"after": "2000-01-01T00:00:00Z"}}},
])
def test_page_cost_does_not_grow_with_the_dataset(body: dict[str, Any]) -> None:
    costs = []
    for count in (150, 3000):
        with NotionSandbox(pages=count, requests_per_second=None) as notion, httpx.Client(
                base_url=notion.base_url, headers=HEADERS) as c:
            db = notion.database_ids[0]
            before = notion.touched
            first = c.post(f"/v1/databases/{db}/query", json=body | {"page_size": 20}).json()
            middle = notion.touched
            c.post(f"/v1/databases/{db}/query", json=body | {"page_size": 20, "start_cursor": first["next_cursor"]})
            costs.append((middle - before, notion.touched - middle))
    assert costs[0] == costs[1] == (20, 20)


# -- webhooks -----------------------------------------------------------------------------------------------


def expected_signature(token: str, body: bytes) -> str:
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("signed", [False, True])
def test_subscription_verification_request(notion: NotionSandbox, signed: bool) -> None:
    with Receiver() as receiver:
        subscription, answer = notion.create_subscription(f"{receiver.base_url}/hook", signed=signed)
        request = receiver.received[0]
    assert answer.status_code == 200
    assert json.loads(request.body) == {"verification_token": subscription.verification_token}
    assert subscription.verification_token.startswith("secret_")
    if signed:
        assert request.headers["x-notion-signature"] == expected_signature(subscription.verification_token,
                                                                            request.body)
    else:
        assert "x-notion-signature" not in request.headers


def test_change_events_are_signed_and_shaped(notion: NotionSandbox) -> None:
    db = notion.database_ids[0]
    with Receiver() as receiver:
        subscription, _ = notion.create_subscription(f"{receiver.base_url}/hook")
        page = notion.pages(db)[0]["id"]
        notion.update_page(page, Notes="changed for the webhook")
        notion.edit_page_content(page)
        created = notion.create_page(db, Name="Fresh")["id"]
        notion.trash_page(created)
        outcomes = notion.deliver_events(subscription)
        requests = receiver.received[1:]
    assert [status for _, status in outcomes] == [200] * 4
    events = [json.loads(r.body) for r in requests]
    assert [e["type"] for e in events] == ["page.properties_updated", "page.content_updated", "page.created",
                                           "page.deleted"]
    for request, event in zip(requests, events, strict=True):
        assert hmac.compare_digest(request.headers["x-notion-signature"],
                                   expected_signature(subscription.verification_token, request.body))
        assert event["subscription_id"] == subscription.subscription_id
        assert event["workspace_id"] == notion.workspace.workspace_id
        assert event["integration_id"] == notion.workspace.integration_id
        assert event["attempt_number"] == 1 and event["authors"][0]["type"] == "person"
        assert re.match(r"^[0-9a-f-]{36}$", event["id"]) and event["timestamp"].endswith("Z")
        assert event["data"]["parent"] == {"id": db, "type": "database"}
    assert events[0]["entity"] == {"id": page, "type": "page"}
    assert events[0]["data"]["updated_properties"] == [notion.workspace.databases[db]["schema"]["Notes"]["id"]]
    assert events[1]["data"]["updated_blocks"][0]["type"] == "block"
    assert len({e["id"] for e in events}) == 4
    assert notion.deliver_events(subscription) == []


def test_failed_deliveries_are_retried_with_the_same_id(notion: NotionSandbox) -> None:
    with Receiver(status=500) as receiver:
        subscription, _ = notion.create_subscription(f"{receiver.base_url}/hook")
        notion.update_page(notion.pages()[0]["id"], Notes="x")
        first = notion.deliver_events(subscription)
        receiver.status = 200
        second = notion.deliver_events(subscription)
    assert first[0][1] == 500 and second[0][1] == 200
    assert second[0][0]["id"] == first[0][0]["id"] and second[0][0]["attempt_number"] == 2
    assert subscription.retry == []
    with Receiver(status=503) as receiver:
        subscription, _ = notion.create_subscription(f"{receiver.base_url}/hook")
        notion.update_page(notion.pages()[1]["id"], Notes="y")
        for _ in range(MAX_ATTEMPTS):
            notion.deliver_events(subscription)
    assert len(subscription.dropped) == 1 and subscription.retry == []


def test_send_event_with_overridden_signature(notion: NotionSandbox) -> None:
    with Receiver() as receiver:
        subscription, _ = notion.create_subscription(f"{receiver.base_url}/hook")
        event = notion.build_event(subscription, "database.schema_updated", notion.database_ids[0], "database",
                                   {"parent": {"id": notion.workspace.workspace_id, "type": "space"},
                                    "updated_properties": [{"id": "title", "name": "Name", "action": "updated"}]})
        notion.send_event(subscription, event, headers_override={"X-Notion-Signature": "sha256=" + "0" * 64})
        request = receiver.received[1]
    assert request.headers["x-notion-signature"] != expected_signature(subscription.verification_token, request.body)
    assert json.loads(request.body)["entity"]["type"] == "database"


# -- parsers, control API, determinism, CLI ----------------------------------------------------------------

KEYS = st.sampled_from([
    "timestamp", "last_edited_time", "created_time", "property", "status", "select", "title", "and", "or",
    "on_or_after", "after", "equals", "name", "Status", "Name", "contains", "people", "date", "rich_text", "id",
    "properties", "in_trash", "sorts", "sort", "filter", "value", "direction", "start_cursor", "page_size", "parent",
    "database_id", "grant_type", "refresh_token", "token", "query", "start"])
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
                    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_filter_and_property_parsers_only_raise_validation_errors(value: Any) -> None:
    notion = NotionSandbox()
    db = notion.workspace.databases[notion.database_ids[0]]
    for parse in (lambda v: compile_filter(v, db["schema"], notion.workspace.public_time),
                  lambda v: parse_properties(v, db["schema"])):
        try:
            result = parse(value)
        except NotionError as exc:
            assert exc.status == 400
        else:
            if callable(result):
                page = next(iter(notion.workspace.pages.values()), None)
                if page is not None:
                    result(page)


def test_control_api(notion: NotionSandbox, client: httpx.Client) -> None:
    with httpx.Client(base_url=f"{notion.base_url}/_sandbox") as ctl:
        made = ctl.post("/pages", json={"Name": "From control", "Status": "Done"})
        assert made.status_code == 201
        page = made.json()["id"]
        assert ctl.post(f"/pages/{page}", json={"Notes": "n"}).json()["properties"]["Notes"]["rich_text"]
        assert ctl.post(f"/pages/{page}", json={"in_trash": True}).json()["in_trash"] is True
        assert ctl.post(f"/pages/{page}", json={"Status": "Bogus"}).status_code == 400
        assert ctl.post("/pages/00000000-0000-4000-8000-000000000000", json={}).status_code == 404
        assert ctl.post("/databases", json={"title": "Docs"}).json()["object"] == "database"
        assert ctl.post("/seed", json={"pages": 3}).json()["pages"] == 53 * 2 + 3
        ctl.post("/faults", json={"kind": "status", "status": 529})
        assert client.get("/v1/users/me").status_code == 529
        ctl.post("/config", json={"requests_per_second": 0.5, "burst": 1})
        assert [client.get("/v1/users/me").status_code for _ in range(2)] == [200, 429]
        ctl.post("/config", json={"requests_per_second": None})
        with Receiver() as receiver:
            sub = ctl.post("/webhooks/subscriptions", json={"url": f"{receiver.base_url}/hook"}).json()
            assert sub["status"] == 200 and sub["verification_token"].startswith("secret_")
            notion.update_page(notion.pages()[0]["id"], Notes="for the webhook")
            delivered = ctl.post("/webhooks/deliver", json={"subscription_id": sub["subscription_id"]}).json()
            assert [d[0] for d in delivered["delivered"]] == ["page.properties_updated"]
        stats = ctl.get("/stats").json()
        assert stats["request_count"] == 3 and stats["metrics"]["rate_limited"] == 1


def test_ids_are_deterministic_per_seed() -> None:
    one, two, other = NotionSandbox(pages=3, seed=5), NotionSandbox(pages=3, seed=5), NotionSandbox(pages=3)
    assert [p["id"] for p in one.pages()] == [p["id"] for p in two.pages()] != [p["id"] for p in other.pages()]
    assert one.database_ids == two.database_ids


def test_cli_runs_until_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.notion", "--pages", "4"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        found = httpx.post(f"{base_url}/v1/search", headers=HEADERS,
                           json={"filter": {"property": "object", "value": "database"}}).json()
        db = found["results"][0]["id"]
        assert len(httpx.post(f"{base_url}/v1/databases/{db}/query", headers=HEADERS).json()["results"]) == 4
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_racing_refreshes_of_one_rotating_token_yield_one_winner(notion: NotionSandbox) -> None:
    grant = notion.oauth.issue("notion-client-id")
    url = f"{notion.base_url}/v1/oauth/token"

    def refresh(_: int) -> int:
        return httpx.post(url, headers=basic(), json={"grant_type": "refresh_token",
                                                      "refresh_token": grant.refresh_token}).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(refresh, range(20)))
    assert sorted(statuses) == [200] + [400] * 19
    assert notion.oauth.counters["refresh"] == 20 and notion.oauth.counters["refresh_ok"] == 1


def test_a_client_that_gives_up_leaves_no_server_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    with NotionSandbox(pages=300, requests_per_second=None) as notion:
        db = notion.database_ids[0]
        for _ in range(3):
            notion.inject("timeout", seconds=0.2)
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(f"{notion.base_url}/v1/databases/{db}/query", headers=HEADERS, timeout=0.02)
        time.sleep(0.5)  # let the server finish writing to the closed sockets
    assert "Traceback" not in capfd.readouterr().err


@pytest.fixture(scope="module")
def fuzz_target() -> Iterator[tuple[NotionSandbox, httpx.Client]]:
    with NotionSandbox(pages=5, requests_per_second=None) as notion, httpx.Client(
            base_url=notion.base_url, timeout=10) as http:
        yield notion, http


ROUTE_KEYS = {
    "query": ["filter", "sorts", "start_cursor", "page_size"], "search": ["query", "filter", "sort", "start_cursor",
                                                                          "page_size"],
    "patch": ["properties", "in_trash", "archived"], "create": ["parent", "properties"],
    "token": ["grant_type", "code", "refresh_token", "redirect_uri"], "revoke": ["token"],
    "ctl_page": ["Name", "Notes", "Assignee", "Due", "Priority", "Status", "in_trash"],
}


@settings(max_examples=500, deadline=None)
@given(data=st.data(), route=st.sampled_from(sorted(ROUTE_KEYS)))
def test_bad_bodies_get_4xx_never_5xx(fuzz_target: tuple[NotionSandbox, httpx.Client], data: st.DataObject,
                                      route: str) -> None:
    notion, http = fuzz_target
    body = data.draw(st.one_of(JSON, st.dictionaries(st.sampled_from(ROUTE_KEYS[route]), JSON, max_size=3)))
    db, page = notion.database_ids[0], next(iter(notion.workspace.pages))
    method, path, headers = {
        "query": ("POST", f"/v1/databases/{db}/query", HEADERS), "search": ("POST", "/v1/search", HEADERS),
        "patch": ("PATCH", f"/v1/pages/{page}", HEADERS), "create": ("POST", "/v1/pages", HEADERS),
        "token": ("POST", "/v1/oauth/token", basic()), "revoke": ("POST", "/v1/oauth/revoke", basic()),
        "ctl_page": ("POST", f"/_sandbox/pages/{page}", {}),
    }[route]
    answer = http.request(method, path, headers=headers, content=json.dumps(body))
    assert answer.status_code < 500, answer.text


def test_rate_settings_are_validated(notion: NotionSandbox, client: httpx.Client) -> None:
    with pytest.raises(ValueError, match="requests_per_second"):
        NotionSandbox(requests_per_second=0)
    for bad in ({"requests_per_second": 0}, {"requests_per_second": "fast"}, {"burst": 0}):
        answer = httpx.post(f"{notion.base_url}/_sandbox/config", json=bad)
        assert answer.status_code == 400, bad
    assert client.get("/v1/users/me").status_code == 200


def test_token_control_endpoints(notion: NotionSandbox) -> None:
    with httpx.Client(base_url=f"{notion.base_url}/_sandbox") as ctl:
        tokens = ctl.post("/tokens", json={"count": 3}).json()
        assert len(tokens) == 3 and tokens[0]["expires_in"] == 3600 and tokens[0]["refresh_token"]
        headers = {"Authorization": f"Bearer {tokens[0]['access_token']}", "Notion-Version": "2022-06-28"}
        assert httpx.get(f"{notion.base_url}/v1/users/me", headers=headers).status_code == 200
        ctl.post("/tokens/revoke", json={"all": True})
        assert httpx.get(f"{notion.base_url}/v1/users/me", headers=headers).status_code == 401


@pytest.mark.parametrize(
    "values", [{"Assignee": [[1]]}, {"Assignee": [{"id": 1}]}, {"in_trash": "yes"}, {"in_trash": 0}]
)
def test_a_rejected_edit_leaves_the_page_queryable(notion: NotionSandbox, client: httpx.Client,
                                                   values: dict[str, Any]) -> None:
    """An edit that fails validation in any way (an unhashable assignee raised TypeError, not a
    Notion error) must leave the page in the query indexes; a later edit used to answer 500."""
    page = notion.pages()[0]["id"]
    assert httpx.post(f"{notion.base_url}/_sandbox/pages/{page}", json=values).status_code == 400
    assert httpx.post(f"{notion.base_url}/_sandbox/pages/{page}", json={"Notes": "fine"}).status_code == 200
    assert client.patch(f"/v1/pages/{page}", json={"in_trash": True}).status_code == 200
    assert len(walk(client, notion.database_ids[0])[0]) == 52
