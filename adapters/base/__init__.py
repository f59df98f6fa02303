"""The adapter framework: specs, auth/pagination/webhook strategies, error classification."""

from adapters.base.adapter import Adapter, Connection, Entity, HealthResult, Page, WebhookInfo, WebhookWork
from adapters.base.spec import (
    AuthSpec,
    PaginationSpec,
    ProviderSpec,
    RateLimitSpec,
    RetrySpec,
    StreamSpec,
    WebhookSpec,
)

__all__ = [
    "Adapter",
    "AuthSpec",
    "Connection",
    "Entity",
    "HealthResult",
    "Page",
    "PaginationSpec",
    "ProviderSpec",
    "RateLimitSpec",
    "RetrySpec",
    "StreamSpec",
    "WebhookInfo",
    "WebhookSpec",
    "WebhookWork",
]
