"""Error classification from the spec: errors inside bodies (any status), then statuses.

The result is one of the hub's error classes, which tells the caller what to do (see
:class:`~adapters.base.spec.ErrorSpec`). Everything here reads outside input (bodies and
headers) and never raises: it returns an error (or None for a success).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from adapters.base.paths import get_path
from adapters.base.spec import BodyError, ErrorAction, ErrorSpec, RateLimitSpec, RetrySpec
from shared import jsonio
from shared.errors import (
    FailRun,
    HubError,
    RateLimited,
    ReauthRequired,
    ResyncRequired,
    RetryLater,
    SkipRecord,
)
from shared.http import retry_at_from_headers

JSON_EXTENSION = "ihub.json"
"""Key under which a parsed body is kept in ``response.extensions`` (parsed once per response)."""

_TRANSIENT_OR_AUTH = ("retry", "rate_limited", "reauth", "resync")
_MAX_CODE = 100
_MAX_MESSAGE = 200


class NotJson:
    """What :func:`parsed_body` keeps for a body that is not usable JSON: the reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


@dataclass(frozen=True)
class BodyErrorFound:
    """An error a body reported: the provider's code and a readable message."""

    code: str
    message: str


def _text(value: Any, limit: int) -> str:
    return (value if isinstance(value, str) else repr(value))[:limit]


def _equals(found: Any, expected: Any) -> bool:
    if isinstance(found, bool) or isinstance(expected, bool):
        return found is expected
    try:
        return bool(found == expected)
    except Exception:  # outside values compare by equality only; any failure is "not equal"
        return False


def find_body_error(rules: tuple[BodyError, ...], body: Any) -> BodyErrorFound | None:
    """The first rule that marks ``body`` as an error, with its code and message; else None.

    Args:
        rules: The spec's body rules, in order.
        body: A parsed JSON body (any JSON value).

    Returns:
        What the body reported, or None when no rule matches.
    """
    for rule in rules:
        marker = get_path(body, rule.when_path)
        matched = marker is not None if rule.equals is None else _equals(marker, rule.equals)
        if not matched:
            continue
        code = get_path(body, rule.code_path)
        code_text = _text(code, _MAX_CODE) if code is not None else "unknown_error"
        message = get_path(body, rule.message_path) if rule.message_path else None
        return BodyErrorFound(code_text, _text(message, _MAX_MESSAGE) if message is not None else code_text)
    return None


def code_slug(code: str) -> str:
    """A provider code as a hub error code: lowercase ``[a-z0-9_]``, at most 60 characters."""
    return re.sub(r"[^a-z0-9]+", "_", code.lower()).strip("_")[:60] or "provider_error"


def parsed_body(response: httpx.Response) -> Any:
    """The response's JSON body, parsed once and kept on the response; :class:`NotJson` when unusable."""
    if JSON_EXTENSION in response.extensions:
        return response.extensions[JSON_EXTENSION]
    try:
        body: Any = jsonio.loads(response.content, what="response body")
    except jsonio.InvalidJson as exc:
        body = NotJson(str(exc))
    response.extensions[JSON_EXTENSION] = body
    return body


def is_json(body: Any) -> bool:
    """Whether :func:`parsed_body` found JSON."""
    return not isinstance(body, NotJson)


def quota_usage(pattern: re.Pattern[str], value: str | None, *, max_chars: int = 200) -> tuple[int, int] | None:
    """(used, limit) from a quota header such as ``api-usage=10018/100000``; None when unreadable.

    The pattern's groups ``used`` and ``limit`` (else its first two groups) must be ASCII digits.
    """
    if not value or len(value) > max_chars:
        return None
    match = pattern.search(value)
    if match is None:
        return None
    groups = match.groupdict()
    if "used" in groups and "limit" in groups:
        used, limit = groups["used"], groups["limit"]
    else:
        used, limit = (*match.groups(), None, None)[:2]
    if not (used and limit and used.isascii() and used.isdigit() and limit.isascii() and limit.isdigit()):
        return None
    return int(used), int(limit)


def error_detail(response: httpx.Response) -> str:
    """A short readable message from an error body."""
    body = parsed_body(response)
    if not is_json(body):
        return response.text[:_MAX_MESSAGE]
    if isinstance(body, dict):
        for key in ("message", "error_description", "error", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])[:_MAX_MESSAGE]
    return str(body)[:_MAX_MESSAGE]


class ErrorClassifier:
    """Turns a response into a hub error from the provider's specs (None = success).

    Args:
        provider: The provider's name, for messages.
        rate: The rate-limit spec (statuses, headers, default wait).
        retry: The retry spec (retryable statuses, backoff mode).
        is_rate_limited: Whether a limited-status answer is a rate limit (adapter hook).
        max_wait_seconds: Longest wait a provider header may impose.
        clock: Epoch seconds now.
    """

    def __init__(
        self,
        provider: str,
        rate: RateLimitSpec,
        retry: RetrySpec,
        *,
        is_rate_limited: Callable[[httpx.Response], bool],
        max_wait_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._provider = provider
        self._rate = rate
        self._retry = retry
        self._is_rate_limited = is_rate_limited
        self._max_wait = max_wait_seconds
        self._clock = clock

    def classify(self, response: httpx.Response, errors: ErrorSpec) -> HubError | None:
        """Body rules first (any status), then ``errors.statuses``, then the default by status."""
        status = response.status_code
        found = None
        if errors.body:
            body = parsed_body(response)
            if is_json(body):
                found = find_body_error(errors.body, body)
        if found is not None:
            action = errors.codes.get(found.code)
            if action is None:  # an unknown code: the status decides only when it is explicit or transient
                by_status = self._status_action(response, errors) if status >= 400 else None
                explicit = status in errors.statuses
                action = by_status if by_status and (explicit or by_status in _TRANSIENT_OR_AUTH) else "fail"
            message = f"{self._provider} answered {status} with error {found.code!r}: {found.message}"
            return self._error(action, response, errors, message, code=code_slug(found.code))
        if status < 400:
            return None
        action = self._status_action(response, errors)
        return self._error(action, response, errors, self._status_message(action, response), code=None)

    def _status_action(self, response: httpx.Response, errors: ErrorSpec) -> ErrorAction:
        status = response.status_code
        if status in errors.statuses:
            return errors.statuses[status]
        if status == 401:
            return "reauth"
        if status in self._rate.limited_statuses and self._is_rate_limited(response):
            return "rate_limited"
        if status in self._retry.retry_statuses or status >= 500:
            return "retry"
        if status == 403:
            return "reauth"
        return "fail"

    def _status_message(self, action: ErrorAction, response: httpx.Response) -> str:
        status, name, detail = response.status_code, self._provider, error_detail(response)
        if action == "reauth":
            if status == 401:
                return f"{name} rejected the credential (401): {detail}"
            return f"{name} refused access ({status}): {detail}"
        if action == "rate_limited":
            return f"{name} rate limit ({status}): {detail}"
        if action == "retry":
            return f"{name} transient error {status}: {detail}"
        if action == "resync":
            return f"{name} no longer knows the stream's delta position ({status}): {detail}"
        return f"{name} answered {status}: {detail}"

    def _error(
        self, action: ErrorAction, response: httpx.Response, errors: ErrorSpec, message: str, *, code: str | None
    ) -> HubError:
        status = response.status_code
        if action == "rate_limited":
            return RateLimited(message, retry_at=self._limited_until(response, errors))
        if action == "retry":
            at = retry_at_from_headers(
                response,
                retry_after_header=self._rate.retry_after_header,
                now=self._clock(),
                max_wait_seconds=self._max_wait,
            )
            return RetryLater(message, retry_at=at)
        if action == "reauth":
            return ReauthRequired(message, code=code or ("forbidden" if status == 403 else None))
        if action == "resync":
            return ResyncRequired(message)
        if action == "skip":
            return SkipRecord(message, code=code or f"http_{status}")
        return FailRun(message, code=code or f"http_{status}")

    def _limited_until(self, response: httpx.Response, errors: ErrorSpec) -> datetime | None:
        """When a rate-limited bucket may call again; None = back off exponentially (retry policy)."""
        now = self._clock()
        at = retry_at_from_headers(
            response,
            retry_after_header=self._rate.retry_after_header,
            reset_header=self._rate.reset_header,
            reset_kind=self._rate.reset_kind,
            now=now,
            max_wait_seconds=self._max_wait,
        )
        if at is not None:
            return at
        if errors.quota_reset_seconds is not None:
            return datetime.fromtimestamp(now + min(errors.quota_reset_seconds, self._max_wait), UTC)
        if self._retry.backoff == "exponential":
            return None
        return datetime.fromtimestamp(now + min(self._rate.default_wait_seconds, self._max_wait), UTC)
