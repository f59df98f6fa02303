"""The rate-limit simulation (issue 11, section 5): many tenants sharing one provider app limit.

50 tenants x 4 integrations, each with far more pages queued than the app allows, share a
provider app limit of 5,000 an hour, against a loopback sandbox that enforces that limit hard
(a sliding window: the 5,001st request in any hour is a 429). Time is compressed: a virtual
clock runs ``scale`` times faster than the wall clock, for the budgets and the sandbox alike.

Four pages are in flight at once: four threads of one worker process on the in-process backend
(like one Functions instance's concurrent invocations), or one in each of four worker processes on
the Redis backend. Every request goes through the real adapter HTTP pipeline (``RateLimitPolicy`` with the
``RateLimiter``); a :class:`~shared.ratelimit.limiter.BudgetDeferred` answer reschedules the
integration's next page for the time it names (the harness's queue stands in for Service Bus
scheduled delivery: one page in flight per integration, like a session), nothing sleeps for a
budget. With ``workers=4`` the integrations are spread over four processes that share the Redis
backend, and only Redis connects them.

Reported: ``provider_429s``; ``utilisation`` = requests the provider accepted / what its limit
allowed over the run (work is queued throughout); ``max_fairness_deviation`` = the largest
``|tenant's share - fair share| / fair share``.
"""

from __future__ import annotations

import heapq
import multiprocessing
import sys
import threading
import time
from collections import Counter, deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from adapters.base.adapter import Adapter  # noqa: E402
from adapters.base.model import Connection  # noqa: E402
from adapters.base.spec import AuthSpec, BudgetSpec, ProviderSpec, RateLimitSpec  # noqa: E402
from sandbox.server import Request, Response, SandboxServer, json_response  # noqa: E402
from shared.errors import RateLimited  # noqa: E402
from shared.http import RateLimitState  # noqa: E402
from shared.ratelimit.limiter import BudgetDeferred, RateLimiter  # noqa: E402
from shared.ratelimit.memory import InProcessBudgets  # noqa: E402
from shared.ratelimit.port import BudgetBackend  # noqa: E402

APP_LIMIT = 5000
WINDOW = 3600.0


def sim_spec(limit: int = APP_LIMIT, window: float = WINDOW) -> ProviderSpec:
    """A provider whose app limit is shared by every tenant (plus a per-connection budget)."""
    return ProviderSpec(
        name="simapp",
        display_name="Simulated provider app",
        base_url="http://127.0.0.1:9",
        auth=AuthSpec(mode="none"),
        rate_limit=RateLimitSpec(
            bucket_key="{connection}",
            budgets=(
                BudgetSpec(name="app", level="app", key="app", limit=limit, window_seconds=window, burst=25,
                           fair=True),
                BudgetSpec(name="connection", level="integration", key="{connection}", limit=1000,
                           window_seconds=window),
            ),
        ),
    )


class SimAdapter(Adapter):
    """The simulated provider's adapter: the base adapter and nothing else."""

    spec = sim_spec()


class ScaledClock:
    """Virtual epoch seconds running ``scale`` times faster than the wall clock from ``t0``."""

    def __init__(self, t0: float, scale: float) -> None:
        self.t0, self.scale = t0, scale

    def __call__(self) -> float:
        return self.t0 + (time.time() - self.t0) * self.scale

    def real_delay(self, virtual_seconds: float) -> float:
        return max(virtual_seconds, 0.0) / self.scale


class HardLimitSandbox(SandboxServer):
    """``GET /t/{tenant}/i/{integration}/p/{page}``: 200 while fewer than ``limit`` requests were
    accepted in the last ``window`` (virtual) seconds, else 429 with ``Retry-After``."""

    def __init__(self, clock: ScaledClock, limit: int, window: float) -> None:
        super().__init__()
        self.clock, self.limit, self.window = clock, limit, window
        self.accepted: deque[float] = deque()
        self.times: list[float] = []
        self.by_tenant: Counter[str] = Counter()
        self.rejected = 0
        self._lock = threading.Lock()
        self.route("GET", r"/t/(?P<tenant>[^/]+)/i/(?P<integration>[^/]+)/p/(?P<page>\d+)", self._page)

    def _page(self, request: Request) -> Response:
        now = self.clock()
        with self._lock:
            while self.accepted and self.accepted[0] <= now - self.window:
                self.accepted.popleft()
            if len(self.accepted) >= self.limit:
                self.rejected += 1
                wait = self.accepted[0] + self.window - now
                return json_response(429, {"message": "rate limited"}, {"Retry-After": str(max(1, int(wait)))})
            self.accepted.append(now)
            self.times.append(now)
            self.by_tenant[request.params["tenant"]] += 1
        return json_response(200, {"items": [], "page": int(request.params["page"])})


@dataclass(frozen=True)
class WorkerJob:
    integrations: list[tuple[str, str]]
    base_url: str
    t0: float
    scale: float
    duration: float
    backend: str
    redis_url: str | None
    workers: int = 1
    budgets: bool = True
    threads: int = 4


START_KEY = "ihub:sim:start"
READY_KEY = "ihub:sim:ready"


def _wait_for_start(job: WorkerJob) -> float:
    """The virtual start time: now for one worker; with several, once every worker is ready (via Redis)."""
    clock = ScaledClock(job.t0, job.scale)
    if job.workers == 1:
        return clock()
    import redis

    assert job.redis_url
    client = redis.Redis.from_url(job.redis_url)
    client.incr(READY_KEY)
    while True:
        raw = client.get(START_KEY)
        if raw is not None:
            start = float(raw)
            while clock() < start:
                time.sleep(0.0005)
            client.close()
            return start
        time.sleep(0.002)


def _start_workers(redis_url: str, workers: int, clock: ScaledClock) -> float:
    """Wait until every worker process is ready, then name a start a little ahead (virtual)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    deadline = time.time() + 60
    while int(client.get(READY_KEY) or 0) < workers:
        if time.time() > deadline:
            raise RuntimeError("the simulation's worker processes did not start within 60 s")
        time.sleep(0.005)
    start = clock() + 0.05 * clock.scale
    client.set(START_KEY, repr(start))
    client.close()
    return start


def _backend(job: WorkerJob, clock: ScaledClock) -> BudgetBackend:
    if job.backend == "redis":
        import redis

        from shared.ratelimit.redis_backend import RedisBudgets

        assert job.redis_url
        return RedisBudgets(redis.Redis.from_url(job.redis_url, socket_timeout=2), clock=clock)
    return InProcessBudgets(clock)


def _kind(bucket: str) -> str:
    if "|fair|" in bucket:
        return "fair_share"
    return bucket.split(":")[1] if bucket.count(":") else bucket


def run_worker(job: WorkerJob) -> dict[str, Any]:
    """One worker process: ``job.threads`` threads (like a Functions instance's concurrent invocations)
    share its limiter and process the integrations' pages until the virtual end."""
    clock = ScaledClock(job.t0, job.scale)
    limiter: RateLimitState = RateLimiter(_backend(job, clock), clock=clock) if job.budgets else RateLimitState(clock)
    start = _wait_for_start(job)
    parts = [job.integrations[k::job.threads] for k in range(job.threads)]
    results: list[dict[str, Any]] = [{} for _ in parts]

    def work(k: int) -> None:
        results[k] = _loop(job, parts[k], limiter, clock, start)

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(len(parts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if isinstance(limiter, RateLimiter):
        limiter.close()
    merged: Counter[str] = sum((Counter(r["deferred_by"]) for r in results), Counter())
    worst = max(results, key=lambda r: r["max_deferrals_in_a_row"])
    return {"start": start, "sent": sum(r["sent"] for r in results), "deferred": sum(r["deferred"] for r in results),
            "limited": sum(r["limited"] for r in results), "max_deferrals_in_a_row": worst["max_deferrals_in_a_row"],
            "deferred_by": dict(merged), "worst_streak_by": worst["worst_streak_by"]}


def _loop(
    job: WorkerJob, integrations: list[tuple[str, str]], limiter: RateLimitState, clock: ScaledClock, start: float
) -> dict[str, Any]:
    """One thread's integrations: one page in flight each, the next enqueued at once, a deferred one
    rescheduled for the time its budget names."""
    conns = [Connection(t, i, job.base_url, None, {}) for t, i in integrations]
    pages = [0] * len(conns)
    streak = [0] * len(conns)
    sent = deferred = limited = worst_streak = 0
    by_bucket: Counter[str] = Counter()
    kinds: list[list[str]] = [[] for _ in conns]
    worst_kinds: list[str] = []
    with SimAdapter(rate_limits=limiter, timeout=10.0) as adapter:
        heap = [(start, n) for n in range(len(conns))]
        end = start + job.duration
        while heap:
            now = clock()
            if now >= end:
                break
            due, n = heap[0]
            if due > now:
                time.sleep(min(clock.real_delay(due - now), 0.002))
                continue
            heapq.heappop(heap)
            tenant, integration = integrations[n]
            url = f"{job.base_url}/t/{tenant}/i/{integration}/p/{pages[n]}"
            try:
                adapter.send(conns[n], "GET", url)
            except BudgetDeferred as exc:  # rescheduled for the time the budget names
                deferred += 1
                by_bucket[_kind(exc.bucket)] += 1
                streak[n] += 1
                kinds[n].append(_kind(exc.bucket))
                if streak[n] > worst_streak:
                    worst_streak, worst_kinds = streak[n], list(kinds[n])
                assert exc.retry_at is not None
                heapq.heappush(heap, (exc.retry_at.timestamp(), n))
                continue
            except RateLimited as exc:  # the provider's 429: wait what its Retry-After says (virtual seconds)
                limited += 1
                wait = exc.retry_at.timestamp() - time.time() if exc.retry_at is not None else 60.0
                heapq.heappush(heap, (clock() + max(wait, 1.0), n))
                continue
            sent += 1
            pages[n] += 1
            streak[n] = 0
            kinds[n] = []
            heapq.heappush(heap, (clock(), n))  # the next page is enqueued at once
    return {"sent": sent, "deferred": deferred, "limited": limited, "max_deferrals_in_a_row": worst_streak,
            "deferred_by": dict(by_bucket), "worst_streak_by": worst_kinds}


def simulate(
    *,
    backend: str = "memory",
    workers: int = 1,
    redis_url: str | None = None,
    tenants: int = 50,
    integrations_per_tenant: int = 4,
    limit: int = APP_LIMIT,
    window: float = WINDOW,
    duration: float = 1800.0,
    scale: float = 150.0,
    budgets: bool = True,
    concurrency: int = 4,
) -> dict[str, Any]:
    """Run the simulation; returns the figures (see the module docs).

    Args:
        backend: ``memory`` (one process) or ``redis`` (``workers`` processes sharing ``redis_url``).
        workers: Worker processes (1 runs in this process).
        redis_url: The Redis backend's URL.
        tenants: Tenants sharing the provider app.
        integrations_per_tenant: Integrations per tenant.
        limit: The provider app's hard limit per ``window``.
        window: Seconds (virtual).
        duration: Virtual seconds simulated.
        scale: Virtual seconds per wall-clock second.
        concurrency: Pages in flight at once over all workers (threads of a worker process, like a
            Functions instance's concurrent invocations: 4 in one process, or 1 in each of 4).
        budgets: False = the control run: no budgets, only the reaction to the provider's 429s
            (``RateLimitState`` blocks the bucket for its ``Retry-After``), as before issue 11.
    """
    if backend == "memory" and workers != 1:
        raise ValueError("the in-process backend is one process: use workers=1 (or the redis backend)")
    t0 = time.time()
    clock = ScaledClock(t0, scale)
    names = [(f"tenant-{t:02d}", f"int-{t:02d}-{i}") for t in range(tenants) for i in range(integrations_per_tenant)]
    if workers > 1:
        if not redis_url:
            raise ValueError("several workers share the Redis backend: give redis_url")
        import redis

        redis.Redis.from_url(redis_url).delete(START_KEY, READY_KEY)
    with HardLimitSandbox(clock, limit, window) as sandbox:
        jobs = [
            WorkerJob(names[k::workers], sandbox.base_url, t0, scale, duration, backend, redis_url, workers, budgets,
                      max(1, concurrency // workers))
            for k in range(workers)
        ]
        began = time.perf_counter()
        # workers run in their own processes (one too): the sandbox's threads keep this one's GIL
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_worker, job) for job in jobs]
            if workers > 1:
                assert redis_url
                _start_workers(redis_url, workers, clock)
            results = [f.result() for f in futures]
        start = results[0]["start"]
        real_seconds = time.perf_counter() - began
        end = start + duration
        accepted = [t for t in sandbox.times if start <= t < end]
        allowed = limit * duration / window
        counts = Counter(sandbox.by_tenant)
        rejected = sandbox.rejected
    fair = sum(counts.values()) / tenants
    deviation = max(abs(counts.get(f"tenant-{t:02d}", 0) - fair) / fair for t in range(tenants)) if fair else 1.0
    sent = sum(r["sent"] for r in results)
    deferrals = sum(r["deferred"] for r in results)
    return {
        "backend": backend,
        "workers": workers,
        "threads_per_worker": max(1, concurrency // workers),
        "tenants": tenants,
        "integrations": len(names),
        "app_limit_per_hour": limit * 3600 / window,
        "virtual_seconds": duration,
        "real_seconds": round(real_seconds, 2),
        "provider_429s": rejected,
        "requests_sent": sent,
        "utilisation": round(len(accepted) / allowed, 4),
        "max_fairness_deviation": round(deviation, 4),
        "min_tenant_requests": min(counts.get(f"tenant-{t:02d}", 0) for t in range(tenants)),
        "max_tenant_requests": max(counts.values()) if counts else 0,
        "deferrals": deferrals,
        "deferrals_per_request": round(deferrals / sent, 3) if sent else None,
        "max_deferrals_in_a_row": max(r["max_deferrals_in_a_row"] for r in results),
        "deferred_by": dict(sum((Counter(r["deferred_by"]) for r in results), Counter())),
        "worst_streak_by": max((r["worst_streak_by"] for r in results), key=len),
    }


def rate_limit_simulation(redis_url: str | None = None) -> dict[str, Any]:
    """The ``rate_limit_simulation`` benchmark: the in-process run and the 4-process Redis run; the top-level
    ``provider_429s``, ``utilisation`` and ``max_fairness_deviation`` are the worse of the two."""
    from tests.ratelimit.redis_server import RedisServer, RedisUnavailable

    memory = simulate(backend="memory")
    report: dict[str, Any] = {
        "targets": {"provider_429s": 0, "utilisation_min": 0.9, "max_fairness_deviation": 0.2},
        "in_process": memory,
    }
    server = None
    try:
        if redis_url is None:
            server = RedisServer().start()
            redis_url = server.url
        report["redis_4_workers"] = simulate(backend="redis", workers=4, redis_url=redis_url)
    except RedisUnavailable as exc:
        report["redis_4_workers"] = {"skipped": str(exc)}
    finally:
        if server is not None:
            server.close()
    control = simulate(backend="memory", budgets=False)
    report["without_budgets"] = {k: control[k] for k in ("provider_429s", "requests_sent", "utilisation")}
    runs = [r for r in (memory, report["redis_4_workers"]) if "provider_429s" in r]
    report.update(  # the worse of the two runs
        provider_429s=max(r["provider_429s"] for r in runs),
        utilisation=min(r["utilisation"] for r in runs),
        max_fairness_deviation=max(r["max_fairness_deviation"] for r in runs),
    )
    return report


if __name__ == "__main__":
    import json

    print(json.dumps(rate_limit_simulation(), indent=2))
