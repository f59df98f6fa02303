"""Unit tests of the outbound HTTP pipeline (``shared.http``) over ``httpx.MockTransport``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

import shared.http as http_module
from adapters.base.adapter import Connection
from adapters.base.auth import HeaderTokenAuth
from adapters.providers.github import GitHubAdapter
from shared.errors import FailRun, HubError, RateLimited, ReauthRequired, RetryLater
from shared.http import (
    AuthPolicy,
    LoggingPolicy,
    Pipeline,
    RateLimitPolicy,
    RateLimitState,
    RequestContext,
    RequestIdPolicy,
    RetryPolicy,
    SendFn,
    redact_url,
    retry_at_from_headers,
)

URL = "https://api.example.com/v1/items"
FROZEN = datetime(2024, 1, 1, tzinfo=UTC)


class Transport:
    """A MockTransport that answers from a script and records every request it saw."""

    def __init__(self, *answers: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer) and not isinstance(answer, httpx.Response):
            return answer(request)
        return answer

    @property
    def mock(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def classify(response: httpx.Response) -> HubError | None:
    """A small classifier: 429 -> RateLimited, 5xx -> RetryLater, other 4xx -> FailRun."""
    if response.status_code < 400:
        return None
    at = retry_at_from_headers(response, now=datetime.now(UTC).timestamp())
    if response.status_code == 429:
        return RateLimited("limited", retry_at=at or datetime.now(UTC) + timedelta(seconds=60))
    if response.status_code >= 500:
        return RetryLater(f"server error {response.status_code}", retry_at=at)
    return FailRun(f"answered {response.status_code}")


def ctx(credential: str | None = "tok-123", key: str = "tenant:integration") -> RequestContext:
    secret = SecretStr(credential) if credential else None
    return RequestContext(provider="example", connection_key=key, credential=secret)


def pipeline(transport: Transport, *policies: Any) -> Pipeline:
    return Pipeline(list(policies), httpx.Client(transport=transport.mock))


def retry(sleeps: list[float], **kwargs: Any) -> RetryPolicy:
    options: dict[str, Any] = {"max_attempts": 3, "backoff_base": 0.5, "max_inline_wait": 5.0} | kwargs
    return RetryPolicy(classify, sleep=sleeps.append, **options)


def send(pipe: Pipeline, context: RequestContext | None = None, method: str = "GET", url: str = URL) -> httpx.Response:
    return pipe.send(pipe.build_request(method, url), context or ctx())


# ---------------------------------------------------------------------------------------- Pipeline order


class Recorder:
    def __init__(self, name: str, seen: list[tuple[str, dict[str, str]]]) -> None:
        self.name, self.seen = name, seen

    def send(self, request: httpx.Request, context: RequestContext, next_: SendFn) -> httpx.Response:
        self.seen.append((self.name, dict(request.headers)))
        return next_(request, context)


def test_pipeline_runs_policies_outermost_first_with_request_id_and_auth() -> None:
    seen: list[tuple[str, dict[str, str]]] = []
    transport = Transport(httpx.Response(200, json={"ok": True}))
    pipe = pipeline(
        transport,
        Recorder("first", seen),
        RequestIdPolicy(),
        Recorder("after-id", seen),
        AuthPolicy(HeaderTokenAuth()),
        Recorder("after-auth", seen),
    )
    context = ctx()
    assert send(pipe, context).json() == {"ok": True}
    assert [name for name, _ in seen] == ["first", "after-id", "after-auth"]
    assert "x-request-id" not in seen[0][1]
    assert seen[1][1]["x-request-id"] == context.request_id
    assert "authorization" not in seen[1][1]
    assert seen[2][1]["authorization"] == "Bearer tok-123"
    (request,) = transport.requests
    assert request.headers["X-Request-Id"] == context.request_id
    assert request.headers["Authorization"] == "Bearer tok-123"


def test_request_id_policy_keeps_a_caller_supplied_id() -> None:
    transport = Transport(httpx.Response(200))
    pipe = pipeline(transport, RequestIdPolicy())
    pipe.send(pipe.build_request("GET", URL, headers={"X-Request-Id": "mine"}), ctx())
    assert transport.requests[0].headers["X-Request-Id"] == "mine"


def test_auth_policy_without_credential_raises_before_sending() -> None:
    transport = Transport(httpx.Response(200))
    pipe = pipeline(transport, AuthPolicy(HeaderTokenAuth()))
    with pytest.raises(ReauthRequired):
        send(pipe, ctx(credential=None))
    assert transport.requests == []


def test_adapter_pipeline_sends_default_headers_request_id_and_bearer() -> None:
    transport = Transport(httpx.Response(200, json=[]))
    adapter = GitHubAdapter(transport=transport.mock)
    try:
        adapter.send(Connection("t", "i", "https://api.github.com", SecretStr("gho_abc")), "GET", URL)
    finally:
        adapter.close()
    (request,) = transport.requests
    assert request.headers["Authorization"] == "Bearer gho_abc"
    assert request.headers["Accept"] == "application/vnd.github+json"
    assert len(request.headers["X-Request-Id"]) == 32


def test_retries_reuse_one_request_id() -> None:
    transport = Transport(httpx.Response(503), httpx.Response(200))
    pipe = pipeline(transport, RequestIdPolicy(), AuthPolicy(HeaderTokenAuth()), retry([]))
    context = ctx()
    assert send(pipe, context).status_code == 200
    assert [r.headers["X-Request-Id"] for r in transport.requests] == [context.request_id] * 2
    assert context.attempt == 2


# ---------------------------------------------------------------------------------------- RetryPolicy


def test_5xx_is_retried_up_to_max_attempts_then_retry_later() -> None:
    sleeps: list[float] = []
    transport = Transport(httpx.Response(503))
    with pytest.raises(RetryLater) as info:
        send(pipeline(transport, retry(sleeps)))
    assert type(info.value) is RetryLater
    assert len(transport.requests) == 3
    assert sleeps == [0.5, 1.0]  # exponential backoff between attempts, none after the last


def test_5xx_then_success_is_transparent() -> None:
    sleeps: list[float] = []
    transport = Transport(httpx.Response(500), httpx.Response(502), httpx.Response(200, json=[1]))
    assert send(pipeline(transport, retry(sleeps))).json() == [1]
    assert len(transport.requests) == 3
    assert sleeps == [0.5, 1.0]


def test_small_retry_after_is_honoured_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> FrozenDatetime:  # type: ignore[override]
            return cls.fromtimestamp(FROZEN.timestamp(), tz or UTC)

    monkeypatch.setattr(http_module, "datetime", FrozenDatetime)

    def frozen_classify(response: httpx.Response) -> HubError | None:
        if response.status_code < 400:
            return None
        return RetryLater("busy", retry_at=retry_at_from_headers(response, now=FROZEN.timestamp()))

    sleeps: list[float] = []
    transport = Transport(httpx.Response(503, headers={"Retry-After": "2"}), httpx.Response(200))
    policy = RetryPolicy(frozen_classify, max_attempts=3, backoff_base=10.0, max_inline_wait=5.0, sleep=sleeps.append)
    assert send(pipeline(transport, policy)).status_code == 200
    assert sleeps == [2.0]  # the server's wait, not the backoff, and no jitter


def test_small_retry_after_without_frozen_clock_is_within_a_hair() -> None:
    sleeps: list[float] = []
    transport = Transport(httpx.Response(503, headers={"Retry-After": "3"}), httpx.Response(200))
    assert send(pipeline(transport, retry(sleeps, backoff_base=10.0))).status_code == 200
    assert len(sleeps) == 1
    assert sleeps[0] == pytest.approx(3.0, abs=0.05)
    assert sleeps[0] <= 3.0


def test_retry_after_beyond_max_inline_wait_raises_retry_later_at_that_time() -> None:
    sleeps: list[float] = []
    transport = Transport(httpx.Response(503, headers={"Retry-After": "120"}))
    before = datetime.now(UTC)
    with pytest.raises(RetryLater) as info:
        send(pipeline(transport, retry(sleeps, max_inline_wait=5.0)))
    assert sleeps == []
    assert len(transport.requests) == 1
    assert info.value.retry_at is not None
    assert (info.value.retry_at - before).total_seconds() == pytest.approx(120, abs=2)


@pytest.mark.parametrize("retry_after", ["1", "0", None])
def test_rate_limited_is_never_retried_or_slept(retry_after: str | None) -> None:
    sleeps: list[float] = []
    headers = {"Retry-After": retry_after} if retry_after else {}
    transport = Transport(httpx.Response(429, headers=headers), httpx.Response(200))
    with pytest.raises(RateLimited) as info:
        send(pipeline(transport, retry(sleeps)))
    assert info.value.retry_at is not None
    assert sleeps == []
    assert len(transport.requests) == 1


def test_non_transient_error_is_raised_at_once() -> None:
    sleeps: list[float] = []
    transport = Transport(httpx.Response(404), httpx.Response(200))
    with pytest.raises(FailRun):
        send(pipeline(transport, retry(sleeps)))
    assert sleeps == []
    assert len(transport.requests) == 1


def test_transport_error_becomes_retry_later_after_attempts() -> None:
    sleeps: list[float] = []
    transport = Transport(httpx.ConnectError("connection refused"))
    with pytest.raises(RetryLater) as info:
        send(pipeline(transport, retry(sleeps, max_attempts=4)))
    assert type(info.value) is RetryLater
    assert "ConnectError" in str(info.value)
    assert len(transport.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_transport_error_then_success() -> None:
    sleeps: list[float] = []
    transport = Transport(httpx.ReadTimeout("slow"), httpx.Response(200))
    assert send(pipeline(transport, retry(sleeps))).status_code == 200
    assert sleeps == [0.5]


def test_max_attempts_one_means_no_retry() -> None:
    sleeps: list[float] = []
    transport = Transport(httpx.Response(500))
    with pytest.raises(RetryLater):
        send(pipeline(transport, retry(sleeps, max_attempts=1)))
    assert sleeps == []
    assert len(transport.requests) == 1


# ---------------------------------------------------------------------------------------- RateLimitPolicy


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def observe(response: httpx.Response) -> float | None:
    if response.headers.get("x-ratelimit-remaining") == "0":
        return float(response.headers["x-ratelimit-reset"])
    return None


def limited_answer(remaining: int, reset: float, status: int = 200) -> httpx.Response:
    headers = {"x-ratelimit-remaining": str(remaining), "x-ratelimit-reset": str(int(reset)), "x-other": "1"}
    return httpx.Response(status, headers=headers, json={})


def test_exhausted_budget_blocks_the_next_call_without_sending() -> None:
    clock = Clock(FROZEN.timestamp())
    reset = clock.now + 600
    state = RateLimitState(clock)
    transport = Transport(limited_answer(0, reset))
    pipe = pipeline(transport, RateLimitPolicy(state, observe, clock=clock))
    context = ctx()
    assert send(pipe, context).status_code == 200
    assert context.rate_limit == {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(reset))}
    with pytest.raises(RateLimited) as info:
        send(pipe)
    assert len(transport.requests) == 1  # the second call never reached the transport
    assert info.value.retry_at == datetime.fromtimestamp(reset, UTC)
    # other connections are unaffected
    assert send(pipe, ctx(key="tenant:other")).status_code == 200
    assert len(transport.requests) == 2


def test_block_expires_with_the_clock() -> None:
    clock = Clock(FROZEN.timestamp())
    state = RateLimitState(clock)
    transport = Transport(limited_answer(0, clock.now + 60), limited_answer(4999, clock.now + 3600))
    pipe = pipeline(transport, RateLimitPolicy(state, observe, clock=clock))
    send(pipe)
    with pytest.raises(RateLimited):
        send(pipe)
    clock.now += 61
    assert send(pipe).status_code == 200
    assert len(transport.requests) == 2


def test_remaining_budget_or_reset_in_the_past_does_not_block() -> None:
    clock = Clock(FROZEN.timestamp())
    state = RateLimitState(clock)
    transport = Transport(limited_answer(10, clock.now + 60), limited_answer(0, clock.now - 1), httpx.Response(200))
    pipe = pipeline(transport, RateLimitPolicy(state, observe, clock=clock))
    for _ in range(3):
        assert send(pipe).status_code == 200
    assert len(transport.requests) == 3


def test_rate_limit_state_keeps_the_later_block() -> None:
    clock = Clock(1000.0)
    state = RateLimitState(clock)
    state.block("k", 2000.0)
    state.block("k", 1500.0)
    assert state.blocked_until("k") == 2000.0
    clock.now = 2000.0
    assert state.blocked_until("k") is None


def test_adapter_blocks_connection_after_success_with_remaining_zero() -> None:
    reset = int(datetime.now(UTC).timestamp()) + 300
    transport = Transport(limited_answer(0, reset))
    adapter = GitHubAdapter(transport=transport.mock)
    conn = Connection("t", "i", "https://api.github.com", SecretStr("gho_abc"))
    try:
        adapter.send(conn, "GET", URL)
        with pytest.raises(RateLimited) as info:
            adapter.send(conn, "GET", URL)
    finally:
        adapter.close()
    assert len(transport.requests) == 1
    assert info.value.retry_at == datetime.fromtimestamp(reset, UTC)


def test_adapter_blocks_connection_after_a_rate_limited_error() -> None:
    reset = int(datetime.now(UTC).timestamp()) + 300
    transport = Transport(limited_answer(0, reset, status=403))
    adapter = GitHubAdapter(transport=transport.mock)
    conn = Connection("t", "i", "https://api.github.com", SecretStr("gho_abc"))
    try:
        for _ in range(2):
            with pytest.raises(RateLimited):
                adapter.send(conn, "GET", URL)
    finally:
        adapter.close()
    assert len(transport.requests) == 1


# ---------------------------------------------------------------------------------------- redaction & logging


SECRET_PARAMS = ["access_token", "token", "code", "client_secret", "secret", "key", "sig", "signature"]


@pytest.mark.parametrize("name", SECRET_PARAMS)
@pytest.mark.parametrize("position", ["first", "middle"])
def test_redact_url_hides_secret_query_values(name: str, position: str) -> None:
    query = f"{name}=s3cr3t-v@lue&page=2" if position == "first" else f"page=2&{name}=s3cr3t-v@lue&per_page=100"
    redacted = redact_url(f"https://api.example.com/x?{query}")
    assert "s3cr3t" not in redacted
    assert f"{name}=***" in redacted
    assert "page=2" in redacted


def test_redact_url_is_case_insensitive_and_keeps_other_params() -> None:
    url = "https://h/cb?state=xyz&CODE=abc123&Access_Token=tkn&tokens_total=5&token_type=bearer"
    assert redact_url(url) == "https://h/cb?state=xyz&CODE=***&Access_Token=***&tokens_total=5&token_type=bearer"


def test_redact_url_without_secrets_is_unchanged() -> None:
    url = "https://api.github.com/repos/acme/widgets/issues?state=all&per_page=100&page=2"
    assert redact_url(url) == url


@pytest.mark.parametrize("name", ["refresh_token", "api_key", "id_token", "password"])
def test_redact_url_hides_other_secret_params(name: str) -> None:
    assert "s3cr3t" not in redact_url(f"https://h/x?page=1&{name}=s3cr3t")


def test_logging_policy_logs_redacted_urls(caplog: pytest.LogCaptureFixture) -> None:
    transport = Transport(httpx.Response(200), httpx.ConnectError("refused"))
    pipe = pipeline(transport, LoggingPolicy())
    with caplog.at_level(logging.DEBUG, logger="ihub.http"):
        send(pipe, url=f"{URL}?access_token=SECRETVALUE&page=1")
        with pytest.raises(httpx.ConnectError):
            send(pipe, url=f"{URL}?code=SECRETVALUE")
    text = caplog.text
    assert "access_token=***" in text
    assert "code=***" in text
    assert "SECRETVALUE" not in text
    assert "tok-123" not in text


# ---------------------------------------------------------------------------------------- retry_at_from_headers

NOW = FROZEN.timestamp()


def headers_response(**headers: str) -> httpx.Response:
    return httpx.Response(429, headers={k.replace("_", "-"): v for k, v in headers.items()})


def test_retry_after_seconds() -> None:
    assert retry_at_from_headers(headers_response(retry_after="120"), now=NOW) == FROZEN + timedelta(seconds=120)


def test_retry_after_http_date() -> None:
    at = retry_at_from_headers(headers_response(retry_after="Mon, 01 Jan 2024 00:10:00 GMT"), now=NOW)
    assert at == FROZEN + timedelta(minutes=10)
    assert at is not None and at.tzinfo is not None


def test_retry_after_http_date_in_the_past_means_now() -> None:
    at = retry_at_from_headers(headers_response(retry_after="Wed, 21 Oct 2015 07:28:00 GMT"), now=NOW)
    assert at == FROZEN


def test_epoch_reset_header() -> None:
    response = headers_response(x_ratelimit_reset=str(int(NOW) + 900))
    at = retry_at_from_headers(response, reset_header="x-ratelimit-reset", reset_kind="epoch_seconds", now=NOW)
    assert at == FROZEN + timedelta(seconds=900)


def test_delta_reset_header() -> None:
    response = headers_response(ratelimit_reset="30")
    at = retry_at_from_headers(response, reset_header="ratelimit-reset", reset_kind="delta_seconds", now=NOW)
    assert at == FROZEN + timedelta(seconds=30)


def test_retry_after_wins_over_reset_header() -> None:
    response = headers_response(retry_after="5", x_ratelimit_reset=str(int(NOW) + 900))
    at = retry_at_from_headers(response, reset_header="x-ratelimit-reset", now=NOW)
    assert at == FROZEN + timedelta(seconds=5)


def test_custom_retry_after_header_name() -> None:
    response = headers_response(x_retry_in="7")
    assert retry_at_from_headers(response, retry_after_header="x-retry-in", now=NOW) == FROZEN + timedelta(seconds=7)


def test_garbage_retry_after_falls_back_to_reset_then_none() -> None:
    response = headers_response(retry_after="soon", x_ratelimit_reset=str(int(NOW) + 60))
    assert retry_at_from_headers(response, reset_header="x-ratelimit-reset", now=NOW) == FROZEN + timedelta(seconds=60)
    assert retry_at_from_headers(headers_response(retry_after="soon"), now=NOW) is None
    assert retry_at_from_headers(headers_response(x_ratelimit_reset="later"), reset_header="x-ratelimit-reset") is None


def test_no_headers_means_no_time() -> None:
    assert retry_at_from_headers(httpx.Response(503), reset_header="x-ratelimit-reset", now=NOW) is None


# ---------------------------------------------------------------------------------------- absurd headers (issue 5)

MAX = 3600.0


@pytest.mark.parametrize(
    ("value", "wait"),
    [
        ("inf", MAX),
        ("Infinity", MAX),
        ("1e20", MAX),
        ("1e309", MAX),  # overflows to inf
        ("99999999999999999999999", MAX),
        ("-5", 0.0),
        ("-inf", 0.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("Thu, 01 Jan 2099 00:00:00 GMT", MAX),  # far future date: clamped
        ("Sun, 31 Dec 2023 23:00:00 GMT", 0.0),  # past date: now
    ],
)
def test_absurd_retry_after_is_clamped(value: str, wait: float) -> None:
    at = retry_at_from_headers(headers_response(retry_after=value), now=NOW, max_wait_seconds=MAX)
    assert at == FROZEN + timedelta(seconds=wait)


@pytest.mark.parametrize(
    "value", ["nan", "NaN", "soon", "1_000", "", "   ", "Fri, 31 Dec 99999 23:59:59 GMT", "x" * 500]
)
def test_retry_after_naming_no_time_is_ignored(value: str) -> None:
    assert retry_at_from_headers(headers_response(retry_after=value), now=NOW) is None


@pytest.mark.parametrize(
    ("reset", "kind", "wait"),
    [
        ("inf", "epoch_seconds", MAX),
        ("1e20", "epoch_seconds", MAX),
        ("-1", "epoch_seconds", 0.0),
        ("1e20", "delta_seconds", MAX),
        ("-30", "delta_seconds", 0.0),
    ],
)
def test_absurd_reset_header_is_clamped(reset: str, kind: str, wait: float) -> None:
    response = headers_response(x_ratelimit_reset=reset)
    at = retry_at_from_headers(
        response, reset_header="x-ratelimit-reset", reset_kind=kind, now=NOW, max_wait_seconds=MAX
    )
    assert at == FROZEN + timedelta(seconds=wait)


def test_nan_reset_header_is_ignored() -> None:
    response = headers_response(x_ratelimit_reset="nan")
    assert retry_at_from_headers(response, reset_header="x-ratelimit-reset", now=NOW) is None


HEADER_TEXT = st.one_of(
    st.text(max_size=60),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
        lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")
    ),
    st.from_regex(r"[A-Za-z]{3}, \d{1,3} [A-Za-z]{3} -?\d{1,7} \d\d:\d\d:\d\d [A-Z+-]{0,5}\d{0,4}", fullmatch=True),
)


@settings(max_examples=400, deadline=None)
@given(
    retry_after=st.none() | HEADER_TEXT,
    reset=st.none() | HEADER_TEXT,
    kind=st.sampled_from(["epoch_seconds", "delta_seconds"]),
    max_wait=st.floats(min_value=0, max_value=1e6),
)
def test_header_parser_never_raises_and_stays_within_now_and_max(
    retry_after: str | None, reset: str | None, kind: str, max_wait: float
) -> None:
    headers = {}
    for name, value in (("retry-after", retry_after), ("x-ratelimit-reset", reset)):
        if value is not None:
            clean = value.encode("ascii", "ignore").decode().replace("\r", " ").replace("\n", " ")
            headers[name] = clean
    response = httpx.Response(429, headers=headers)
    at = retry_at_from_headers(
        response, reset_header="x-ratelimit-reset", reset_kind=kind, now=NOW, max_wait_seconds=max_wait
    )
    if at is not None:
        assert FROZEN <= at <= FROZEN + timedelta(seconds=max_wait) + timedelta(microseconds=1)


def test_rate_limit_policy_never_blocks_longer_than_the_maximum() -> None:
    clock = Clock(FROZEN.timestamp())
    state = RateLimitState(clock)
    transport = Transport(limited_answer(0, 1e18))
    pipe = pipeline(transport, RateLimitPolicy(state, observe, clock=clock, max_block_seconds=60))
    send(pipe)
    assert state.blocked_until("example:tenant:integration") == clock.now + 60


def test_github_429_with_infinite_retry_after_is_rate_limited_for_the_maximum() -> None:
    """The issue's repro: ``Retry-After: inf`` raised OverflowError and the 429 was ignored."""
    transport = Transport(httpx.Response(429, headers={"Retry-After": "inf"}, json={"message": "slow down"}))
    adapter = GitHubAdapter(transport=transport.mock, max_wait_seconds=900)
    conn = Connection("t", "i", "https://api.github.com", SecretStr("gho_abc"))
    before = datetime.now(UTC)
    try:
        with pytest.raises(RateLimited) as info:
            adapter.send(conn, "GET", URL)
        with pytest.raises(RateLimited):  # blocked: the second call is not sent
            adapter.send(conn, "GET", URL)
    finally:
        adapter.close()
    assert len(transport.requests) == 1
    assert info.value.retry_at is not None
    assert before + timedelta(seconds=899) <= info.value.retry_at <= datetime.now(UTC) + timedelta(seconds=900)


@pytest.mark.parametrize("value", ["1e20", "-3", "nan", "garbage", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_github_503_with_absurd_retry_after_is_retry_later(value: str) -> None:
    transport = Transport(httpx.Response(503, headers={"Retry-After": value}, json={"message": "down"}))
    adapter = GitHubAdapter(transport=transport.mock, max_wait_seconds=900)
    conn = Connection("t", "i", "https://api.github.com", SecretStr("gho_abc"))
    try:
        with pytest.raises(RetryLater) as info:
            adapter.send(conn, "GET", URL)
    finally:
        adapter.close()
    at = info.value.retry_at
    assert at is None or at <= datetime.now(UTC) + timedelta(seconds=900)


# ---------------------------------------------------------------------------------------- buckets and backoff


def test_rate_limit_blocks_apply_per_bucket_not_per_connection() -> None:
    """Issue 7: a Slack tier-3 429 must not stop tier-2 calls of the same workspace."""
    clock = Clock(FROZEN.timestamp())
    state = RateLimitState(clock)
    transport = Transport(httpx.Response(429, headers={"Retry-After": "30"}), httpx.Response(200))
    pipe = pipeline(transport, RateLimitPolicy(state, observe, clock=clock), retry([]))
    tier3 = RequestContext(provider="example", connection_key="t:i", bucket="t:i:tier3")
    with pytest.raises(RateLimited):
        send(pipe, tier3)
    assert state.blocked_until("t:i:tier3") is not None
    with pytest.raises(RateLimited):  # the same bucket is blocked without sending
        send(pipe, RequestContext(provider="example", connection_key="t:other", bucket="t:i:tier3"))
    assert send(pipe, RequestContext(provider="example", connection_key="t:i", bucket="t:i:tier2")).status_code == 200
    assert len(transport.requests) == 2


def limited_without_time(response: httpx.Response) -> HubError | None:
    """A classifier for an answer that names no time (Google 403 userRateLimitExceeded)."""
    if response.status_code == 403:
        return RateLimited("user rate limit", retry_at=None)
    return None


def test_exponential_backoff_retries_small_waits_in_place_then_reschedules() -> None:
    clock = Clock(FROZEN.timestamp())
    sleeps: list[float] = []
    transport = Transport(httpx.Response(403))
    backoff = RetryPolicy(
        limited_without_time,
        max_attempts=10,
        backoff_base=1.0,
        max_inline_wait=4.0,
        max_backoff=64.0,
        sleep=sleeps.append,
        clock=clock,
    )
    state = RateLimitState(clock)
    pipe = pipeline(transport, RateLimitPolicy(state, observe, clock=clock), backoff)
    with pytest.raises(RateLimited) as info:
        send(pipe)
    assert sleeps == [1.0, 2.0, 4.0]  # slept in place while the wait stayed within max_inline_wait
    assert info.value.retry_at == datetime.fromtimestamp(clock.now + 8.0, UTC)  # then rescheduled, never slept
    assert len(transport.requests) == 4
    assert state.strikes("example:tenant:integration") == 1


def test_exponential_backoff_grows_across_messages_truncates_and_resets_on_success() -> None:
    clock = Clock(FROZEN.timestamp())
    state = RateLimitState(clock)
    transport = Transport(httpx.Response(403))
    policy = RetryPolicy(
        limited_without_time, max_attempts=1, backoff_base=1.0, max_inline_wait=0.0, max_backoff=10.0, clock=clock
    )
    pipe = pipeline(transport, RateLimitPolicy(state, observe, clock=clock), policy)
    waits = []
    for _ in range(6):
        with pytest.raises(RateLimited) as info:
            send(pipe)
        assert info.value.retry_at is not None
        waits.append(info.value.retry_at.timestamp() - clock.now)
        clock.now = info.value.retry_at.timestamp()  # the rescheduled message comes back then
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    transport.answers = [httpx.Response(200)]
    assert send(pipe).status_code == 200
    assert state.strikes("example:tenant:integration") == 0
    transport.answers = [httpx.Response(403)]
    with pytest.raises(RateLimited) as info:
        send(pipe)
    assert info.value.retry_at == datetime.fromtimestamp(clock.now + 1.0, UTC)


def test_rate_limited_with_a_time_is_never_backed_off_or_slept() -> None:
    sleeps: list[float] = []
    transport = Transport(httpx.Response(429, headers={"Retry-After": "1"}))
    pipe = pipeline(transport, retry(sleeps, max_attempts=5))
    with pytest.raises(RateLimited):
        send(pipe)
    assert sleeps == [] and len(transport.requests) == 1
