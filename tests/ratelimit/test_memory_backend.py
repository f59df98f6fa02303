"""What only the in-process backend does: it forgets idle buckets, so a long-lived instance stays small."""

from __future__ import annotations

from shared.ratelimit.memory import SWEEP_SECONDS, InProcessBudgets
from shared.ratelimit.model import Budget
from tests.ratelimit.conftest import FakeClock


def test_idle_buckets_are_forgotten_and_busy_or_blocked_ones_kept(clock: FakeClock) -> None:
    backend = InProcessBudgets(clock)
    idle = Budget("p:channel-1", "post", "operation", limit=1, window=1, strict=False)
    busy = Budget("p:conn", "conn", "integration", limit=10, window=60, strict=False)
    backend.acquire([idle])
    backend.block("p:blocked", clock.now + 3600)
    clock.advance(SWEEP_SECONDS + 10)
    backend.acquire([busy])
    clock.advance(SWEEP_SECONDS + 10)
    backend.acquire([busy])
    keys = {v.key for v in backend.views()}
    assert keys == {"p:conn"}
    assert backend.blocked_until("p:blocked") is not None
