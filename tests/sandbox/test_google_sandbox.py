"""Tests of the Google sandbox over real loopback HTTP: Drive, Calendar, OAuth, faults, channels, Pub/Sub push."""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.google import GoogleSandbox
from sandbox.google_common import ChangeLog, GoogleError, apply_fields, parse_fields
from sandbox.server import Request, Response, SandboxServer, json_response

TOKEN = "ya29.sandbox-token"
EVENTS = "/calendar/v3/calendars/primary/events"
CLIENT = ("sandbox-client.apps.googleusercontent.com", "google-client-secret")
ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    """A settable clock so expiry and quotas are tested without sleeping."""

    def __init__(self, start: float | None = None) -> None:
        self.value = time.time() if start is None else start

    def __call__(self) -> float:
        return self.value


class Receiver(SandboxServer):
    """Records deliveries; ``behave`` decides each answer."""

    def __init__(self, behave: Callable[[Request, int], Response] | None = None) -> None:
        super().__init__()
        self.received: list[Request] = []
        self.behave = behave or (lambda request, n: Response(200))
        self.route("POST", "/push", self._hook)

    def _hook(self, request: Request) -> Response:
        self.received.append(request)
        return self.behave(request, len(self.received))


@pytest.fixture
def g() -> Iterator[GoogleSandbox]:
    with GoogleSandbox(files=41, events=33) as sandbox:
        yield sandbox


@pytest.fixture
def api(g: GoogleSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=g.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
        yield client


def drive_changes(api: httpx.Client, token: str, **params: Any) -> tuple[list[dict], str, int]:
    """Follow nextPageToken until newStartPageToken appears: (changes, newStartPageToken, pages)."""
    changes: list[dict] = []
    pages = 0
    while True:
        body = api.get("/drive/v3/changes", params={"pageToken": token} | params).json()
        pages += 1
        changes += body["changes"]
        if "newStartPageToken" in body:
            assert "nextPageToken" not in body
            return changes, body["newStartPageToken"], pages
        token = body["nextPageToken"]
        assert pages < 500, "pagination does not end"


def calendar_walk(api: httpx.Client, **params: Any) -> tuple[list[dict], str, list[dict]]:
    """Follow nextPageToken until nextSyncToken appears: (items, nextSyncToken, bodies)."""
    items: list[dict] = []
    bodies: list[dict] = []
    page_token = None
    while True:
        response = api.get(EVENTS, params=params | ({"pageToken": page_token} if page_token else {}))
        assert response.status_code == 200, response.text
        body = response.json()
        bodies.append(body)
        items += body["items"]
        if "nextSyncToken" in body:
            assert "nextPageToken" not in body
            return items, body["nextSyncToken"], bodies
        assert "nextSyncToken" not in body
        page_token = body["nextPageToken"]
        assert len(bodies) < 500, "pagination does not end"


# -- Drive ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [1, 8, 1000])
def test_changes_cover_every_file_once_and_end_with_a_new_start_token(g: GoogleSandbox, api: httpx.Client,
                                                                      page_size: int) -> None:
    changes, new_start, pages = drive_changes(api, "1", pageSize=page_size)
    assert [c["fileId"] for c in changes] == [f["id"] for f in g.drive.files]
    assert len({c["fileId"] for c in changes}) == 41 and pages == -(-41 // page_size)
    assert new_start == api.get("/drive/v3/changes/startPageToken").json()["startPageToken"] == "42"
    assert set(changes[0]) == {"kind", "changeType", "time", "removed", "fileId", "type", "file"}
    assert set(changes[0]["file"]) == {"kind", "id", "name", "mimeType"}  # Drive v3's default fields


def test_changes_delta_with_tombstones_and_one_change_per_file(g: GoogleSandbox, api: httpx.Client) -> None:
    start = api.get("/drive/v3/changes/startPageToken").json()["startPageToken"]
    files = g.drive.files
    assert drive_changes(api, start)[0] == []
    g.update_file(files[3]["id"], name="Renamed once")
    g.update_file(files[3]["id"], name="Renamed twice")
    g.update_file(files[5]["id"], trashed=True)
    g.delete_file(files[7]["id"])
    created = g.create_file("Brand new", "application/pdf")
    fields = "newStartPageToken,nextPageToken,changes(fileId,removed,time,file(name,trashed,modifiedTime,owners))"
    changes, new_start, _ = drive_changes(api, start, pageSize=2, fields=fields)
    by_id = {c["fileId"]: c for c in changes}
    assert [c["fileId"] for c in changes] == [files[3]["id"], files[5]["id"], files[7]["id"], created["id"]]
    assert by_id[files[3]["id"]]["file"]["name"] == "Renamed twice"
    assert by_id[files[5]["id"]]["file"]["trashed"] is True and by_id[files[5]["id"]]["removed"] is False
    assert by_id[files[7]["id"]] == {"fileId": files[7]["id"], "removed": True, "time": by_id[files[7]["id"]]["time"]}
    assert by_id[created["id"]]["file"]["owners"][0]["emailAddress"] == "owner@acme.example"
    assert drive_changes(api, new_start)[0] == []
    without_removed, _, _ = drive_changes(api, start, includeRemoved="false")
    assert files[7]["id"] not in {c["fileId"] for c in without_removed}
    missing = api.get(f"/drive/v3/files/{files[7]['id']}")
    assert missing.status_code == 404 and missing.json()["error"]["errors"][0]["reason"] == "notFound"
    for params in ({}, {"pageToken": "abc"}, {"pageToken": "999"}, {"pageToken": "1", "pageSize": "0"}):
        assert api.get("/drive/v3/changes", params=params).status_code == 400


def test_files_list_get_update_delete(g: GoogleSandbox, api: httpx.Client) -> None:
    g.update_file(g.drive.files[0]["id"], trashed=True)
    listed, token = [], None
    while True:
        body = api.get("/drive/v3/files", params={"pageSize": 10, "q": "trashed = false"} | (
            {"pageToken": token} if token else {})).json()
        listed += body["files"]
        token = body.get("nextPageToken")
        if not token:
            break
    assert [f["id"] for f in listed] == [f["id"] for f in g.drive.files[1:]]
    pdfs = api.get("/drive/v3/files", params={"q": "mimeType = 'application/pdf' and trashed = false",
                                              "pageSize": 1000}).json()["files"]
    assert {f["id"] for f in pdfs} == {f["id"] for f in g.drive.files[1:] if f["mimeType"] == "application/pdf"}
    assert api.get("/drive/v3/files", params={"q": "starred = true"}).status_code == 400
    file_id = g.drive.files[2]["id"]
    got = api.get(f"/drive/v3/files/{file_id}", params={"fields": "*"}).json()
    assert {"id", "name", "mimeType", "modifiedTime", "owners", "createdTime", "version", "parents"} <= set(got)
    patched = api.patch(f"/drive/v3/files/{file_id}", json={"name": "Patched", "viewersCanCopyContent": False},
                        params={"fields": "name,version,modifiedTime"}).json()
    assert patched["name"] == "Patched" and int(patched["version"]) == int(got["version"]) + 1
    assert patched["modifiedTime"] > got["modifiedTime"]
    assert api.delete(f"/drive/v3/files/{file_id}").status_code == 204
    assert api.delete(f"/drive/v3/files/{file_id}").status_code == 404


def test_fields_selection_parser() -> None:
    schema = {"a": None, "b": {"c": None, "d": {"e": None, "f": None}}, "g": {"h": None}}
    assert parse_fields("a,b(c,d/e),g", schema) == {"a": None, "b": {"c": None, "d": {"e": None}}, "g": None}
    assert parse_fields("b/d/f", schema) == {"b": {"d": {"f": None}}}
    value = {"a": 1, "b": [{"c": 2, "d": {"e": 3, "f": 4}}, {"c": 5}], "g": {"h": 6}, "x": 7}
    assert apply_fields(value, parse_fields("b(d/f),a", schema)) == {"b": [{"d": {"f": 4}}, {}], "a": 1}
    assert apply_fields(value, parse_fields("*", schema)) == value
    for bad in ("nope", "a(", "b(c", "a,,b", "b()", "a/b"):
        with pytest.raises(Exception, match="Invalid field selection"):
            parse_fields(bad, schema)


def test_change_log_keeps_the_latest_change_per_key_and_compacts() -> None:
    log = ChangeLog()
    for n in range(3000):
        log.record(n % 10)
    entries, following, examined = log.read(1, 100)
    assert [key for _, key in entries] == list(range(10)) and following == 3001
    assert examined == len(log._numbers) <= 2 * 10 + 64  # superseded numbers were compacted away
    assert log.read(2995, 3) == ([(2995, 4), (2996, 5), (2997, 6)], 2998, 3)  # change n is key (n - 1) % 10
    below = len([n for n in log._numbers if n <= 2992])
    assert log.read(1, 100, stop=2992) == ([(2991, 0), (2992, 1)], 2993, below)


# -- Calendar -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_results", [1, 7, 2500])
def test_full_listing_then_sync_token_only_on_the_last_page(g: GoogleSandbox, api: httpx.Client,
                                                            max_results: int) -> None:
    g.delete_event(g.calendar.events[4]["id"])
    items, sync_token, bodies = calendar_walk(api, maxResults=max_results)
    assert [e["id"] for e in items] == [e["id"] for e in g.calendar.events if e["status"] != "cancelled"]
    assert len(items) == 32 and len(bodies) == -(-33 // max_results)
    assert all("nextSyncToken" not in b for b in bodies[:-1])
    event = items[0]
    assert {"id", "summary", "start", "end", "attendees", "updated", "etag", "status", "organizer"} <= set(event)
    assert api.get(EVENTS, params={"syncToken": sync_token}).json()["items"] == []
    shown, _, _ = calendar_walk(api, showDeleted="true", maxResults=10)
    assert len(shown) == 33 and shown[4]["status"] == "cancelled"


def test_sync_token_delta_includes_changes_and_cancellations(g: GoogleSandbox, api: httpx.Client) -> None:
    _, token, _ = calendar_walk(api, maxResults=50)
    ids = [e["id"] for e in g.calendar.events]
    g.patch_event(ids[2], summary="Moved")
    g.patch_event(ids[2], location="Room 2")
    g.delete_event(ids[9])
    created = g.create_event("New one", attendees=["ada@acme.example"])
    delta, next_token, bodies = calendar_walk(api, syncToken=token, maxResults=2)
    assert [e["id"] for e in delta] == [ids[2], ids[9], created["id"]] and len(bodies) == 2
    assert delta[0]["summary"] == "Moved" and delta[0]["location"] == "Room 2" and delta[0]["sequence"] == 2
    assert delta[1] == {"kind": "calendar#event", "etag": delta[1]["etag"], "id": ids[9], "status": "cancelled",
                        "updated": delta[1]["updated"]}
    assert calendar_walk(api, syncToken=next_token)[0] == []
    assert api.get(EVENTS, params={"syncToken": token, "timeMin": "2024-01-01T00:00:00Z"}).status_code == 400
    wrong_page = api.get(EVENTS, params={"syncToken": next_token, "pageToken": bodies[0]["nextPageToken"]})
    assert wrong_page.status_code == 400


def test_changes_made_while_paging_come_back_in_the_next_delta(g: GoogleSandbox, api: httpx.Client) -> None:
    first = api.get(EVENTS, params={"maxResults": 5}).json()
    early = first["items"][0]["id"]
    g.patch_event(early, summary="Changed mid-listing")
    _, token, _ = calendar_walk(api, maxResults=5, pageToken=first["nextPageToken"])
    delta = api.get(EVENTS, params={"syncToken": token}).json()["items"]
    assert [e["id"] for e in delta] == [early] and delta[0]["summary"] == "Changed mid-listing"


def test_invalidated_or_garbage_sync_token_is_410_full_sync_required(g: GoogleSandbox, api: httpx.Client) -> None:
    _, token, _ = calendar_walk(api, maxResults=100)
    g.calendar.invalidate_sync_tokens()
    gone = api.get(EVENTS, params={"syncToken": token})
    assert gone.status_code == 410
    assert gone.json() == {"error": {"code": 410, "message": "Sync token is no longer valid, a full sync is required.",
                                     "errors": [{"message": "Sync token is no longer valid, a full sync is required.",
                                                 "domain": "global", "reason": "fullSyncRequired"}]}}
    assert api.get(EVENTS, params={"syncToken": "garbage!"}).status_code == 410
    items, fresh, _ = calendar_walk(api, maxResults=100)
    assert len(items) == 33 and api.get(EVENTS, params={"syncToken": fresh}).status_code == 200


def test_patch_insert_and_delete_events(g: GoogleSandbox, api: httpx.Client) -> None:
    event = g.calendar.events[0]
    stale = event["etag"]
    patched = api.patch(f"{EVENTS}/{event['id']}", json={"summary": "Renamed", "id": "ignored", "etag": "x"},
                        headers={"If-Match": stale})
    body = patched.json()
    assert patched.status_code == 200 and body["summary"] == "Renamed" and body["id"] == event["id"]
    assert body["etag"] != stale and body["updated"] > event["updated"] and body["sequence"] == 1
    conflict = api.patch(f"{EVENTS}/{event['id']}", json={"summary": "Lost update"}, headers={"If-Match": stale})
    assert conflict.status_code == 412 and conflict.json()["error"]["errors"][0]["reason"] == "conditionNotMet"
    empty = api.patch(f"{EVENTS}/{event['id']}", json={"end": {"dateTime": "2023-01-01T00:00:00Z"}})
    assert empty.status_code == 400 and empty.json()["error"]["errors"][0]["reason"] == "timeRangeEmpty"
    new = {"id": "hubevent00001", "summary": "From hub", "start": {"dateTime": "2024-05-01T10:00:00Z"},
           "end": {"dateTime": "2024-05-01T11:00:00Z"}}
    inserted = api.post(EVENTS, json=new)
    assert inserted.status_code == 200 and inserted.json()["id"] == "hubevent00001"
    duplicate = api.post(EVENTS, json=new)
    assert duplicate.status_code == 409 and duplicate.json()["error"]["errors"][0]["reason"] == "duplicate"
    assert api.delete(f"{EVENTS}/hubevent00001").status_code == 204
    assert api.get(f"{EVENTS}/hubevent00001").json()["status"] == "cancelled"
    assert api.delete(f"{EVENTS}/hubevent00001").status_code == 410
    assert api.get("/calendar/v3/calendars/someone@else.example/events").status_code == 404
    assert api.get("/calendar/v3/calendars/owner%40acme.example/events").status_code == 200
    assert api.patch(f"{EVENTS}/nosuchevent1", json={}).status_code == 404


# -- OAuth ---------------------------------------------------------------------------------------------------


def _authorize(g: GoogleSandbox, **extra: str) -> dict[str, list[str]]:
    params = {"client_id": CLIENT[0], "redirect_uri": "https://hub.example/api/oauth/callback",
              "response_type": "code", "scope": "https://www.googleapis.com/auth/calendar", "state": "s1",
              "access_type": "offline"} | extra
    response = httpx.get(f"{g.base_url}/o/oauth2/v2/auth", params=params)
    assert response.status_code == 302
    return parse_qs(urlsplit(response.headers["location"]).query)


def test_oauth_code_exchange_refresh_without_rotation_and_revoke() -> None:
    clock = FakeClock()
    with GoogleSandbox(files=1, clock=clock) as g, httpx.Client(base_url=g.base_url) as http:
        query = _authorize(g)
        assert query["state"] == ["s1"] and query["scope"] == ["https://www.googleapis.com/auth/calendar"]
        form = {"grant_type": "authorization_code", "code": query["code"][0],
                "redirect_uri": "https://hub.example/api/oauth/callback"}
        granted = http.post("/token", data=form | {"client_id": CLIENT[0], "client_secret": CLIENT[1]}).json()
        assert granted["expires_in"] == 3599 and granted["token_type"] == "Bearer"
        assert granted["access_token"].startswith("ya29.") and granted["refresh_token"].startswith("1//0")
        assert http.post("/token", data=form, auth=CLIENT).json()["error"] == "invalid_grant"  # codes are single use
        bearer = {"Authorization": f"Bearer {granted['access_token']}"}
        assert http.get("/drive/v3/changes/startPageToken", headers=bearer).status_code == 200
        clock.value += 3600
        expired = http.get("/drive/v3/changes/startPageToken", headers=bearer)
        assert expired.status_code == 401 and expired.json()["error"]["status"] == "UNAUTHENTICATED"
        assert 'error="invalid_token"' in expired.headers["www-authenticate"]
        refresh = {"grant_type": "refresh_token", "refresh_token": granted["refresh_token"]}
        first = http.post("/token", data=refresh, auth=CLIENT).json()
        second = http.post("/token", data=refresh, auth=CLIENT).json()  # the same refresh token works again
        assert "refresh_token" not in first and first["access_token"] != second["access_token"]
        assert g.oauth.refresh_calls == 2
        assert http.post("/revoke", params={"token": second["access_token"]}).json() == {}
        dead = http.post("/token", data=refresh, auth=CLIENT)
        assert dead.status_code == 400
        assert dead.json() == {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
        assert http.post("/revoke", data={"token": granted["refresh_token"]}).json()["error"] == "invalid_token"
        idle = g.oauth.issue()
        clock.value += 183 * 86400
        stale = http.post("/token", data={"grant_type": "refresh_token", "refresh_token": idle["refresh_token"]},
                          auth=CLIENT)
        assert stale.json()["error"] == "invalid_grant"


def test_oauth_errors_pkce_and_online_access(g: GoogleSandbox) -> None:
    token_url = f"{g.base_url}/token"
    code = _authorize(g)["code"][0]
    base = {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://hub.example/api/oauth/callback"}
    bad_client = httpx.post(token_url, data=base, auth=("nope", "x"))
    assert bad_client.status_code == 401 and bad_client.json()["error"] == "invalid_client"
    assert httpx.post(token_url, data=base, auth=(CLIENT[0], "wrong")).status_code == 401
    assert httpx.post(token_url, data=base | {"grant_type": "password"}, auth=CLIENT).json()["error"] == (
        "unsupported_grant_type")
    assert httpx.post(token_url, data=base | {"redirect_uri": "https://evil.example"}, auth=CLIENT).json()[
        "error"] == "redirect_uri_mismatch"
    verifier = "k" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    pkce = _authorize(g, code_challenge=challenge, code_challenge_method="S256", access_type="online")
    wrong = httpx.post(token_url, data=base | {"code": pkce["code"][0], "code_verifier": "x"}, auth=CLIENT)
    assert wrong.status_code == 400
    pkce = _authorize(g, code_challenge=challenge, code_challenge_method="S256", access_type="online")
    online = httpx.post(token_url, data=base | {"code": pkce["code"][0], "code_verifier": verifier}, auth=CLIENT)
    assert online.status_code == 200 and "refresh_token" not in online.json()
    g.oauth.deny_next()
    assert _authorize(g) == {"error": ["access_denied"], "state": ["s1"]}
    assert httpx.get(f"{g.base_url}/o/oauth2/v2/auth", params={"client_id": "x"}).status_code == 400


# -- limits and faults -----------------------------------------------------------------------------------------


def test_quota_gives_403_user_rate_limit_until_the_window_ends() -> None:
    clock = FakeClock()
    with GoogleSandbox(files=2, clock=clock, quota_per_minute=2) as g, httpx.Client(
            base_url=g.base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        assert [http.get("/drive/v3/changes/startPageToken").status_code for _ in range(3)] == [200, 200, 403]
        limited = http.get("/drive/v3/files").json()["error"]
        assert limited["errors"][0] == {"message": "User Rate Limit Exceeded", "domain": "usageLimits",
                                        "reason": "userRateLimitExceeded"}
        assert limited["status"] == "PERMISSION_DENIED" and limited["code"] == 403
        assert http.get(EVENTS).status_code == 200  # Calendar has its own quota
        clock.value += 60
        assert http.get("/drive/v3/files").status_code == 200


def test_injected_error_faults(g: GoogleSandbox, api: httpx.Client) -> None:
    g.inject("rate_limit", reason="rateLimitExceeded", operation=r"drive\..*")
    body = api.get("/drive/v3/files").json()["error"]
    assert body["code"] == 403 and body["errors"][0]["reason"] == "rateLimitExceeded"
    g.inject("quota", retry_after=3)
    quota = api.get(EVENTS)
    assert quota.status_code == 429 and quota.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert quota.headers["retry-after"] == "3"
    g.inject("status", status=500, times=2)
    statuses = [api.get(EVENTS).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    g.inject("status", status=503, operation="oauth.token")
    assert httpx.post(f"{g.base_url}/token", data={"grant_type": "refresh_token"}).status_code == 503
    g.inject("truncate", operation="drive.changes.list")
    with pytest.raises(json.JSONDecodeError):
        json.loads(api.get("/drive/v3/changes", params={"pageToken": "1"}).content)
    g.inject("malformed")
    with pytest.raises(json.JSONDecodeError):
        json.loads(api.get("/drive/v3/files").content)
    g.inject("gone", skip=1)  # without an operation it waits for Calendar's events.list, the sync-token call
    assert api.get(EVENTS).status_code == 200
    assert api.get("/drive/v3/files").status_code == 200
    assert api.get(EVENTS).status_code == 410


def test_gone_repeat_cursor_revoke_and_timeout_faults(g: GoogleSandbox, api: httpx.Client) -> None:
    g.inject("gone", operation="calendar.events.list")
    assert api.get(EVENTS).json()["error"]["errors"][0]["reason"] == "fullSyncRequired"
    g.inject("repeat_cursor", operation="drive.changes.list")
    first = api.get("/drive/v3/changes", params={"pageToken": "1", "pageSize": 5}).json()
    assert first["nextPageToken"] == "1"
    g.inject("repeat_cursor", operation="calendar.events.list")
    page = api.get(EVENTS, params={"maxResults": 5}).json()  # no pageToken yet: the fault waits
    again = api.get(EVENTS, params={"maxResults": 5, "pageToken": page["nextPageToken"]}).json()
    assert again["nextPageToken"] == page["nextPageToken"]
    g.inject("timeout", seconds=3)
    with pytest.raises(httpx.ReadTimeout):
        api.get(EVENTS, timeout=0.3)
    g.inject("revoke", operation="drive.files.list")
    assert api.get("/drive/v3/files").status_code == 401
    assert api.get(EVENTS).status_code == 401


def test_page_cost_does_not_grow_with_dataset() -> None:
    touched = {}
    for size in (100, 3000):
        with GoogleSandbox(files=size, events=size) as g, httpx.Client(
                base_url=g.base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            middle = str(size // 2)
            http.get("/drive/v3/changes", params={"pageToken": middle, "pageSize": 20})
            files = http.get("/drive/v3/files", params={"pageSize": 20}).json()
            http.get("/drive/v3/files", params={"pageSize": 20, "pageToken": files["nextPageToken"]})
            first = http.get(EVENTS, params={"maxResults": 20}).json()
            http.get(EVENTS, params={"maxResults": 20, "pageToken": first["nextPageToken"]})
            g.calendar.invalidate_sync_tokens()
            for event_id in [e["id"] for e in g.calendar.events[:30]]:
                g.patch_event(event_id, summary="x")
            token = base64.urlsafe_b64encode(json.dumps({"s": g.calendar.changes.last - 25, "g": 1}).encode()).decode()
            http.get(EVENTS, params={"maxResults": 20, "syncToken": token})
            touched[size] = [c.touched for c in g.request_log]
    assert touched[100] == touched[3000] == [20, 20, 20, 20, 20, 20]


def test_ids_are_deterministic_per_seed() -> None:
    a, b, c = GoogleSandbox(files=3, events=3), GoogleSandbox(files=3, events=3), GoogleSandbox(files=3, events=3,
                                                                                              seed=2)
    assert [f["id"] for f in a.drive.files] == [f["id"] for f in b.drive.files] != [f["id"] for f in c.drive.files]
    assert [e["id"] for e in a.calendar.events] == [e["id"] for e in b.calendar.events]


# -- watch channels -------------------------------------------------------------------------------------------


def test_drive_and_calendar_channels_notify_with_google_headers(g: GoogleSandbox, api: httpx.Client) -> None:
    with Receiver() as receiver:
        address = f"{receiver.base_url}/push"
        start = api.get("/drive/v3/changes/startPageToken").json()["startPageToken"]
        made = api.post("/drive/v3/changes/watch", params={"pageToken": start},
                        json={"id": "chan-1", "type": "web_hook", "address": address, "token": "tok-1"})
        channel = made.json()
        assert made.status_code == 200 and channel["kind"] == "api#channel" and channel["id"] == "chan-1"
        assert channel["token"] == "tok-1" and channel["resourceUri"].endswith(f"pageToken={start}")
        assert 3590_000 <= int(channel["expiration"]) - time.time() * 1000 <= 3600_000
        file_id = g.drive.files[0]["id"]
        watched = api.post(f"/drive/v3/files/{file_id}/watch", json={"id": "chan-2", "type": "web_hook",
                                                                       "address": address}).json()
        events = api.post(f"{EVENTS}/watch", json={"id": "chan-3", "type": "web_hook", "address": address,
                                                   "params": {"ttl": "600"}}).json()
        g.update_file(file_id, name="Changed")
        g.update_file(file_id, trashed=True)
        g.patch_event(g.calendar.events[0]["id"], summary="Changed")
        sent = g.channels.flush()
        assert all(n.statuses == [200] for n in sent)
        got = [(r.headers["x-goog-channel-id"], r.headers["x-goog-resource-state"],
                r.headers["x-goog-message-number"]) for r in receiver.received]
    assert got == [("chan-1", "sync", "1"), ("chan-2", "sync", "1"), ("chan-3", "sync", "1"),
                   ("chan-2", "update", "2"), ("chan-1", "change", "2"), ("chan-2", "trash", "3"),
                   ("chan-1", "change", "3"), ("chan-3", "exists", "2")]
    first, update = receiver.received[0], receiver.received[3]
    assert first.body == b"" and first.headers["x-goog-channel-token"] == "tok-1"
    assert first.headers["x-goog-resource-id"] == channel["resourceId"]
    assert first.headers["x-goog-resource-uri"] == channel["resourceUri"]
    assert first.headers["x-goog-channel-expiration"].endswith(" GMT")
    assert "x-goog-channel-token" not in update.headers and update.headers["x-goog-changed"] == "properties"
    assert update.headers["x-goog-resource-id"] == watched["resourceId"] != channel["resourceId"]
    assert receiver.received[2].headers["x-goog-resource-uri"] == events["resourceUri"]


def test_channels_stop_expire_retry_and_reject_duplicates() -> None:
    clock = FakeClock()
    flaky = Receiver(lambda request, n: Response(503 if n == 2 else 200))
    with flaky, GoogleSandbox(events=2, clock=clock) as g, httpx.Client(
            base_url=g.base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        body = {"id": "c1", "type": "web_hook", "address": f"{flaky.base_url}/push",
                "expiration": str(int((clock.value + 10**9) * 1000))}
        channel = http.post(f"{EVENTS}/watch", json=body).json()
        assert int(channel["expiration"]) == int((clock.value + 2592000) * 1000)  # capped at the maximum
        assert http.post(f"{EVENTS}/watch", json=body).json()["error"]["errors"][0]["reason"] == "channelIdNotUnique"
        assert http.post(f"{EVENTS}/watch", json=body | {"id": "c2", "type": "email"}).status_code == 400
        g.delete_event(g.calendar.events[0]["id"])
        sent = g.channels.flush()
        assert [n.statuses for n in sent] == [[200], [503, 200]]  # the 503 is retried, same message number
        assert [r.headers["x-goog-message-number"] for r in flaky.received] == ["1", "2", "2"]
        stop = {"id": "c1", "resourceId": channel["resourceId"]}
        assert http.post("/calendar/v3/channels/stop", json=stop | {"resourceId": "other"}).status_code == 404
        assert http.post("/calendar/v3/channels/stop", json=stop).status_code == 204
        assert http.post("/calendar/v3/channels/stop", json=stop).status_code == 404
        short = http.post(f"{EVENTS}/watch", json=body | {"id": "c3", "expiration": None,
                                                          "params": {"ttl": "60"}}).json()
        assert int(short["expiration"]) == int((clock.value + 60) * 1000)
        clock.value += 61
        g.patch_event(g.calendar.events[1]["id"], summary="after expiry")
        assert [n.state for n in g.channels.flush()] == ["sync"]  # only c3's sync; nothing after expiry


def test_bad_input_is_a_precise_400_never_a_500(g: GoogleSandbox, api: httpx.Client) -> None:
    watch = api.post(f"{EVENTS}/watch", json={"id": "x", "type": "web_hook", "address": "https://h.example",
                                              "expiration": "soon"})
    assert watch.status_code == 400 and "expiration" in watch.json()["error"]["message"]
    forged = base64.urlsafe_b64encode(json.dumps({"m": "full", "p": "one", "s": 1, "g": 0}).encode()).decode()
    assert api.get(EVENTS, params={"pageToken": forged}).status_code == 400
    assert api.get(EVENTS, params={"maxResults": "lots"}).status_code == 400
    assert api.patch(f"{EVENTS}/{g.calendar.events[0]['id']}", content=b"{oops").status_code == 400
    assert api.patch(f"{EVENTS}/{g.calendar.events[0]['id']}", json={"start": "tomorrow"}).status_code == 400
    assert api.post("/drive/v3/channels/stop", content=b"[1]").status_code == 400
    assert api.get("/drive/v3/files", params={"q": "modifiedTime > 'yesterday'"}).status_code == 400


def test_auto_delivery_sends_notifications_as_they_happen() -> None:
    with Receiver() as receiver, GoogleSandbox(files=1, auto_deliver=True) as g:
        g.channels.create(("drive", "changes"), "https://www.googleapis.com/drive/v3/changes?alt=json&pageToken=1",
                          {"id": "auto", "type": "web_hook", "address": f"{receiver.base_url}/push"},
                          default_ttl=3600, max_ttl=604800)
        deadline = time.monotonic() + 10
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert receiver.received[0].headers["x-goog-resource-state"] == "sync"


# -- Pub/Sub push --------------------------------------------------------------------------------------------


def _decode_with_v1(base_url: str, token: str, audience: str) -> dict[str, Any]:
    certs = httpx.get(f"{base_url}/oauth2/v1/certs").json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = x509.load_pem_x509_certificate(certs[kid].encode()).public_key()
    return jwt.decode(token, key, algorithms=["RS256"], audience=audience, issuer="https://accounts.google.com")


def test_pubsub_push_carries_a_jwt_verifiable_against_both_cert_formats(g: GoogleSandbox) -> None:
    with Receiver(lambda request, n: json_response(204, {})) as receiver:
        url = f"{receiver.base_url}/push"
        envelope, response = g.publish({"emailAddress": "owner@acme.example", "historyId": "42"},
                                       {"resource": "drive"}, url=url)
        assert response.status_code == 204
        request = receiver.received[0]
    token = request.headers["authorization"].removeprefix("Bearer ")
    claims = _decode_with_v1(g.base_url, token, url)
    jwks = jwt.PyJWKClient(f"{g.base_url}/oauth2/v3/certs")
    assert jwt.decode(token, jwks.get_signing_key_from_jwt(token).key, algorithms=["RS256"], audience=url) == claims
    assert claims["email"] == "hub-push@sandbox-project.iam.gserviceaccount.com" and claims["email_verified"] is True
    assert claims["exp"] - claims["iat"] == 3600 and abs(claims["iat"] - time.time()) < 60
    assert claims["sub"] == claims["azp"]
    body = request.json()
    assert body == envelope and body["subscription"] == "projects/sandbox-project/subscriptions/hub-push"
    message = body["message"]
    assert json.loads(base64.b64decode(message["data"])) == {"emailAddress": "owner@acme.example", "historyId": "42"}
    assert message["messageId"] == message["message_id"] and message["attributes"] == {"resource": "drive"}
    assert message["publishTime"].endswith("Z")
    certs = httpx.get(f"{g.base_url}/oauth2/v3/certs")
    assert "max-age=" in certs.headers["cache-control"] and certs.json()["keys"][0]["alg"] == "RS256"


def test_key_rotation_and_forged_tokens(g: GoogleSandbox) -> None:
    audience = "https://hub.example/api/webhooks/google"
    old = g.pubsub.mint(audience)
    old_kid = jwt.get_unverified_header(old)["kid"]
    new_kid = g.pubsub.rotate_key()
    fresh = g.pubsub.mint(audience)
    assert jwt.get_unverified_header(fresh)["kid"] == new_kid != old_kid
    assert set(httpx.get(f"{g.base_url}/oauth2/v1/certs").json()) == {old_kid, new_kid}
    assert _decode_with_v1(g.base_url, old, audience)["aud"] == audience  # still published during rotation
    g.pubsub.rotate_key(keep_previous=False)
    with pytest.raises(KeyError):
        _decode_with_v1(g.base_url, fresh, audience)
    expired = g.pubsub.mint(audience, issued_at=time.time() - 7200)
    with pytest.raises(jwt.ExpiredSignatureError):
        _decode_with_v1(g.base_url, expired, audience)
    with pytest.raises(jwt.InvalidAudienceError):
        _decode_with_v1(g.base_url, g.pubsub.mint("https://other.example"), audience)
    header, _, signature = g.pubsub.mint(audience).split(".")
    tampered = base64.urlsafe_b64encode(json.dumps({"aud": audience, "email": "evil@x"}).encode()).decode()
    with pytest.raises(jwt.InvalidSignatureError):
        _decode_with_v1(g.base_url, f"{header}.{tampered.rstrip('=')}.{signature}", audience)


# -- control API and CLI --------------------------------------------------------------------------------------


def test_control_api(g: GoogleSandbox, api: httpx.Client) -> None:
    ctl = httpx.Client(base_url=f"{g.base_url}/_sandbox")
    made = ctl.post("/files", json={"name": "Via control", "mimeType": "application/pdf"})
    assert made.status_code == 201 and made.json()["mimeType"] == "application/pdf"
    file_id = made.json()["id"]
    assert ctl.post(f"/files/{file_id}", json={"trashed": True}).json()["trashed"] is True
    assert ctl.post(f"/files/{file_id}", json={"color": "red"}).status_code == 422
    assert ctl.delete(f"/files/{file_id}").status_code == 204
    assert ctl.delete(f"/files/{file_id}").status_code == 404
    event = ctl.post("/events", json={"summary": "Ctl", "start": "2024-03-01T09:00:00Z", "attendees": ["a@b.c"]})
    assert event.status_code == 201 and event.json()["start"]["dateTime"] == "2024-03-01T09:00:00Z"
    assert ctl.post(f"/events/{event.json()['id']}", json={"summary": "Ctl 2"}).json()["summary"] == "Ctl 2"
    assert ctl.delete(f"/events/{event.json()['id']}").status_code == 204
    _, token, _ = calendar_walk(api, maxResults=100)
    assert ctl.post("/calendar/invalidate_sync_tokens").status_code == 200
    assert api.get(EVENTS, params={"syncToken": token}).status_code == 410
    assert ctl.post("/faults", json={"kind": "quota"}).status_code == 201
    assert ctl.post("/faults", json={"kind": "quota", "colour": 1}).status_code == 422
    assert api.get(EVENTS).status_code == 429
    assert len(ctl.post("/tokens", json={"count": 2}).json()) == 2
    issued = ctl.post("/tokens", json={"offline": True}).json()
    assert ctl.post("/tokens/revoke", json={"token": issued["refresh_token"]}).json() == {"revoked": 1}
    assert ctl.post("/config", json={"quota_per_minute": 1, "reset_quota": True}).status_code == 200
    assert [api.get("/drive/v3/files").status_code for _ in range(2)] == [200, 403]
    assert ctl.post("/config", json={"nope": 1}).status_code == 422
    stats = ctl.get("/stats").json()
    assert stats["drive"]["deleted"] == 1 and stats["calendar"]["cancelled"] == 1 and stats["calls"]
    assert ctl.get("/requests", params={"since": 0}).json()[0]["operation"] == "calendar.events.list"
    with Receiver() as receiver:
        ctl.post("/config", json={"pubsub_endpoint": f"{receiver.base_url}/push"})
        sent = ctl.post("/pubsub/publish", json={"data": "hello", "attributes": {"k": "v"}}).json()
        assert sent["status"] == 200 and base64.b64decode(sent["envelope"]["message"]["data"]) == b"hello"
        api.post(f"{EVENTS}/watch", json={"id": "ctl-c", "type": "web_hook", "address": f"{receiver.base_url}/push"})
        assert ctl.get("/channels").json()[0]["id"] == "ctl-c"
        assert ctl.post("/notifications/flush").json()[0]["statuses"] == [200]
    rotated = ctl.post("/pubsub/rotate_key", json={}).json()
    assert rotated["kid"] == rotated["published"][-1] and len(rotated["published"]) == 2
    ctl.close()


def test_cli_runs_until_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.google", "--port", "0", "--files", "3"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        changes = httpx.get(f"{base_url}/drive/v3/changes", params={"pageToken": "1"},
                            headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert len(changes["changes"]) == 3 and changes["newStartPageToken"] == "4"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- properties of the parsers and the change log (hypothesis) -----------------------------------------------


@given(st.text(max_size=40))
def test_fields_parser_rejects_anything_odd_with_a_400(text: str) -> None:
    schema = {"a": None, "b": {"c": None}}
    try:
        selection = parse_fields(text, schema)
    except GoogleError as exc:
        assert exc.code == 400 and exc.reason == "invalidParameter"
    else:
        assert set(selection) <= {"a", "b", "*"}


@given(st.lists(st.integers(0, 15), max_size=300), st.integers(1, 400), st.integers(1, 9))
def test_change_log_reads_each_changed_key_once_at_its_latest_change(keys: list[int], start: int,
                                                                     limit: int) -> None:
    log = ChangeLog()
    for key in keys:
        log.record(key)
    latest = {key: number for number, key in enumerate(keys, start=1)}
    expected = sorted((number, key) for key, number in latest.items() if number >= start)
    seen: list[tuple[int, Any]] = []
    position = start
    for _ in range(1000):
        entries, position, examined = log.read(position, limit)
        assert examined <= limit
        seen += entries
        if position > log.last:
            break
    assert seen == expected


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(page_token=st.text(max_size=30), sync_token=st.text(max_size=30), max_results=st.text(max_size=5))
def test_odd_list_arguments_get_a_4xx_never_a_5xx(g: GoogleSandbox, api: httpx.Client, page_token: str,
                                                 sync_token: str, max_results: str) -> None:
    params = {"pageToken": page_token, "syncToken": sync_token, "maxResults": max_results}
    assert api.get(EVENTS, params=params).status_code in (200, 400, 410)
    drive = api.get("/drive/v3/changes", params={"pageToken": page_token, "pageSize": max_results})
    assert drive.status_code in (200, 400)


@pytest.mark.parametrize("text", ["\u00b9", "\u0663", "\uff11"])  # superscript one, Arabic-Indic three, fullwidth one
def test_numeric_parameters_take_ascii_digits_only(api: httpx.Client, text: str) -> None:
    """``str.isdigit`` accepts these and ``int`` then fails or reads them; Google answers 400."""
    changes = api.get("/drive/v3/changes", params={"pageToken": text})
    assert changes.status_code == 400, changes.text
    listing = api.get("/calendar/v3/calendars/primary/events", params={"maxResults": text})
    assert listing.status_code == 400, listing.text
