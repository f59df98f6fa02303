"""``rate_limit_decision``: budget decisions per second, on one core.

Each decision is what one GitHub request asks: its bucket's block, the token's 5,000/h budget and
the secondary 900/min budget, all charged at once (limits raised so that every decision is an
allowed one, the path that writes). Measured:

- ``in_process_per_second``: :class:`~shared.ratelimit.memory.InProcessBudgets.acquire`;
- ``limiter_admit_per_second``: the pipeline's whole hook (:meth:`RateLimiter.admit`: overrides,
  block, budgets), in process;
- ``redis_per_second``: the Redis backend on one connection, 100 decisions per script call
  (:meth:`RedisBudgets.acquire_many`: one round trip, each decision atomic on its own) against a
  real ``redis-server`` started on a free port;
- ``redis_unbatched_per_second``: one ``EVALSHA`` round trip per decision (what a worker does).

The machine is shared, so wall-clock rates move with its load; ``in_process_per_cpu_second`` (this
process's own CPU time) and ``redis_server_us_per_decision`` (the script's time inside Redis, from
``INFO commandstats``) do not.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.http import RequestContext  # noqa: E402
from shared.ratelimit.limiter import RateLimiter  # noqa: E402
from shared.ratelimit.memory import InProcessBudgets  # noqa: E402
from shared.ratelimit.model import Budget  # noqa: E402


def _budgets(n: int) -> tuple[Budget, ...]:
    conn = f"tenant-{n % 50}:int-{n}"
    return (
        Budget.block_only(f"github:{conn}"),
        Budget(f"github:token:{conn}", "token", "integration", limit=1e12, window=3600, burst=50, learn=True),
        Budget(f"github:secondary:{conn}", "secondary", "integration", limit=1e12, window=60, burst=30),
    )


def _rate(fn: Any, count: int) -> float:
    started = time.perf_counter()
    fn(count)
    return count / (time.perf_counter() - started)


def _cpu_rate(fn: Any, count: int) -> float:
    """Decisions per second of this process's own CPU time (what other processes on the core cannot take)."""
    started = time.process_time()
    fn(count)
    return count / (time.process_time() - started)


def rate_limit_decision(count: int = 300_000, redis_count: int = 40_000) -> dict[str, Any]:
    """Decisions per second (see the module docs)."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    plans = [_budgets(n) for n in range(200)]
    memory = InProcessBudgets()

    def in_process(k: int) -> None:
        acquire = memory.acquire
        for i in range(k):
            acquire(plans[i % 200], tenant="t")

    limiter = RateLimiter(InProcessBudgets())
    contexts = [
        RequestContext(provider="github", connection_key=f"tenant-{n % 50}:int-{n}", tenant=f"tenant-{n % 50}",
                       integration=f"int-{n}", budgets=plans[n][1:])
        for n in range(200)
    ]

    def admit(k: int) -> None:
        for i in range(k):
            limiter.admit(contexts[i % 200])

    in_process(10_000)  # warm up
    report: dict[str, Any] = {
        "in_process_per_second": round(max(_rate(in_process, count) for _ in range(3))),
        "in_process_per_cpu_second": round(max(_cpu_rate(in_process, count) for _ in range(3))),
        "limiter_admit_per_second": round(max(_rate(admit, count // 3) for _ in range(3))),
        "budgets_per_decision": 3,
        "targets": {"in_process_per_second": 500_000, "redis_per_second": 20_000},
    }
    report.update(_redis(plans, redis_count))
    return report


def _redis(plans: list[tuple[Budget, ...]], count: int) -> dict[str, Any]:
    from tests.ratelimit.redis_server import RedisServer, RedisUnavailable

    try:
        server = RedisServer().start()
    except RedisUnavailable as exc:
        return {"redis_per_second": None, "redis_skipped": str(exc)}
    try:
        import redis

        from shared.ratelimit.redis_backend import RedisBudgets

        backend = RedisBudgets(redis.Redis.from_url(server.url))
        batch = [(plans[i % 200], "t", 1) for i in range(100)]

        def batched(k: int) -> None:
            for _ in range(k // 100):
                backend.acquire_many(batch)

        def single(k: int) -> None:
            for i in range(k):
                backend.acquire(plans[i % 200], tenant="t")

        batched(2_000)
        client = redis.Redis.from_url(server.url)
        client.config_resetstat()
        rate = max(_rate(batched, count) for _ in range(3))
        stats = client.info("commandstats").get("cmdstat_evalsha", {})
        client.close()
        return {
            "redis_per_second": round(rate),
            "redis_server_us_per_decision": round(float(stats.get("usec", 0)) / (3 * count), 1),
            "redis_batch": 100,
            "redis_unbatched_per_second": round(_rate(single, count // 4)),
            "redis_server": server.binary,
        }
    finally:
        server.close()


if __name__ == "__main__":
    import json

    print(json.dumps(rate_limit_decision(), indent=2))
