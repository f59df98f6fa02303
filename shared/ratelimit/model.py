"""Values of the rate-limit budget port: a resolved budget, a decision and a bucket's view.

A :class:`Budget` is one level's allowance for one bucket (the provider app across tenants, a
tenant, an integration, an operation such as a method, tier or channel), already rendered for
one request: its key names the shared state, the rest says how fast it refills. A request goes
only when every budget that applies permits it (see :class:`~shared.ratelimit.port.BudgetBackend`).

Algorithm (both backends): GCRA, the generic cell rate algorithm, i.e. a token bucket kept as
one "theoretical arrival time" per bucket. ``interval`` is the time one token takes to come back
and ``capacity`` the burst; a request is allowed when ``tat + interval - capacity * interval <=
now``. A ``strict`` budget (a hard count per window, e.g. GitHub's 5,000 an hour or Salesforce's
daily quota) refills at ``(limit - burst) / window`` so that no window of that length ever sees
more than ``limit``; a non-strict one (an average such as Notion's ~3/s) refills at
``limit / window``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

Level = Literal["app", "tenant", "integration", "operation"]
"""Where a budget applies: the provider app across tenants, a tenant, an integration, an operation."""

LEVELS: tuple[Level, ...] = ("app", "tenant", "integration", "operation")

Priority = Literal["interactive", "webhook", "scheduled", "backfill"]
"""Who is asking. Interactive and webhook-triggered work may use the whole burst; scheduled and
backfill work leaves :data:`PRIORITY_RESERVE` of it for them."""

HIGH = 0
LOW = 1
PRIORITY_RANK: dict[str, int] = {"interactive": HIGH, "webhook": HIGH, "scheduled": LOW, "backfill": LOW}

PRIORITY_RESERVE = 0.2
"""Share of a budget's burst that low-priority (scheduled, backfill) work may not use."""

FAIR_BURST = 2.0
"""Burst of a tenant's fair share of an app budget (lets a tenant that lost a slot catch up); high-priority
work (and a request deferred again and again, see ``shared.ratelimit.limiter.AGING_AFTER``) gets one more."""


@dataclass(frozen=True, slots=True)
class Budget:
    """One budget that applies to a request, rendered for it.

    Attributes:
        key: The bucket's key (shared by every request that draws on it), e.g.
            ``github:acme:int-1:token``.
        name: The spec's budget name (``token``, ``tier3``, ``org_daily``...), used by overrides.
        level: Which level it belongs to.
        limit: Requests allowed per ``window``.
        window: Seconds.
        burst: Requests that may go at once; None = a default (1% of a strict limit, 10% otherwise).
        strict: A hard count per window (see the module docs).
        reserve: Share of ``limit`` kept back (a Salesforce org's own use).
        fair: Shared fairly among the tenants that use it (an app budget across tenants).
        learn: The provider's remaining/reset (or quota) headers update this budget.
        enabled: False = off until an override gives it a limit.
    """

    key: str
    name: str = "budget"
    level: Level = "integration"
    limit: float = 1.0
    window: float = 1.0
    burst: int | None = None
    strict: bool = True
    reserve: float = 0.0
    fair: bool = False
    learn: bool = False
    enabled: bool = True
    interval: float = field(init=False, repr=False, compare=False)
    capacity: float = field(init=False, repr=False, compare=False)
    low_capacity: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if math.isinf(self.limit):  # a block-only budget: carries the provider's blocks, never runs out
            for name, value in (("interval", 0.0), ("capacity", 1.0), ("low_capacity", 1.0)):
                object.__setattr__(self, name, value)
            return
        usable = max(self.limit * (1.0 - self.reserve), 1.0)
        default = max(1, int(usable * (0.01 if self.strict else 0.1)))
        burst = float(max(1, min(self.burst if self.burst is not None else default, int(usable))))
        if self.strict and usable - burst < 1:
            burst = max(1.0, usable - 1)
        refill = usable - burst if self.strict else usable
        object.__setattr__(self, "interval", self.window / max(refill, 1.0))
        object.__setattr__(self, "capacity", burst)
        kept = math.ceil(burst * PRIORITY_RESERVE) if burst >= 2 else 0
        object.__setattr__(self, "low_capacity", max(1.0, burst - kept))

    @classmethod
    def block_only(cls, key: str) -> Budget:
        """A budget that never runs out but honours blocks (a ``Retry-After``) put on ``key``."""
        return cls(key, name="block", level="operation", limit=math.inf, strict=False)

    @property
    def recovery(self) -> float:
        """AIMD additive increase per second: half the rate comes back over one window (10 s to 10 min)."""
        return 0.5 / min(max(self.window, 10.0), 600.0)

    @property
    def usable(self) -> float:
        """Requests per window this budget may spend (``limit`` less the reserve)."""
        return max(self.limit * (1.0 - self.reserve), 1.0)


class Decision(NamedTuple):
    """The answer of :meth:`BudgetBackend.acquire`.

    Attributes:
        allowed: Every budget permitted the request (and each was charged).
        retry_at: When not allowed: epoch seconds of the earliest permitted time (else 0).
        bucket: When not allowed: the key of the budget that decided ``retry_at`` (else "").
        remaining: Requests that could still go at once (the smallest over the budgets).
        strikes: Consecutive rate-limit answers of the first budget's key (the request's bucket), read
            in the same round trip, so the retry policy's backoff needs no second one.
    """

    allowed: bool
    retry_at: float = 0.0
    bucket: str = ""
    remaining: int = 0
    strikes: int = 0


class BucketView(NamedTuple):
    """What the admin API shows of one bucket."""

    key: str
    name: str
    level: str
    limit: float
    window_seconds: float
    remaining: int
    """Requests that could go at once now (the provider's own figure when it sent one and it is lower)."""
    reset_at: float
    """Epoch seconds when the bucket is full again (or the provider's reset time when it named one)."""
    blocked_until: float
    factor: float
    """AIMD multiplier of the refill rate (1 = the spec's rate; halved on each 429)."""
    deferred: int
    """Requests deferred (rescheduled through the queue) by this bucket so far."""
    waiting: int
    """Deferred requests still waiting for their time (estimated from the soft bookings)."""
    allowed: int


@dataclass(frozen=True, slots=True)
class Override:
    """An operator's change to a named budget for a provider, a tenant or one integration.

    ``tenant``/``integration`` "*" (or None) match any. ``limit`` None keeps the spec's limit.
    """

    provider: str
    budget: str
    tenant: str = "*"
    integration: str = "*"
    limit: float | None = None
    window_seconds: float | None = None
    reserve: float | None = None
    disabled: bool = False

    @property
    def scope(self) -> str:
        """``provider/tenant/integration/budget``: the override's identity."""
        return f"{self.provider}/{self.tenant}/{self.integration}/{self.budget}"
