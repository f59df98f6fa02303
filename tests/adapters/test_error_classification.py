"""Error classification from the spec (``adapters.base.classify``): body rules, statuses, codes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base.classify import ErrorClassifier, code_slug, find_body_error, quota_usage
from adapters.base.spec import BodyError, ErrorAction, ErrorSpec, RateLimitSpec, RetrySpec
from shared.errors import (
    FailRun,
    HubError,
    RateLimited,
    ReauthRequired,
    ResyncRequired,
    RetryLater,
    SkipRecord,
)

NOW = datetime(2024, 1, 1, tzinfo=UTC).timestamp()

SLACK = ErrorSpec(
    body=(BodyError(when_path="ok", equals=False, code_path="error"),),
    codes={"ratelimited": "rate_limited", "invalid_auth": "reauth", "token_revoked": "reauth", "fatal_error": "retry"},
)
SALESFORCE = ErrorSpec(
    body=(BodyError(when_path="0.errorCode", code_path="0.errorCode", message_path="0.message"),),
    codes={"REQUEST_LIMIT_EXCEEDED": "rate_limited", "INVALID_SESSION_ID": "reauth", "ENTITY_IS_DELETED": "skip"},
    quota_reset_seconds=3600,
)
NOTION = ErrorSpec(
    body=(BodyError(when_path="object", equals="error", code_path="code", message_path="message"),),
    codes={"rate_limited": "rate_limited", "service_overload": "retry", "unauthorized": "reauth"},
)
GOOGLE = ErrorSpec(
    body=(
        BodyError(when_path="error.errors.0.reason", code_path="error.errors.0.reason", message_path="error.message"),
    ),
    codes={"userRateLimitExceeded": "rate_limited", "rateLimitExceeded": "rate_limited", "authError": "reauth"},
    statuses={410: "resync"},
)
ACTIONS: dict[ErrorAction, type[HubError]] = {
    "rate_limited": RateLimited,
    "reauth": ReauthRequired,
    "retry": RetryLater,
    "resync": ResyncRequired,
    "fail": FailRun,
    "skip": SkipRecord,
}


def classifier(*, backoff: str = "none", limited: tuple[int, ...] = (429,)) -> ErrorClassifier:
    return ErrorClassifier(
        "acme",
        RateLimitSpec(limited_statuses=limited, default_wait_seconds=60),
        RetrySpec(backoff=backoff),  # type: ignore[arg-type]
        is_rate_limited=lambda _r: True,
        max_wait_seconds=7200,
        clock=lambda: NOW,
    )


def answer(
    status: int, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers=headers)


# ---------------------------------------------------------------------------------------- body rules


@pytest.mark.parametrize(
    ("spec", "body", "code", "message"),
    [
        (SLACK, {"ok": False, "error": "ratelimited"}, "ratelimited", "ratelimited"),
        (SALESFORCE, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}],
         "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
        (NOTION, {"object": "error", "status": 429, "code": "rate_limited", "message": "slow down"},
         "rate_limited", "slow down"),
        (GOOGLE, {"error": {"code": 403, "message": "User Rate Limit Exceeded",
                            "errors": [{"domain": "usageLimits", "reason": "userRateLimitExceeded"}]}},
         "userRateLimitExceeded", "User Rate Limit Exceeded"),
    ],
)  # fmt: skip
def test_find_body_error_reads_each_providers_shape(spec: ErrorSpec, body: Any, code: str, message: str) -> None:
    found = find_body_error(spec.body, body)
    assert found is not None and (found.code, found.message) == (code, message)


@pytest.mark.parametrize(
    ("spec", "body"),
    [
        (SLACK, {"ok": True, "members": []}),
        (SLACK, {"ok": 0, "error": "x"}),  # 0 is not False
        (SALESFORCE, {"records": [], "done": True}),
        (SALESFORCE, []),
        (NOTION, {"object": "list", "results": []}),
        (GOOGLE, {"items": [], "nextPageToken": "t"}),
        (GOOGLE, "just a string"),
    ],
)
def test_find_body_error_ignores_successful_bodies(spec: ErrorSpec, body: Any) -> None:
    assert find_body_error(spec.body, body) is None


def test_a_body_rule_without_a_code_reports_unknown_error() -> None:
    found = find_body_error(SLACK.body, {"ok": False})
    assert found is not None and found.code == "unknown_error"


# ---------------------------------------------------------------------------------------- classifier


def test_slack_errors_inside_200_answers_are_classified_from_the_codes() -> None:
    c = classifier()
    assert c.classify(answer(200, {"ok": True, "members": []}), SLACK) is None
    limited = c.classify(answer(200, {"ok": False, "error": "ratelimited"}), SLACK)
    assert isinstance(limited, RateLimited) and limited.retry_at == datetime.fromtimestamp(NOW + 60, UTC)
    revoked = c.classify(answer(200, {"ok": False, "error": "token_revoked"}), SLACK)
    assert isinstance(revoked, ReauthRequired) and "token_revoked" in str(revoked)
    assert isinstance(c.classify(answer(200, {"ok": False, "error": "fatal_error"}), SLACK), RetryLater)


def test_an_unknown_body_code_fails_the_run_with_that_code() -> None:
    error = classifier().classify(answer(200, {"ok": False, "error": "channel_not_found"}), SLACK)
    assert type(error) is FailRun and error.code == "channel_not_found"
    assert "channel_not_found" in str(error) and "acme answered 200" in str(error)


def test_an_unknown_body_code_on_a_transient_status_is_still_transient() -> None:
    error = classifier().classify(
        answer(503, {"object": "error", "code": "something_new"}, {"Retry-After": "2"}), NOTION
    )
    assert type(error) is RetryLater and error.retry_at == datetime.fromtimestamp(NOW + 2, UTC)


def test_an_unknown_body_code_on_a_status_the_spec_maps_follows_the_map() -> None:
    spec = NOTION.merged(ErrorSpec(statuses={404: "skip"}))
    error = classifier().classify(answer(404, {"object": "error", "code": "object_not_found"}), spec)
    assert type(error) is SkipRecord and error.code == "object_not_found"
    unmapped = classifier().classify(answer(404, {"object": "error", "code": "object_not_found"}), NOTION)
    assert type(unmapped) is FailRun and unmapped.code == "object_not_found"


def test_slack_429_honours_retry_after_exactly() -> None:
    error = classifier().classify(answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "30"}), SLACK)
    assert isinstance(error, RateLimited) and error.retry_at == datetime.fromtimestamp(NOW + 30, UTC)


def test_salesforce_request_limit_waits_for_the_quota_window() -> None:
    body = [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}]
    error = classifier(limited=()).classify(answer(403, body), SALESFORCE)
    assert isinstance(error, RateLimited)
    assert error.retry_at == datetime.fromtimestamp(NOW + 3600, UTC)
    assert isinstance(classifier().classify(answer(404, [{"errorCode": "ENTITY_IS_DELETED"}]), SALESFORCE), SkipRecord)
    assert isinstance(classifier().classify(answer(401, [{"errorCode": "INVALID_SESSION_ID"}]), SALESFORCE),
                      ReauthRequired)  # fmt: skip


def test_notion_429_and_529() -> None:
    limited = classifier().classify(
        answer(429, {"object": "error", "code": "rate_limited", "message": "m"}, {"Retry-After": "3"}), NOTION
    )
    assert isinstance(limited, RateLimited) and limited.retry_at == datetime.fromtimestamp(NOW + 3, UTC)
    overload = classifier().classify(answer(529, {"object": "error", "code": "service_overload"}), NOTION)
    assert type(overload) is RetryLater


def test_google_rate_limit_without_a_time_is_left_to_the_backoff() -> None:
    body = {"error": {"code": 403, "errors": [{"reason": "userRateLimitExceeded"}], "message": "slow"}}
    error = classifier(backoff="exponential").classify(answer(403, body), GOOGLE)
    assert isinstance(error, RateLimited) and error.retry_at is None
    fixed = classifier().classify(answer(403, body), GOOGLE)
    assert isinstance(fixed, RateLimited) and fixed.retry_at == datetime.fromtimestamp(NOW + 60, UTC)


def test_google_410_gone_means_resync() -> None:
    body = {"error": {"code": 410, "message": "Sync token is no longer valid, a full sync is required.",
                      "errors": [{"domain": "global", "reason": "fullSyncRequired"}]}}  # fmt: skip
    error = classifier().classify(answer(410, body), GOOGLE)
    assert isinstance(error, ResyncRequired) and error.code == "resync_required"
    assert isinstance(classifier().classify(answer(410, raw=b"Gone"), GOOGLE), ResyncRequired)


@pytest.mark.parametrize(
    ("status", "cls", "code"),
    [
        (401, ReauthRequired, "unauthorized"),
        (403, ReauthRequired, "forbidden"),
        (404, FailRun, "http_404"),
        (429, RateLimited, "rate_limited"),
        (500, RetryLater, "retry_later"),
        (503, RetryLater, "retry_later"),
    ],
)
def test_statuses_without_body_rules_classify_as_before(status: int, cls: type[HubError], code: str) -> None:
    error = classifier().classify(answer(status, {"message": "m"}), ErrorSpec())
    assert type(error) is cls and error.code == code


@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_action_of_a_status_map_names_its_class(action: ErrorAction) -> None:
    error = classifier().classify(answer(418, {}), ErrorSpec(statuses={418: action}))
    assert type(error) is ACTIONS[action]


def test_stream_override_comes_first() -> None:
    merged = SLACK.merged(ErrorSpec(codes={"ratelimited": "retry"}, statuses={410: "resync"}, quota_reset_seconds=5))
    assert merged.codes["ratelimited"] == "retry" and merged.codes["invalid_auth"] == "reauth"
    assert merged.statuses == {410: "resync"} and merged.quota_reset_seconds == 5
    assert SLACK.merged(None) is SLACK


def test_code_slug() -> None:
    assert code_slug("REQUEST_LIMIT_EXCEEDED") == "request_limit_exceeded"
    assert code_slug("user Rate-Limit!") == "user_rate_limit"
    assert code_slug("¡¿") == "provider_error"


# ---------------------------------------------------------------------------------------- quota header

SFORCE = re.compile(r"api-usage=(\d+)/(\d+)")


@pytest.mark.parametrize(
    ("value", "usage"),
    [
        ("api-usage=10018/100000", (10018, 100000)),
        ("api-usage=100000/100000; per-app-api-usage=17/250(appName=x)", (100000, 100000)),
        ("api-usage=١٢/100", None),  # Arabic-Indic digits are not a count
        ("garbage", None),
        ("", None),
        (None, None),
        ("api-usage=1/2" + " " * 300, None),
    ],
)
def test_quota_usage(value: str | None, usage: tuple[int, int] | None) -> None:
    assert quota_usage(SFORCE, value) == usage


@pytest.mark.parametrize(
    ("header", "pattern", "problem"),
    [
        ("X-Quota", "api-usage=(\\d+", "not a regular expression"),
        ("X-Quota", "api-usage=(\\d+)", "needs groups"),
        (None, "api-usage=(\\d+)/(\\d+)", "needs quota_header"),
    ],
)
def test_a_quota_pattern_that_cannot_read_usage_is_refused(header: str | None, pattern: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RateLimitSpec(quota_header=header, quota_pattern=pattern)


def test_quota_usage_reads_named_groups() -> None:
    assert quota_usage(re.compile(r"left=(?P<limit>\d+) used=(?P<used>\d+)"), "left=5 used=5") == (5, 5)


# ---------------------------------------------------------------------------------------- outside input

BODIES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["ok", "error", "errors", "0", "code", "object", "reason", "x"]), inner, max_size=4
        )
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(
    status=st.integers(min_value=100, max_value=599),
    body=BODIES,
    raw=st.none() | st.binary(max_size=64),
    retry_after=st.none() | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
    spec=st.sampled_from([SLACK, SALESFORCE, NOTION, GOOGLE, ErrorSpec()]),
    backoff=st.sampled_from(["none", "exponential"]),
)
def test_classifying_any_answer_gives_none_or_a_hub_error(
    status: int, body: Any, raw: bytes | None, retry_after: str | None, spec: ErrorSpec, backoff: str
) -> None:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    response = answer(status, body, headers, raw)
    error = classifier(backoff=backoff).classify(response, spec)
    assert error is None or isinstance(error, HubError)
    if error is None:
        assert status < 400
    if isinstance(error, RetryLater) and error.retry_at is not None:
        assert NOW <= error.retry_at.timestamp() <= NOW + 7200
    if error is not None:
        assert len(str(error)) < 600 and re.fullmatch(r"[a-z0-9_]+", error.code)


@settings(max_examples=200, deadline=None)
@given(body=BODIES, when=st.sampled_from(["ok", "0.x", "error.errors.0.reason", "a.b.c"]), equals=BODIES)
def test_any_body_rule_over_any_body_never_raises(body: Any, when: str, equals: Any) -> None:
    rule = BodyError(when_path=when, equals=equals, code_path="error", message_path="x")
    found = find_body_error((rule,), body)
    assert found is None or (isinstance(found.code, str) and len(found.code) <= 100)


def test_a_body_error_at_a_time_far_away_is_clamped_to_the_maximum_wait() -> None:
    error = classifier().classify(answer(429, {}, {"Retry-After": "999999999"}), ErrorSpec())
    assert isinstance(error, RateLimited)
    assert error.retry_at == datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=7200)
