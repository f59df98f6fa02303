"""The rate-limit gate of the HTTP pipeline, over a budget backend.

:class:`RateLimiter` is what :class:`shared.http.RateLimitPolicy` calls around every request
(it keeps :class:`shared.http.RateLimitState`'s interface, so the adapters and ``AdapterHub`` take
it where they took that):

- ``admit``: every budget of the request (``ctx.budgets``, rendered by the adapter from its spec,
  with operators' overrides applied here) and the bucket's block must permit it, atomically; else
  :class:`BudgetDeferred` (a ``RateLimited``) names the earliest permitted time, and the queue
  handler reschedules the message for then. Nothing sleeps.
- ``limited``: the provider said 429: AIMD halves the narrowest budgets' rate and a
  ``RateLimitExceeded`` event names the bucket and the retry time.
- ``observed``: remaining/reset (or a quota header) from the response paces what is left.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import httpx

from shared.errors import BudgetDeferred, RateLimited
from shared.http import RateLimitState, RequestContext
from shared.ratelimit.model import HIGH, LEVELS, LOW, PRIORITY_RANK, BucketView, Budget, Override
from shared.ratelimit.port import BudgetBackend

log = logging.getLogger("ihub.ratelimit")

AIMD_DECREASE = 0.5
AGING_AFTER = 3
"""Deferrals of the same request (``ctx.request_key``) after which low-priority work asks as high priority,
so a page that keeps losing its slot to others gets the reserved part of the burst (no starvation)."""

__all__ = ["BudgetDeferred", "Exceeded", "RateLimiter"]


@dataclass(frozen=True)
class Exceeded:
    """A provider's rate-limit answer, for the ``RateLimitExceeded`` event."""

    provider: str
    tenant: str
    integration: str
    bucket: str
    level: str
    retry_at: datetime | None


class RateLimiter(RateLimitState):
    """Budgets for the HTTP pipeline (see the module docs).

    Args:
        backend: The budget backend (in-process or Redis).
        overrides: Overrides from settings (the admin API adds more, kept in the backend).
        on_exceeded: Told of every provider rate-limit answer (publishes ``RateLimitExceeded``).
        clock: Epoch seconds now (the simulation compresses time); None = the backend's own clock for
            decisions (Redis: the server's), this process's for the rest.
        overrides_ttl: Seconds between re-reads of the backend's overrides.
    """

    def __init__(
        self,
        backend: BudgetBackend,
        *,
        overrides: Sequence[Override] = (),
        on_exceeded: Callable[[Exceeded], None] | None = None,
        clock: Callable[[], float] | None = None,
        overrides_ttl: float = 5.0,
    ) -> None:
        super().__init__(clock or time.time)
        self.backend = backend
        self._settings_overrides = list(overrides)
        self.on_exceeded = on_exceeded
        self._clock = clock or time.time
        self._given_clock = clock
        self._ttl = overrides_ttl
        self._overrides: dict[str, Override] = {}
        self._overrides_at = -1e18
        self._adjusted: dict[tuple[Budget, str, str], Budget | None] = {}
        self._blocks: dict[str, Budget] = {}
        self._deferrals: dict[str, int] = {}
        self._seen = threading.local()

    # ------------------------------------------------------------------ overrides

    def _refresh(self, now: float) -> None:
        if now - self._overrides_at < self._ttl:
            return
        table = {o.scope: o for o in self._settings_overrides}
        try:
            table.update({o.scope: o for o in self.backend.overrides()})
        except Exception as exc:  # the backend's outage handling covers decisions; keep the last table
            log.warning("could not read rate-limit overrides (%s); keeping the last ones", exc)
            self._overrides_at = now  # try again after the ttl, not on every request
            if not self._overrides and table:
                self._overrides = table
                self._adjusted.clear()
            return
        if table != self._overrides:
            self._overrides = table
            self._adjusted.clear()
        self._overrides_at = now

    def set_override(self, override: Override) -> None:
        """Store an override in the backend (every instance sees it within ``overrides_ttl``)."""
        self.backend.set_override(override)
        self._overrides_at = -1e18

    def overrides(self) -> list[Override]:
        """Settings' overrides and the stored ones (stored ones win)."""
        self._refresh(self._clock())
        return sorted(self._overrides.values(), key=lambda o: o.scope)

    def effective(self, budget: Budget, provider: str, tenant: str, integration: str) -> Budget | None:
        """``budget`` with the most specific override applied (None = disabled)."""
        cache_key = (budget, tenant, integration)
        if cache_key in self._adjusted:
            return self._adjusted[cache_key]
        found: Budget | None = budget if budget.enabled else None
        table = self._overrides
        for scope in (
            f"{provider}/{tenant}/{integration}/{budget.name}",
            f"{provider}/{tenant}/*/{budget.name}",
            f"{provider}/*/*/{budget.name}",
        ):
            override = table.get(scope)
            if override is None:
                continue
            if override.disabled:
                found = None
                break
            found = replace(
                budget,
                limit=override.limit if override.limit is not None else budget.limit,
                window=override.window_seconds if override.window_seconds is not None else budget.window,
                reserve=override.reserve if override.reserve is not None else budget.reserve,
                enabled=True,
            )
            break
        if len(self._adjusted) > 50_000:
            self._adjusted.clear()
        self._adjusted[cache_key] = found
        return found

    def _now(self) -> float | None:
        """The injected clock's time, else None: the backend's own clock (Redis: the server's ``TIME``,
        one clock for every instance)."""
        return self._given_clock() if self._given_clock is not None else None

    def budgets_of(self, ctx: RequestContext) -> list[Budget]:
        """The request's budgets with overrides applied, plus its bucket's block."""
        self._refresh(self._clock())
        block = self._blocks.get(ctx.bucket_key)
        if block is None:
            if len(self._blocks) > 50_000:
                self._blocks.clear()
            block = self._blocks[ctx.bucket_key] = Budget.block_only(ctx.bucket_key)
        found = [block]
        for budget in ctx.budgets:
            if self._overrides or not budget.enabled:
                effective = self.effective(budget, ctx.provider, ctx.tenant, ctx.integration)
                if effective is None:
                    continue
                budget = effective
            found.append(budget)
        return found

    # ------------------------------------------------------------------ the pipeline's hooks

    def admit(self, ctx: RequestContext) -> None:
        """Charge every budget of the request, or raise :class:`BudgetDeferred` with the earliest time."""
        budgets = self.budgets_of(ctx)
        priority = PRIORITY_RANK.get(ctx.priority, LOW)
        ticket = ctx.request_key
        aged = self._deferrals.get(ticket, 0) if ticket else 0
        if aged >= AGING_AFTER:
            priority = HIGH
        decision = self.backend.acquire(budgets, tenant=ctx.tenant, priority=priority, now=self._now())
        self._seen.key, self._seen.strikes = ctx.bucket_key, decision.strikes  # read by strikes() next
        if decision.allowed:
            if aged:
                self._deferrals.pop(ticket, None)
            return
        if ticket:
            if len(self._deferrals) > 100_000:
                self._deferrals.clear()
            self._deferrals[ticket] = aged + 1
        at = datetime.fromtimestamp(decision.retry_at, UTC)
        raise BudgetDeferred(
            f"{ctx.provider} budget {decision.bucket} permits this request at {at.isoformat(timespec='seconds')} "
            "(deferred, not sent)",
            retry_at=at,
            bucket=decision.bucket,
        )

    def limited(self, ctx: RequestContext, error: RateLimited) -> None:
        """AIMD: halve the rate of the request's narrowest budgets; tell ``on_exceeded``."""
        narrowest = _narrowest(ctx.budgets)
        if narrowest:
            try:
                self.backend.penalize(narrowest, decrease=AIMD_DECREASE, now=self._now())
                if error.retry_at is not None:
                    for budget in narrowest:
                        self.backend.block(budget.key, error.retry_at.timestamp())
            except Exception:
                log.warning("could not record a rate limit of %s", ctx.bucket_key, exc_info=True)
        bucket = narrowest[0].key if narrowest else ctx.bucket_key
        level = narrowest[0].level if narrowest else "integration"
        if self.on_exceeded is not None:
            self.on_exceeded(Exceeded(ctx.provider, ctx.tenant, ctx.integration, bucket, level, error.retry_at))

    def observed(self, ctx: RequestContext, response: httpx.Response) -> None:
        """Pace what the provider says is left over the time until its reset (learning budgets only)."""
        learners = [b for b in ctx.budgets if b.learn]
        if not learners or ctx.usage is None:
            return
        usage = ctx.usage(response)
        if usage is None:
            return
        remaining, reset_at, limit = usage
        now = self._clock()
        for budget in learners:
            if limit is not None and limit != budget.limit:  # the provider knows this account's own limit
                budget = replace(budget, limit=limit)
            reset = reset_at if reset_at is not None and reset_at > now else now + budget.window
            usable = remaining - budget.limit * budget.reserve
            if usable > 2 * budget.capacity and (reset - now) / usable < budget.interval:
                continue  # the spec's pace is already slower than what is left allows: nothing to learn
            self.backend.learn(budget, remaining=remaining, reset_at=reset, now=now)

    # ------------------------------------------------------------------ blocks and strikes (RateLimitState)

    def strikes(self, key: str) -> int:
        """Consecutive rate-limit answers of ``key`` (shared through the backend; the count :meth:`admit`
        just read with its decision when it is for the same key, so no second round trip)."""
        if getattr(self._seen, "key", None) == key:
            self._seen.key = None
            return int(self._seen.strikes)
        return self.backend.strikes(key)

    def strike(self, key: str) -> int:
        """Count one more rate-limit answer of ``key``."""
        return self.backend.strike(key)

    def clear_strikes(self, key: str) -> None:
        """A success after rate limits."""
        self.backend.clear_strikes(key)

    def blocked_until(self, key: str) -> float | None:
        """Epoch seconds until which ``key`` is blocked, or None."""
        return self.backend.blocked_until(key, self._clock())

    def block(self, key: str, until: float) -> None:
        """Block ``key`` until ``until``."""
        self.backend.block(key, until)

    # ------------------------------------------------------------------ operators

    def views(self, contains: str = "") -> list[BucketView]:
        """Buckets whose key contains ``contains`` (a tenant id), and every app-level bucket."""
        return self.backend.views(contains, self._clock())

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()


def _narrowest(budgets: Sequence[Budget]) -> list[Budget]:
    """The budgets of the most specific level present (operation, else integration, ...)."""
    for level in reversed(LEVELS):
        found = [b for b in budgets if b.level == level]
        if found:
            return found
    return []
