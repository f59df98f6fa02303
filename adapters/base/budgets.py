"""A provider's rate-limit budgets (:class:`~adapters.base.spec.BudgetSpec`) rendered for one request.

The result is the :class:`shared.ratelimit.Budget` values the HTTP pipeline's limiter charges
before the request goes (see :mod:`shared.ratelimit`). A budget's key is
``<provider>:<budget name>:<rendered key template>``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from adapters.base.classify import quota_usage
from adapters.base.request import render
from adapters.base.spec import BudgetSpec, RateLimitSpec
from shared.errors import FailRun
from shared.http import parse_wait
from shared.ratelimit.model import Budget


class BudgetRenderer:
    """Renders one provider's budget specs per request (compiled once per adapter).

    Args:
        provider: The provider's name (the first segment of every key).
        spec: Its rate-limit spec.
    """

    def __init__(self, provider: str, spec: RateLimitSpec) -> None:
        self._provider = provider
        self._spec = spec
        self._patterns = {b.name: re.compile(b.path_pattern) for b in spec.budgets if b.path_pattern}
        self._methods = {b.name: {m.upper() for m in b.methods} for b in spec.budgets if b.methods}
        self._cache: dict[str, Budget] = {}
        self._quota = re.compile(spec.quota_pattern) if spec.quota_header and spec.quota_pattern else None

    def _applies(self, budget: BudgetSpec, bucket: str, method: str, path: str) -> bool:
        if budget.buckets and bucket not in budget.buckets:
            return False
        methods = self._methods.get(budget.name)
        if methods and method.upper() not in methods:
            return False
        pattern = self._patterns.get(budget.name)
        return pattern is None or pattern.search(path) is not None

    def render(
        self,
        values: Mapping[str, Any],
        *,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> tuple[Budget, ...]:
        """The budgets that apply to one request.

        Args:
            values: The bucket template values (provider, tenant, integration, connection,
                bucket, config).
            method: The HTTP method.
            url: The request URL.
            params: Its query parameters.
            body: Its JSON body.
        """
        if not self._spec.budgets:
            return ()
        path = urlsplit(url).path
        bucket = str(values.get("bucket") or "")
        full = {
            **values,
            "endpoint": path.rstrip("/").rsplit("/", 1)[-1],
            "params": dict(params or {}),
            "body": body if isinstance(body, Mapping) else {},
        }
        found = []
        for spec in self._spec.budgets:
            if not self._applies(spec, bucket, method, path):
                continue
            try:
                rendered = render(spec.key, full, what=f"budget {spec.name!r} key")
            except FailRun:
                continue  # a placeholder this request does not have: the budget is not for it
            key = f"{self._provider}:{spec.name}:{rendered}"
            budget = self._cache.get(key)
            if budget is None:
                if len(self._cache) > 20_000:
                    self._cache.clear()
                budget = self._cache[key] = Budget(
                    key, spec.name, spec.level, spec.limit, spec.window_seconds, spec.burst, spec.strict,
                    spec.reserve, spec.fair, spec.learn, spec.enabled,
                )
            found.append(budget)
        return tuple(found)

    def usage(self, response: httpx.Response) -> tuple[float, float | None, float | None] | None:
        """``(remaining, reset epoch or None, limit or None)`` from the response's headers; None when absent."""
        spec = self._spec
        if spec.remaining_header:
            raw = response.headers.get(spec.remaining_header)
            if raw is not None and raw.strip().isdigit() and len(raw) < 20:
                reset = None
                if spec.reset_header:
                    now = time.time()
                    wait = parse_wait(
                        response.headers.get(spec.reset_header), now=now, epoch=spec.reset_kind == "epoch_seconds"
                    )
                    reset = None if wait is None else now + wait
                limit = response.headers.get(spec.limit_header) if spec.limit_header else None
                known = float(limit) if limit is not None and limit.strip().isdigit() and len(limit) < 20 else None
                return float(raw.strip()), reset, known
        if self._quota is not None and spec.quota_header:
            used = quota_usage(self._quota, response.headers.get(spec.quota_header))
            if used is not None and used[1] > 0:
                return float(max(used[1] - used[0], 0)), None, float(used[1])
        return None
