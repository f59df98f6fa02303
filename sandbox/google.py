"""Loopback simulator of Google: OAuth, Drive v3, Calendar v3, watch channels and Pub/Sub push.

Behaviour follows ``PROVIDERS.md`` § Google and the API references:

- OAuth (:mod:`sandbox.google_oauth`): ``/o/oauth2/v2/auth``, ``POST /token``, ``POST /revoke``.
- Drive (:mod:`sandbox.google_drive`) under ``/drive/v3``: ``changes/startPageToken``, ``changes``,
  ``changes/watch``, ``files``, ``files/{id}`` (GET, PATCH, DELETE), ``files/{id}/watch``,
  ``channels/stop``.
- Calendar (:mod:`sandbox.google_calendar`) under ``/calendar/v3``: ``calendars/{id}/events`` (list,
  insert), ``…/events/{eventId}`` (get, patch, delete), ``…/events/watch``, ``channels/stop``.
- Certificates of the Pub/Sub push signing keys: ``/oauth2/v1/certs`` and ``/oauth2/v3/certs``.
- API calls need ``Authorization: Bearer <access token>`` (401 ``authError`` otherwise). Each API
  has a per-window quota (403 ``userRateLimitExceeded`` when used up); faults add 403/429/5xx/410,
  timeouts, broken bodies and repeated page tokens (:class:`~sandbox.google_common.GoogleFault`).
- Every change (API or Python/control API) queues notifications on the watch channels of the
  resource (:mod:`sandbox.google_push`).

Run it alone with ``python -m sandbox.google --port 8003 --files 20 --events 20``. Control endpoints
live under ``/_sandbox/`` (:mod:`sandbox.google_control`).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from sandbox.google_calendar import EVENT_SCHEMA, EVENTS_LIST_SCHEMA, CalendarStore
from sandbox.google_common import GoogleError, GoogleFault, GoogleFaults, apply_fields, bad_request, parse_fields
from sandbox.google_control import GoogleControl
from sandbox.google_drive import CHANGES_LIST_SCHEMA, DEFAULT_FILE_FIELDS, FILE_SCHEMA, FILES_LIST_SCHEMA, DriveStore
from sandbox.google_oauth import GoogleOAuth, OAuthFailure
from sandbox.google_push import ChannelHub, PubSubPusher
from sandbox.server import Request, Response, json_response, run_until_signal

API_HOST = "https://www.googleapis.com"
_DEFAULT_FILE = dict.fromkeys(DEFAULT_FILE_FIELDS)
_DEFAULT_CHANGES = {"kind": None, "nextPageToken": None, "newStartPageToken": None, "changes": dict.fromkeys(
    ("kind", "changeType", "time", "removed", "fileId", "type")) | {"file": _DEFAULT_FILE}}
_DEFAULT_FILES = {"kind": None, "nextPageToken": None, "incompleteSearch": None, "files": _DEFAULT_FILE}
_CAL = r"/calendar/v3/calendars/(?P<cal>[^/]+)/events"


@dataclass
class LoggedCall:
    """One API call: operation name, HTTP method and target, status, error reason, records examined."""

    operation: str
    method: str
    target: str
    status: int
    reason: str
    touched: int


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise bad_request(f"Invalid value '{raw}'. Values must be within the range: [{low}, {high}]", name)
    return int(raw)


class GoogleSandbox(GoogleControl):
    """A Google Workspace simulator (one user, their Drive and primary calendar).

    Args:
        files: Drive files to seed.
        events: Calendar events to seed.
        seed: Seed of every generated id and token.
        token: A long-lived access token accepted from the start (``None`` for none).
        client_id: OAuth client id.
        client_secret: OAuth client secret.
        owner_email: The signed-in user (file owner, ``primary`` calendar).
        quota_per_minute: Calls per API per window before 403 ``userRateLimitExceeded``.
        quota_window_seconds: Length of the quota window.
        push_service_account: The Pub/Sub push subscription's service account (JWT ``email``).
        pubsub_endpoint: Default Pub/Sub push endpoint (``None`` until configured).
        pubsub_audience: ``aud`` of push JWTs (defaults to the endpoint).
        auto_deliver: Send channel notifications from a background thread as they happen.
        latency_seconds: Sleep before answering each API call.
        clock: Wall-clock source; :meth:`advance_time` moves it forward.
        port: Port on 127.0.0.1 (0 picks a free one).
    """

    def __init__(self, files: int = 0, events: int = 0, seed: int = 1, *, token: str | None = "ya29.sandbox-token",
                 client_id: str = "sandbox-client.apps.googleusercontent.com",
                 client_secret: str = "google-client-secret", owner_email: str = "owner@acme.example",
                 quota_per_minute: int = 12000, quota_window_seconds: float = 60.0,
                 push_service_account: str = "hub-push@sandbox-project.iam.gserviceaccount.com",
                 pubsub_endpoint: str | None = None, pubsub_audience: str | None = None, auto_deliver: bool = False,
                 latency_seconds: float = 0.0, clock: Callable[[], float] = time.time, port: int = 0) -> None:
        super().__init__(port=port)
        self._base_clock, self._offset = clock, 0.0
        self.latency_seconds, self.quota_per_minute, self.quota_window_seconds = (
            latency_seconds, quota_per_minute, quota_window_seconds)
        self.oauth = GoogleOAuth(client_id, client_secret, self.now, seed)
        self.drive = DriveStore(owner_email, seed)
        self.calendar = CalendarStore(owner_email, seed)
        self.channels = ChannelHub(self.now, seed)
        self.pubsub = PubSubPusher(push_service_account, push_endpoint=pubsub_endpoint, audience=pubsub_audience,
                                   seed=seed)
        self.faults = GoogleFaults()
        self.static_token = token
        if token:
            self.oauth.issue(token=token, expires=False)
        self._quota: dict[str, tuple[float, int]] = {}
        self._log: list[LoggedCall] = []
        self.call_counts: Counter[str] = Counter()  # operation → calls answered
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._auto_deliver = auto_deliver
        self._api_routes: list[tuple[str, re.Pattern[str], str, Callable[[Request], Response]]] = []
        for method, pattern, operation, handler in [
            ("GET", "/drive/v3/changes/startPageToken", "drive.changes.getStartPageToken", self._start_token),
            ("GET", "/drive/v3/changes", "drive.changes.list", self._changes_list),
            ("POST", "/drive/v3/changes/watch", "drive.changes.watch", self._changes_watch),
            ("GET", "/drive/v3/files", "drive.files.list", self._files_list),
            ("GET", r"/drive/v3/files/(?P<id>[\w-]+)", "drive.files.get", self._files_get),
            ("PATCH", r"/drive/v3/files/(?P<id>[\w-]+)", "drive.files.update", self._files_update),
            ("DELETE", r"/drive/v3/files/(?P<id>[\w-]+)", "drive.files.delete", self._files_delete),
            ("POST", r"/drive/v3/files/(?P<id>[\w-]+)/watch", "drive.files.watch", self._files_watch),
            ("POST", "/drive/v3/channels/stop", "drive.channels.stop", self._channels_stop),
            ("GET", _CAL, "calendar.events.list", self._events_list),
            ("POST", _CAL, "calendar.events.insert", self._events_insert),
            ("POST", _CAL + "/watch", "calendar.events.watch", self._events_watch),
            ("GET", _CAL + r"/(?P<id>\w+)", "calendar.events.get", self._events_get),
            ("PATCH", _CAL + r"/(?P<id>\w+)", "calendar.events.patch", self._events_patch),
            ("DELETE", _CAL + r"/(?P<id>\w+)", "calendar.events.delete", self._events_delete),
            ("POST", "/calendar/v3/channels/stop", "calendar.channels.stop", self._channels_stop),
            ("POST", "/token", "oauth.token", self._token),
            ("POST", "/revoke", "oauth.revoke", self._revoke),
        ]:
            self._api_routes.append((method, re.compile(pattern), operation, handler))
        self.route("GET", "/o/oauth2/v2/auth", self._authorize)
        self.route("GET", "/oauth2/v1/certs", lambda r: self._certs(self.pubsub.certs_v1()))
        self.route("GET", "/oauth2/v3/certs", lambda r: self._certs(self.pubsub.certs_v3()))
        self.register_control_routes()
        self.drive.seed(files)
        self.calendar.seed(events)

    # -- clock and lifecycle ----------------------------------------------------------------------

    def now(self) -> float:
        """The sandbox clock (the given clock plus :meth:`advance_time` offsets)."""
        return self._base_clock() + self._offset

    def advance_time(self, seconds: float) -> None:
        """Move the sandbox clock forward (expires tokens and channels, opens quota windows)."""
        self._offset += seconds

    def start(self) -> GoogleSandbox:
        """Start serving (and the notification thread when ``auto_deliver``)."""
        self._halt.clear()
        super().start()
        if self._auto_deliver:
            self.channels.start_auto_delivery()
        return self

    def stop(self) -> None:
        """Stop serving; sleeping fault handlers wake up and the delivery thread ends."""
        self._halt.set()
        self.channels.stop_delivery()
        super().stop()

    # -- data control (Python API); changes notify the watch channels -----------------------------

    def create_file(self, name: str, mime_type: str = "application/vnd.google-apps.document") -> dict[str, Any]:
        """Create a Drive file (notifies ``changes`` channels)."""
        record = self.drive.create_file(name, mime_type)
        self.channels.notify(("drive", "changes"), "change")
        return record

    def update_file(self, file_id: str, **fields: Any) -> dict[str, Any]:
        """Change ``name``/``description``/``trashed``/``starred`` (notifies file and ``changes`` channels)."""
        before = self.drive.get_file(file_id)
        record = self.drive.update_file(file_id, **fields)
        if record["trashed"] != before["trashed"]:
            self.channels.notify(("drive", "file", file_id), "trash" if record["trashed"] else "untrash")
        else:
            self.channels.notify(("drive", "file", file_id), "update", "properties")
        self.channels.notify(("drive", "changes"), "change")
        return record

    def delete_file(self, file_id: str) -> None:
        """Delete a file permanently (a ``removed`` change; notifies file and ``changes`` channels)."""
        self.drive.delete_file(file_id)
        self.channels.notify(("drive", "file", file_id), "remove")
        self.channels.notify(("drive", "changes"), "change")

    def create_event(self, summary: str, start: datetime | None = None, duration_minutes: int = 30, *,
                     attendees: list[str] | None = None, event_id: str | None = None,
                     fields: dict[str, Any] | None = None) -> dict[str, Any]:
        """Insert a Calendar event (notifies ``events`` channels)."""
        event = self.calendar.create_event(summary, start, duration_minutes, attendees=attendees, event_id=event_id,
                                           fields=fields)
        self.channels.notify(("calendar", "events"), "exists")
        return event

    def patch_event(self, event_id: str, if_match: str | None = None, **fields: Any) -> dict[str, Any]:
        """Patch a Calendar event (notifies ``events`` channels)."""
        event = self.calendar.patch_event(event_id, fields, if_match)
        self.channels.notify(("calendar", "events"), "exists")
        return event

    def delete_event(self, event_id: str) -> None:
        """Cancel a Calendar event (notifies ``events`` channels)."""
        self.calendar.delete_event(event_id)
        self.channels.notify(("calendar", "events"), "exists")

    def inject(self, kind: str, **options: Any) -> GoogleFault:
        """Queue a fault (see :class:`~sandbox.google_common.GoogleFault`)."""
        fault = GoogleFault(kind, **options)
        self.faults.add(fault)
        return fault

    def publish(self, data: bytes | str | Mapping[str, Any], attributes: Mapping[str, str] | None = None, *,
                url: str | None = None, message_id: str | None = None) -> tuple[dict[str, Any], Any]:
        """Push one Pub/Sub message to the push endpoint; returns ``(envelope, response)``."""
        envelope = self.pubsub.envelope(data, attributes, message_id=message_id)
        return envelope, self.pubsub.push(envelope, url)

    @property
    def request_log(self) -> list[LoggedCall]:
        """Every API call so far (control calls excluded)."""
        with self._lock:
            return list(self._log)

    def call_summary(self) -> dict[str, int]:
        """Calls answered so far, by operation."""
        with self._lock:
            return dict(self.call_counts)

    def calls(self, operation: str | None = None) -> int:
        """How many API calls (of one operation) were answered, whatever their outcome."""
        with self._lock:
            return self.call_counts.total() if operation is None else self.call_counts[operation]

    # -- request pipeline -------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Route API and OAuth calls through faults, auth and quota; everything else to the router."""
        for method, pattern, operation, handler in self._api_routes:
            match = pattern.fullmatch(request.path)
            if match is not None and method == request.method:
                request.params = {k: v for k, v in match.groupdict().items() if v is not None}
                before = self.drive.touched + self.calendar.touched
                response = self._call(operation, handler, request)
                touched = self.drive.touched + self.calendar.touched - before
                reason = ""
                if response.status >= 400:
                    try:
                        error = json.loads(response.body)["error"]
                        reason = error["errors"][0]["reason"] if isinstance(error, dict) else str(error)
                    except (ValueError, KeyError, IndexError, TypeError):
                        reason = "unparseable"
                with self._lock:
                    self._log.append(LoggedCall(operation, request.method, request.target, response.status, reason,
                                                touched))
                    self.call_counts[operation] += 1
                return response
        return self.control_dispatch(request)

    def _call(self, operation: str, handler: Callable[[Request], Response], request: Request) -> Response:
        if self.latency_seconds > 0:
            self._halt.wait(self.latency_seconds)
        is_api = not operation.startswith("oauth.")
        fault = self.faults.take(operation, bool(request.query.get("pageToken")), is_api)
        try:
            if fault is not None and fault.kind in ("rate_limit", "quota", "status", "gone"):
                error = fault.error()
                extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                return json_response(error.code, error.body(), extra)
            if fault is not None and fault.kind == "timeout":
                self._halt.wait(fault.seconds)
            if fault is not None and fault.kind == "revoke":
                token = request.headers.get("authorization", "").partition(" ")[2].strip()
                self.oauth.revoke(token)
            if is_api:
                self.oauth.check(request.headers.get("authorization", ""))
                self._consume_quota(operation.split(".")[0])
            response = handler(request)
        except GoogleError as exc:
            headers = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'} if (
                exc.code == 401) else {}
            return json_response(exc.code, exc.body(), headers)
        except OAuthFailure as exc:
            return json_response(exc.status, exc.body())
        except (ValueError, TypeError, KeyError) as exc:  # any other bad input is the caller's 400, never a 500
            error = bad_request(f"Invalid request: {exc}")
            return json_response(error.code, error.body())
        if fault is not None and fault.kind == "repeat_cursor" and response.status == 200:
            body = json.loads(response.body)
            body["nextPageToken"] = request.query["pageToken"]
            body.pop("newStartPageToken", None)
            body.pop("nextSyncToken", None)
            response = json_response(200, body)
        elif fault is not None and fault.kind == "truncate":
            response.body = response.body[: max(len(response.body) // 2, 1)]
        elif fault is not None and fault.kind == "malformed":
            response.body = b'{"kind": "drive#changeList", "changes": [{"fileId": <!-- 502 -->'
        return response

    def _consume_quota(self, api: str) -> None:
        with self._lock:
            now = self.now()
            end, used = self._quota.get(api, (0.0, 0))
            if now >= end:
                end, used = now + self.quota_window_seconds, 0
            if used >= self.quota_per_minute:
                raise GoogleError(403, "userRateLimitExceeded", "User Rate Limit Exceeded", domain="usageLimits")
            self._quota[api] = (end, used + 1)

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        try:
            return request.json_object(allow_empty=True)
        except ValueError as exc:
            raise GoogleError(400, "parseError", f"Parse Error: {exc}") from None

    @staticmethod
    def _fields(request: Request, schema: Mapping[str, Any], default: Mapping[str, Any] | None) -> Any:
        raw = request.query.get("fields")
        return parse_fields(raw, schema) if raw else default

    # -- Drive ------------------------------------------------------------------------------------

    def _start_token(self, request: Request) -> Response:
        return json_response(200, {"kind": "drive#startPageToken", "startPageToken": self.drive.start_page_token()})

    def _changes_list(self, request: Request) -> Response:
        q = request.query
        if not q.get("pageToken"):
            raise bad_request("Required parameter: pageToken", "pageToken", "required")
        size = _int_param(q, "pageSize", 100, 1, 1000)
        selection = self._fields(request, CHANGES_LIST_SCHEMA, _DEFAULT_CHANGES)
        changes, following, new_start = self.drive.list_changes(q["pageToken"], size,
                                                                q.get("includeRemoved", "true") != "false")
        body: dict[str, Any] = {"kind": "drive#changeList", "changes": changes}
        body |= {"nextPageToken": following} if following else {"newStartPageToken": new_start}
        return json_response(200, apply_fields(body, selection))

    def _files_list(self, request: Request) -> Response:
        q = request.query
        if q.get("orderBy"):
            raise bad_request("The sandbox lists files in creation order only; drop orderBy.", "orderBy")
        size = _int_param(q, "pageSize", 100, 1, 1000)
        selection = self._fields(request, FILES_LIST_SCHEMA, _DEFAULT_FILES)
        files, following = self.drive.list_files(q.get("pageToken") or None, size, q.get("q"))
        body: dict[str, Any] = {"kind": "drive#fileList", "incompleteSearch": False, "files": files}
        if following:
            body["nextPageToken"] = following
        return json_response(200, apply_fields(body, selection))

    def _files_get(self, request: Request) -> Response:
        selection = self._fields(request, FILE_SCHEMA, _DEFAULT_FILE)
        return json_response(200, apply_fields(self.drive.get_file(request.params["id"]), selection))

    def _files_update(self, request: Request) -> Response:
        data = self._body(request)
        fields = {k: data[k] for k in ("name", "description", "trashed", "starred") if k in data}
        selection = self._fields(request, FILE_SCHEMA, _DEFAULT_FILE)
        return json_response(200, apply_fields(self.update_file(request.params["id"], **fields), selection))

    def _files_delete(self, request: Request) -> Response:
        self.delete_file(request.params["id"])
        return Response(204)

    def _changes_watch(self, request: Request) -> Response:
        token = request.query.get("pageToken")
        if not token:
            raise bad_request("Required parameter: pageToken", "pageToken", "required")
        uri = f"{API_HOST}/drive/v3/changes?alt=json&pageToken={token}"
        channel = self.channels.create(("drive", "changes"), uri, self._body(request), default_ttl=3600,
                                       max_ttl=604800)
        return json_response(200, channel.answer())

    def _files_watch(self, request: Request) -> Response:
        file_id = request.params["id"]
        self.drive.get_file(file_id)
        uri = f"{API_HOST}/drive/v3/files/{file_id}?alt=json"
        channel = self.channels.create(("drive", "file", file_id), uri, self._body(request), default_ttl=3600,
                                       max_ttl=86400)
        return json_response(200, channel.answer())

    def _channels_stop(self, request: Request) -> Response:
        self.channels.stop(self._body(request))
        return Response(204)

    # -- Calendar ---------------------------------------------------------------------------------

    def _events_list(self, request: Request) -> Response:
        self.calendar.resolve(request.params["cal"])
        size = _int_param(request.query, "maxResults", 250, 1, 2500)
        selection = self._fields(request, EVENTS_LIST_SCHEMA, None)
        page = self.calendar.list_events(dict(request.query), size)
        owner = self.calendar.owner_email
        body = {"kind": "calendar#events", "etag": f'"p{self.calendar.changes.last:015d}"', "summary": owner,
                "updated": page["items"][-1]["updated"] if page["items"] else "2024-01-01T00:00:00.000Z",
                "timeZone": "UTC", "accessRole": "owner",
                "defaultReminders": [{"method": "popup", "minutes": 10}]} | page
        return json_response(200, apply_fields(body, selection))

    def _events_get(self, request: Request) -> Response:
        self.calendar.resolve(request.params["cal"])
        selection = self._fields(request, EVENT_SCHEMA, None)
        return json_response(200, apply_fields(self.calendar.get_event(request.params["id"]), selection))

    def _events_insert(self, request: Request) -> Response:
        self.calendar.resolve(request.params["cal"])
        data = self._body(request)
        if not isinstance(data.get("start"), dict) or not isinstance(data.get("end"), dict):
            raise bad_request("Missing start or end time.", "start", "required")
        event = self.create_event(str(data.get("summary", "")), event_id=data.get("id"), fields=data)
        return json_response(200, event)

    def _events_patch(self, request: Request) -> Response:
        self.calendar.resolve(request.params["cal"])
        fields = self._body(request)
        event = self.patch_event(request.params["id"], request.headers.get("if-match"), **fields)
        return json_response(200, apply_fields(event, self._fields(request, EVENT_SCHEMA, None)))

    def _events_delete(self, request: Request) -> Response:
        self.calendar.resolve(request.params["cal"])
        self.delete_event(request.params["id"])
        return Response(204)

    def _events_watch(self, request: Request) -> Response:
        cal = request.params["cal"]
        self.calendar.resolve(cal)
        uri = f"{API_HOST}/calendar/v3/calendars/{cal}/events?alt=json"
        channel = self.channels.create(("calendar", "events"), uri, self._body(request), default_ttl=604800,
                                       max_ttl=2592000)
        return json_response(200, channel.answer())

    # -- OAuth and certificates -------------------------------------------------------------------

    def _form(self, request: Request) -> dict[str, str]:
        return dict(request.query) | dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))

    def _token(self, request: Request) -> Response:
        body = self.oauth.token(self._form(request), request.headers.get("authorization", ""))
        return json_response(200, body, {"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate"})

    def _revoke(self, request: Request) -> Response:
        return json_response(200, self.oauth.revoke_endpoint(self._form(request).get("token", "")))

    def _authorize(self, request: Request) -> Response:
        status, target = self.oauth.authorize(request.query)
        if status == 302:
            return Response(302, {"Location": target}, b"")
        return Response(400, {"Content-Type": "text/plain; charset=utf-8"}, target.encode())

    def _certs(self, body: Mapping[str, Any]) -> Response:
        max_age = 21600
        expires = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(math.floor(time.time()) + max_age))
        return json_response(200, body, {"Cache-Control": f"public, max-age={max_age}, must-revalidate, no-transform",
                                         "Expires": expires})


def main(argv: list[str] | None = None) -> None:
    """Run a Google sandbox in the foreground until SIGTERM/SIGINT, printing its base URL first."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.google", description="Google Drive/Calendar sandbox")
    for flag, default in [("--port", 0), ("--files", 0), ("--events", 0), ("--seed", 1),
                          ("--token", "ya29.sandbox-token"), ("--pubsub-endpoint", ""), ("--latency", 0.0)]:
        parser.add_argument(flag, type=type(default), default=default)
    a = parser.parse_args(argv)
    sandbox = GoogleSandbox(a.files, a.events, a.seed, token=a.token, pubsub_endpoint=a.pubsub_endpoint or None,
                            auto_deliver=True, latency_seconds=a.latency, port=a.port)
    run_until_signal(sandbox)


if __name__ == "__main__":
    main()
