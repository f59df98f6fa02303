"""What only the Redis backend promises: one budget for many processes, and bounded behaviour when
Redis goes away (fail closed for a while, then conservative local budgets, then Redis again)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

import pytest
import redis

from shared.ratelimit.model import HIGH, Budget
from shared.ratelimit.redis_backend import OUTAGE_BUCKET, RedisBudgets
from tests.ratelimit.conftest import FakeClock
from tests.ratelimit.redis_server import RedisServer

BUDGET = Budget("p:shared", "shared", "app", limit=300, window=3600, burst=300, strict=False)


def _hammer(url: str, tries: int) -> int:
    backend = RedisBudgets(redis.Redis.from_url(url, socket_timeout=5))
    allowed = sum(backend.acquire([BUDGET], priority=HIGH, now=1_000_000.0).allowed for _ in range(tries))
    backend.close()
    return allowed


def test_processes_racing_for_one_budget_never_get_more_than_it_holds(redis_server: RedisServer) -> None:
    redis.Redis.from_url(redis_server.url).flushdb()
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        allowed = pool.starmap(_hammer, [(redis_server.url, 200)] * 4)
    assert sum(allowed) == 300  # 800 tries, exactly the 300 the budget holds (atomic script)


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


def test_a_redis_restart_fails_closed_then_falls_back_to_local_budgets_then_returns(
    own_server: RedisServer, clock: FakeClock
) -> None:
    backend = RedisBudgets(
        redis.Redis.from_url(own_server.url, socket_timeout=0.5, socket_connect_timeout=0.5),
        clock=clock, fail_closed_seconds=30, fallback_share=0.25, probe_seconds=2,
    )
    budget = Budget("p:conn", "conn", "integration", limit=100, window=100, burst=20, strict=False)
    assert backend.acquire([budget], priority=HIGH).allowed
    own_server.stop()

    closed = [backend.acquire([budget], priority=HIGH) for _ in range(5)]
    assert not any(d.allowed for d in closed)  # fails closed: nothing goes while Redis is unknown
    assert all(d.bucket == OUTAGE_BUCKET and clock.now < d.retry_at <= clock.now + 2 for d in closed)
    assert backend.degraded == "fail_closed"

    clock.advance(31)  # past the bounded fail-closed time: conservative local budgets, never unlimited
    assert backend.degraded == "local_fallback"
    allowed = sum(backend.acquire([budget], priority=HIGH).allowed for _ in range(100))
    assert allowed == 5  # a quarter of the burst of 20, for this instance alone

    own_server.start()  # the same port: Redis is back (empty after the restart)
    clock.advance(3)  # the next probe
    assert backend.acquire([budget], priority=HIGH).allowed
    assert backend.degraded == ""
    assert sum(backend.acquire([budget], priority=HIGH).allowed for _ in range(30)) == 19  # Redis's own buckets again
    backend.close()


def test_overrides_survive_an_outage_in_the_limiter(own_server: RedisServer, clock: FakeClock) -> None:
    from shared.ratelimit.limiter import RateLimiter
    from shared.ratelimit.model import Override

    backend = RedisBudgets(redis.Redis.from_url(own_server.url, socket_timeout=0.5, socket_connect_timeout=0.5),
                           clock=clock)
    limiter = RateLimiter(backend, clock=clock, overrides=[Override("github", "token", limit=10)])
    limiter.set_override(Override("github", "secondary", tenant="acme", limit=5))
    assert {o.scope for o in limiter.overrides()} == {"github/*/*/token", "github/acme/*/secondary"}
    own_server.stop()
    clock.advance(10)  # past the ttl: the re-read fails, the last table stays
    assert {o.scope for o in limiter.overrides()} == {"github/*/*/token", "github/acme/*/secondary"}
    backend.close()


def test_without_an_injected_clock_decisions_use_the_redis_servers_time(redis_server: RedisServer) -> None:
    import time

    from shared.http import RequestContext
    from shared.ratelimit.limiter import BudgetDeferred, RateLimiter

    redis.Redis.from_url(redis_server.url).flushdb()
    limiter = RateLimiter(RedisBudgets.from_url(redis_server.url))
    budget = Budget("p:conn", "conn", "integration", limit=1, window=60, burst=1, strict=False)
    ctx = RequestContext(provider="p", connection_key="t:i", tenant="t", budgets=(budget,))
    limiter.admit(ctx)
    with pytest.raises(BudgetDeferred) as deferred:
        limiter.admit(RequestContext(provider="p", connection_key="t:i", tenant="t", budgets=(budget,)))
    assert deferred.value.retry_at is not None
    assert abs(deferred.value.retry_at.timestamp() - (time.time() + 60)) < 5  # the server's clock, same machine
    limiter.close()
