"""The budgets in the adapter's HTTP path, over real loopback HTTP to the GitHub sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from adapters.base.model import Connection
from adapters.providers.github import GitHubAdapter
from sandbox.github import GitHubSandbox
from shared.errors import RateLimited
from shared.ratelimit.limiter import BudgetDeferred, Exceeded, RateLimiter
from shared.ratelimit.memory import InProcessBudgets
from shared.ratelimit.model import Override
from shared.ratelimit.priority import work_priority

TOKEN = "gh-rl-token"


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[GitHubSandbox]:
    sb = GitHubSandbox(token=TOKEN, issues=30, rate_limit=getattr(request, "param", 5000)).start()
    try:
        yield sb
    finally:
        sb.stop()


def conn(sb: GitHubSandbox, tenant: str = "tenant-a", integration: str = "gh-1") -> Connection:
    return Connection(tenant, integration, sb.base_url, SecretStr(TOKEN), {"owner": sb.owner, "repo": sb.repo})


def api_calls(sb: GitHubSandbox) -> int:
    return int(httpx.get(f"{sb.base_url}/_sandbox/stats").json()["request_count"])


@pytest.fixture
def exceeded() -> list[Exceeded]:
    return []


@pytest.fixture
def limiter(exceeded: list[Exceeded]) -> RateLimiter:
    return RateLimiter(InProcessBudgets(), on_exceeded=exceeded.append)


@pytest.mark.parametrize("sandbox", [8], indirect=True)
def test_the_remaining_allowance_is_paced_instead_of_spent_and_never_meets_a_403(
    sandbox: GitHubSandbox, limiter: RateLimiter
) -> None:
    with GitHubAdapter(rate_limits=limiter) as adapter:
        sent = deferred = 0
        for _ in range(20):
            try:
                adapter.fetch_page(conn(sandbox), "issues", None, None)
                sent += 1
            except BudgetDeferred as exc:  # rescheduled through the queue in the hub, never slept on
                deferred += 1
                assert exc.retry_at is not None and exc.code == "budget_deferred"
                assert "github:token:tenant-a:gh-1" in exc.bucket
    assert api_calls(sandbox) == sent < 8  # it kept most of the 8 for the rest of the hour
    assert deferred == 20 - sent
    view = next(v for v in limiter.views("tenant-a") if v.name == "token")
    assert view.deferred == deferred and view.remaining <= 8 - sent


def test_a_429_halves_the_bucket_blocks_it_and_names_it_in_the_event(
    sandbox: GitHubSandbox, limiter: RateLimiter, exceeded: list[Exceeded]
) -> None:
    sandbox.secondary_limit(retry_after_seconds=30)
    with GitHubAdapter(rate_limits=limiter) as adapter:
        with pytest.raises(RateLimited) as first:
            adapter.fetch_page(conn(sandbox), "issues", None, None)
        assert not isinstance(first.value, BudgetDeferred)
        calls = api_calls(sandbox)
        with pytest.raises(RateLimited):  # blocked here, without asking the provider again
            adapter.fetch_page(conn(sandbox), "issues", None, None)
        assert api_calls(sandbox) == calls
    (event,) = exceeded
    assert (event.tenant, event.integration, event.level) == ("tenant-a", "gh-1", "integration")
    assert event.bucket == "github:token:tenant-a:gh-1" and event.retry_at == first.value.retry_at
    factors = {v.name: v.factor for v in limiter.views("tenant-a")}
    assert factors["token"] == pytest.approx(0.5, abs=0.01) and factors["secondary"] == pytest.approx(0.5, abs=0.01)


def test_an_override_narrows_one_tenant_and_leaves_the_others_alone(
    sandbox: GitHubSandbox, limiter: RateLimiter
) -> None:
    limiter.set_override(Override("github", "secondary", tenant="tenant-a", limit=3, window_seconds=3600))
    with GitHubAdapter(rate_limits=limiter) as adapter:
        results = []
        for _ in range(4):
            try:
                adapter.fetch_page(conn(sandbox), "issues", None, None)
                results.append("sent")
            except BudgetDeferred as exc:
                results.append(exc.bucket)
        assert results[:1] == ["sent"] and results[-1] == "github:secondary:tenant-a:gh-1"
        for _ in range(4):
            adapter.fetch_page(conn(sandbox, tenant="tenant-b"), "issues", None, None)


def test_webhook_and_interactive_work_keep_a_share_of_the_burst_that_backfill_cannot_take(
    sandbox: GitHubSandbox, limiter: RateLimiter
) -> None:
    limiter.set_override(Override("github", "secondary", limit=10, window_seconds=3600))
    with GitHubAdapter(rate_limits=limiter) as adapter:
        scheduled = 0
        for _ in range(12):
            try:
                adapter.fetch_page(conn(sandbox), "issues", None, None)
                scheduled += 1
            except BudgetDeferred:
                pass
        with work_priority("webhook"):
            adapter.fetch_page(conn(sandbox), "issues", None, None)  # still room for a webhook's page
    assert 0 < scheduled < 10


def test_a_request_deferred_again_and_again_ages_into_the_reserved_part_of_the_burst() -> None:
    from shared.http import RequestContext
    from shared.ratelimit.model import Budget
    from tests.ratelimit.conftest import FakeClock

    clock = FakeClock()
    limiter = RateLimiter(InProcessBudgets(clock), clock=clock)
    budget = Budget("p:conn", "conn", "integration", limit=10, window=3600, burst=10, strict=False)

    def ask(key: str) -> bool:
        try:
            limiter.admit(RequestContext(provider="p", connection_key="t:i", tenant="t", budgets=(budget,),
                                         request_key=key))
        except BudgetDeferred:
            return False
        return True

    assert sum(ask(f"page-{n}") for n in range(10)) == 8  # scheduled work leaves 2 of 10 for others
    assert [ask("page-x") for _ in range(4)] == [False, False, False, True]  # the 4th try may use the reserve


def test_a_salesforce_org_near_its_quota_keeps_the_reserve_and_never_meets_request_limit_exceeded(
    limiter: RateLimiter,
) -> None:
    from adapters.providers.salesforce import SalesforceAdapter
    from sandbox.salesforce import SalesforceSandbox

    with SalesforceSandbox(accounts=200, batch_size=10, token=TOKEN, daily_limit=40) as sb, \
            SalesforceAdapter(rate_limits=limiter, timeout=10.0) as adapter:
        sb.quota.used = 28  # 12 left of 40; 20% (8) is the customer's
        conn = Connection("tenant-a", "sf-1", sb.base_url, SecretStr(TOKEN), {"instance_url": sb.base_url})
        outcomes = []
        token = None
        for _ in range(10):
            try:
                page = adapter.fetch_page(conn, "accounts", None, token)
                token = page.next_token
                outcomes.append("sent")
            except BudgetDeferred as exc:
                outcomes.append("deferred")
                assert exc.retry_at is not None
        assert outcomes[0] == "sent" and outcomes.count("sent") <= 3 and "deferred" in outcomes
        assert sb.quota.used <= 40 - 8  # the reserve was never touched, and no 403 REQUEST_LIMIT_EXCEEDED
    view = next(v for v in limiter.views() if v.name == "org_daily")
    assert view.remaining <= 4 and view.deferred >= 1


def test_an_app_budget_set_by_an_operator_is_shared_fairly_by_every_tenant(sandbox: GitHubSandbox) -> None:
    from shared.ratelimit.factory import parse_overrides

    overrides = parse_overrides('[{"provider": "github", "budget": "app", "limit": 8, "window_seconds": 3600}]')
    limiter = RateLimiter(InProcessBudgets(), overrides=overrides)
    sent = {"tenant-a": 0, "tenant-b": 0}
    with GitHubAdapter(rate_limits=limiter) as adapter:
        for _ in range(10):
            for tenant in sent:  # tenant-a asks first every round: fairness, not order, decides
                try:
                    adapter.fetch_page(conn(sandbox, tenant=tenant), "issues", None, None)
                    sent[tenant] += 1
                except BudgetDeferred as exc:
                    assert exc.bucket.startswith("github:app:app")
    assert sum(sent.values()) <= 8 and sent["tenant-b"] >= 2
    assert any(v.name == "app" and v.level == "app" for v in limiter.views("tenant-b"))
