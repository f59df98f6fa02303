"""Pieces the Google sandbox modules share: error bodies, partial responses, a change log, faults.

- :class:`GoogleError` renders Google's JSON error shape
  ``{"error": {"code", "message", "errors": [{"domain", "reason", "message", …}], "status"}}``.
- :func:`parse_fields` / :func:`apply_fields` implement the ``fields`` partial-response syntax
  (``nextPageToken,changes(fileId,file/name)``), validated against the resource's known fields.
- :class:`ChangeLog` keeps the latest change per record under increasing change numbers; a page
  from a position examines at most ``limit`` entries (a page may be short, as Google allows), so
  its cost never grows with the dataset. Superseded entries are compacted away.
- :class:`GoogleFault` / :class:`GoogleFaults`: injected faults for the Google sandbox.
"""

from __future__ import annotations

import bisect
import random
import re
import threading
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
           502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class GoogleError(Exception):
    """A Google API error answer.

    Args:
        code: HTTP status.
        reason: ``errors[0].reason`` (``notFound``, ``fullSyncRequired``, ``userRateLimitExceeded``…).
        message: Human-readable message.
        domain: ``errors[0].domain`` (``global``, ``usageLimits``, ``calendar``).
        location: The parameter or header at fault, if any.
        location_type: ``parameter`` or ``header``.
        status: The canonical status name (derived from ``code`` when omitted; ``""`` leaves it out).
    """

    def __init__(self, code: int, reason: str, message: str, *, domain: str = "global", location: str | None = None,
                 location_type: str = "parameter", status: str | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.domain = code, reason, message, domain
        self.location, self.location_type = location, location_type
        self.status = _STATUS.get(code, "") if status is None else status

    def body(self) -> dict[str, Any]:
        """The JSON error document."""
        item: dict[str, Any] = {"message": self.message, "domain": self.domain, "reason": self.reason}
        if self.location:
            item |= {"location": self.location, "locationType": self.location_type}
        error: dict[str, Any] = {"code": self.code, "message": self.message, "errors": [item]}
        if self.status:
            error["status"] = self.status
        return {"error": error}


def bad_request(message: str, location: str | None = None, reason: str = "invalid") -> GoogleError:
    """A 400 ``invalid`` error naming the parameter."""
    return GoogleError(400, reason, message, location=location)


def rfc3339(moment: datetime) -> str:
    """``2024-01-01T00:00:00.000Z`` (millisecond precision, like Drive and Calendar)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str, parameter: str) -> datetime:
    """Parse an RFC 3339 timestamp (``400 invalid`` naming ``parameter`` otherwise)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"Invalid value for {parameter}: {text}", parameter) from None
    if moment.tzinfo is None:
        raise bad_request(f"Invalid value for {parameter}: {text} (a time zone offset is required)", parameter)
    return moment.astimezone(UTC)


def random_id(rng: random.Random, alphabet: str, length: int, taken: set[str], prefix: str = "") -> str:
    """A fresh id from a seeded generator (unique within ``taken``, which it joins)."""
    while True:
        candidate = prefix + "".join(rng.choice(alphabet) for _ in range(length))
        if candidate not in taken:
            taken.add(candidate)
            return candidate


# -- partial responses ------------------------------------------------------------------------------

Schema = Mapping[str, Any]  # field → None (a leaf) or a nested Schema
Selection = dict[str, Any]  # field → None (everything below) or a nested Selection
_TOKEN = re.compile(r"\s*([A-Za-z_*][\w*]*|[(),/])")


def parse_fields(text: str, schema: Schema) -> Selection:
    """Parse a ``fields`` value against ``schema``.

    Raises:
        GoogleError: 400 ``invalidParameter`` naming the bad selection.
    """
    tokens, position = [], 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if match is None:
            raise _bad_fields(text)
        tokens.append(match.group(1))
        position = match.end()
    selection, rest = _parse_list(tokens, schema, text)
    if rest:
        raise _bad_fields(text)
    return selection


def _bad_fields(text: str) -> GoogleError:
    return GoogleError(400, "invalidParameter", f"Invalid field selection {text}", location="fields")


def _parse_list(tokens: list[str], schema: Schema, text: str) -> tuple[Selection, list[str]]:
    selection: Selection = {}
    while True:
        path: list[str] = []
        while True:
            if not tokens or tokens[0] in "(),/":
                raise _bad_fields(text)
            path.append(tokens.pop(0))
            if tokens and tokens[0] == "/":
                tokens.pop(0)
                continue
            break
        sub_schema: Any = schema
        for name in path:
            if name != "*" and (not isinstance(sub_schema, Mapping) or name not in sub_schema):
                raise _bad_fields(text)
            sub_schema = sub_schema if name == "*" else sub_schema[name]
        leaf: Selection | None = None
        if tokens and tokens[0] == "(":
            tokens.pop(0)
            if not isinstance(sub_schema, Mapping):
                raise _bad_fields(text)
            leaf, tokens = _parse_list(tokens, sub_schema, text)
            if not tokens or tokens.pop(0) != ")":
                raise _bad_fields(text)
        _merge(selection, path, leaf)
        if tokens and tokens[0] == ",":
            tokens.pop(0)
            continue
        return selection, tokens


def _merge(selection: Selection, path: list[str], leaf: Selection | None) -> None:
    node = selection
    for name in path[:-1]:
        if name in node and node[name] is None:
            return  # the whole subtree is already selected
        node = node.setdefault(name, {})
    last = path[-1]
    if leaf is None or node.get(last, {}) is None:
        node[last] = None
    else:
        for key, value in leaf.items():
            _merge(node.setdefault(last, {}), [key], value)


def apply_fields(value: Any, selection: Selection | None) -> Any:
    """Keep only the selected fields of a JSON value (lists apply the selection to each item)."""
    if selection is None:
        return value
    if isinstance(value, list):
        return [apply_fields(item, selection) for item in value]
    if not isinstance(value, dict):
        return value
    if "*" in selection:
        return {k: apply_fields(v, selection.get(k, selection["*"])) for k, v in value.items()}
    return {k: apply_fields(value[k], sub) for k, sub in selection.items() if k in value}


# -- change log -------------------------------------------------------------------------------------


class ChangeLog:
    """The latest change number of each key, readable in change order from any position.

    Change numbers start at 1 and only grow. :meth:`record` gives a key a new number and forgets
    its previous one, so a read from a position sees each key at most once, at its latest change.
    """

    def __init__(self) -> None:
        self.last = 0
        self._numbers: list[int] = []  # ascending; may hold superseded numbers until compaction
        self._key_of: dict[int, Hashable] = {}
        self._latest: dict[Hashable, int] = {}

    def record(self, key: Hashable) -> int:
        """Give ``key`` the next change number and return it."""
        self.last += 1
        previous = self._latest.get(key)
        if previous is not None:
            del self._key_of[previous]
        self._latest[key] = self.last
        self._key_of[self.last] = key
        self._numbers.append(self.last)
        if len(self._numbers) > 2 * len(self._key_of) + 64:  # superseded entries stay fewer than live + 64
            self._numbers = [n for n in self._numbers if n in self._key_of]
        return self.last

    def read(self, start: int, limit: int, stop: int | None = None) -> tuple[list[tuple[int, Hashable]], int, int]:
        """Entries numbered ``>= start`` (and ``<= stop``), examining at most ``limit`` positions.

        Returns:
            ``(entries, next_start, examined)``: ``next_start`` is where the next read begins; it is
            past :attr:`last` (or ``stop``) when the log is exhausted.
        """
        begin = bisect.bisect_left(self._numbers, start)
        window = self._numbers[begin : begin + limit]
        if stop is not None:
            window = window[: bisect.bisect_right(window, stop)]
        entries = [(n, self._key_of[n]) for n in window if n in self._key_of]
        after = begin + len(window)
        done = after >= len(self._numbers) or (stop is not None and self._numbers[after] > stop)
        following = (self.last if stop is None else stop) + 1 if done else self._numbers[after]
        return entries, following, len(window)


# -- faults -----------------------------------------------------------------------------------------

FAULT_KINDS = ("rate_limit", "quota", "status", "timeout", "truncate", "malformed", "repeat_cursor", "gone",
               "revoke")


@dataclass
class GoogleFault:
    """One injected fault for the next calls whose operation name matches.

    Attributes:
        kind: ``rate_limit`` (403 ``reason``: ``userRateLimitExceeded`` or ``rateLimitExceeded``),
            ``quota`` (429 ``RESOURCE_EXHAUSTED``), ``status`` (``status`` with a ``backendError``
            body), ``timeout`` (wait ``seconds``, then answer normally), ``truncate`` / ``malformed``
            (a broken body), ``repeat_cursor`` (``nextPageToken`` = the request's ``pageToken``),
            ``gone`` (410 ``fullSyncRequired``), ``revoke`` (revoke the caller's grant first).
        operation: Regex matched in full against the operation (``drive.changes.list``,
            ``calendar.events.list``, ``oauth.token``…); ``None`` matches every API operation.
        times: How many matching calls it affects.
        skip: Matching calls to let through first.
        status: HTTP status of ``status`` faults.
        reason: Reason of ``rate_limit`` faults.
        seconds: Delay of ``timeout`` faults.
        retry_after: Optional ``Retry-After`` seconds on ``quota`` and ``status`` faults.
    """

    kind: str
    operation: str | None = None
    times: int = 1
    skip: int = 0
    status: int = 503
    reason: str = "userRateLimitExceeded"
    seconds: float = 5.0
    retry_after: int | None = None
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}, not {self.kind!r}")
        if self.times < 1 or self.skip < 0:
            raise ValueError("fault times must be >= 1 and skip >= 0")
        if self.reason not in ("userRateLimitExceeded", "rateLimitExceeded"):
            raise ValueError("fault reason must be userRateLimitExceeded or rateLimitExceeded")
        self._pattern = re.compile(self.operation) if self.operation else None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GoogleFault:
        """Build from a control-API object (``ValueError`` naming a bad field)."""
        allowed = {"kind", "operation", "times", "skip", "status", "reason", "seconds", "retry_after"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        if not isinstance(data.get("kind"), str):
            raise ValueError("fault field 'kind' is required")
        return cls(**dict(data))

    def error(self) -> GoogleError:
        """The error answer of an error-kind fault."""
        if self.kind == "rate_limit":
            text = "User Rate Limit Exceeded" if self.reason == "userRateLimitExceeded" else "Rate Limit Exceeded"
            return GoogleError(403, self.reason, text, domain="usageLimits")
        if self.kind == "quota":
            return GoogleError(429, "rateLimitExceeded", "Quota exceeded for quota metric 'Queries' and limit "
                               "'Queries per minute per user'.", domain="usageLimits")
        if self.kind == "gone":
            return GoogleError(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.",
                               status="")
        text = "Backend Error" if self.status < 503 else "The service is currently unavailable."
        return GoogleError(self.status, "backendError", text)


class GoogleFaults:
    """Faults waiting to fire, in the order they were added (thread-safe)."""

    def __init__(self) -> None:
        self._faults: list[GoogleFault] = []
        self._lock = threading.Lock()

    def add(self, fault: GoogleFault) -> None:
        """Queue a fault."""
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._faults.clear()

    def take(self, operation: str, has_page_token: bool, is_api: bool) -> GoogleFault | None:
        """The fault firing for this call, if any (counting down ``skip`` and ``times``).

        Faults without an ``operation`` only hit API calls (not the OAuth endpoints); ``gone``
        without one waits for ``calendar.events.list``, and ``repeat_cursor`` for a call with a
        ``pageToken``.
        """
        with self._lock:
            for fault in self._faults:
                if fault._pattern is None and not is_api:
                    continue
                if fault._pattern is not None and not fault._pattern.fullmatch(operation):
                    continue
                if fault.kind == "repeat_cursor" and not has_page_token:
                    continue
                if fault.kind == "gone" and fault._pattern is None and operation != "calendar.events.list":
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
