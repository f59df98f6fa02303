"""Tests of the Slack sandbox over real loopback HTTP: Web API, OAuth rotation, limits, faults, Events API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.server import Request, Response, SandboxServer, json_response
from sandbox.slack import SlackSandbox
from sandbox.slack_store import SlackError, SlackWorkspace, decode_cursor, normalize_ts

TOKEN = "xoxb-sandbox-token"
ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    """A settable clock so limits and expiry are tested without sleeping."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def sb() -> Iterator[SlackSandbox]:
    with SlackSandbox(users=23, channels=4, messages_per_channel=37, rate_window_seconds=60,
                      rate_limits={"users.list": 1000, "conversations.history": 1000, "conversations.list": 1000},
                      post_interval_seconds=0) as sandbox:
        yield sandbox


@pytest.fixture
def api(sb: SlackSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sb.base_url}/api", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as c:
        yield c


def walk(api: httpx.Client, method: str, key: str, **params: Any) -> tuple[list[dict[str, Any]], list[dict]]:
    """Follow response_metadata.next_cursor until it is empty or missing."""
    items: list[dict[str, Any]] = []
    bodies: list[dict] = []
    cursor = ""
    while True:
        body = api.get(f"/{method}", params=params | ({"cursor": cursor} if cursor else {})).json()
        assert body["ok"], body
        bodies.append(body)
        items += body[key]
        cursor = body.get("response_metadata", {}).get("next_cursor", "")
        if not cursor:
            return items, bodies
        assert len(bodies) < 500, "pagination does not end"


class Receiver(SandboxServer):
    """Records deliveries; ``behave`` decides each answer."""

    def __init__(self, behave: Callable[[Request, int], Response] | None = None) -> None:
        super().__init__()
        self.received: list[Request] = []
        self.behave = behave or (lambda request, n: json_response(200, {"ok": True}))
        self.route("POST", "/events", self._hook)

    def _hook(self, request: Request) -> Response:
        self.received.append(request)
        return self.behave(request, len(self.received))


def verify_slack(secret: str, request: Request, now: float | None = None) -> bool:
    """Independent check of Slack's v0 signing scheme (as python-slack-sdk's SignatureVerifier does)."""
    stamp = request.headers["x-slack-request-timestamp"]
    if abs((now or time.time()) - int(stamp)) > 300:
        return False
    base = f"v0:{stamp}:".encode() + request.body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request.headers["x-slack-signature"])


# -- Web API: paging, delta, writes -------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 7, 200])
def test_users_list_pages_cover_everyone_once(sb: SlackSandbox, api: httpx.Client, limit: int) -> None:
    members, bodies = walk(api, "users.list", "members", limit=limit)
    ids = [m["id"] for m in members]
    assert len(ids) == len(set(ids)) == 24  # 23 members + the bot user
    assert ids == [u["id"] for u in sb.workspace.users]
    assert bodies[-1]["response_metadata"]["next_cursor"] == ""
    assert len(bodies) == -(-24 // limit)
    first = bodies[0]["response_metadata"]["next_cursor"] if len(bodies) > 1 else ""
    if first:
        assert base64.b64decode(first).decode().startswith("user:U")
    human = next(m for m in members if not m["is_bot"])
    assert human["profile"]["email"].endswith("@acme.example") and human["real_name"] == human["profile"]["real_name"]
    assert {"id", "team_id", "name", "deleted", "tz", "updated"} <= set(human)


def test_users_list_without_limit_sends_all_or_asks_for_a_limit(sb: SlackSandbox, api: httpx.Client) -> None:
    everyone = api.get("/users.list").json()
    assert len(everyone["members"]) == 24 and everyone["response_metadata"]["next_cursor"] == ""
    sb.workspace.seed(users=1000)
    assert api.get("/users.list").json() == {"ok": False, "error": "limit_required"}
    assert len(api.get("/users.list", params={"limit": 5000}).json()["members"]) == 1000


def test_conversations_list_types_archived_and_short_pages(sb: SlackSandbox, api: httpx.Client) -> None:
    private = sb.create_channel("secret-plans", is_private=True)
    archived = sb.archive_channel(sb.workspace.channels[1]["id"])
    public, bodies = walk(api, "conversations.list", "channels", limit=2)
    assert [c["id"] for c in public] == [c["id"] for c in sb.workspace.channels if not c["is_private"]]
    assert [len(b["channels"]) for b in bodies] == [2, 2, 0]  # filtered pages may be short or empty, like Slack's
    both, _ = walk(api, "conversations.list", "channels", limit=3, types="public_channel,private_channel",
                   exclude_archived="true")
    assert private["id"] in {c["id"] for c in both} and archived["id"] not in {c["id"] for c in both}
    assert private["id"].startswith("G") and public[0]["id"].startswith("C")
    assert api.get("/conversations.list", params={"types": "bogus"}).json() == {"ok": False, "error": "invalid_types"}
    assert api.get("/conversations.list", params={"cursor": "not-a-cursor"}).json()["error"] == "invalid_cursor"


@pytest.mark.parametrize("limit", [1, 10, 999])
def test_history_is_newest_first_and_covers_each_message_once(sb: SlackSandbox, api: httpx.Client,
                                                               limit: int) -> None:
    channel = sb.workspace.channels[0]["id"]
    messages, bodies = walk(api, "conversations.history", "messages", channel=channel, limit=limit)
    stamps = [m["ts"] for m in messages]
    assert stamps == sorted(stamps, reverse=True)
    assert len(stamps) == len(set(stamps)) == 37
    assert bodies[-1]["has_more"] is False and "response_metadata" not in bodies[-1]
    assert all(b["has_more"] for b in bodies[:-1])
    assert {"type", "user", "text", "ts", "team"} <= set(messages[0])
    threaded = [m for m in messages if "reply_count" in m]
    for parent in threaded:
        assert parent["thread_ts"] == parent["ts"] and parent["reply_count"] >= 1


def test_history_delta_with_oldest_latest_inclusive(sb: SlackSandbox, api: httpx.Client) -> None:
    channel = sb.workspace.channels[2]["id"]
    everything = [m["ts"] for m in sb.workspace.messages(channel)]
    watermark = everything[29]
    newer, _ = walk(api, "conversations.history", "messages", channel=channel, oldest=watermark, limit=3)
    assert [m["ts"] for m in newer] == everything[30:][::-1]  # oldest is exclusive
    inclusive, _ = walk(api, "conversations.history", "messages", channel=channel, oldest=watermark, inclusive=1)
    assert [m["ts"] for m in inclusive][-1] == watermark
    window = api.get("/conversations.history", params={"channel": channel, "oldest": everything[9],
                                                       "latest": everything[12]}).json()
    assert [m["ts"] for m in window["messages"]] == [everything[11], everything[10]]
    posted = sb.post_message(channel, "fresh news", sb.workspace.users[3]["id"])
    delta = api.get("/conversations.history", params={"channel": channel, "oldest": everything[-1]}).json()
    assert [m["ts"] for m in delta["messages"]] == [posted["ts"]] and delta["has_more"] is False
    bad = api.get("/conversations.history", params={"channel": channel, "oldest": "yesterday"}).json()
    assert bad == {"ok": False, "error": "invalid_ts_oldest"}


def test_deleted_message_leaves_history_and_replies_page(sb: SlackSandbox, api: httpx.Client) -> None:
    channel = sb.workspace.channels[0]["id"]
    victim = sb.workspace.messages(channel)[5]["ts"]
    sb.delete_message(channel, victim)
    stamps = [m["ts"] for m in walk(api, "conversations.history", "messages", channel=channel, limit=4)[0]]
    assert victim not in stamps and len(stamps) == 36
    parent = sb.post_message(channel, "thread root", sb.workspace.users[2]["id"])
    replies = [sb.post_message(channel, f"reply {n}", thread_ts=parent["ts"])["ts"] for n in range(5)]
    thread, _ = walk(api, "conversations.replies", "messages", channel=channel, ts=parent["ts"], limit=2)
    assert [m["ts"] for m in thread] == [parent["ts"], *replies]
    assert all(m["thread_ts"] == parent["ts"] for m in thread)
    assert api.get("/conversations.replies", params={"channel": channel, "ts": "1.000001"}).json()["error"] == (
        "thread_not_found")


def test_post_update_delete_messages(sb: SlackSandbox, api: httpx.Client) -> None:
    channel = sb.workspace.channels[1]["id"]
    posted = api.post("/chat.postMessage", json={"channel": channel, "text": "Deploy done"}).json()
    assert posted["ok"] and posted["channel"] == channel and posted["message"]["ts"] == posted["ts"]
    assert posted["message"]["bot_id"] == sb.workspace.bot_id and posted["message"]["text"] == "Deploy done"
    by_name = api.post("/chat.postMessage", data={"channel": "#" + sb.workspace.channels[1]["name"], "text": "x"})
    assert by_name.json()["channel"] == channel
    updated = api.post("/chat.update", json={"channel": channel, "ts": posted["ts"], "text": "Deploy rolled back"})
    body = updated.json()
    assert body["ok"] and body["ts"] == posted["ts"] and body["text"] == "Deploy rolled back"
    assert body["message"]["edited"]["user"] == sb.workspace.bot_user_id
    assert sb.workspace.messages(channel)[-2]["text"] == "Deploy rolled back"
    human = sb.workspace.messages(channel)[0]["ts"]
    assert api.post("/chat.update", json={"channel": channel, "ts": human, "text": "x"}).json()["error"] == (
        "cant_update_message")
    assert api.post("/chat.delete", json={"channel": channel, "ts": posted["ts"]}).json()["ok"]
    assert api.post("/chat.update", json={"channel": channel, "ts": posted["ts"], "text": "y"}).json()["error"] == (
        "message_not_found")
    for payload, error in [({"channel": "C000", "text": "x"}, "channel_not_found"), ({"channel": channel}, "no_text"),
                           ({"channel": channel, "text": "r", "thread_ts": "1.2"}, "thread_not_found")]:
        assert api.post("/chat.postMessage", json=payload).json() == {"ok": False, "error": error}
    sb.archive_channel(channel)
    assert api.post("/chat.postMessage", json={"channel": channel, "text": "x"}).json()["error"] == "is_archived"


def test_auth_errors_come_in_200_bodies(sb: SlackSandbox, api: httpx.Client) -> None:
    url = f"{sb.base_url}/api/users.list"
    assert httpx.get(url).json() == {"ok": False, "error": "not_authed"}
    wrong = httpx.get(url, headers={"Authorization": "Bearer xoxb-nope"})
    assert wrong.status_code == 200 and wrong.json() == {"ok": False, "error": "invalid_auth"}
    assert httpx.post(url, data={"token": TOKEN}).json()["ok"]  # the token may also be a form argument
    assert api.get("/auth.test").json()["user_id"] == sb.workspace.bot_user_id
    assert api.post("/auth.revoke", data={"test": "true"}).json() == {"ok": True, "revoked": False}
    assert api.post("/auth.revoke").json() == {"ok": True, "revoked": True}
    assert api.get("/users.list").json() == {"ok": False, "error": "token_revoked"}
    assert httpx.get(f"{sb.base_url}/api/no.such").json()["error"] == "unknown_method"
    broken = httpx.post(f"{sb.base_url}/api/auth.test", content=b"{nope", headers={"Content-Type": "application/json"})
    assert broken.json() == {"ok": False, "error": "invalid_json"}


# -- OAuth with token rotation ---------------------------------------------------------------------------


def _authorize(sb: SlackSandbox, **extra: str) -> dict[str, list[str]]:
    params = {"client_id": "1234567890.0987654321", "scope": "channels:history,chat:write",
              "redirect_uri": "https://hub.example/api/oauth/callback", "state": "st-1"} | extra
    response = httpx.get(f"{sb.base_url}/oauth/v2/authorize", params=params)
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == params["redirect_uri"]
    return parse_qs(location.query)


def test_oauth_code_exchange_and_rotating_refresh() -> None:
    clock = FakeClock()
    with SlackSandbox(users=2, clock=clock) as sb, httpx.Client(base_url=f"{sb.base_url}/api") as http:
        query = _authorize(sb)
        assert query["state"] == ["st-1"]
        basic = httpx.BasicAuth("1234567890.0987654321", "slack-client-secret")
        form = {"code": query["code"][0], "redirect_uri": "https://hub.example/api/oauth/callback"}
        granted = http.post("/oauth.v2.access", data=form, auth=basic).json()
        assert granted["ok"] and granted["token_type"] == "bot" and granted["expires_in"] == 43200
        assert granted["access_token"].startswith("xoxe.xoxb-1-") and granted["refresh_token"].startswith("xoxe-1-")
        assert granted["team"]["id"] == sb.workspace.team_id and granted["bot_user_id"] == sb.workspace.bot_user_id
        assert http.post("/oauth.v2.access", data=form, auth=basic).json() == {"ok": False, "error": "invalid_code"}
        bearer = {"Authorization": f"Bearer {granted['access_token']}"}
        assert http.get("/auth.test", headers=bearer).json()["ok"]
        clock.value += 43200
        assert http.get("/auth.test", headers=bearer).json() == {"ok": False, "error": "token_expired"}
        creds = {"client_id": "1234567890.0987654321", "client_secret": "slack-client-secret"}
        refresh = creds | {"grant_type": "refresh_token", "refresh_token": granted["refresh_token"]}
        rotated = http.post("/oauth.v2.access", data=refresh).json()
        assert rotated["ok"] and rotated["refresh_token"] != granted["refresh_token"]
        assert rotated["expires_in"] == 43200 and rotated["access_token"] != granted["access_token"]
        assert http.get("/auth.test", headers={"Authorization": f"Bearer {rotated['access_token']}"}).json()["ok"]
        reused = http.post("/oauth.v2.access", data=refresh)
        assert reused.status_code == 200 and reused.json() == {"ok": False, "error": "invalid_refresh_token"}
        assert sb.oauth.refresh_calls == 2 and sb.oauth.refresh_successes == 1
        assert sb.oauth.revoke_refresh_token(rotated["refresh_token"])
        revoked = http.post("/oauth.v2.access", data=refresh | {"refresh_token": rotated["refresh_token"]}).json()
        assert revoked["error"] == "invalid_refresh_token"
        assert http.get("/auth.test", headers={"Authorization": f"Bearer {rotated['access_token']}"}).json() == {
            "ok": False, "error": "token_revoked"}


def test_oauth_errors_pkce_denial_and_user_tokens(sb: SlackSandbox) -> None:
    access = f"{sb.base_url}/api/oauth.v2.access"
    code = _authorize(sb)["code"][0]
    good = {"client_id": "1234567890.0987654321", "client_secret": "slack-client-secret", "code": code}
    assert httpx.post(access, data=good | {"client_secret": "nope"}).json()["error"] == "bad_client_secret"
    assert httpx.post(access, data=good | {"client_id": "1.2"}).json()["error"] == "invalid_client_id"
    assert httpx.post(access, data=good | {"grant_type": "password"}).json()["error"] == "invalid_grant_type"
    assert httpx.post(access, data=good | {"redirect_uri": "https://evil.example"}).json()["error"] == (
        "bad_redirect_uri")
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    pkce_code = _authorize(sb, code_challenge=challenge, code_challenge_method="S256", user_scope="search:read")
    pkce = good | {"code": pkce_code["code"][0]}
    assert httpx.post(access, data=pkce | {"code_verifier": "wrong"}).json()["error"] == "invalid_code_verifier"
    pkce_code = _authorize(sb, code_challenge=challenge, code_challenge_method="S256", user_scope="search:read")
    granted = httpx.post(access, data=good | {"code": pkce_code["code"][0], "code_verifier": verifier}).json()
    assert granted["authed_user"]["token_type"] == "user" and granted["authed_user"]["access_token"].startswith(
        "xoxe.xoxp-")
    sb.oauth.deny_next()
    assert _authorize(sb) == {"error": ["access_denied"], "state": ["st-1"]}
    assert httpx.get(f"{sb.base_url}/oauth/v2/authorize", params={"client_id": "x"}).status_code == 400


def test_concurrent_refreshes_of_one_token_let_exactly_one_win(sb: SlackSandbox) -> None:
    issued = sb.oauth.issue(rotating=True)
    sb.oauth.refresh_latency_seconds = 0.05
    form = {"client_id": "1234567890.0987654321", "client_secret": "slack-client-secret",
            "grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(
        httpx.post(f"{sb.base_url}/api/oauth.v2.access", data=form, timeout=10).json())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r["ok"] for r in results) == 1 and sb.oauth.refresh_calls == 8
    assert {r.get("error") for r in results if not r["ok"]} == {"invalid_refresh_token"}


# -- rate limits and faults ------------------------------------------------------------------------------


def test_tiered_limits_and_per_channel_post_limit() -> None:
    clock = FakeClock()
    with SlackSandbox(users=3, channels=2, clock=clock, rate_limits={"users.list": 2}) as sb, httpx.Client(
            base_url=f"{sb.base_url}/api", headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        assert [http.get("/users.list").status_code for _ in range(2)] == [200, 200]
        clock.value += 15
        limited = http.get("/users.list")
        assert limited.status_code == 429 and limited.headers["retry-after"] == "45"
        assert limited.json() == {"ok": False, "error": "ratelimited"}
        assert http.get("/conversations.list").status_code == 200  # another method has its own bucket
        clock.value += 45
        assert http.get("/users.list").status_code == 200
        first, second = (c["id"] for c in sb.workspace.channels)
        assert http.post("/chat.postMessage", json={"channel": first, "text": "a"}).json()["ok"]
        again = http.post("/chat.postMessage", json={"channel": first, "text": "b"})
        assert again.status_code == 429 and again.headers["retry-after"] == "1"
        assert http.post("/chat.postMessage", json={"channel": second, "text": "c"}).json()["ok"]
        clock.value += 1
        assert http.post("/chat.postMessage", json={"channel": first, "text": "b"}).json()["ok"]
        assert sb.limiter.limits["conversations.history"] == 50  # tier 3 by default


def test_injected_faults(sb: SlackSandbox, api: httpx.Client) -> None:
    sb.inject("ratelimited", method="users.list", retry_after=7)
    limited = api.get("/users.list")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    sb.inject("error", error="internal_error")
    assert api.get("/auth.test").json() == {"ok": False, "error": "internal_error"}
    sb.inject("status", status=503, times=2)
    assert [api.get("/auth.test").status_code for _ in range(3)] == [503, 503, 200]
    sb.inject("truncate", method="users.list")
    with pytest.raises(json.JSONDecodeError):
        json.loads(api.get("/users.list").content)
    sb.inject("malformed")
    with pytest.raises(json.JSONDecodeError):
        json.loads(api.get("/auth.test").content)
    sb.inject("error", method="conversations.history", skip=2, error="fatal_error")
    channel = sb.workspace.channels[0]["id"]
    errors = [api.get("/conversations.history", params={"channel": channel}).json().get("error") for _ in range(3)]
    assert errors == [None, None, "fatal_error"]


def test_repeated_cursor_and_revoke_faults(sb: SlackSandbox, api: httpx.Client) -> None:
    sb.inject("repeat_cursor", method="users.list")
    first = api.get("/users.list", params={"limit": 5}).json()  # no cursor yet, so the fault waits
    cursor = first["response_metadata"]["next_cursor"]
    second = api.get("/users.list", params={"limit": 5, "cursor": cursor}).json()
    assert second["response_metadata"]["next_cursor"] == cursor
    sb.inject("revoke", method="conversations.list", skip=1)
    assert api.get("/conversations.list").json()["ok"]
    assert api.get("/conversations.list").json() == {"ok": False, "error": "token_revoked"}
    assert api.get("/auth.test").json()["error"] == "token_revoked"


def test_timeout_fault_makes_the_client_give_up(sb: SlackSandbox) -> None:
    sb.inject("timeout", seconds=3)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{sb.base_url}/api/auth.test", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=0.3)
    assert httpx.get(f"{sb.base_url}/api/auth.test", headers={"Authorization": f"Bearer {TOKEN}"}).json()["ok"]


def test_page_cost_does_not_grow_with_dataset() -> None:
    touched = {}
    for size in (100, 3000):
        with SlackSandbox(users=size, channels=1, messages_per_channel=size, rate_limits={
                "users.list": 10**6, "conversations.history": 10**6}) as sb, httpx.Client(
                base_url=f"{sb.base_url}/api", headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            channel = sb.workspace.channels[0]["id"]
            middle = sb.workspace.messages(channel)[size // 2]["ts"]
            cursor = http.get("/users.list", params={"limit": 50}).json()["response_metadata"]["next_cursor"]
            http.get("/users.list", params={"limit": 20, "cursor": cursor})
            http.get("/conversations.history", params={"channel": channel, "limit": 20, "latest": middle})
            http.get("/conversations.history", params={"channel": channel, "limit": 20, "oldest": middle})
            touched[size] = [c.touched for c in sb.request_log]
    assert touched[100] == touched[3000] == [50, 20, 20, 20]


def test_ids_are_deterministic_per_seed() -> None:
    a, b, c = SlackSandbox(users=5, channels=2, seed=7), SlackSandbox(users=5, channels=2, seed=7), SlackSandbox(
        users=5, channels=2, seed=8)
    assert [u["id"] for u in a.workspace.users] == [u["id"] for u in b.workspace.users]
    assert [ch["id"] for ch in a.workspace.channels] == [ch["id"] for ch in b.workspace.channels]
    assert [u["id"] for u in a.workspace.users] != [u["id"] for u in c.workspace.users]


# -- Events API -------------------------------------------------------------------------------------------


def test_url_verification_is_signed_and_checks_the_echo(sb: SlackSandbox) -> None:
    echo = Receiver(lambda request, n: Response(200, {"Content-Type": "text/plain"},
                                                request.json()["challenge"].encode()))
    with echo, Receiver() as silent:
        response, verified = sb.events.url_verification(f"{echo.base_url}/events", challenge="ch-123")
        assert verified and response.text == "ch-123"
        assert sb.events.url_verification(f"{silent.base_url}/events")[1] is False
        request = echo.received[0]
    assert verify_slack("slack-signing-secret", request)
    assert request.json() == {"token": "slack-verification-token", "challenge": "ch-123", "type": "url_verification"}


def test_changes_deliver_signed_event_callbacks(sb: SlackSandbox) -> None:
    channel = sb.workspace.channels[0]["id"]
    first_ts = sb.workspace.messages(channel)[0]["ts"]
    with Receiver() as receiver:
        sb.events.url = f"{receiver.base_url}/events"
        posted = sb.post_message(channel, "hello")
        sb.edit_message(channel, posted["ts"], "hello, edited")
        sb.delete_message(channel, first_ts)
        created = sb.create_channel("incidents")
        attempts = sb.flush_events()
        assert [a.status for a in attempts] == [200] * 4 and sb.events.pending == []
        requests = list(receiver.received)
    bodies = [r.json() for r in requests]
    assert all(verify_slack("slack-signing-secret", r) for r in requests)
    assert all(r.headers["user-agent"].startswith("Slackbot 1.0") and "x-slack-retry-num" not in r.headers
               for r in requests)
    for body in bodies:
        assert body["type"] == "event_callback" and body["team_id"] == sb.workspace.team_id
        assert body["api_app_id"] == sb.workspace.app_id and body["event_id"].startswith("Ev")
        assert isinstance(body["event_time"], int) and body["authorizations"][0]["team_id"] == sb.workspace.team_id
    assert len({b["event_id"] for b in bodies}) == 4
    message, changed, deleted, channel_created = (b["event"] for b in bodies)
    assert message["type"] == "message" and message["ts"] == posted["ts"] and message["channel"] == channel
    assert changed["subtype"] == "message_changed" and changed["message"]["text"] == "hello, edited"
    assert changed["previous_message"]["text"] == "hello" and changed["message"]["ts"] == posted["ts"]
    assert deleted["subtype"] == "message_deleted" and deleted["deleted_ts"] == first_ts
    assert channel_created == {"type": "channel_created", "channel": {
        "id": created["id"], "name": "incidents", "created": created["created"], "creator": sb.workspace.bot_user_id,
        "is_channel": True}, "event_ts": channel_created["event_ts"]}


def test_failed_delivery_is_retried_with_the_same_event_id(sb: SlackSandbox) -> None:
    failing_twice = Receiver(lambda request, n: json_response(500 if n <= 2 else 200, {}))
    with failing_twice:
        sb.post_message(sb.workspace.channels[0]["id"], "retry me")
        attempts = sb.flush_events(f"{failing_twice.base_url}/events")
        requests = list(failing_twice.received)
    assert [(a.retry_num, a.status) for a in attempts] == [(0, 500), (1, 500), (2, 200)]
    assert len({r.json()["event_id"] for r in requests}) == 1
    assert [r.headers.get("x-slack-retry-num") for r in requests] == [None, "1", "2"]
    assert [r.headers.get("x-slack-retry-reason") for r in requests] == [None, "http_error", "http_error"]
    assert all(verify_slack("slack-signing-secret", r) for r in requests)
    no_retry = Receiver(lambda request, n: Response(500, {"X-Slack-No-Retry": "1"}, b""))
    with no_retry:
        sb.post_message(sb.workspace.channels[0]["id"], "give up")
        assert len(sb.flush_events(f"{no_retry.base_url}/events")) == 1


def test_slow_receiver_gets_http_timeout_retries(sb: SlackSandbox) -> None:
    release = threading.Event()

    def slow_first(request: Request, n: int) -> Response:
        if n == 1:
            release.wait(2)
        return json_response(200, {})

    with Receiver(slow_first) as receiver:
        sb.events.timeout_seconds = 0.3
        sb.post_message(sb.workspace.channels[0]["id"], "slow")
        attempts = sb.flush_events(f"{receiver.base_url}/events")
        release.set()
        assert [(a.retry_num, a.status, a.reason) for a in attempts] == [(0, 0, "http_timeout"), (1, 200, "")]
        retry = receiver.received[-1]
    assert retry.headers["x-slack-retry-reason"] == "http_timeout"


def test_stale_and_forged_deliveries_can_be_produced(sb: SlackSandbox) -> None:
    with Receiver() as receiver:
        url = f"{receiver.base_url}/events"
        envelope = sb.events.envelope({"type": "message", "channel": "C1", "text": "x", "ts": "1.000001"})
        sb.events.post(envelope, url, timestamp=int(time.time()) - 301)
        sb.events.post(envelope, url, secret="wrong-secret")
        sb.events.redeliver(envelope, 3, "http_timeout", url)
        stale, forged, redelivered = receiver.received
    assert not verify_slack("slack-signing-secret", stale) and not verify_slack("slack-signing-secret", forged)
    assert verify_slack("slack-signing-secret", redelivered) and redelivered.headers["x-slack-retry-num"] == "3"
    assert redelivered.json()["event_id"] == envelope["event_id"]


def test_auto_delivery_sends_events_as_they_happen() -> None:
    with Receiver() as receiver, SlackSandbox(channels=1, events_url=f"{receiver.base_url}/events",
                                              auto_deliver_events=True) as sb:
        sb.post_message(sb.workspace.channels[0]["id"], "live")
        deadline = time.monotonic() + 10
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert receiver.received[0].json()["event"]["text"] == "live"


# -- control API over HTTP --------------------------------------------------------------------------------


def test_control_api(sb: SlackSandbox, api: httpx.Client) -> None:
    ctl = httpx.Client(base_url=f"{sb.base_url}/_sandbox")
    user = ctl.post("/users", json={"real_name": "New Person", "email": "new@acme.example"})
    assert user.status_code == 201 and user.json()["profile"]["email"] == "new@acme.example"
    changed = ctl.post(f"/users/{user.json()['id']}", json={"deleted": True}).json()
    assert changed["deleted"] is True
    assert ctl.post(f"/users/{user.json()['id']}", json={"shoe_size": 9}).status_code == 422
    channel = ctl.post("/channels", json={"name": "ctl-made"}).json()
    assert ctl.post("/channels", json={"name": "ctl-made"}).json()["error"] == "name_taken"
    message = ctl.post("/messages", json={"channel": channel["id"], "text": "from control"}).json()
    assert ctl.post(f"/messages/{channel['id']}/{message['ts']}", json={"text": "edited"}).json()["text"] == "edited"
    assert ctl.get(f"/messages/{channel['id']}").json()[0]["text"] == "edited"
    assert ctl.delete(f"/messages/{channel['id']}/{message['ts']}").status_code == 204
    assert ctl.delete(f"/messages/{channel['id']}/{message['ts']}").status_code == 404
    assert ctl.delete(f"/channels/{channel['id']}").status_code == 204
    assert api.get("/conversations.info", params={"channel": channel["id"]}).json()["error"] == "channel_not_found"
    assert ctl.post("/faults", json={"kind": "error", "error": "fatal_error"}).status_code == 201
    assert ctl.post("/faults", json={"kind": "nope"}).status_code == 422
    assert api.get("/auth.test").json()["error"] == "fatal_error"
    many = ctl.post("/tokens", json={"rotating": True, "count": 3}).json()
    assert len({t["refresh_token"] for t in many}) == 3
    assert ctl.post("/tokens", json={"count": 0}).status_code == 422
    issued = ctl.post("/tokens", json={"rotating": True}).json()
    assert issued["refresh_token"].startswith("xoxe-1-")
    assert ctl.post("/tokens/revoke", json={"token": issued["access_token"]}).json() == {"revoked": 1}
    config = ctl.post("/config", json={"rate_limits": {"auth.test": 1}, "reset_rate_limits": True}).json()
    assert config["calls"]["auth.test"] == 1
    assert [api.get("/auth.test").status_code for _ in range(2)] == [200, 429]
    assert ctl.post("/config", json={"bogus": 1}).status_code == 422
    stats = ctl.get("/stats").json()
    assert stats["records"]["users"] == 25 and stats["pending_events"] == 7
    log = ctl.get("/requests", params={"since": 1}).json()
    assert log[0]["method"] == "auth.test" and log[0]["error"] == "fatal_error"
    with Receiver() as receiver:
        url = f"{receiver.base_url}/events"
        sent = ctl.post("/events/send", json={"url": url, "event": {"type": "app_mention", "text": "hi"},
                                              "event_id": "Ev1", "retry_num": 1}).json()
        assert sent["status"] == 200 and receiver.received[0].headers["x-slack-retry-num"] == "1"
        assert [a["status"] for a in ctl.post("/events/flush", json={"url": url}).json()] == [200] * 7
    ctl.close()


def test_cli_runs_until_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.slack", "--port", "0", "--users", "4"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        members = httpx.get(f"{base_url}/api/users.list", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert len(members["members"]) == 5
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- properties of the parsers and the paging (hypothesis) ---------------------------------------------------


@given(st.text(max_size=40))
def test_cursor_and_ts_parsers_reject_anything_odd_with_a_slack_error(text: str) -> None:
    for parse in (lambda: decode_cursor(text, "user"), lambda: normalize_ts(text)):
        try:
            parse()
        except SlackError:
            pass


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["post", "edit", "delete", "reply"]), st.integers(0, 10**6)),
                max_size=40), st.integers(1, 7), st.integers(0, 60))
def test_history_pages_cover_the_live_timeline_exactly_once(ops: list[tuple[str, int]], limit: int,
                                                            oldest_index: int) -> None:
    ws = SlackWorkspace(seed=3)
    channel = ws.create_channel("prop")[0]["id"]
    for op, n in ops:
        timeline = ws.messages(channel)
        if op == "post" or not timeline:
            ws.post_message(channel, f"m{n}")
        elif op == "edit":
            ws.edit_message(channel, timeline[n % len(timeline)]["ts"], f"e{n}")
        elif op == "delete":
            ws.delete_message(channel, timeline[n % len(timeline)]["ts"])
        else:
            ws.post_message(channel, "r", thread_ts=timeline[n % len(timeline)]["ts"])
    live = [m["ts"] for m in ws.messages(channel)]
    oldest = live[oldest_index] if oldest_index < len(live) else None
    seen, cursor = [], None
    for _ in range(200):
        page, more, cursor = ws.history(channel, cursor=cursor, limit=limit, oldest=oldest, latest=None,
                                        inclusive=False)
        assert len(page) <= limit
        seen += [m["ts"] for m in page]
        if not more:
            break
    expected = [ts for ts in live if oldest is None or ts > oldest][::-1]
    assert seen == expected


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cursor=st.text(max_size=20), oldest=st.text(max_size=12), limit=st.text(max_size=5))
def test_odd_history_arguments_get_ok_false_never_a_5xx(sb: SlackSandbox, api: httpx.Client, cursor: str,
                                                        oldest: str, limit: str) -> None:
    channel = sb.workspace.channels[0]["id"]
    response = api.post("/conversations.history", data={"channel": channel, "cursor": cursor, "oldest": oldest,
                                                        "limit": limit})
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] or body["error"] in {"invalid_cursor", "invalid_ts_oldest", "invalid_arguments"}
