"""The Slack sandbox's control API under ``/_sandbox/`` (no auth, not logged as API calls).

Records:
    ``POST /_sandbox/seed`` ``{"users", "channels", "messages_per_channel"}``;
    ``POST /_sandbox/users`` ``{"real_name", "email"}``, ``POST /_sandbox/users/{id}``
    ``{"real_name", "email", "title", "deleted"}``; ``POST /_sandbox/channels`` ``{"name", "is_private"}``,
    ``POST /_sandbox/channels/{id}`` ``{"archived"}``, ``DELETE /_sandbox/channels/{id}``;
    ``GET /_sandbox/messages/{channel}``, ``POST /_sandbox/messages`` ``{"channel", "text", "user",
    "thread_ts"}``, ``POST /_sandbox/messages/{channel}/{ts}`` ``{"text"}``,
    ``DELETE /_sandbox/messages/{channel}/{ts}``. Every change queues its Events API event.
Faults and settings:
    ``POST /_sandbox/faults`` (a :class:`~sandbox.slack_faults.Fault` as JSON), ``DELETE /_sandbox/faults``;
    ``POST /_sandbox/config`` ``{"latency_seconds", "advance_time", "events_url", "signing_secret",
    "rate_limits": {method: n}, "reset_rate_limits", "exhaust_rate_limit": {"method", "seconds"},
    "post_interval_seconds", "refresh_latency_seconds", "deny_next_authorize"}``.
Tokens:
    ``POST /_sandbox/tokens`` ``{"token_type", "rotating", "scope", "count"}`` issues one (a list with ``count``);
    ``POST /_sandbox/tokens/revoke`` ``{"token"}`` | ``{"refresh_token"}`` | ``{"all": true}``;
    ``POST /_sandbox/tokens/expire`` ``{"token"}``.
Events:
    ``POST /_sandbox/events/flush`` ``{"url"}``; ``POST /_sandbox/events/url_verification``
    ``{"url", "challenge"}``; ``POST /_sandbox/events/send`` ``{"event", "url", "event_id",
    "retry_num", "retry_reason", "timestamp"}``.
Inspection:
    ``GET /_sandbox/stats``; ``GET /_sandbox/requests?since=N``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import httpx

from sandbox.server import Request, Response, SandboxServer, json_response
from sandbox.slack_faults import Fault
from sandbox.slack_store import SlackError

if TYPE_CHECKING:
    from sandbox.slack import SlackSandbox

_USER_FIELDS = {"real_name", "email", "title", "deleted"}


def _body(request: Request) -> dict[str, Any]:
    return request.json_object(allow_empty=True)


class SlackControl(SandboxServer):
    """Mixin that adds the ``/_sandbox/`` routes to :class:`sandbox.slack.SlackSandbox`."""

    def _sb(self) -> SlackSandbox:
        return self  # type: ignore[return-value]

    def register_control_routes(self) -> None:
        """Register every control route."""
        c = "/_sandbox"
        for method, path, handler in [
            ("GET", "/stats", lambda r: json_response(200, self.stats())),
            ("GET", "/requests", self._ctl_requests),
            ("POST", "/seed", self._ctl_seed),
            ("POST", r"/users(?:/(?P<id>\w+))?", self._ctl_user),
            ("POST", r"/channels(?:/(?P<id>\w+))?", self._ctl_channel),
            ("DELETE", r"/channels/(?P<id>\w+)", self._ctl_delete_channel),
            ("GET", r"/messages/(?P<channel>\w+)", self._ctl_messages),
            ("POST", r"/messages(?:/(?P<channel>\w+)/(?P<ts>[\d.]+))?", self._ctl_message),
            ("DELETE", r"/messages/(?P<channel>\w+)/(?P<ts>[\d.]+)", self._ctl_delete_message),
            ("POST", "/faults", self._ctl_fault),
            ("DELETE", "/faults", self._ctl_clear_faults),
            ("POST", "/config", self._ctl_config),
            ("POST", "/tokens", self._ctl_issue),
            ("POST", "/tokens/revoke", self._ctl_revoke),
            ("POST", "/tokens/expire", self._ctl_expire),
            ("POST", "/events/flush", self._ctl_flush),
            ("POST", "/events/url_verification", self._ctl_url_verification),
            ("POST", "/events/send", self._ctl_send),
        ]:
            self.route(method, c + path, handler)

    def control_dispatch(self, request: Request) -> Response:
        """Dispatch a control (or authorize) request, mapping failures to readable 4xx answers."""
        try:
            return self.dispatch(request)
        except SlackError as exc:
            status = 404 if exc.code.endswith("_not_found") else 422
            return json_response(status, {"ok": False, "error": exc.code})
        except KeyError as exc:
            return json_response(404, {"ok": False, "error": f"not found: {exc}"})
        except (ValueError, TypeError) as exc:
            return json_response(422, {"ok": False, "error": str(exc)})

    def stats(self) -> dict[str, Any]:
        """Counters and state: records, OAuth, calls by method, queued events and faults, open rate windows."""
        sb = self._sb()
        by_method = sb.call_summary()
        return {"records": sb.workspace.counts(), "oauth": sb.oauth.stats(), "request_count": sum(by_method.values()),
                "calls": by_method, "pending_events": len(sb.events.pending), "faults_queued": len(sb.faults),
                "rate_limits": sb.limiter.snapshot(), "clock": sb.now(), "team_id": sb.workspace.team_id,
                "bot_user_id": sb.workspace.bot_user_id, "touched": sb.workspace.touched}

    def _ctl_requests(self, request: Request) -> Response:
        since = int(request.query.get("since", "0"))
        return json_response(200, [dataclasses.asdict(c) for c in self._sb().request_log[max(since, 0):]])

    def _ctl_seed(self, request: Request) -> Response:
        data = _body(request)
        self._sb().workspace.seed(int(data.get("users", 0)), int(data.get("channels", 0)),
                                  int(data.get("messages_per_channel", 0)))
        return json_response(200, self._sb().workspace.counts())

    def _ctl_user(self, request: Request) -> Response:
        data, sb = _body(request), self._sb()
        if "id" not in request.params:
            if not isinstance(data.get("real_name"), str):
                raise ValueError("field 'real_name' is required")
            return json_response(201, sb.create_user(data["real_name"], data.get("email")))
        unknown = set(data) - _USER_FIELDS
        if unknown:
            raise ValueError(f"unknown user field(s): {', '.join(sorted(unknown))}")
        return json_response(200, sb.update_user(request.params["id"], **data))

    def _ctl_channel(self, request: Request) -> Response:
        data, sb = _body(request), self._sb()
        if "id" not in request.params:
            if not isinstance(data.get("name"), str) or not data["name"]:
                raise ValueError("field 'name' is required")
            return json_response(201, sb.create_channel(data["name"], is_private=bool(data.get("is_private"))))
        return json_response(200, sb.archive_channel(request.params["id"], bool(data.get("archived", True))))

    def _ctl_delete_channel(self, request: Request) -> Response:
        self._sb().delete_channel(request.params["id"])
        return Response(204)

    def _ctl_messages(self, request: Request) -> Response:
        return json_response(200, self._sb().workspace.messages(request.params["channel"]))

    def _ctl_message(self, request: Request) -> Response:
        data, sb = _body(request), self._sb()
        if not isinstance(data.get("text"), str):
            raise ValueError("field 'text' is required")
        if "channel" in request.params:
            return json_response(200, sb.edit_message(request.params["channel"], request.params["ts"], data["text"]))
        if not isinstance(data.get("channel"), str):
            raise ValueError("field 'channel' is required")
        message = sb.post_message(data["channel"], data["text"], data.get("user"), thread_ts=data.get("thread_ts"))
        return json_response(201, message)

    def _ctl_delete_message(self, request: Request) -> Response:
        self._sb().delete_message(request.params["channel"], request.params["ts"])
        return Response(204)

    def _ctl_fault(self, request: Request) -> Response:
        fault = Fault.from_json(_body(request))
        self._sb().faults.add(fault)
        return json_response(201, {"queued": len(self._sb().faults)})

    def _ctl_clear_faults(self, request: Request) -> Response:
        self._sb().faults.clear()
        return Response(204)

    def _ctl_config(self, request: Request) -> Response:
        data, sb = _body(request), self._sb()
        known = {"latency_seconds", "advance_time", "events_url", "signing_secret", "rate_limits", "reset_rate_limits",
                 "exhaust_rate_limit", "post_interval_seconds", "refresh_latency_seconds", "deny_next_authorize"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        if "latency_seconds" in data:
            sb.latency_seconds = float(data["latency_seconds"])
        if "advance_time" in data:
            sb.advance_time(float(data["advance_time"]))
        if "events_url" in data:
            sb.events.url = data["events_url"] or None
        if "signing_secret" in data:
            sb.events.signing_secret = str(data["signing_secret"])
        if "rate_limits" in data:
            sb.limiter.limits.update({str(k): int(v) for k, v in dict(data["rate_limits"]).items()})
        if data.get("reset_rate_limits"):
            sb.limiter.reset()
        if "exhaust_rate_limit" in data:
            spec = dict(data["exhaust_rate_limit"])
            sb.limiter.exhaust(str(spec["method"]), float(spec.get("seconds", 60)))
        if "post_interval_seconds" in data:
            sb.limiter.post_interval_seconds = float(data["post_interval_seconds"])
        if "refresh_latency_seconds" in data:
            sb.oauth.refresh_latency_seconds = float(data["refresh_latency_seconds"])
        if "deny_next_authorize" in data:
            sb.oauth.deny_next(int(data["deny_next_authorize"]))
        return json_response(200, self.stats())

    def _ctl_issue(self, request: Request) -> Response:
        data = _body(request)
        options: dict[str, Any] = {"token_type": str(data.get("token_type", "bot")), "rotating": data.get("rotating")}
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
        if "refresh_token" in data:
            return json_response(200, {"revoked": int(oauth.revoke_refresh_token(str(data["refresh_token"])))})
        if "token" in data:
            return json_response(200, {"revoked": int(oauth.revoke(str(data["token"])))})
        raise ValueError("give 'token', 'refresh_token' or 'all'")

    def _ctl_expire(self, request: Request) -> Response:
        self._sb().oauth.expire(str(_body(request)["token"]))
        return Response(204)

    def _ctl_flush(self, request: Request) -> Response:
        attempts = self._sb().flush_events(_body(request).get("url"))
        return json_response(200, [dataclasses.asdict(a) for a in attempts])

    def _ctl_url_verification(self, request: Request) -> Response:
        data = _body(request)
        try:
            response, verified = self._sb().events.url_verification(data.get("url"), data.get("challenge"))
        except httpx.HTTPError as exc:
            return json_response(502, {"ok": False, "error": f"delivery failed: {exc!r}"})
        return json_response(200, {"status": response.status_code, "verified": verified})

    def _ctl_send(self, request: Request) -> Response:
        data, events = _body(request), self._sb().events
        if not isinstance(data.get("event"), dict) or not isinstance(data["event"].get("type"), str):
            raise ValueError("field 'event' must be an object with a 'type'")
        envelope = events.envelope(data["event"], event_id=data.get("event_id"))
        try:
            response = events.post(envelope, data.get("url"), timestamp=data.get("timestamp"),
                                   retry_num=int(data.get("retry_num", 0)), retry_reason=data.get("retry_reason"))
        except httpx.HTTPError as exc:
            return json_response(502, {"ok": False, "error": f"delivery failed: {exc!r}"})
        return json_response(200, {"status": response.status_code, "envelope": envelope})
