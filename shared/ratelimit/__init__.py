"""Rate limits as shared budgets: multi-level, adaptive, proactive, fair, in-process or on Redis.

- :mod:`shared.ratelimit.model`: budgets, decisions, views, overrides (GCRA, see there).
- :mod:`shared.ratelimit.port`: the backend port; :mod:`.memory` and :mod:`.redis_backend`.
- :mod:`shared.ratelimit.limiter`: the hook the HTTP pipeline calls before and after each request.
"""

from shared.ratelimit.model import HIGH, LEVELS, LOW, PRIORITY_RANK, BucketView, Budget, Decision, Override

__all__ = ["HIGH", "LEVELS", "LOW", "PRIORITY_RANK", "BucketView", "Budget", "Decision", "Override"]
