"""The budget port's contract, run against both backends (in-process and a real redis-server)."""

from __future__ import annotations

import random
from collections import Counter, deque

import pytest

from shared.ratelimit.model import HIGH, LOW, Budget, Override
from shared.ratelimit.port import BudgetBackend
from tests.ratelimit.conftest import FakeClock


def test_a_burst_then_the_exact_time_of_the_next_slot(backend: BudgetBackend, clock: FakeClock) -> None:
    budget = Budget("p:conn", "conn", "integration", limit=10, window=10, burst=3, strict=False)
    assert [backend.acquire([budget], priority=HIGH).allowed for _ in range(3)] == [True, True, True]
    denied = backend.acquire([budget], priority=HIGH)
    assert not denied.allowed and denied.bucket == "p:conn"
    assert denied.retry_at == pytest.approx(clock.now + 1.0)
    clock.advance(1.0)
    assert backend.acquire([budget], priority=HIGH).allowed
    assert not backend.acquire([budget], priority=HIGH).allowed


@pytest.mark.parametrize("seed", [1, 2])
def test_a_strict_budget_never_allows_more_than_its_limit_in_any_window(
    backend: BudgetBackend, clock: FakeClock, seed: int
) -> None:
    rnd = random.Random(seed)
    budget = Budget("p:app", "app", "app", limit=50, window=60, burst=5)
    start, allowed = clock.now, []
    while clock.now < start + 240:
        if backend.acquire([budget]).allowed:
            allowed.append(clock.now)
        clock.advance(rnd.expovariate(2.0))  # far more demand than the limit
    window: deque[float] = deque()
    for at in allowed:
        window.append(at)
        while window[0] <= at - 60:
            window.popleft()
        assert len(window) <= 50
    assert len(allowed) >= 0.9 * 50 * 4  # and it is used: about the limit per window


def test_a_request_goes_only_when_every_level_permits_it_and_charges_none_otherwise(
    backend: BudgetBackend, clock: FakeClock
) -> None:
    app = Budget("p:app", "app", "app", limit=100, window=1, burst=100, strict=False)
    conn = Budget("p:t1:i1", "conn", "integration", limit=1, window=10, burst=1, strict=False)
    assert backend.acquire([app, conn]).allowed
    denied = backend.acquire([app, conn])
    assert not denied.allowed and denied.bucket == "p:t1:i1"
    assert denied.retry_at == pytest.approx(clock.now + 10)
    # the app budget was not charged by the denied request: 99 are left for others
    other = Budget("p:t2:i2", "conn", "integration", limit=1000, window=1, burst=1000, strict=False)
    assert sum(backend.acquire([app, other], priority=HIGH).allowed for _ in range(100)) == 99


def test_the_retry_time_is_the_latest_of_the_denying_budgets(backend: BudgetBackend, clock: FakeClock) -> None:
    short = Budget("p:short", "short", "operation", limit=1, window=2, burst=1, strict=False)
    long = Budget("p:long", "long", "integration", limit=1, window=30, burst=1, strict=False)
    assert backend.acquire([short, long]).allowed
    denied = backend.acquire([short, long])
    assert denied.bucket == "p:long" and denied.retry_at == pytest.approx(clock.now + 30)


def test_low_priority_work_leaves_part_of_the_burst_to_webhooks_and_interactive_work(
    backend: BudgetBackend, clock: FakeClock
) -> None:
    budget = Budget("p:conn", "conn", "integration", limit=10, window=10, burst=10, strict=False)
    low = sum(backend.acquire([budget], priority=LOW).allowed for _ in range(20))
    assert low == 8  # 20% of the burst is kept back
    assert backend.acquire([budget], priority=HIGH).allowed
    assert backend.acquire([budget], priority=HIGH).allowed
    assert not backend.acquire([budget], priority=HIGH).allowed


def test_deferred_requests_are_spread_one_interval_apart(backend: BudgetBackend, clock: FakeClock) -> None:
    budget = Budget("p:conn", "conn", "integration", limit=1, window=1, burst=1, strict=False)
    assert backend.acquire([budget]).allowed
    times = [backend.acquire([budget]).retry_at - clock.now for _ in range(4)]
    assert times == pytest.approx([1.0, 2.0, 3.0, 4.0])


def test_fair_share_one_tenant_cannot_starve_another_on_a_shared_app_budget(
    backend: BudgetBackend, clock: FakeClock
) -> None:
    app = Budget("p:app", "app", "app", limit=10, window=1, burst=2, strict=False, fair=True)
    got: Counter[str] = Counter()
    for _ in range(300):  # tenant a asks 9 times as often as b
        for tenant in ["a"] * 9 + ["b"]:
            if backend.acquire([app], tenant=tenant).allowed:
                got[tenant] += 1
        clock.advance(0.1)
    assert got["b"] >= 0.4 * (got["a"] + got["b"])  # close to half, not a tenth
    assert got["a"] + got["b"] >= 0.9 * 300  # and the app's whole rate is used


def test_aimd_halves_the_rate_on_a_429_and_recovers_it_additively(
    backend: BudgetBackend, clock: FakeClock
) -> None:
    budget = Budget("p:conn", "conn", "integration", limit=10, window=1, burst=1, strict=False)
    assert backend.acquire([budget]).allowed
    backend.penalize([budget])
    denied = backend.acquire([budget])
    assert denied.retry_at == pytest.approx(clock.now + 0.2)  # interval 0.1 -> 0.2
    backend.penalize([budget])
    clock.advance(60)  # recovered to the full rate
    assert backend.acquire([budget]).allowed
    assert backend.acquire([budget]).retry_at == pytest.approx(clock.now + 0.1)
    views = {v.key: v for v in backend.views()}
    assert views["p:conn"].factor == 1.0


def test_learned_remaining_is_paced_over_the_time_left(backend: BudgetBackend, clock: FakeClock) -> None:
    budget = Budget("p:token", "token", "integration", limit=5000, window=3600, burst=50, learn=True)
    backend.learn(budget, remaining=11, reset_at=clock.now + 100)
    start, reset, times = clock.now, clock.now + 100, []
    while clock.now < reset - 1:
        if backend.acquire([budget]).allowed:
            times.append(clock.now - start)
        clock.advance(1)
    assert 9 <= len(times) <= 11  # what is left (a low-priority caller keeps a fifth of the burst back)...
    assert len([t for t in times if t < 10]) <= 5 and times[-1] > 80  # ...spread over the 100 s, not spent at once
    backend.learn(budget, remaining=0, reset_at=clock.now + 30)
    denied = backend.acquire([budget])
    assert not denied.allowed and denied.retry_at == pytest.approx(clock.now + 30)


def test_a_reserve_is_kept_back_from_a_learned_quota(backend: BudgetBackend, clock: FakeClock) -> None:
    budget = Budget("p:org", "org", "tenant", limit=1000, window=86400, reserve=0.2, learn=True)
    backend.learn(budget, remaining=150, reset_at=clock.now + 86400)  # 200 of 1000 are the customer's
    assert not backend.acquire([budget]).allowed


def test_blocks_and_strikes(backend: BudgetBackend, clock: FakeClock) -> None:
    block = Budget.block_only("p:t:i")
    assert backend.blocked_until("p:t:i") is None
    backend.block("p:t:i", clock.now + 30)
    backend.block("p:t:i", clock.now + 10)  # the later block stays
    assert backend.blocked_until("p:t:i") == pytest.approx(clock.now + 30)
    denied = backend.acquire([block])
    assert not denied.allowed and denied.retry_at == pytest.approx(clock.now + 30)
    clock.advance(31)
    assert backend.acquire([block]).allowed and backend.blocked_until("p:t:i") is None
    assert backend.strike("p:t:i") == 1 and backend.strike("p:t:i") == 2 and backend.strikes("p:t:i") == 2
    assert backend.acquire([block]).strikes == 2  # read with the decision, in the same round trip
    backend.clear_strikes("p:t:i")
    assert backend.strikes("p:t:i") == 0


def test_views_show_limit_remaining_reset_and_deferred_work(backend: BudgetBackend, clock: FakeClock) -> None:
    budget = Budget("p:acme:i1", "conn", "integration", limit=4, window=4, burst=2, strict=False)
    app = Budget("p:app", "app", "app", limit=100, window=1, burst=10, strict=False)
    for _ in range(4):
        backend.acquire([budget, app], priority=HIGH)
    views = {v.key: v for v in backend.views("acme")}
    assert set(views) == {"p:acme:i1", "p:app"}  # the tenant's buckets and the shared app ones
    view = views["p:acme:i1"]
    assert (view.name, view.level, view.limit, view.window_seconds) == ("conn", "integration", 4, 4)
    assert view.remaining == 0 and view.allowed == 2 and view.deferred == 2 and view.waiting == 2
    assert view.reset_at == pytest.approx(clock.now + 2)
    assert backend.views("other-tenant") == [views["p:app"]]


def test_overrides_are_stored_and_replaced_by_scope(backend: BudgetBackend) -> None:
    backend.set_override(Override("github", "token", tenant="acme", limit=100))
    backend.set_override(Override("github", "token", tenant="acme", limit=200))
    backend.set_override(Override("slack", "tier2", disabled=True))
    found = {o.scope: o for o in backend.overrides()}
    assert found["github/acme/*/token"].limit == 200 and found["slack/*/*/tier2"].disabled


def test_aimd_recovers_over_the_budgets_own_window_from_ten_seconds_to_ten_minutes(
    backend: BudgetBackend, clock: FakeClock
) -> None:
    hourly = Budget("p:token", "token", "integration", limit=5000, window=3600, burst=50)
    backend.acquire([hourly])
    backend.penalize([hourly])
    clock.advance(60)
    assert {v.key: v.factor for v in backend.views()}["p:token"] == pytest.approx(0.55, abs=0.01)
    clock.advance(540)
    assert {v.key: v.factor for v in backend.views()}["p:token"] == 1.0
