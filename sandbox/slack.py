"""Loopback simulator of Slack: the Web API, OAuth v2 with token rotation, and Events API deliveries.

Behaviour follows ``PROVIDERS.md`` § Slack and the Web API reference (docs.slack.dev):

- ``/api/<method>`` accepts GET query strings, form posts and JSON posts, with the token in
  ``Authorization: Bearer`` (or a ``token`` argument). Answers are HTTP 200 with ``"ok"``; failures
  are ``{"ok": false, "error": …}`` (``not_authed``, ``invalid_auth``, ``token_expired``,
  ``token_revoked``, ``channel_not_found``, ``invalid_cursor``…).
- Methods: ``users.list``, ``users.info``, ``conversations.list``, ``conversations.info``,
  ``conversations.history``, ``conversations.replies``, ``chat.postMessage``, ``chat.update``,
  ``chat.delete``, ``auth.test``, ``auth.revoke`` and ``oauth.v2.access`` (:mod:`sandbox.slack_oauth`).
- Paging: ``cursor`` + ``limit`` in, ``response_metadata.next_cursor`` out (empty or absent at the
  end); ``conversations.history`` is newest first and takes ``oldest``/``latest``/``inclusive``.
- Rate limits per method per workspace in tiers (1/20/50/100 a minute) and about one
  chat.postMessage per second per channel; over the limit: 429 with ``Retry-After`` seconds and
  ``{"ok": false, "error": "ratelimited"}``.
- Every change (through the API or the Python/control API) queues the Events API event Slack
  would send; :meth:`SlackSandbox.flush_events` (or auto delivery) signs and POSTs them
  (:mod:`sandbox.slack_events`).

Run it alone with ``python -m sandbox.slack --port 8002 --users 20 --channels 5 --messages 50``.
Control endpoints live under ``/_sandbox/`` (see :mod:`sandbox.slack_control`); they need no
auth and are neither counted nor logged as API calls.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from sandbox.server import Request, Response, json_response, run_until_signal
from sandbox.slack_control import SlackControl
from sandbox.slack_events import SlackEventSender
from sandbox.slack_faults import Fault, FaultQueue, TierLimiter, default_limits
from sandbox.slack_oauth import SlackOAuth, TokenInfo
from sandbox.slack_store import SlackError, SlackWorkspace

MAX_LIMIT = {"users.list": 1000, "conversations.list": 1000, "conversations.history": 999,
             "conversations.replies": 1000}
CHANNEL_TYPES = {"public_channel", "private_channel", "mpim", "im"}


class RateLimited(Exception):
    """Raised by a handler when a call is over its limit."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


@dataclass
class LoggedCall:
    """One Web API call as the sandbox saw it.

    Attributes:
        method: Web API method name (e.g. ``conversations.history``).
        args: Its arguments (the token left out).
        status: HTTP status answered.
        error: The ``error`` of an ``ok: false`` answer, else ``""``.
        touched: Records the call examined (the page-cost instrumentation).
    """

    method: str
    args: dict[str, str]
    status: int
    error: str
    touched: int


def _int_arg(args: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    raw = args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(str(raw))
    except ValueError:
        raise SlackError("invalid_arguments") from None
    if value < 0:
        raise SlackError("invalid_arguments")
    return min(value, maximum) if value else default


def _flag(args: Mapping[str, str], name: str) -> bool:
    return str(args.get(name, "")).lower() in ("1", "true")


class SlackSandbox(SlackControl):
    """A Slack workspace simulator.

    Args:
        users: Members to seed (a bot user always exists too).
        channels: Public channels to seed.
        messages_per_channel: Top-level messages to seed in each seeded channel (about 10% get a reply).
        seed: Seed of every generated id, name and token.
        token: A long-lived bot token (no expiry, no refresh) accepted from the start.
        client_id: The app's OAuth client id.
        client_secret: The app's OAuth client secret.
        signing_secret: The app's Events API signing secret.
        events_url: The Events API Request URL (deliveries wait in the outbox until it is set).
        auto_deliver_events: Deliver events from a background thread as they happen.
        rotation: Token rotation on for OAuth-issued tokens (12 h access tokens, rotating refresh tokens).
        rate_limits: Per-method calls per window, on top of the tier defaults.
        rate_window_seconds: Length of a rate-limit window (60 like Slack).
        post_interval_seconds: chat.postMessage spacing per channel (1 s like Slack; 0 turns it off).
        latency_seconds: Sleep before answering each API call.
        clock: Wall-clock source (tests pass a fake one); :meth:`advance_time` moves it forward.
        port: Port on 127.0.0.1 (0 picks a free one).
    """

    def __init__(self, users: int = 0, channels: int = 0, messages_per_channel: int = 0, seed: int = 1, *,
                 token: str | None = "xoxb-sandbox-token", client_id: str = "1234567890.0987654321",
                 client_secret: str = "slack-client-secret", signing_secret: str = "slack-signing-secret",
                 events_url: str | None = None, auto_deliver_events: bool = False, rotation: bool = True,
                 rate_limits: Mapping[str, int] | None = None, rate_window_seconds: float = 60.0,
                 post_interval_seconds: float = 1.0, latency_seconds: float = 0.0,
                 clock: Callable[[], float] = time.time, port: int = 0) -> None:
        super().__init__(port=port)
        self._base_clock, self._offset = clock, 0.0
        self.latency_seconds = latency_seconds
        self.workspace = SlackWorkspace(seed)
        self.oauth = SlackOAuth(self.workspace, client_id, client_secret, self.now, rotation=rotation, seed=seed)
        self.events = SlackEventSender(self.workspace, signing_secret, url=events_url, seed=seed)
        self.limiter = TierLimiter(self.now, default_limits(rate_limits), rate_window_seconds, post_interval_seconds)
        self.faults = FaultQueue()
        self._log: list[LoggedCall] = []
        self.call_counts: Counter[str] = Counter()  # Web API method → calls answered
        self._log_lock = threading.Lock()
        self._halt = threading.Event()
        self.static_token = token
        if token:
            self.oauth.issue(token=token, rotating=False)
        self.workspace.seed(users, channels, messages_per_channel)
        self._auto_deliver = auto_deliver_events
        self.route("GET", "/oauth/v2/authorize", self._authorize)
        self.register_control_routes()

    # -- clock and lifecycle ----------------------------------------------------------------------

    def now(self) -> float:
        """The sandbox's wall clock (the given clock plus :meth:`advance_time` offsets)."""
        return self._base_clock() + self._offset

    def advance_time(self, seconds: float) -> None:
        """Move the sandbox clock forward (expires tokens, opens rate-limit windows)."""
        self._offset += seconds

    def start(self) -> SlackSandbox:
        """Start serving (and the event auto-delivery thread when asked for)."""
        self._halt.clear()
        super().start()
        if self._auto_deliver:
            self.events.start_auto_delivery()
        return self

    def stop(self) -> None:
        """Stop serving; sleeping fault handlers wake up and the delivery thread ends."""
        self._halt.set()
        self.events.stop()
        super().stop()

    # -- data control (Python API); every change queues its Events API event ----------------------

    def _emit(self, event: Mapping[str, Any]) -> None:
        self.events.enqueue(event)

    def create_user(self, real_name: str, email: str | None = None) -> dict[str, Any]:
        """Add a member and queue ``team_join``."""
        user = self.workspace.create_user(real_name, email)
        self._emit({"type": "team_join", "user": user, "event_ts": self.workspace.now_ts()})
        return user

    def update_user(self, user_id: str, **fields: Any) -> dict[str, Any]:
        """Change ``real_name``/``email``/``title``/``deleted`` of a member and queue ``user_change``."""
        user = self.workspace.update_user(user_id, **fields)
        self._emit({"type": "user_change", "user": user, "event_ts": self.workspace.now_ts()})
        return user

    def create_channel(self, name: str, *, is_private: bool = False) -> dict[str, Any]:
        """Create a channel and queue ``channel_created``."""
        channel, event = self.workspace.create_channel(name, is_private=is_private)
        self._emit(event)
        return channel

    def archive_channel(self, channel_id: str, archived: bool = True) -> dict[str, Any]:
        """Archive (or unarchive) a channel and queue ``channel_archive``/``channel_unarchive``."""
        channel, event = self.workspace.set_channel_archived(channel_id, archived)
        self._emit(event)
        return channel

    def delete_channel(self, channel_id: str) -> None:
        """Delete a channel and queue ``channel_deleted``."""
        self._emit(self.workspace.delete_channel(channel_id))

    def post_message(self, channel_id: str, text: str, user: str | None = None, *,
                     thread_ts: str | None = None) -> dict[str, Any]:
        """Post as a member (the bot by default) and queue the ``message`` event."""
        message, event = self.workspace.post_message(channel_id, text, user, thread_ts=thread_ts)
        self._emit(event)
        return message

    def edit_message(self, channel_id: str, ts: str, text: str) -> dict[str, Any]:
        """Edit a message and queue ``message_changed``."""
        message, event = self.workspace.edit_message(channel_id, ts, text)
        self._emit(event)
        return message

    def delete_message(self, channel_id: str, ts: str) -> None:
        """Delete a message and queue ``message_deleted``."""
        self._emit(self.workspace.delete_message(channel_id, ts))

    def flush_events(self, url: str | None = None) -> list[Any]:
        """Deliver every queued event now (see :meth:`SlackEventSender.flush`)."""
        return self.events.flush(url)

    def inject(self, kind: str, **options: Any) -> Fault:
        """Queue a fault (see :mod:`sandbox.slack_faults`), e.g. ``inject("ratelimited", method="users.list")``."""
        fault = Fault(kind, **options)
        self.faults.add(fault)
        return fault

    # -- observation ------------------------------------------------------------------------------

    @property
    def request_log(self) -> list[LoggedCall]:
        """Every Web API call so far (control calls excluded)."""
        with self._log_lock:
            return list(self._log)

    def call_summary(self) -> dict[str, int]:
        """Calls answered so far, by Web API method."""
        with self._log_lock:
            return dict(self.call_counts)

    def calls(self, method: str | None = None) -> int:
        """How many Web API calls (of one method) were answered, whatever their outcome."""
        with self._log_lock:
            return self.call_counts.total() if method is None else self.call_counts[method]

    # -- request pipeline -------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Control calls go straight to the router; API calls pass latency, faults, auth and limits."""
        if not request.path.startswith("/api/"):
            return self.control_dispatch(request)
        if self.latency_seconds > 0:
            self._halt.wait(self.latency_seconds)
        method, touched = request.path.removeprefix("/api/"), 0
        try:
            args = self._args(request)
        except ValueError:
            args = {}
            response = self._error_response("invalid_json")
        else:
            before = self.workspace.touched
            response = self._call(method, args, request)
            touched = self.workspace.touched - before
        error = ""
        if response.headers.get("Content-Type", "").startswith("application/json"):
            try:
                body = json.loads(response.body)
                error = body.get("error", "") if isinstance(body, dict) else ""
            except ValueError:
                error = "malformed"
        safe = {k: v for k, v in args.items() if k not in ("token", "client_secret", "refresh_token", "code")}
        with self._log_lock:
            self._log.append(LoggedCall(method, safe, response.status, error, touched))
            self.call_counts[method] += 1
        return response

    @staticmethod
    def _args(request: Request) -> dict[str, str]:
        args = dict(request.query)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.method == "POST" and request.body:
            if content_type == "application/json":
                data = request.json_object()
                args |= {k: v if isinstance(v, str) else json.dumps(v) if isinstance(v, dict | list) else str(v)
                         for k, v in data.items() if v is not None}
            else:
                args |= dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        return args

    def _call(self, method: str, args: dict[str, str], request: Request) -> Response:
        fault = self.faults.take(method, bool(args.get("cursor")))
        if fault is not None:
            early = self._early_fault(fault, args, request)
            if early is not None:
                return early
        try:
            body = self._invoke(method, args, request)
        except SlackError as exc:
            body = {"ok": False, "error": exc.code}
        except RateLimited as exc:
            return json_response(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(exc.retry_after)})
        if fault is not None and fault.kind == "repeat_cursor" and body.get("ok"):
            body.setdefault("response_metadata", {})["next_cursor"] = args["cursor"]
        response = json_response(200, body)
        if fault is not None and fault.kind == "truncate":
            response.body = response.body[: max(len(response.body) // 2, 1)]
        elif fault is not None and fault.kind == "malformed":
            response.body = b'{"ok": true, "members": [{"id": "U1",]'
        return response

    def _early_fault(self, fault: Fault, args: dict[str, str], request: Request) -> Response | None:
        if fault.kind == "ratelimited":
            return json_response(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(fault.retry_after)})
        if fault.kind == "error":
            return self._error_response(fault.error)
        if fault.kind == "status":
            page = f"<html><body><h1>{fault.status}</h1>Slack is having trouble. Try again.</body></html>"
            return Response(fault.status, {"Content-Type": "text/html; charset=utf-8"}, page.encode())
        if fault.kind == "timeout":
            self._halt.wait(fault.seconds)
        elif fault.kind == "revoke":
            token = self._token(args, request)
            if token:
                self.oauth.revoke(token)
        return None

    @staticmethod
    def _error_response(code: str) -> Response:
        return json_response(200, {"ok": False, "error": code})

    @staticmethod
    def _token(args: Mapping[str, str], request: Request) -> str | None:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credential.strip():
            return credential.strip()
        return args.get("token") or None

    def _invoke(self, method: str, args: dict[str, str], request: Request) -> dict[str, Any]:
        if method == "oauth.v2.access":
            return self.oauth.access(args, request.headers.get("authorization", ""))
        handler = self._METHODS.get(method)
        if handler is None:
            raise SlackError("unknown_method")
        info = self.oauth.check(self._token(args, request))
        retry_after = self.limiter.consume(method)
        if retry_after is not None:
            raise RateLimited(retry_after)
        return {"ok": True} | handler(self, args, info)

    # -- Web API methods --------------------------------------------------------------------------

    def _users_list(self, args: dict[str, str], info: TokenInfo) -> dict[str, Any]:
        limit = _int_arg(args, "limit", 0, MAX_LIMIT["users.list"])
        if not limit:  # no limit: Slack tries to send everything, and refuses when the workspace is large
            if self.workspace.user_count > MAX_LIMIT["users.list"]:
                raise SlackError("limit_required")
            limit = MAX_LIMIT["users.list"]
        members, following = self.workspace.list_users(args.get("cursor") or None, limit)
        return {"members": members, "cache_ts": int(self.now()), "response_metadata": {"next_cursor": following}}

    def _users_info(self, args: dict[str, str], info: TokenInfo) -> dict[str, Any]:
        return {"user": self.workspace.get_user(args.get("user", ""))}

    def _conversations_list(self, args: dict[str, str], info: TokenInfo) -> dict[str, Any]:
        types = {t.strip() for t in args.get("types", "public_channel").split(",") if t.strip()}
        if not types or types - CHANNEL_TYPES:
            raise SlackError("invalid_types")
        limit = _int_arg(args, "limit", 100, MAX_LIMIT["conversations.list"])
        page, following = self.workspace.list_channels(args.get("cursor") or None, limit, types,
                                                       _flag(args, "exclude_archived"))
        return {"channels": page, "response_metadata": {"next_cursor": following}}

    def _conversations_info(self, args: dict[str, str], info: TokenInfo) -> dict[str, Any]:
        return {"channel": self.workspace.get_channel(args.get("channel", ""))}

    def _conversations_history(self, args: dict[str, str], info: TokenInfo) -> dict[str, Any]:
        limit = _int_arg(args, "limit", 100, MAX_LIMIT["conversations.history"])
        messages, more, following = self.workspace.history(
            args.get("channel", ""), cursor=args.get("cursor") or None, limit=limit,
            oldest=args.get("oldest") or None, latest=args.get("latest") or None, inclusive=_flag(args, "inclusive"))
        body: dict[str, Any] = {"messages": messages, "has_more": more, "pin_count": 0,
                                "channel_actions_ts": None, "channel_actions_count": 0}
        if more:
            body["response_metadata"] = {"next_cursor": following}
        return body

    def _conversations_replies(self, args: dict[str, str], info: TokenInfo) -> dict[str, Any]:
        if not args.get("ts"):
            raise SlackError("thread_not_found")
        limit = _int_arg(args, "limit", 100, MAX_LIMIT["conversations.replies"])
        try:
            messages, more, following = self.workspace.replies(args.get("channel", ""), args["ts"],
                                                               cursor=args.get("cursor") or None, limit=limit)
        except SlackError as exc:
            raise SlackError("thread_not_found" if exc.code == "message_not_found" else exc.code) from None
        body: dict[str, Any] = {"messages": messages, "has_more": more}
        if more:
            body["response_metadata"] = {"next_cursor": following}
        return body

    def _post_message(self, args: dict[str, str], info: TokenInfo) -> dict[str, Any]:
        text = args.get("text", "")
        if not text and not args.get("blocks") and not args.get("attachments"):
            raise SlackError("no_text")
        if len(text) > 40000:
            raise SlackError("msg_too_long")
        with self.workspace.lock:
            channel_id = self.workspace.channel(args.get("channel", ""), allow_archived=False)["id"]
            retry_after = self.limiter.consume_post(channel_id)
            if retry_after is not None:
                raise RateLimited(retry_after)
            message, event = self.workspace.post_message(channel_id, text, info.user_id,
                                                         thread_ts=args.get("thread_ts") or None)
        if "bot_id" in message:
            ws = self.workspace
            message["bot_profile"] = {"id": ws.bot_id, "app_id": ws.app_id, "name": "Sandbox Bot", "deleted": False,
                                      "team_id": ws.team_id, "updated": int(float(message["ts"]))}
        self._emit(event)
        return {"channel": channel_id, "ts": message["ts"], "message": message}

    def _own_message(self, args: dict[str, str], info: TokenInfo, error: str) -> tuple[str, dict[str, Any]]:
        channel_id = self.workspace.channel(args.get("channel", ""))["id"]
        message = self.workspace.message(channel_id, args.get("ts", ""))
        if message["user"] != info.user_id:
            raise SlackError(error)
        return channel_id, message

    def _chat_update(self, args: dict[str, str], info: TokenInfo) -> dict[str, Any]:
        if not args.get("text") and not args.get("blocks"):
            raise SlackError("no_text")
        with self.workspace.lock:
            channel_id, message = self._own_message(args, info, "cant_update_message")
            updated, event = self.workspace.edit_message(channel_id, message["ts"], args.get("text", ""))
        self._emit(event)
        return {"channel": channel_id, "ts": updated["ts"], "text": updated["text"], "message": updated}

    def _chat_delete(self, args: dict[str, str], info: TokenInfo) -> dict[str, Any]:
        with self.workspace.lock:
            channel_id, message = self._own_message(args, info, "cant_delete_message")
            event = self.workspace.delete_message(channel_id, message["ts"])
        self._emit(event)
        return {"channel": channel_id, "ts": message["ts"]}

    def _auth_test(self, args: dict[str, str], info: TokenInfo) -> dict[str, Any]:
        ws = self.workspace
        user = ws.get_user(info.user_id)
        body = {"url": f"https://{ws.domain}.slack.com/", "team": ws.team_name, "user": user["name"],
                "team_id": ws.team_id, "user_id": info.user_id, "is_enterprise_install": False}
        return body | ({"bot_id": ws.bot_id} if info.token_type == "bot" else {})

    def _auth_revoke(self, args: dict[str, str], info: TokenInfo) -> dict[str, Any]:
        if _flag(args, "test"):
            return {"revoked": False}
        return {"revoked": self.oauth.revoke(info.token)}

    _METHODS: dict[str, Callable[[SlackSandbox, dict[str, str], TokenInfo], dict[str, Any]]] = {
        "users.list": _users_list, "users.info": _users_info, "conversations.list": _conversations_list,
        "conversations.info": _conversations_info, "conversations.history": _conversations_history,
        "conversations.replies": _conversations_replies, "chat.postMessage": _post_message,
        "chat.update": _chat_update, "chat.delete": _chat_delete, "auth.test": _auth_test,
        "auth.revoke": _auth_revoke,
    }

    # -- OAuth authorize --------------------------------------------------------------------------

    def _authorize(self, request: Request) -> Response:
        status, target = self.oauth.authorize(request.query)
        if status == 302:
            return Response(302, {"Location": target, "Cache-Control": "no-store"}, b"")
        return Response(400, {"Content-Type": "text/plain; charset=utf-8"}, target.encode())


def main(argv: list[str] | None = None) -> None:
    """Run a Slack sandbox in the foreground until SIGTERM/SIGINT, printing its base URL first."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.slack", description="Slack Web API sandbox")
    for flag, default in [("--port", 0), ("--users", 0), ("--channels", 0), ("--messages", 0), ("--seed", 1),
                          ("--token", "xoxb-sandbox-token"), ("--signing-secret", "slack-signing-secret"),
                          ("--events-url", ""), ("--rate-window", 60.0), ("--latency", 0.0)]:
        parser.add_argument(flag, type=type(default), default=default)
    a = parser.parse_args(argv)
    sandbox = SlackSandbox(a.users, a.channels, a.messages, a.seed, token=a.token, signing_secret=a.signing_secret,
                           events_url=a.events_url or None, auto_deliver_events=bool(a.events_url),
                           rate_window_seconds=a.rate_window, latency_seconds=a.latency, port=a.port)
    run_until_signal(sandbox)


if __name__ == "__main__":
    main()
