"""Rate limits as shared budgets: multi-level, adaptive, proactive, fair, in-process or on Redis.

- :mod:`shared.ratelimit.model`: budgets, decisions, views, overrides (GCRA, see there).
- :mod:`shared.ratelimit.port`: the backend port; :mod:`.memory` (in process) and
  :mod:`.redis_backend` (one Lua script per decision, :mod:`.redis_lua`; Entra ID sign-in to Azure
  Cache for Redis, :mod:`.redis_entra`).
- :mod:`shared.ratelimit.limiter`: the hook the HTTP pipeline's ``RateLimitPolicy`` calls before and
  after each request (overrides, deferral, AIMD, learning, the ``RateLimitExceeded`` hook).
- :mod:`shared.ratelimit.priority`: who is asking (a context variable the work sets).
- :mod:`shared.ratelimit.factory`: built from settings; :mod:`shared.ratelimit.api`: the admin routes.

The budgets themselves are data in each provider's spec (``adapters.base.spec.BudgetSpec``),
rendered per request by ``adapters.base.budgets``.
"""

from shared.ratelimit.model import HIGH, LEVELS, LOW, PRIORITY_RANK, BucketView, Budget, Decision, Override

__all__ = ["HIGH", "LEVELS", "LOW", "PRIORITY_RANK", "BucketView", "Budget", "Decision", "Override"]
