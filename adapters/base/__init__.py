"""The adapter framework: specs, request/auth/pagination/webhook strategies, error classification."""

from adapters.base.adapter import Adapter
from adapters.base.model import (
    ChildScope,
    Connection,
    Entity,
    HealthResult,
    Page,
    PushResult,
    WebhookInfo,
    WebhookWork,
)
from adapters.base.request import ApiRequest
from adapters.base.spec import (
    AuthSpec,
    BodyError,
    ErrorSpec,
    PaginationSpec,
    ProviderSpec,
    PushOp,
    PushSpec,
    RateLimitSpec,
    RetrySpec,
    StreamSpec,
    WebhookSpec,
)

__all__ = [
    "Adapter",
    "ApiRequest",
    "AuthSpec",
    "BodyError",
    "ChildScope",
    "Connection",
    "Entity",
    "ErrorSpec",
    "HealthResult",
    "Page",
    "PaginationSpec",
    "ProviderSpec",
    "PushOp",
    "PushResult",
    "PushSpec",
    "RateLimitSpec",
    "RetrySpec",
    "StreamSpec",
    "WebhookInfo",
    "WebhookSpec",
    "WebhookWork",
]
