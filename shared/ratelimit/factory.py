"""Build the rate limiter from settings (the composition root calls :func:`build_rate_limiter`)."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import jsonio
from shared.config import Settings
from shared.domain import RateLimitExceeded
from shared.errors import ConfigurationError
from shared.ratelimit.limiter import Exceeded, RateLimiter
from shared.ratelimit.memory import InProcessBudgets
from shared.ratelimit.model import Override
from shared.ratelimit.port import BudgetBackend
from shared.services.events import DomainEvents


class OverrideIn(BaseModel):
    """One override as the settings and the admin API accept it."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(pattern=r"^[a-z0-9_-]{1,40}$")
    budget: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    tenant: str = Field("*", pattern=r"^(\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$")
    integration: str = Field("*", pattern=r"^(\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$")
    limit: float | None = Field(None, gt=0, le=1e9)
    window_seconds: float | None = Field(None, gt=0, le=31 * 86400)
    reserve: float | None = Field(None, ge=0, lt=1)
    disabled: bool = False

    def to_override(self) -> Override:
        return Override(**self.model_dump())


def parse_overrides(text: str, *, what: str = "IHUB_RATE_LIMIT_OVERRIDES") -> list[Override]:
    """Overrides from a JSON list.

    Raises:
        ConfigurationError: Not a JSON list of valid overrides (the message names the problem).
    """
    try:
        raw = jsonio.loads(text or "[]", what=what)
        if not isinstance(raw, list):
            raise ConfigurationError(f"{what} must be a JSON list of overrides")
        return [OverrideIn.model_validate(item).to_override() for item in raw]
    except (jsonio.InvalidJson, ValidationError) as exc:
        raise ConfigurationError(f"{what}: {exc}") from None


def build_backend(settings: Settings) -> BudgetBackend:
    """The budget backend the settings name (``IHUB_RATE_LIMIT_BACKEND``)."""
    if settings.rate_limit_backend == "redis":
        url = settings.require("redis_url", "IHUB_RATE_LIMIT_BACKEND=redis keeps budgets in Redis")
        from shared.ratelimit.redis_backend import RedisBudgets  # redis-py only when it is used

        return RedisBudgets.from_url(
            url,
            fail_closed_seconds=settings.rate_limit_fail_closed_seconds,
            fallback_share=settings.rate_limit_fallback_share,
        )
    return InProcessBudgets()


def event_hook(events: DomainEvents) -> Callable[[Exceeded], None]:
    """Publishes ``RateLimitExceeded`` (with the bucket and the retry time) for a provider's 429."""

    def publish(exceeded: Exceeded) -> None:
        if not (exceeded.tenant and exceeded.integration):
            return
        events.publish(
            RateLimitExceeded(
                tenant_id=exceeded.tenant,
                integration_id=exceeded.integration,
                provider=exceeded.provider,
                retry_at=exceeded.retry_at,
                scope=exceeded.level,
                bucket=exceeded.bucket,
            )
        )

    return publish


def build_rate_limiter(settings: Settings, events: DomainEvents | None = None) -> RateLimiter:
    """The hub's rate limiter: the backend, the settings' overrides and the event hook."""
    return RateLimiter(
        build_backend(settings),
        overrides=parse_overrides(settings.rate_limit_overrides),
        on_exceeded=event_hook(events) if events is not None else None,
    )
