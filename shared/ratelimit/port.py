"""The rate-limit budget port: one interface, an in-process and a Redis backend.

Every method takes ``now`` (epoch seconds) or None for the backend's own clock (the Redis
backend then uses the server's ``TIME``, so many instances agree on one clock).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from shared.ratelimit.model import LOW, BucketView, Budget, Decision, Override


class BudgetBackend(Protocol):
    """Shared rate-limit state: budgets, blocks, AIMD factors, learned pacing and overrides."""

    def acquire(
        self,
        budgets: Sequence[Budget],
        *,
        tenant: str = "",
        priority: int = LOW,
        cost: float = 1.0,
        now: float | None = None,
    ) -> Decision:
        """Charge every budget at once when each permits the request; otherwise charge none.

        Atomic across processes for the Redis backend (one script, one round trip). A denial
        names the earliest time all of them permit it, spread behind earlier denials of the same
        bucket (a soft booking that charges nothing), and counts as deferred work.

        Args:
            budgets: The budgets that apply (any order; keys unique).
            tenant: The tenant asking (fair share of ``fair`` budgets).
            priority: :data:`~shared.ratelimit.model.HIGH` or ``LOW``.
            cost: Tokens the request takes.
            now: Epoch seconds, or None for the backend's clock.
        """

    def penalize(self, budgets: Sequence[Budget], *, decrease: float = 0.5, now: float | None = None) -> None:
        """A 429: multiply each budget's refill rate by ``decrease`` (recovered additively over time)."""

    def learn(
        self, budget: Budget, *, remaining: float, reset_at: float, now: float | None = None
    ) -> None:
        """The provider said ``remaining`` requests are left until ``reset_at``: pace them until then."""

    def block(self, key: str, until: float) -> None:
        """No request of ``key`` before epoch seconds ``until`` (keeps the later of two blocks)."""

    def blocked_until(self, key: str, now: float | None = None) -> float | None:
        """Epoch seconds until which ``key`` is blocked, or None."""

    def strikes(self, key: str) -> int:
        """Consecutive rate-limit answers of ``key`` since its last success."""

    def strike(self, key: str) -> int:
        """Count one more rate-limit answer of ``key``; returns the new count."""

    def clear_strikes(self, key: str) -> None:
        """A success: the next rate-limit answer of ``key`` starts the backoff over."""

    def views(self, contains: str = "", now: float | None = None) -> list[BucketView]:
        """Every bucket whose key contains ``contains`` (all when empty)."""

    def set_override(self, override: Override) -> None:
        """Store an operator's override (replaces one of the same scope)."""

    def overrides(self) -> list[Override]:
        """Every stored override."""

    def close(self) -> None:
        """Release connections."""
