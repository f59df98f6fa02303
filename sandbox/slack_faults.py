"""Fault injection and tiered rate limits for the Slack sandbox.

A :class:`Fault` is queued on :class:`FaultQueue` and fires on the next API calls whose method
name it matches. Kinds:

- ``ratelimited``: HTTP 429, ``Retry-After: <retry_after>`` and ``{"ok": false, "error": "ratelimited"}``.
- ``error``: HTTP 200 ``{"ok": false, "error": <error>}`` (``internal_error``, ``fatal_error``…).
- ``status``: an HTTP ``status`` (500, 502, 503, 504) with a non-JSON body, like Slack's edge.
- ``timeout``: wait ``seconds`` before answering normally (a client with a shorter timeout gives up).
- ``truncate``: answer normally but cut the body in half (invalid JSON).
- ``malformed``: answer ``200`` with a body that is not JSON.
- ``repeat_cursor``: answer normally but hand back the request's own ``cursor`` as ``next_cursor``
  (it waits for a request that carries a cursor).
- ``revoke``: revoke the calling token's grant first, so the call fails with ``token_revoked``.

``skip`` lets that many matching calls through before the fault fires (e.g. "fail page 3").
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = ("ratelimited", "error", "status", "timeout", "truncate", "malformed", "repeat_cursor", "revoke")

# Web API method → tier (docs.slack.dev method pages); limits are per minute, per method, per workspace.
METHOD_TIERS: dict[str, int] = {
    "users.list": 2, "users.info": 4, "conversations.list": 2, "conversations.info": 3,
    "conversations.history": 3, "conversations.replies": 3, "chat.update": 3, "chat.delete": 3,
    "auth.test": 4, "auth.revoke": 3,
}
TIER_LIMITS: dict[int, int] = {1: 1, 2: 20, 3: 50, 4: 100}


@dataclass
class Fault:
    """One injected fault (see the module docstring for ``kind``).

    Attributes:
        kind: One of :data:`FAULT_KINDS`.
        method: Regex matched (in full) against the Web API method name; ``None`` matches every method.
        times: How many matching calls it affects.
        skip: Matching calls to let through first.
        status: HTTP status for ``status``.
        error: Error code for ``error``.
        retry_after: ``Retry-After`` seconds for ``ratelimited``.
        seconds: Delay for ``timeout``.
    """

    kind: str
    method: str | None = None
    times: int = 1
    skip: int = 0
    status: int = 503
    error: str = "internal_error"
    retry_after: int = 30
    seconds: float = 5.0
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}, not {self.kind!r}")
        if self.times < 1 or self.skip < 0:
            raise ValueError("fault times must be >= 1 and skip >= 0")
        self._pattern = re.compile(self.method) if self.method else None

    def matches(self, method: str, has_cursor: bool) -> bool:
        """Whether this fault applies to a call of ``method``."""
        if self._pattern is not None and not self._pattern.fullmatch(method):
            return False
        return has_cursor or self.kind != "repeat_cursor"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fault:
        """Build from a control-API object (``ValueError`` naming a bad field)."""
        allowed = {"kind", "method", "times", "skip", "status", "error", "retry_after", "seconds"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        if not isinstance(data.get("kind"), str):
            raise ValueError("fault field 'kind' is required")
        return cls(**dict(data))


class FaultQueue:
    """Faults waiting to fire, in the order they were added (thread-safe)."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        """Queue a fault."""
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._faults.clear()

    def take(self, method: str, has_cursor: bool) -> Fault | None:
        """The fault that fires for this call, if any (counting down ``skip`` and ``times``)."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, has_cursor):
                    continue
                if fault.skip:
                    fault.skip -= 1
                    return None
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
                return fault
            return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)


class TierLimiter:
    """Fixed one-window quotas per Web API method, plus chat.postMessage's ~1 per second per channel.

    Args:
        clock: The sandbox clock.
        limits: Calls per window by method (methods not named are not limited here).
        window_seconds: Window length (Slack's is a minute).
        post_interval_seconds: Minimum spacing of chat.postMessage calls to one channel (0 turns it off).
    """

    def __init__(self, clock: Callable[[], float], limits: Mapping[str, int], window_seconds: float = 60.0,
                 post_interval_seconds: float = 1.0) -> None:
        self.clock, self.limits, self.window_seconds = clock, dict(limits), window_seconds
        self.post_interval_seconds = post_interval_seconds
        self._windows: dict[str, tuple[float, int]] = {}  # method → (window end, calls used)
        self._last_post: dict[str, float] = {}
        self._lock = threading.Lock()

    def consume(self, method: str) -> int | None:
        """Count one call; ``None`` if allowed, else the ``Retry-After`` seconds."""
        limit = self.limits.get(method)
        if limit is None:
            return None
        with self._lock:
            now = self.clock()
            end, used = self._windows.get(method, (0.0, 0))
            if now >= end:
                end, used = now + self.window_seconds, 0
            if used >= limit:
                return max(math.ceil(end - now), 1)
            self._windows[method] = (end, used + 1)
            return None

    def consume_post(self, channel_id: str) -> int | None:
        """Count one chat.postMessage to a channel; ``None`` if allowed, else ``Retry-After`` seconds."""
        if self.post_interval_seconds <= 0:
            return None
        with self._lock:
            now = self.clock()
            last = self._last_post.get(channel_id)
            if last is not None and now - last < self.post_interval_seconds:
                return max(math.ceil(self.post_interval_seconds - (now - last)), 1)
            self._last_post[channel_id] = now
            return None

    def exhaust(self, method: str, reset_in_seconds: float) -> None:
        """Use up a method's quota until ``reset_in_seconds`` from now."""
        with self._lock:
            limit = self.limits.setdefault(method, TIER_LIMITS[METHOD_TIERS.get(method, 3)])
            self._windows[method] = (self.clock() + reset_in_seconds, limit)

    def reset(self) -> None:
        """Forget every window and channel spacing."""
        with self._lock:
            self._windows.clear()
            self._last_post.clear()

    def snapshot(self) -> dict[str, dict[str, float]]:
        """``{method: {"limit", "used", "reset_in"}}`` for the methods with an open window."""
        with self._lock:
            now = self.clock()
            return {m: {"limit": self.limits.get(m, 0), "used": used, "reset_in": max(end - now, 0.0)}
                    for m, (end, used) in self._windows.items() if end > now}


def default_limits(overrides: Mapping[str, int] | None = None) -> dict[str, int]:
    """Per-method limits from the tiers, with ``overrides`` (method → calls per window) on top."""
    return {method: TIER_LIMITS[tier] for method, tier in METHOD_TIERS.items()} | dict(overrides or {})
