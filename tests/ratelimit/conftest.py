"""Fixtures of the rate-limit tests: a real redis-server for the session and both backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.ratelimit.memory import InProcessBudgets
from shared.ratelimit.port import BudgetBackend
from tests.ratelimit.redis_server import RedisServer, RedisUnavailable


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server on a free 127.0.0.1 port for the session (skipped, with the reason, only if missing)."""
    try:
        server = RedisServer().start()
    except RedisUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[BudgetBackend]:
    """Each contract test runs against both backends; the Redis one starts from an empty database."""
    if request.param == "memory":
        yield InProcessBudgets(clock)
        return
    import redis

    from shared.ratelimit.redis_backend import RedisBudgets

    server: RedisServer = request.getfixturevalue("redis_server")
    client = redis.Redis.from_url(server.url, socket_timeout=2)
    client.flushdb()
    found = RedisBudgets(client, clock=clock)
    try:
        yield found
    finally:
        found.close()
