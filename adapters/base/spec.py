"""Provider capabilities as data (in the spirit of Nango's ``providers.yaml``).

Each provider module declares one :class:`ProviderSpec`; the framework reads auth mode,
pagination style and field names, rate-limit headers, retryable statuses and the webhook
scheme from it. Streams may override pagination per endpoint.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapters.base.verify.config import SchemeConfig


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthSpec(_Spec):
    """How the credential goes on a request and where tokens are refreshed."""

    mode: Literal["bearer", "basic", "api_key_header", "none"] = "bearer"
    header: str = "Authorization"
    scheme: str = "Bearer"
    token_url: str | None = None
    scopes: tuple[str, ...] = ()
    refresh_token_rotates: bool = False


class PaginationSpec(_Spec):
    """Which pagination strategy and the names of its fields.

    ``link_header``: follow ``Link: <...>; rel="next"``. ``body_cursor``: read ``token_path``
    from the body (stop when empty, or when ``has_more_path`` is false) and send it as
    ``token_param``. ``next_url``: read a (relative) URL at ``token_path``; stop when
    ``done_path`` is true. ``none``: a single page.

    ``max_pages_per_run`` is a hard ceiling: a run that reaches it without the provider saying
    "last page" fails (the ``IHUB_MAX_PAGES_PER_RUN`` setting overrides it for every stream).
    """

    style: Literal["link_header", "body_cursor", "next_url", "none"]
    page_size_param: str | None = None
    page_size: int = 100
    token_path: str | None = None
    token_param: str | None = None
    has_more_path: str | None = None
    done_path: str | None = None
    max_pages_per_run: int = Field(10_000, ge=1)


class RateLimitSpec(_Spec):
    """The provider's rate-limit headers and answers."""

    limit_header: str | None = None
    remaining_header: str | None = None
    reset_header: str | None = None
    reset_kind: Literal["epoch_seconds", "delta_seconds"] = "epoch_seconds"
    retry_after_header: str = "retry-after"
    limited_statuses: tuple[int, ...] = (429,)
    default_wait_seconds: float = 60.0


class RetrySpec(_Spec):
    """Transient failures retried in place (rate limits are never retried in place)."""

    retry_statuses: tuple[int, ...] = (500, 502, 503, 504)
    max_attempts: int = Field(3, ge=1, le=10)
    backoff_base_seconds: float = Field(0.5, ge=0)
    max_inline_wait_seconds: float = Field(5.0, ge=0)


class WebhookSpec(_Spec):
    """How the provider signs and identifies webhook deliveries.

    ``verification`` chooses the verification strategy (:mod:`adapters.base.verify`), usually a
    provider profile's config (``adapters.base.verify.profiles``). Without it, the legacy
    ``signature_header``/``signature_prefix`` describe a hex HMAC-SHA256 of the body.
    """

    scheme: Literal["hmac_sha256_hex"] = "hmac_sha256_hex"
    signature_header: str | None = None
    signature_prefix: str = ""
    verification: SchemeConfig | None = None
    event_header: str | None = None
    delivery_id_header: str | None = None
    delivery_id_path: str | None = None
    event_type_path: str | None = None
    timestamp_header: str | None = None
    tolerance_seconds: int = 300
    max_body_bytes: int = 25 * 1024 * 1024

    @model_validator(mode="after")
    def _has_scheme(self) -> WebhookSpec:
        if self.verification is None and not self.signature_header:
            raise ValueError("a webhook spec needs a verification scheme or a signature_header")
        return self


class StreamSpec(_Spec):
    """One pullable collection of the provider's API."""

    path: str
    entity_type: str
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, str] = Field(default_factory=dict)
    record_path: str | None = None
    id_field: str = "id"
    updated_field: str | None = None
    delta_param: str | None = None
    pagination: PaginationSpec | None = None
    required_config: tuple[str, ...] = ()
    push_path: str | None = None
    push_method: Literal["PATCH", "PUT", "POST"] = "PATCH"


class ProviderSpec(_Spec):
    """Everything declarative about one provider."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    display_name: str
    base_url: str
    default_headers: dict[str, str] = Field(default_factory=dict)
    auth: AuthSpec = AuthSpec()
    pagination: PaginationSpec = PaginationSpec(style="none")
    rate_limit: RateLimitSpec = RateLimitSpec()
    retry: RetrySpec = RetrySpec()
    webhook: WebhookSpec | None = None
    health_path: str | None = None
    streams: dict[str, StreamSpec] = Field(default_factory=dict)

    def pagination_for(self, stream: str) -> PaginationSpec:
        """The stream's pagination override, else the provider default."""
        return self.streams[stream].pagination or self.pagination
