"""Admin routes of the rate-limit budgets: a tenant's buckets, and operators' overrides.

- ``GET /api/manage/rate-limits``: every bucket the tenant's integrations draw on (theirs, their
  org's, and the shared app-level ones): limit, window, remaining, reset, blocked until, AIMD
  factor, deferred and waiting work; plus the overrides in force and the backend's state.
- ``PUT /api/manage/rate-limits``: set an override for the tenant (``integration`` names one of
  its integrations, else all of them): ``{"provider", "budget", "limit", "window_seconds",
  "reserve", "disabled", "integration"}``. The budget must be one the provider's spec declares.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from shared.domain import IncrementalState, Integration, validation_message
from shared.errors import HubError, InvalidInput
from shared.ratelimit.factory import OverrideIn
from shared.ratelimit.model import BucketView, Budget, Override

if TYPE_CHECKING:
    from shared.runtime import Hub


def _iso(epoch: float) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds") if epoch > 0 else None


def _shown(view: BucketView) -> dict[str, Any]:
    return {
        "bucket": view.key, "budget": view.name, "level": view.level, "limit": view.limit,
        "window_seconds": view.window_seconds, "remaining": view.remaining, "reset_at": _iso(view.reset_at),
        "blocked_until": _iso(view.blocked_until), "aimd_factor": view.factor,
        "deferred": view.deferred, "waiting": view.waiting, "allowed": view.allowed,
    }


def _override(o: Override) -> dict[str, Any]:
    return {"provider": o.provider, "budget": o.budget, "tenant": o.tenant, "integration": o.integration,
            "limit": o.limit, "window_seconds": o.window_seconds, "reserve": o.reserve, "disabled": o.disabled}


def tenant_budgets(hub: Hub, integrations: list[Integration]) -> dict[str, Budget]:
    """The budgets each integration's stream requests draw on (rendered from the specs, overrides applied)."""
    found: dict[str, Budget] = {}
    limiter = hub.rate_limiter
    for integration in integrations:
        try:
            adapter = hub.adapters.adapter(integration.provider)
            conn = hub.adapters.connection(integration, with_credential=False)
        except HubError:
            continue
        for stream, spec in adapter.spec.streams.items():
            try:
                request = adapter.build_request(
                    conn, stream, IncrementalState(), parent_id="0" if spec.parent else None
                )
            except (HubError, KeyError, ValueError, TypeError):
                continue
            budgets = adapter.budgets_for(conn, request.method, request.url, request.bucket, request.params,
                                          request.json)
            for budget in budgets:
                effective = limiter.effective(budget, integration.provider, integration.tenant_id, integration.id)
                if effective is not None:
                    found[budget.key] = effective
    return found


def _fresh(budget: Budget, now: float) -> BucketView:
    """The view of a bucket nobody has drawn on yet: full."""
    return BucketView(budget.key, budget.name, budget.level, budget.limit, budget.window, int(budget.capacity),
                      now, 0.0, 1.0, 0, 0, 0)


def rate_limit_view(hub: Hub, tenant: str) -> dict[str, Any]:
    """The tenant's buckets, the overrides that concern it and the backend's state."""
    overrides = [o for o in hub.rate_limiter.overrides() if o.tenant in ("*", tenant)]  # re-read first
    integrations = hub.admin.list_integrations(tenant)
    budgets = tenant_budgets(hub, integrations)
    marker = f"{tenant}:"
    views = {
        v.key: v for v in hub.rate_limiter.views()
        if v.key in budgets or v.level == "app" or f":{marker}" in v.key or v.key.startswith(marker)
    }
    now = time.time()
    for key, budget in budgets.items():
        views.setdefault(key, _fresh(budget, now))
    backend = hub.rate_limiter.backend
    return {
        "backend": type(backend).__name__,
        "degraded": getattr(backend, "degraded", ""),
        "buckets": [_shown(v) for _key, v in sorted(views.items())],
        "overrides": [_override(o) for o in overrides],
    }


def set_rate_limit_override(hub: Hub, tenant: str, body: Any) -> dict[str, Any]:
    """Validate and store one override for ``tenant``; returns it as stored."""
    if not isinstance(body, dict):
        raise InvalidInput("body must be a JSON object with provider, budget and limit (or disabled)")
    if "tenant" in body and body["tenant"] != tenant:
        raise InvalidInput("tenant: an override applies to the tenant of the request only", code="invalid_override")
    try:
        parsed = OverrideIn.model_validate({**body, "tenant": tenant})
    except ValidationError as exc:
        raise InvalidInput(f"invalid override: {validation_message(exc)}", code="invalid_override") from None
    if parsed.integration != "*":
        integration = hub.admin.get_integration(tenant, parsed.integration)  # NotFound for another tenant's
        if integration.provider != parsed.provider:
            raise InvalidInput(
                f"integration {parsed.integration} is a {integration.provider} integration, not {parsed.provider}",
                code="invalid_override",
            )
    adapter = hub.adapters.adapter(parsed.provider)  # NotFound for an unknown provider
    specs = {b.name: b for b in adapter.spec.rate_limit.budgets}
    if parsed.budget not in specs:
        raise InvalidInput(
            f"{parsed.provider} has no budget {parsed.budget!r}; its budgets: {', '.join(specs) or 'none'}",
            code="unknown_budget",
        )
    if specs[parsed.budget].level == "app":
        raise InvalidInput(
            f"{parsed.provider} budget {parsed.budget!r} is shared by every tenant of the provider app: an operator "
            "sets it in IHUB_RATE_LIMIT_OVERRIDES, not one tenant",
            code="app_budget",
        )
    if parsed.limit is None and parsed.window_seconds is None and parsed.reserve is None and not parsed.disabled:
        raise InvalidInput(
            "an override changes limit, window_seconds or reserve, or sets disabled", code="invalid_override"
        )
    override = parsed.to_override()
    hub.rate_limiter.set_override(override)
    return _override(override)


def rate_limit_routes(hub: Hub, r: Any) -> list[Any]:
    """The admin routes of this module, built with ``shared.api``'s route helper ``r``."""
    return [
        r("GET", r"rate-limits", lambda q: (200, rate_limit_view(hub, q.tenant))),
        r("PUT", r"rate-limits", lambda q: (200, set_rate_limit_override(hub, q.tenant, q.body))),
    ]
