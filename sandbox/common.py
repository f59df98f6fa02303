"""Shared building blocks of the provider sandboxes (Salesforce, Notion, Slack, Google, ...).

- :class:`ProviderSandbox`: a :class:`~sandbox.server.SandboxServer` with one request pipeline
  (control calls under ``/_sandbox/`` pass straight through; API calls get latency, fault
  injection, a lock, a request log) and the generic control endpoints ``GET /_sandbox/stats``,
  ``GET /_sandbox/requests``, ``POST /_sandbox/faults`` and ``POST /_sandbox/faults/clear``.
- :class:`FaultPlan` / :class:`Fault`: queued faults (status codes, timeouts, truncated or
  malformed bodies, a repeated cursor) that apply to the next matching API requests.
- The OAuth authorization-server core lives in :mod:`sandbox.oauth_server`.
- :class:`SortedIndex`: a sorted list of keys searched with ``bisect`` so a page costs time
  proportional to the page; :class:`SandboxClock`: a deterministic clock; :class:`TokenBucket`.
- :func:`hmac_sha256`: the signature helper the webhook senders use.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sandbox.oauth_server import Grant, OAuthServer
from sandbox.server import Request, Response, SandboxServer, json_response

FaultKind = Literal["status", "timeout", "truncate", "malformed", "repeat_cursor"]
FAULT_KINDS: tuple[str, ...] = ("status", "timeout", "truncate", "malformed", "repeat_cursor")


def hmac_sha256(secret: str | bytes, body: bytes, encoding: Literal["hex", "base64"] = "hex") -> str:
    """HMAC-SHA256 of ``body`` keyed with ``secret``, as lower-case hex or standard base64."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, body, hashlib.sha256).digest()
    if encoding == "hex":
        return digest.hex()
    if encoding == "base64":
        return base64.b64encode(digest).decode()
    raise ValueError(f"encoding must be 'hex' or 'base64', not {encoding!r}")


# -- clock and index ------------------------------------------------------------------------------


class SandboxClock:
    """A deterministic clock: every :meth:`tick` advances it by ``step`` from ``epoch``.

    Args:
        epoch: The first instant. ``None`` means "``lead`` before the wall clock, whole seconds",
            so generated timestamps lie in the recent past, like a live account's (a hub that
            asks for "deletes until now" still sees them).
        step: How far one tick moves the clock.
        lead: How far before the wall clock a default epoch starts.
    """

    def __init__(
        self, epoch: datetime | None = None, step: timedelta = timedelta(seconds=1), lead: timedelta = timedelta(days=2)
    ) -> None:
        if epoch is None:
            # on a whole minute, so the first ticks share a minute whatever the wall clock says
            # (timestamps rounded to the minute, as Notion's are, then compare deterministically)
            epoch = datetime.fromtimestamp(math.floor(time.time() / 60) * 60, UTC) - lead
        if epoch.tzinfo is None:
            raise ValueError("epoch must be timezone-aware")
        if step <= timedelta(0):
            raise ValueError("step must be positive")
        self.epoch, self.step, self._now = epoch.astimezone(UTC), step, epoch.astimezone(UTC)

    def now(self) -> datetime:
        """The instant of the latest tick (the epoch before the first)."""
        return self._now

    def tick(self) -> datetime:
        """Advance one step and return the new instant."""
        self._now += self.step
        return self._now


class SortedIndex:
    """Keys (tuples such as ``(timestamp, id)``) kept sorted, for range queries with ``bisect``.

    Inserting a key larger than every other (the usual case: timestamps only grow) is O(1);
    elsewhere it is a C-level list insert. Lookups are O(log n); slicing costs the slice.
    """

    def __init__(self) -> None:
        self._keys: list[tuple[Any, ...]] = []

    def add(self, key: tuple[Any, ...]) -> None:
        """Insert ``key`` (duplicates are kept)."""
        if not self._keys or key >= self._keys[-1]:
            self._keys.append(key)
        else:
            bisect.insort(self._keys, key)

    def remove(self, key: tuple[Any, ...]) -> None:
        """Remove one occurrence of ``key`` (``KeyError`` if absent)."""
        position = bisect.bisect_left(self._keys, key)
        if position >= len(self._keys) or self._keys[position] != key:
            raise KeyError(key)
        del self._keys[position]

    def move(self, old: tuple[Any, ...], new: tuple[Any, ...]) -> None:
        """Replace ``old`` by ``new`` (a record whose sort key changed)."""
        self.remove(old)
        self.add(new)

    def lower(self, key: tuple[Any, ...]) -> int:
        """Position of the first key ``>= key``."""
        return bisect.bisect_left(self._keys, key)

    def upper(self, key: tuple[Any, ...]) -> int:
        """Position of the first key ``> key``."""
        return bisect.bisect_right(self._keys, key)

    def slice(self, start: int, stop: int) -> list[tuple[Any, ...]]:
        """The keys at positions ``start`` to ``stop`` (exclusive)."""
        return self._keys[max(start, 0) : max(stop, 0)]

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(list(self._keys))


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` saved up.

    Args:
        rate: Tokens added per second.
        burst: Bucket capacity (the largest burst allowed after a quiet spell).
        clock: Seconds source (``time.monotonic`` by default).
    """

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens, self._at = burst, clock()

    def take(self) -> float:
        """Take one token; returns 0.0 on success, else the seconds until one is available."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate

    def drain(self) -> None:
        """Empty the bucket (the next call is limited)."""
        self._tokens, self._at = 0.0, self._clock()


# -- fault injection ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One injected fault, applied to the next API request it matches.

    Attributes:
        kind: ``status`` (answer ``status`` with the provider's error body), ``timeout`` (sleep
            ``seconds`` before answering normally, so a client with a shorter timeout gives up
            while the server still applies the request), ``truncate`` (the real answer cut in
            half), ``malformed`` (the real status with a body that is not JSON), or
            ``repeat_cursor`` (the provider hands back the cursor the client just sent).
        status: HTTP status for ``status`` faults.
        seconds: Delay of a ``timeout`` fault.
        code: Provider error code for ``status`` faults (the provider's default for the status otherwise).
        retry_after: ``Retry-After`` seconds for ``status`` faults that carry one.
        path: Regex searched in the request path; ``None`` matches the provider's data API
            (not its OAuth endpoints).
    """

    kind: str = "status"
    status: int = 500
    seconds: float = 0.0
    code: str | None = None
    retry_after: int | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}, not {self.kind!r}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"fault status must be an HTTP status, not {self.status!r}")
        if self.seconds < 0 or (self.retry_after is not None and self.retry_after < 0):
            raise ValueError("fault seconds and retry_after must not be negative")
        if self.path is not None:
            re.compile(self.path)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> tuple[Fault, int]:
        """Build ``(fault, times)`` from a control-API object; ``ValueError`` names the bad field."""
        allowed = {"kind", "status", "seconds", "code", "retry_after", "path", "times"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        try:
            times = int(data.get("times", 1))
            fault = cls(
                kind=str(data.get("kind", "status")), status=int(data.get("status", 500)),
                seconds=float(data.get("seconds", 0.0)),
                code=None if data.get("code") is None else str(data["code"]),
                retry_after=None if data.get("retry_after") is None else int(data["retry_after"]),
                path=None if data.get("path") is None else str(data["path"]),
            )
        except (TypeError, ValueError, re.error) as exc:
            raise ValueError(f"invalid fault: {exc}") from None
        if times < 1:
            raise ValueError("fault times must be >= 1")
        return fault, times


class FaultPlan:
    """A FIFO of faults; each is consumed by the first API request it matches."""

    def __init__(self) -> None:
        self._queue: list[Fault] = []
        self.injected: Counter[str] = Counter()  # kind -> how many were applied

    def add(self, fault: Fault, times: int = 1) -> None:
        """Queue ``fault`` for the next ``times`` matching requests."""
        self._queue += [fault] * times

    def take(self, path: str, kinds: tuple[str, ...], *, default_scope: bool) -> Fault | None:
        """Remove and return the first queued fault of one of ``kinds`` that matches ``path``.

        Args:
            path: The request path.
            kinds: Fault kinds the caller can apply now.
            default_scope: Whether the request belongs to the scope of faults without a ``path``.
        """
        for position, fault in enumerate(self._queue):
            if fault.kind not in kinds:
                continue
            if (re.search(fault.path, path) is not None) if fault.path is not None else default_scope:
                del self._queue[position]
                self.injected[fault.kind] += 1
                return fault
        return None

    def clear(self) -> None:
        """Drop every queued fault."""
        self._queue.clear()

    @property
    def pending(self) -> list[Fault]:
        """The queued faults, in order."""
        return list(self._queue)


def corrupt(response: Response, kind: str) -> Response:
    """The response with its body cut in half (``truncate``) or replaced by non-JSON (``malformed``)."""
    if kind == "truncate":
        body = response.body[: max(len(response.body) // 2, 1) - 1] if len(response.body) > 1 else b"{"
    else:
        body = b'{"results": [{"id": <html>502 Bad Gateway</html>'
    return replace(response, body=body, headers=dict(response.headers))


# -- the provider sandbox base ------------------------------------------------------------------------


class ProviderSandbox(SandboxServer):
    """Base of a provider sandbox: one request pipeline plus generic control endpoints.

    Subclasses register their API routes, implement :meth:`api` (auth, limits, then
    :meth:`~sandbox.server.SandboxServer.dispatch`) and :meth:`fault_response` (the provider's
    error body for an injected status), and may narrow :meth:`in_fault_scope`.

    Args:
        port: TCP port on 127.0.0.1 (0 picks a free one).
        latency_seconds: Sleep before answering each API request.
    """

    def __init__(self, *, port: int = 0, latency_seconds: float = 0.0) -> None:
        super().__init__(port=port)
        self.lock = threading.RLock()
        self.latency_seconds = latency_seconds
        self.faults = FaultPlan()
        self.metrics: Counter[str] = Counter()  # "touched" = records examined or rendered by reads, and more
        self._log: list[tuple[str, str, int]] = []
        self.route("GET", "/_sandbox/stats", lambda r: json_response(200, self.stats()))
        self.route("GET", "/_sandbox/requests", lambda r: json_response(200, [list(e) for e in self.request_log]))
        self.route("POST", "/_sandbox/faults", self._ctl_fault)
        self.route("POST", "/_sandbox/faults/clear", self._ctl_clear_faults)

    # -- subclass hooks -----------------------------------------------------------------------

    def api(self, request: Request) -> Response:
        """Answer one API request (called under :attr:`lock`); subclasses add auth and limits."""
        return self.dispatch(request)

    def fault_response(self, fault: Fault, request: Request) -> Response:
        """The provider's answer to an injected ``status`` fault."""
        return json_response(fault.status, {"message": "Sandbox injected failure"})

    def in_fault_scope(self, request: Request) -> bool:
        """Whether faults without a ``path`` apply to this request (default: every API request)."""
        return True

    def control_error(self, status: int, message: str) -> Response:
        """The body of a failed control call."""
        return json_response(status, {"error": message})

    # -- public control -----------------------------------------------------------------------

    def inject(self, kind: str = "status", *, times: int = 1, **options: Any) -> None:
        """Queue a fault for the next ``times`` matching API requests (see :class:`Fault`)."""
        fault = Fault(kind=kind, **options)
        with self.lock:
            self.faults.add(fault, times)

    def fail_next(self, status: int = 500, times: int = 1, **options: Any) -> None:
        """Answer the next ``times`` API requests with ``status`` and the provider's error body."""
        self.inject("status", times=times, status=status, **options)

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self.lock:
            self.faults.clear()

    @property
    def touched(self) -> int:
        """Records examined or rendered by reads so far (instrumentation: a page must not cost the dataset)."""
        with self.lock:
            return self.metrics["touched"]

    @property
    def request_log(self) -> list[tuple[str, str, int]]:
        """A copy of ``(method, path_with_query, status)`` per API request (control calls excluded)."""
        with self.lock:
            return list(self._log)

    @property
    def request_count(self) -> int:
        """How many API requests were answered (whatever their status)."""
        with self.lock:
            return len(self._log)

    def stats(self) -> dict[str, Any]:
        """Counters and settings (``GET /_sandbox/stats``); subclasses add their own."""
        with self.lock:
            return {
                "request_count": len(self._log), "metrics": dict(self.metrics), "latency_seconds": self.latency_seconds,
                "faults_pending": [f.__dict__ for f in self.faults.pending],
                "faults_injected": dict(self.faults.injected),
                "recent_requests": [list(entry) for entry in self._log[-20:]],
            }

    # -- pipeline -----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Control calls go straight to the router; API calls pass latency, faults and :meth:`api`."""
        if request.path.startswith("/_sandbox/"):
            return self._control(request)
        if self.latency_seconds > 0:
            time.sleep(self.latency_seconds)
        with self.lock:
            fault = self.faults.take(request.path, ("status", "timeout", "truncate", "malformed"),
                                     default_scope=self.in_fault_scope(request))
        if fault is not None and fault.kind == "timeout":
            time.sleep(fault.seconds)
        with self.lock:
            response = self.fault_response(fault, request) if fault and fault.kind == "status" else self.api(request)
            if fault is not None and fault.kind in ("truncate", "malformed"):
                response = corrupt(response, fault.kind)
            self._log.append((request.method, request.target, response.status))
            return response

    def take_repeat_cursor(self, request: Request) -> bool:
        """Consume a queued ``repeat_cursor`` fault for this request (call under :attr:`lock`)."""
        scope = self.in_fault_scope(request)
        return self.faults.take(request.path, ("repeat_cursor",), default_scope=scope) is not None

    def _control(self, request: Request) -> Response:
        try:
            with self.lock:
                return self.dispatch(request)
        except LookupError as exc:
            return self.control_error(404, f"not found: {exc}")
        except (ValueError, TypeError) as exc:
            return self.control_error(400, str(exc))

    def add_token_controls(self, oauth: OAuthServer, client_id: str) -> None:
        """Register ``POST /_sandbox/tokens`` (``{"scope", "count"}``: issue one grant, or a list of ``count``,
        e.g. for a refresh benchmark), ``POST /_sandbox/tokens/revoke`` (``{"token"}`` or ``{"all": true}``)
        and ``POST /_sandbox/tokens/expire`` (every access token expires now)."""

        def issue(request: Request) -> Response:
            data = request.json_object(allow_empty=True)
            scope = str(data.get("scope", ""))
            if "count" not in data:
                return json_response(201, token_json(oauth.issue(client_id, scope)))
            count = data["count"]
            if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 10000:
                raise ValueError("field 'count' must be an integer between 1 and 10000")
            return json_response(201, [token_json(oauth.issue(client_id, scope)) for _ in range(count)])

        def revoke(request: Request) -> Response:
            data = request.json_object()
            if data.get("all") is True:
                oauth.revoke_all()
                return json_response(200, {"revoked": "all"})
            if not isinstance(data.get("token"), str):
                raise ValueError("field 'token' (string) or 'all': true is required")
            return json_response(200, {"revoked": oauth.revoke(data["token"])})

        def expire(request: Request) -> Response:
            oauth.expire_access_tokens()
            return json_response(200, {"expired": True})

        self.route("POST", "/_sandbox/tokens", issue)
        self.route("POST", "/_sandbox/tokens/revoke", revoke)
        self.route("POST", "/_sandbox/tokens/expire", expire)

    def _ctl_fault(self, request: Request) -> Response:
        fault, times = Fault.from_json(request.json_object())
        self.faults.add(fault, times)
        return json_response(200, {"queued": times, "pending": len(self.faults.pending)})

    def _ctl_clear_faults(self, request: Request) -> Response:
        self.faults.clear()
        return json_response(200, {"pending": 0})


def token_json(grant: Grant) -> dict[str, Any]:
    """A grant as the control API shows it: ``access_token``, ``refresh_token``, ``expires_in``, ``grant_id``."""
    return {"access_token": grant.access_token, "refresh_token": grant.refresh_token,
            "expires_in": grant.expires_in(grant.issued_at), "grant_id": grant.grant_id, "scope": grant.scope}


def retry_after_seconds(wait: float) -> int:
    """A ``Retry-After`` value: whole seconds, rounded up, at least 1."""
    return max(math.ceil(wait), 1)
