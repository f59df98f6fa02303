"""Section 5 of issue 11: 50 tenants x 4 integrations share a 5,000/h provider app limit against a
sandbox that enforces it hard, in compressed time, through the adapter's HTTP pipeline; once in
one process on the in-process backend and once in 4 worker processes sharing the Redis backend."""

from __future__ import annotations

import pytest

from bench.rate_limit_simulation import simulate
from tests.ratelimit.redis_server import RedisServer

pytestmark = pytest.mark.slow


def assert_bounds(report: dict[str, object]) -> None:
    assert report["provider_429s"] == 0, report
    assert report["utilisation"] >= 0.9, report  # type: ignore[operator]
    assert report["max_fairness_deviation"] <= 0.2, report  # type: ignore[operator]


def test_in_process_budgets_meet_the_bounds() -> None:
    assert_bounds(simulate(backend="memory", duration=1200))


def test_four_worker_processes_sharing_redis_meet_the_same_bounds(redis_server: RedisServer) -> None:
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    report = simulate(backend="redis", workers=4, redis_url=redis_server.url, duration=1200)
    assert report["workers"] == 4
    assert_bounds(report)
