"""The outbound HTTP stack: a pipeline of small policies around an httpx transport.

Order (outermost first): request id -> auth -> rate limit -> retry -> logging -> transport.
Per-request state lives in :class:`RequestContext`. Policies never sleep for a rate limit:
they raise :class:`~shared.errors.RateLimited` with the time the provider named, and the
queue handler reschedules the message for then.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from pydantic import SecretStr

from shared.errors import HubError, RateLimited, ReauthRequired, RetryLater

log = logging.getLogger("ihub.http")

SendFn = Callable[[httpx.Request, "RequestContext"], httpx.Response]

DEFAULT_MAX_WAIT_SECONDS = 3900.0
"""Longest wait any provider header may impose unless the caller names another maximum: an
hour-long rate-limit window (GitHub's) plus five minutes for clock skew."""

_REDACT_QUERY = re.compile(
    r"(?i)([?&](?:[^=&#]*[_-])?(?:token|code|secret|password|passwd|key|apikey|sig|signature|assertion)=)[^&#]*"
)


def redact_url(url: str) -> str:
    """URL with secret-looking query values replaced by ``***``."""
    return _REDACT_QUERY.sub(r"\1***", url)


@dataclass
class RequestContext:
    """State of one logical request across retries."""

    provider: str
    connection_key: str
    credential: SecretStr | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    attempt: int = 0
    rate_limit: dict[str, str] = field(default_factory=dict)
    bucket: str = ""
    """The rendered rate-limit bucket key (the spec's ``bucket_key``); "" = per connection."""
    strikes: int = 0
    """Consecutive rate-limit answers of the bucket before this request (exponential backoff)."""
    tenant: str = ""
    integration: str = ""
    priority: str = "scheduled"
    """Who is asking (``interactive``, ``webhook``, ``scheduled``, ``backfill``): see :mod:`shared.ratelimit`."""
    budgets: tuple[Any, ...] = ()
    """The :class:`shared.ratelimit.Budget` values that apply to this request (every level)."""
    request_key: str = ""
    """Identifies the request across reschedules (method, URL, body): a long-deferred one ages up in priority."""
    usage: Callable[[httpx.Response], tuple[float, float | None, float | None] | None] | None = None
    """Reads ``(remaining, reset epoch or None, limit or None)`` from a response (the adapter's spec)."""

    @property
    def bucket_key(self) -> str:
        """The key the rate-limit state uses: the bucket, else ``provider:connection``."""
        return self.bucket or f"{self.provider}:{self.connection_key}"


class Policy(Protocol):
    """One step of the pipeline. Calls ``next_`` to continue."""

    def send(self, request: httpx.Request, ctx: RequestContext, next_: SendFn) -> httpx.Response:
        """Handle the request, usually by calling ``next_``."""


class Classifier(Protocol):
    """Turns an HTTP response into a HubError (or None when it is a success)."""

    def __call__(self, response: httpx.Response) -> HubError | None:
        """Classify ``response``."""


class Pipeline:
    """Runs policies in order, ending at the httpx client's transport."""

    def __init__(self, policies: Sequence[Policy], client: httpx.Client) -> None:
        self._policies = list(policies)
        self._client = client

    def send(self, request: httpx.Request, ctx: RequestContext) -> httpx.Response:
        """Send ``request`` through every policy."""

        def step(index: int) -> SendFn:
            if index == len(self._policies):
                return lambda req, _ctx: self._client.send(req)
            policy = self._policies[index]
            following = step(index + 1)
            return lambda req, c: policy.send(req, c, following)

        return step(0)(request, ctx)

    def build_request(self, method: str, url: str, **kwargs: object) -> httpx.Request:
        """An httpx request built by the underlying client (base headers, timeouts)."""
        return self._client.build_request(method, url, **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        self._client.close()


class RequestIdPolicy:
    """Adds ``X-Request-Id`` so provider-side logs can be correlated."""

    def send(self, request: httpx.Request, ctx: RequestContext, next_: SendFn) -> httpx.Response:
        request.headers.setdefault("X-Request-Id", ctx.request_id)
        return next_(request, ctx)


class AuthStrategy(Protocol):
    """Puts the credential on a request."""

    def apply(self, request: httpx.Request, credential: SecretStr | None) -> None:
        """Mutate ``request`` headers/params."""


class AuthPolicy:
    """Applies the provider's auth strategy with the context's credential."""

    def __init__(self, strategy: AuthStrategy) -> None:
        self._strategy = strategy

    def send(self, request: httpx.Request, ctx: RequestContext, next_: SendFn) -> httpx.Response:
        self._strategy.apply(request, ctx.credential)
        try:
            return next_(request, ctx)
        except ReauthRequired:
            # Refresh-and-retry once: a credential that can renew itself (shared.credentials.applied)
            # goes through the fenced refresh and the request is sent again with the new value.
            renew = getattr(ctx.credential, "refreshed", None)
            fresh = renew() if callable(renew) else None
            if fresh is None:
                raise
            ctx.credential = fresh
            self._strategy.apply(request, fresh)
            return next_(request, ctx)


class RateLimitState:
    """In-process rate-limit state per bucket key: the time before which no request may be
    sent, and how many rate-limit answers came in a row (for exponential backoff).

    This is the single-instance backend of the rate-limit port; a Redis backend shares the
    same interface for many instances.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._blocked: dict[str, float] = {}
        self._strikes: dict[str, int] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def strikes(self, key: str) -> int:
        """Consecutive rate-limit answers of ``key`` since its last success."""
        with self._lock:
            return self._strikes.get(key, 0)

    def strike(self, key: str) -> int:
        """Count one more rate-limit answer of ``key``; returns the new count."""
        with self._lock:
            self._strikes[key] = count = self._strikes.get(key, 0) + 1
            return count

    def clear_strikes(self, key: str) -> None:
        """A success: the next rate-limit answer of ``key`` starts the backoff over."""
        with self._lock:
            self._strikes.pop(key, None)

    def blocked_until(self, key: str) -> float | None:
        """Epoch seconds until which ``key`` is blocked, or None."""
        with self._lock:
            until = self._blocked.get(key)
            if until is not None and until <= self._clock():
                del self._blocked[key]
                return None
            return until

    def block(self, key: str, until: float) -> None:
        """Block ``key`` until epoch seconds ``until`` (keeps the later of two blocks)."""
        with self._lock:
            self._blocked[key] = max(until, self._blocked.get(key, 0.0))

    def admit(self, ctx: RequestContext) -> None:
        """Raise RateLimited while the request's bucket is blocked (the budget gate's hook)."""
        until = self.blocked_until(ctx.bucket_key)
        if until is not None:
            raise RateLimited(
                f"{ctx.provider} rate limit in force for this connection until {_iso(until)}",
                retry_at=datetime.fromtimestamp(until, UTC),
            )

    def limited(self, ctx: RequestContext, error: RateLimited) -> None:
        """The provider answered with a rate limit (hook: adaptive budgets shrink here)."""

    def observed(self, ctx: RequestContext, response: httpx.Response) -> None:
        """A response arrived (hook: budgets learn the provider's remaining allowance here)."""


class RateLimitPolicy:
    """Refuses to send while the request's bucket is blocked; records blocks the provider names.

    The bucket is ``ctx.bucket_key`` (the spec's rendered ``bucket_key``, else the connection).

    ``observe`` reads the provider's headers and returns an epoch time to block until (or
    None); it is supplied by the adapter from its spec.
    """

    def __init__(
        self,
        state: RateLimitState,
        observe: Callable[[httpx.Response], float | None],
        clock: Callable[[], float] = time.time,
        *,
        max_block_seconds: float = DEFAULT_MAX_WAIT_SECONDS,
    ) -> None:
        self._state = state
        self._observe = observe
        self._clock = clock
        self._max_block = max_block_seconds

    def _block(self, key: str, until: float) -> None:
        """Block ``key`` until ``until``, never longer than ``max_block_seconds`` from now."""
        if math.isnan(until):
            return
        self._state.block(key, min(until, self._clock() + self._max_block))

    def send(self, request: httpx.Request, ctx: RequestContext, next_: SendFn) -> httpx.Response:
        key = ctx.bucket_key
        if not ctx.request_key:
            ctx.request_key = _request_key(request)
        self._state.admit(ctx)  # raises RateLimited (never sleeps) while a block or a budget forbids it
        ctx.strikes = self._state.strikes(key)
        try:
            response = next_(request, ctx)
        except RateLimited as exc:  # the provider said stop: nobody on this bucket calls before then
            self._state.strike(key)
            if exc.retry_at is not None:
                self._block(key, exc.retry_at.timestamp())
            self._state.limited(ctx, exc)
            raise
        if ctx.strikes:
            self._state.clear_strikes(key)
        ctx.rate_limit = {
            k: v for k, v in response.headers.items() if "ratelimit" in k.lower() or k.lower() == "retry-after"
        }
        block = self._observe(response)
        if block is not None and block > self._clock():
            self._block(key, block)
        self._state.observed(ctx, response)
        return response


class RetryPolicy:
    """Retries transient failures; raises classified errors for everything else.

    - A rate-limit answer raises RateLimited at once (the caller reschedules; no sleeping).
      One that names no time (``retry_at`` None) backs off exponentially: ``backoff_base *
      2**n`` truncated at ``max_backoff`` (``n`` counts the bucket's earlier limits and this
      request's attempts); a wait up to ``max_inline_wait`` is slept here and retried, a longer
      one (or the last attempt) raises RateLimited with that ``retry_at``.
    - A transient answer (5xx, transport error) is retried up to ``max_attempts`` with
      exponential backoff; a server-given ``Retry-After`` is honoured exactly (no jitter) when
      it is at most ``max_inline_wait`` seconds, otherwise RetryLater carries that time.
    - Anything else the classifier names is raised as is.
    """

    def __init__(
        self,
        classify: Classifier,
        *,
        max_attempts: int = 3,
        backoff_base: float = 0.5,
        max_inline_wait: float = 5.0,
        max_backoff: float = 64.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._classify = classify
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._max_inline_wait = max_inline_wait
        self._max_backoff = max_backoff
        self._sleep = sleep
        self._clock = clock

    def _backoff(self, exponent: int) -> float:
        return min(self._backoff_base * (2.0 ** min(exponent, 60)), self._max_backoff)

    def send(self, request: httpx.Request, ctx: RequestContext, next_: SendFn) -> httpx.Response:
        while True:
            ctx.attempt += 1
            try:
                response = next_(request, ctx)
            except httpx.TransportError as exc:
                error: HubError = RetryLater(f"{ctx.provider}: {type(exc).__name__}: {exc}")
            else:
                classified = self._classify(response)
                if classified is None:
                    return response
                error = classified
            if isinstance(error, RateLimited) and error.retry_at is None:
                wait = self._backoff(ctx.strikes + ctx.attempt - 1)
                if wait > self._max_inline_wait or ctx.attempt >= self._max_attempts:
                    error.retry_at = datetime.fromtimestamp(self._clock() + wait, UTC)
                    raise error
                log.info("backing off %s for %.2fs (attempt %d): %s", ctx.provider, wait, ctx.attempt, error)
                self._sleep(wait)
                continue
            if isinstance(error, RateLimited) or not isinstance(error, RetryLater):
                raise error
            if ctx.attempt >= self._max_attempts:
                raise error
            wait = self._backoff_base * (2 ** (ctx.attempt - 1))
            if error.retry_at is not None:
                wait = (error.retry_at - datetime.now(UTC)).total_seconds()
                if wait > self._max_inline_wait:
                    raise error
            log.info("retrying %s after %.2fs (attempt %d): %s", ctx.provider, max(wait, 0), ctx.attempt, error)
            self._sleep(max(wait, 0.0))


class LoggingPolicy:
    """Logs one line per attempt with the URL's secrets redacted (headers are never logged)."""

    def send(self, request: httpx.Request, ctx: RequestContext, next_: SendFn) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = next_(request, ctx)
        except httpx.TransportError as exc:
            log.warning(
                "%s %s -> %s (%s)", request.method, redact_url(str(request.url)), type(exc).__name__, ctx.request_id
            )
            raise
        log.debug(
            "%s %s -> %d in %.1fms (%s)",
            request.method,
            redact_url(str(request.url)),
            response.status_code,
            (time.perf_counter() - started) * 1000,
            ctx.request_id,
        )
        return response


_MAX_HEADER_CHARS = 100


def parse_wait(
    value: str | None, *, now: float, max_wait: float = DEFAULT_MAX_WAIT_SECONDS, epoch: bool = False
) -> float | None:
    """Seconds to wait named by one header value, clamped to ``[0, max_wait]``.

    Accepts delta seconds (``120``, ``1.5``, ``1e3``), an HTTP-date (RFC 9110, e.g.
    ``Wed, 21 Oct 2015 07:28:00 GMT``) or, with ``epoch``, epoch seconds. Absurd values are
    clamped (``inf`` or ``1e20`` wait ``max_wait``; a negative or past time waits 0); values
    that name no time (``NaN``, garbage, empty, overlong) give None, so the caller can fall
    back to another header or its default. Never raises.

    Args:
        value: The raw header value (None when absent).
        now: Epoch seconds now.
        max_wait: The longest wait to return.
        epoch: The value is an epoch time (a reset header), not a delay.

    Returns:
        The wait in seconds, or None.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > _MAX_HEADER_CHARS:
        return None
    try:
        number: float | None = None if "_" in text else float(text)
    except ValueError:
        number = None
    if number is not None:
        if math.isnan(number):
            return None
        wait = number - now if epoch else number
    else:
        if epoch:
            return None
        at = _http_date(text)
        if at is None:
            return None
        wait = at - now
    return min(max(wait, 0.0), max(max_wait, 0.0))


def _http_date(text: str) -> float | None:
    """Epoch seconds of an HTTP-date (naive dates are UTC), or None when it is not one."""
    from email.utils import parsedate_to_datetime

    try:
        moment = parsedate_to_datetime(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None


def retry_at_from_headers(
    response: httpx.Response,
    *,
    retry_after_header: str = "retry-after",
    reset_header: str | None = None,
    reset_kind: str = "epoch_seconds",
    now: float | None = None,
    max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS,
) -> datetime | None:
    """When the provider says to come back: ``Retry-After`` first, then a reset header.

    Both are parsed by :func:`parse_wait`: the result is never earlier than ``now`` nor later
    than ``now + max_wait_seconds``, and an unusable value counts as absent.
    """
    now = time.time() if now is None else now
    wait = parse_wait(response.headers.get(retry_after_header), now=now, max_wait=max_wait_seconds)
    if wait is None and reset_header:
        wait = parse_wait(
            response.headers.get(reset_header), now=now, max_wait=max_wait_seconds, epoch=reset_kind == "epoch_seconds"
        )
    return None if wait is None else datetime.fromtimestamp(now + wait, UTC)


_REDACT_TEXT = (
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 ***"),
    (
        re.compile(
            r"(?i)([\"']?\b[\w-]*(?:token|secret|password|passwd|apikey|api_key|signature|assertion|credential)"
            r"[\w-]*[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}]+"
        ),
        r"\1***",
    ),
    (re.compile(r"(?i)\b(sha(?:1|256)=)[0-9a-f]{16,}"), r"\1***"),
)


def redact_text(text: str) -> str:
    """Free text (an exception message) with credentials, tokens and signatures replaced by ``***``."""
    text = redact_url(text)
    for pattern, replacement in _REDACT_TEXT:
        text = pattern.sub(replacement, text)
    return text


def _request_key(request: httpx.Request) -> str:
    """The same page asked again after a reschedule has the same key (method, URL, body)."""
    digest = hashlib.blake2b(f"{request.method} {request.url}".encode(), digest_size=12)
    try:
        digest.update(request.content)
    except httpx.RequestNotRead:  # a streaming body: the URL alone
        pass
    return digest.hexdigest()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
