"""The in-process budget backend: the default for one instance, the tests and the Redis fallback.

Same algorithm as the Redis script (:mod:`shared.ratelimit.redis_backend`), kept in plain
Python objects under one lock. See :mod:`shared.ratelimit.model` for GCRA and the flags.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

from shared.ratelimit.model import FAIR_BURST, HIGH, LOW, PRIORITY_RESERVE, BucketView, Budget, Decision, Override

RECOVER_PER_SECOND = 0.05
"""AIMD additive increase of a bucket without a budget (each budget has its own, :attr:`Budget.recovery`)."""
MIN_FACTOR = 1.0 / 64
FAIR_MIN_HORIZON = 10.0
"""Seconds a tenant stays "active" on a fair budget after it last asked (at least)."""
FAIR_HORIZON_INTERVALS = 4.0
"""...or this many of its fair-share intervals, whichever is longer."""
FAIR_SEP = "|fair|"
SWEEP_SECONDS = 300.0
"""How often idle buckets are forgotten (a bucket idle for two of its windows is full again anyway)."""
EPSILON = 1e-6
"""Seconds of float rounding forgiven when a slot comes due (epoch seconds carry ~1e-7 s of error)."""


class _State:
    __slots__ = (
        "allowed", "blocked", "budget", "deferred", "factor", "factor_at", "learned_capacity", "learned_interval",
        "learned_remaining", "learned_until", "strikes", "tat", "wait",
    )

    def __init__(self, budget: Budget | None) -> None:
        self.tat = 0.0
        self.wait = 0.0
        self.blocked = 0.0
        self.factor = 1.0
        self.factor_at = 0.0
        self.learned_interval = 0.0
        self.learned_until = 0.0
        self.learned_remaining = -1.0
        self.learned_capacity = 0.0
        self.deferred = 0
        self.allowed = 0
        self.strikes = 0
        self.budget = budget


class _Active:
    """Tenants that asked for a fair budget recently (its fair share is the rate over their number)."""

    __slots__ = ("prune_at", "seen")

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.prune_at = 0.0

    def count(self, tenant: str, now: float, horizon: float) -> int:
        seen = self.seen
        seen[tenant] = now
        if now >= self.prune_at:
            cutoff = now - horizon
            for name in [t for t, at in seen.items() if at < cutoff]:
                del seen[name]
            self.prune_at = now + horizon / 4
        return len(seen)


class InProcessBudgets:
    """Budgets in this process's memory (thread-safe).

    Args:
        clock: Epoch seconds now (injected by tests and the simulation).
        recover_per_second: AIMD additive increase of the refill factor; None = each budget's own
            (:attr:`Budget.recovery`: half the rate back over one window, 10 s to 10 min).
    """

    def __init__(
        self, clock: Callable[[], float] = time.time, *, recover_per_second: float | None = None
    ) -> None:
        self._clock = clock
        self._recover = recover_per_second
        self._states: dict[str, _State] = {}
        self._active: dict[str, _Active] = {}
        self._overrides: dict[str, Override] = {}
        self._lock = threading.Lock()
        self._sweep_at = 0.0
        self._marked: set[str] = set()
        """Keys that were ever blocked or struck (a block-only budget needs a look-up only then)."""

    def _sweep(self, now: float) -> None:
        """Forget buckets idle for two windows (full again, nothing blocked, waiting or learned)."""
        with self._lock:
            self._sweep_at = now + SWEEP_SECONDS
            idle = [
                key for key, s in self._states.items()
                if s.tat + 2 * (s.budget.window if s.budget is not None else SWEEP_SECONDS) < now
                and s.blocked < now and s.wait < now and s.learned_until < now and s.factor >= 1.0 and not s.strikes
            ]
            for key in idle:
                del self._states[key]
                self._marked.discard(key)

    # ------------------------------------------------------------------ decisions

    def _state(self, key: str, budget: Budget | None) -> _State:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State(budget)
        elif budget is not None and state.budget is not budget:
            state.budget = budget
        return state

    def _recovery(self, budget: Budget | None) -> float:
        if self._recover is not None:
            return self._recover
        return budget.recovery if budget is not None else RECOVER_PER_SECOND

    def _interval(self, state: _State, base: float, now: float) -> float:
        if state.factor < 1.0:
            factor = state.factor + (now - state.factor_at) * self._recovery(state.budget)
            if factor >= 1.0:
                state.factor = factor = 1.0
            base /= factor
        if state.learned_until > now and state.learned_interval > base:
            return state.learned_interval
        return base

    def acquire(
        self,
        budgets: Sequence[Budget],
        *,
        tenant: str = "",
        priority: int = LOW,
        cost: float = 1.0,
        now: float | None = None,
    ) -> Decision:
        """See :meth:`shared.ratelimit.port.BudgetBackend.acquire`."""
        if now is None:
            now = self._clock()
        states = self._states
        due = now + EPSILON
        if now >= self._sweep_at:
            self._sweep(now)
        with self._lock:
            charges: list[tuple[_State, float]] = []
            worst = 0.0
            worst_state: _State | None = None
            owner: _State | None = None
            worst_interval = 0.0
            remaining = math.inf
            marked = self._marked
            for budget in budgets:
                if not budget.interval and budget.key not in marked:
                    continue  # block-only, and never blocked nor struck: nothing to look up
                state = states.get(budget.key)
                if state is None or state.budget is not budget:
                    state = self._state(budget.key, budget)
                active_count = 0
                if budget.fair and tenant:  # every asking tenant counts, allowed or not
                    active = self._active.get(budget.key)
                    if active is None:
                        active = self._active[budget.key] = _Active()
                    horizon = max(FAIR_MIN_HORIZON, FAIR_HORIZON_INTERVALS * budget.interval * (len(active.seen) or 1))
                    active_count = active.count(tenant, now, horizon)
                if state.blocked > now:
                    if state.blocked > worst:
                        worst, worst_state, owner, worst_interval = state.blocked, state, state, 0.0
                    continue
                if not budget.interval:  # block-only
                    continue
                interval = budget.interval
                if state.factor < 1.0:
                    interval = self._interval(state, interval, now)
                capacity = budget.capacity if priority == HIGH else budget.low_capacity
                if state.learned_until > now:
                    if state.learned_interval > interval:
                        interval = state.learned_interval
                    if state.learned_capacity < budget.capacity:
                        capacity = _learned_capacity(state.learned_capacity, priority)
                tat = state.tat if state.tat > now else now
                new_tat = tat + interval * cost
                allow_at = new_tat - capacity * interval
                if allow_at > due:
                    if allow_at > worst:
                        worst, worst_state, owner, worst_interval = allow_at, state, state, interval
                    continue
                charges.append((state, new_tat))
                left = (now - allow_at) / interval
                if left < remaining:
                    remaining = left
                if active_count:
                    share = interval * active_count
                    fair = self._state(budget.key + FAIR_SEP + tenant, None)
                    fair_tat = (fair.tat if fair.tat > now else now) + share * cost
                    fair_at = fair_tat - (FAIR_BURST if priority == LOW else FAIR_BURST + 1) * share
                    if fair_at > due:
                        if fair_at > worst:
                            worst, worst_state, owner, worst_interval = fair_at, fair, state, share
                        continue
                    charges.append((fair, fair_tat))
            if worst_state is not None and owner is not None:
                owner.deferred += 1
                if worst_interval:  # soft booking: spread deferred requests one interval apart
                    if worst_state.wait > worst:
                        worst = worst_state.wait
                    worst_state.wait = worst + worst_interval
                bucket = owner.budget.key if owner.budget is not None else ""
                if worst_state is not owner:
                    bucket = f"{bucket}{FAIR_SEP}{tenant}"
                return Decision(False, worst, bucket, 0, self._first_strikes(budgets))
            for state, new_tat in charges:
                state.tat = new_tat
                state.allowed += 1
            return Decision(True, 0.0, "", 0 if remaining is math.inf else int(remaining),
                            self._first_strikes(budgets) if marked else 0)

    def _first_strikes(self, budgets: Sequence[Budget]) -> int:
        """Strikes of the first budget's key (the request's bucket), 0 when it never had any."""
        if not budgets or budgets[0].key not in self._marked:
            return 0
        state = self._states.get(budgets[0].key)
        return state.strikes if state is not None else 0

    def penalize(self, budgets: Sequence[Budget], *, decrease: float = 0.5, now: float | None = None) -> None:
        """See :meth:`shared.ratelimit.port.BudgetBackend.penalize`."""
        now = self._clock() if now is None else now
        with self._lock:
            for budget in budgets:
                state = self._state(budget.key, budget)
                current = min(1.0, state.factor + (now - state.factor_at) * self._recovery(budget))
                state.factor = max(MIN_FACTOR, current * decrease)
                state.factor_at = now

    def learn(self, budget: Budget, *, remaining: float, reset_at: float, now: float | None = None) -> None:
        """See :meth:`shared.ratelimit.port.BudgetBackend.learn`."""
        now = self._clock() if now is None else now
        with self._lock:
            state = self._state(budget.key, budget)
            _learn(state, budget, remaining, reset_at, now)

    # ------------------------------------------------------------------ blocks and strikes

    def block(self, key: str, until: float) -> None:
        """See :meth:`shared.ratelimit.port.BudgetBackend.block`."""
        with self._lock:
            state = self._state(key, None)
            state.blocked = max(state.blocked, until)
            self._marked.add(key)

    def blocked_until(self, key: str, now: float | None = None) -> float | None:
        """See :meth:`shared.ratelimit.port.BudgetBackend.blocked_until`."""
        now = self._clock() if now is None else now
        with self._lock:
            state = self._states.get(key)
            return state.blocked if state is not None and state.blocked > now else None

    def strikes(self, key: str) -> int:
        """See :meth:`shared.ratelimit.port.BudgetBackend.strikes`."""
        state = self._states.get(key)
        return state.strikes if state is not None else 0

    def strike(self, key: str) -> int:
        """See :meth:`shared.ratelimit.port.BudgetBackend.strike`."""
        with self._lock:
            state = self._state(key, None)
            state.strikes += 1
            self._marked.add(key)
            return state.strikes

    def clear_strikes(self, key: str) -> None:
        """See :meth:`shared.ratelimit.port.BudgetBackend.clear_strikes`."""
        with self._lock:
            state = self._states.get(key)
            if state is not None:
                state.strikes = 0

    # ------------------------------------------------------------------ views and overrides

    def views(self, contains: str = "", now: float | None = None) -> list[BucketView]:
        """See :meth:`shared.ratelimit.port.BudgetBackend.views`."""
        now = self._clock() if now is None else now
        with self._lock:
            found = []
            for key, state in sorted(self._states.items()):
                if FAIR_SEP in key or state.budget is None or not state.budget.interval:
                    continue
                if contains and contains not in key and state.budget.level != "app":
                    continue
                budget = state.budget
                interval = self._interval(state, budget.interval, now)
                recovered = state.factor + (now - state.factor_at) * self._recovery(budget)
                factor = min(1.0, recovered) if state.factor < 1 else 1.0
                found.append(_view(key, budget, state, interval, now, factor))
            return found

    def set_override(self, override: Override) -> None:
        """See :meth:`shared.ratelimit.port.BudgetBackend.set_override`."""
        with self._lock:
            self._overrides[override.scope] = override

    def overrides(self) -> list[Override]:
        """See :meth:`shared.ratelimit.port.BudgetBackend.overrides`."""
        with self._lock:
            return list(self._overrides.values())

    def close(self) -> None:
        """Nothing to release."""


def _learned_capacity(tokens: float, priority: int) -> float:
    """The burst while a learned allowance is paced (low priority keeps 20% of it back)."""
    if priority == HIGH or tokens < 2:
        return tokens
    return max(1.0, tokens - math.ceil(tokens * PRIORITY_RESERVE))


def _learn(state: _State, budget: Budget, remaining: float, reset_at: float, now: float) -> None:
    """Pace ``remaining`` (less the reserve) over the time left until ``reset_at``.

    While paced, the burst is at most half of what is left, and the rest refills evenly until the
    reset: the burst plus the paced rest is never more than ``remaining``.
    """
    kept = budget.limit * budget.reserve
    usable = remaining - kept
    state.learned_remaining = max(remaining, 0.0)
    state.learned_until = reset_at
    if usable < 1:
        state.blocked = max(state.blocked, reset_at)
        return
    tokens = min(budget.capacity, max(1.0, math.floor(usable / 2)))
    state.learned_capacity = tokens
    state.learned_interval = max(reset_at - now, 0.0) / max(usable - tokens, 1.0)


def _view(key: str, budget: Budget, state: _State, interval: float, now: float, factor: float) -> BucketView:
    cap = budget.capacity
    learned = state.learned_until > now
    if learned and 0 < state.learned_capacity < cap:
        cap = state.learned_capacity
    tat = max(state.tat, now)
    remaining = int(max(0.0, cap - (tat - now) / interval))
    reset = tat
    if learned and state.learned_remaining >= 0:
        remaining = min(remaining, int(state.learned_remaining))
        reset = state.learned_until
    next_slot = max(now, tat + interval - cap * interval)
    waiting = max(0, round((state.wait - next_slot) / interval)) if state.wait > next_slot else 0
    return BucketView(
        key, budget.name, budget.level, budget.limit, budget.window, remaining, reset,
        state.blocked if state.blocked > now else 0.0, round(factor, 4), state.deferred, waiting, state.allowed,
    )
