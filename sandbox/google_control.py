"""The Google sandbox's control API under ``/_sandbox/`` (no auth, not logged as API calls).

Records:
    ``POST /_sandbox/seed`` ``{"files", "events"}``; ``POST /_sandbox/files`` ``{"name", "mimeType"}``,
    ``POST /_sandbox/files/{id}`` ``{"name", "description", "trashed", "starred"}``,
    ``DELETE /_sandbox/files/{id}`` (permanent: a ``removed`` change); ``POST /_sandbox/events``
    ``{"summary", "start" (RFC 3339), "duration_minutes", "attendees", "id"}``,
    ``POST /_sandbox/events/{id}`` (patch fields), ``DELETE /_sandbox/events/{id}`` (cancel);
    ``POST /_sandbox/calendar/invalidate_sync_tokens`` (every issued sync token then answers 410).
Faults and settings:
    ``POST /_sandbox/faults`` (a :class:`~sandbox.google_common.GoogleFault` as JSON), ``DELETE
    /_sandbox/faults``; ``POST /_sandbox/config`` ``{"latency_seconds", "advance_time",
    "quota_per_minute", "reset_quota", "refresh_latency_seconds", "deny_next_authorize",
    "pubsub_endpoint", "pubsub_audience", "notification_retries"}``.
Tokens:
    ``POST /_sandbox/tokens`` ``{"offline", "scope", "count"}`` (a list with ``count``);
    ``POST /_sandbox/tokens/revoke`` ``{"token"}`` | ``{"all": true}``; ``POST /_sandbox/tokens/expire`` ``{"token"}``.
Push:
    ``GET /_sandbox/channels``; ``POST /_sandbox/notifications/flush``;
    ``POST /_sandbox/pubsub/publish`` ``{"data", "attributes", "url", "message_id"}``;
    ``POST /_sandbox/pubsub/rotate_key`` ``{"keep_previous"}``.
Inspection:
    ``GET /_sandbox/stats``; ``GET /_sandbox/requests?since=N``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import httpx

from sandbox.google_common import GoogleError, GoogleFault, parse_time
from sandbox.server import Request, Response, SandboxServer, json_response

if TYPE_CHECKING:
    from sandbox.google import GoogleSandbox

_CONFIG = {"latency_seconds", "advance_time", "quota_per_minute", "reset_quota", "refresh_latency_seconds",
           "deny_next_authorize", "pubsub_endpoint", "pubsub_audience", "notification_retries"}


def _body(request: Request) -> dict[str, Any]:
    return request.json_object(allow_empty=True)


class GoogleControl(SandboxServer):
    """Mixin that adds the ``/_sandbox/`` routes to :class:`sandbox.google.GoogleSandbox`."""

    def _sb(self) -> GoogleSandbox:
        return self  # type: ignore[return-value]

    def register_control_routes(self) -> None:
        """Register every control route."""
        for method, path, handler in [
            ("GET", "/stats", lambda r: json_response(200, self.stats())),
            ("GET", "/requests", self._ctl_requests),
            ("POST", "/seed", self._ctl_seed),
            ("POST", r"/files(?:/(?P<id>[\w-]+))?", self._ctl_file),
            ("DELETE", r"/files/(?P<id>[\w-]+)", self._ctl_delete_file),
            ("POST", r"/events(?:/(?P<id>\w+))?", self._ctl_event),
            ("DELETE", r"/events/(?P<id>\w+)", self._ctl_delete_event),
            ("POST", "/calendar/invalidate_sync_tokens", self._ctl_invalidate),
            ("POST", "/faults", self._ctl_fault),
            ("DELETE", "/faults", self._ctl_clear_faults),
            ("POST", "/config", self._ctl_config),
            ("POST", "/tokens", self._ctl_issue),
            ("POST", "/tokens/revoke", self._ctl_revoke),
            ("POST", "/tokens/expire", self._ctl_expire),
            ("GET", "/channels", self._ctl_channels),
            ("POST", "/notifications/flush", self._ctl_flush),
            ("POST", "/pubsub/publish", self._ctl_publish),
            ("POST", "/pubsub/rotate_key", self._ctl_rotate),
        ]:
            self.route(method, "/_sandbox" + path, handler)

    def control_dispatch(self, request: Request) -> Response:
        """Dispatch a control, authorize or certs request, mapping failures to readable 4xx answers."""
        try:
            return self.dispatch(request)
        except GoogleError as exc:
            return json_response(exc.code, exc.body())
        except KeyError as exc:
            return json_response(404, {"error": f"not found: {exc}"})
        except (ValueError, TypeError) as exc:
            return json_response(422, {"error": str(exc)})

    def stats(self) -> dict[str, Any]:
        """Counters and state: records, OAuth, calls by operation, channels, queued faults and notifications."""
        sb = self._sb()
        by_operation = sb.call_summary()
        return {"drive": sb.drive.counts(), "calendar": sb.calendar.counts() | {
            "sync_generation": sb.calendar.sync_generation},
                "oauth": sb.oauth.stats(), "request_count": sum(by_operation.values()), "calls": by_operation,
                "live_channels": len(sb.channels.live()), "pending_notifications": len(sb.channels.pending),
                "faults_queued": len(sb.faults), "clock": sb.now(), "push_key_ids": sb.pubsub.key_ids,
                "touched": sb.drive.touched + sb.calendar.touched}

    def _ctl_requests(self, request: Request) -> Response:
        since = int(request.query.get("since", "0"))
        return json_response(200, [dataclasses.asdict(c) for c in self._sb().request_log[max(since, 0):]])

    def _ctl_seed(self, request: Request) -> Response:
        data, sb = _body(request), self._sb()
        sb.drive.seed(int(data.get("files", 0)))
        sb.calendar.seed(int(data.get("events", 0)))
        return json_response(200, {"drive": sb.drive.counts(), "calendar": sb.calendar.counts()})

    def _ctl_file(self, request: Request) -> Response:
        data, sb = _body(request), self._sb()
        if "id" not in request.params:
            if not isinstance(data.get("name"), str):
                raise ValueError("field 'name' is required")
            return json_response(201, sb.create_file(data["name"], data.get("mimeType",
                                                                             "application/vnd.google-apps.document")))
        unknown = set(data) - {"name", "description", "trashed", "starred"}
        if unknown:
            raise ValueError(f"unknown file field(s): {', '.join(sorted(unknown))}")
        return json_response(200, sb.update_file(request.params["id"], **data))

    def _ctl_delete_file(self, request: Request) -> Response:
        self._sb().delete_file(request.params["id"])
        return Response(204)

    def _ctl_event(self, request: Request) -> Response:
        data, sb = _body(request), self._sb()
        if "id" in request.params:
            return json_response(200, sb.patch_event(request.params["id"], None, **data))
        if not isinstance(data.get("summary"), str):
            raise ValueError("field 'summary' is required")
        start = parse_time(data["start"], "start") if data.get("start") else None
        event = sb.create_event(data["summary"], start, int(data.get("duration_minutes", 30)),
                                attendees=data.get("attendees"), event_id=data.get("id"))
        return json_response(201, event)

    def _ctl_delete_event(self, request: Request) -> Response:
        self._sb().delete_event(request.params["id"])
        return Response(204)

    def _ctl_invalidate(self, request: Request) -> Response:
        self._sb().calendar.invalidate_sync_tokens()
        return json_response(200, {"sync_generation": self._sb().calendar.sync_generation})

    def _ctl_fault(self, request: Request) -> Response:
        self._sb().faults.add(GoogleFault.from_json(_body(request)))
        return json_response(201, {"queued": len(self._sb().faults)})

    def _ctl_clear_faults(self, request: Request) -> Response:
        self._sb().faults.clear()
        return Response(204)

    def _ctl_config(self, request: Request) -> Response:
        data, sb = _body(request), self._sb()
        unknown = set(data) - _CONFIG
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        if "latency_seconds" in data:
            sb.latency_seconds = float(data["latency_seconds"])
        if "advance_time" in data:
            sb.advance_time(float(data["advance_time"]))
        if "quota_per_minute" in data:
            sb.quota_per_minute = int(data["quota_per_minute"])
        if data.get("reset_quota"):
            sb._quota.clear()
        if "refresh_latency_seconds" in data:
            sb.oauth.refresh_latency_seconds = float(data["refresh_latency_seconds"])
        if "deny_next_authorize" in data:
            sb.oauth.deny_next(int(data["deny_next_authorize"]))
        if "pubsub_endpoint" in data:
            sb.pubsub.push_endpoint = data["pubsub_endpoint"] or None
        if "pubsub_audience" in data:
            sb.pubsub.audience = data["pubsub_audience"] or None
        if "notification_retries" in data:
            sb.channels.max_retries = int(data["notification_retries"])
        return json_response(200, self.stats())

    def _ctl_issue(self, request: Request) -> Response:
        data = _body(request)
        options: dict[str, Any] = {"offline": bool(data.get("offline", True))}
        if "scope" in data:
            options["scope"] = str(data["scope"])
        if "count" not in data:
            return json_response(201, self._sb().oauth.issue(**options))
        count = int(data["count"])
        if not 1 <= count <= 10000:
            raise ValueError("field 'count' must be between 1 and 10000")
        return json_response(201, [self._sb().oauth.issue(**options) for _ in range(count)])

    def _ctl_revoke(self, request: Request) -> Response:
        data, oauth = _body(request), self._sb().oauth
        if data.get("all"):
            return json_response(200, {"revoked": oauth.revoke_all()})
        if "token" in data:
            return json_response(200, {"revoked": int(oauth.revoke(str(data["token"])))})
        raise ValueError("give 'token' or 'all'")

    def _ctl_expire(self, request: Request) -> Response:
        self._sb().oauth.expire(str(_body(request)["token"]))
        return Response(204)

    def _ctl_channels(self, request: Request) -> Response:
        channels = [c.answer() | {"address": c.address, "stopped": c.stopped, "messages": c.message_number,
                                  "resource": list(c.resource)} for c in self._sb().channels.channels]
        return json_response(200, channels)

    def _ctl_flush(self, request: Request) -> Response:
        sent = self._sb().channels.flush()
        return json_response(200, [{"channel": n.channel.id, "state": n.state, "number": n.number,
                                    "statuses": n.statuses} for n in sent])

    def _ctl_publish(self, request: Request) -> Response:
        data = _body(request)
        if "data" not in data:
            raise ValueError("field 'data' is required (a string or a JSON value)")
        payload = data["data"] if isinstance(data["data"], str | dict) else str(data["data"])
        try:
            envelope, response = self._sb().publish(payload, data.get("attributes"), url=data.get("url"),
                                                    message_id=data.get("message_id"))
        except httpx.HTTPError as exc:
            return json_response(502, {"error": f"delivery failed: {exc!r}"})
        return json_response(200, {"status": response.status_code, "envelope": envelope})

    def _ctl_rotate(self, request: Request) -> Response:
        kid = self._sb().pubsub.rotate_key(bool(_body(request).get("keep_previous", True)))
        return json_response(200, {"kid": kid, "published": self._sb().pubsub.key_ids})
