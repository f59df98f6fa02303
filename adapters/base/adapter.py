"""The base adapter: generic fetch/verify/classify driven by the provider spec, plus hooks.

An adapter knows its provider's HTTP API and nothing about storage or queues. A provider
module subclasses :class:`Adapter`, sets ``spec`` and overrides only the hooks it needs
(``build_params``, ``parse_records``, ``map_record``, ``classify_error``, ``webhook_work``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from adapters.base import webhooks
from adapters.base.auth import auth_strategy_for
from adapters.base.pagination import paginator_for
from adapters.base.paths import get_path
from adapters.base.spec import ProviderSpec, StreamSpec
from shared import jsonio
from shared.errors import FailRun, HubError, InvalidInput, RateLimited, ReauthRequired, RetryLater, SkipRecord
from shared.http import (
    DEFAULT_MAX_WAIT_SECONDS,
    AuthPolicy,
    LoggingPolicy,
    Pipeline,
    RateLimitPolicy,
    RateLimitState,
    RequestContext,
    RequestIdPolicy,
    RetryPolicy,
    retry_at_from_headers,
)


@dataclass(frozen=True)
class Connection:
    """What an adapter may know about one integration."""

    tenant_id: str
    integration_id: str
    base_url: str
    credential: SecretStr | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.tenant_id}:{self.integration_id}"


@dataclass(frozen=True)
class Entity:
    """One external object mapped for storage."""

    entity_type: str
    external_id: str
    data: dict[str, Any]
    updated_at: str | None = None
    deleted: bool = False


@dataclass(frozen=True)
class Page:
    """One fetched page: entities, the next page token, and the page's high-water mark."""

    entities: list[Entity]
    next_token: str | None
    watermark: str | None
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class HealthResult:
    """Outcome of a cheap authenticated call."""

    healthy: bool
    detail: str


@dataclass(frozen=True)
class WebhookInfo:
    """Identity of a verified delivery."""

    delivery_id: str
    event_type: str


@dataclass(frozen=True)
class WebhookWork:
    """What a webhook asks for: entities to store now and/or streams to sync."""

    entities: list[Entity] = field(default_factory=list)
    sync_streams: list[str] = field(default_factory=list)


class Adapter:
    """Generic adapter; subclasses set ``spec`` and override hooks."""

    spec: ClassVar[ProviderSpec]

    def __init__(
        self,
        *,
        rate_limits: RateLimitState | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS,
    ) -> None:
        client = httpx.Client(transport=transport, timeout=timeout, headers=dict(self.spec.default_headers))
        retry = self.spec.retry
        self.max_wait_seconds = max_wait_seconds
        """Longest wait a provider header may impose (``IHUB_MAX_RETRY_WAIT_SECONDS``)."""
        self._pipeline = Pipeline(
            [
                RequestIdPolicy(),
                AuthPolicy(auth_strategy_for(self.spec.auth)),
                RateLimitPolicy(
                    rate_limits or RateLimitState(), self.observe_rate_limit, max_block_seconds=max_wait_seconds
                ),
                RetryPolicy(
                    self.classify_error,
                    max_attempts=retry.max_attempts,
                    backoff_base=retry.backoff_base_seconds,
                    max_inline_wait=retry.max_inline_wait_seconds,
                ),
                LoggingPolicy(),
            ],
            client,
        )

    # ------------------------------------------------------------------ pulling pages

    def stream_spec(self, stream: str) -> StreamSpec:
        """Spec of ``stream``; InvalidInput when the provider has no such stream."""
        try:
            return self.spec.streams[stream]
        except KeyError:
            raise InvalidInput(f"{self.spec.name} has no stream {stream!r}", code="unknown_stream") from None

    def build_params(self, conn: Connection, stream: str, watermark: str | None) -> dict[str, str]:
        """Query params of a stream's first page (hook). Adds the delta param when resuming."""
        spec = self.stream_spec(stream)
        params = dict(spec.params)
        if watermark and spec.delta_param:
            params[spec.delta_param] = watermark
        return params

    def stream_url(self, conn: Connection, stream: str) -> str:
        """Absolute URL of the stream's first page; ``{name}`` placeholders come from config."""
        spec = self.stream_spec(stream)
        try:
            path = spec.path.format(**conn.config)
        except KeyError as exc:
            raise FailRun(f"integration config lacks {exc.args[0]!r}, needed by stream {stream!r}") from None
        return conn.base_url.rstrip("/") + path

    def fetch_page(self, conn: Connection, stream: str, watermark: str | None, token: str | None) -> Page:
        """Fetch one page (``token`` None = first page of a run starting at ``watermark``)."""
        spec = self.stream_spec(stream)
        paginator = paginator_for(self.spec.pagination_for(stream))
        url, params = paginator.prepare(
            self.stream_url(conn, stream), self.build_params(conn, stream, watermark), token
        )
        # params=None, not {}: httpx replaces a URL's query with an empty params dict
        response = self.send(conn, spec.method, url, params=params or None)
        body = self.decode(response)
        entities: list[Entity] = []
        skipped: list[str] = []
        high = None
        for raw in self.parse_records(stream, body):
            try:
                mapped = self.map_record(stream, raw)
            except SkipRecord as exc:
                skipped.append(str(exc))
                continue
            for entity in mapped:
                entities.append(entity)
                if entity.updated_at and (high is None or entity.updated_at > high):
                    high = entity.updated_at
        return Page(entities, paginator.next_token(response, body, token), high, skipped)

    def parse_records(self, stream: str, body: Any) -> list[dict[str, Any]]:
        """Raw records of a page body (hook). Default: ``record_path`` or the body itself."""
        records = get_path(body, self.stream_spec(stream).record_path)
        if not isinstance(records, list):
            raise FailRun(f"{self.spec.name} {stream}: expected a list of records, got {type(records).__name__}")
        return records

    def map_record(self, stream: str, raw: dict[str, Any]) -> list[Entity]:
        """Map one raw record to entities (hook; may add derived shards)."""
        spec = self.stream_spec(stream)
        external_id = get_path(raw, spec.id_field)
        if external_id is None:
            raise SkipRecord(f"record without {spec.id_field!r}")
        updated = get_path(raw, spec.updated_field) if spec.updated_field else None
        return [Entity(spec.entity_type, str(external_id), raw, str(updated) if updated else None)]

    # ------------------------------------------------------------------ HTTP

    def send(self, conn: Connection, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send through the policy pipeline (auth, rate limit, retry, logging)."""
        request = self._pipeline.build_request(method, url, **kwargs)
        ctx = RequestContext(provider=self.spec.name, connection_key=conn.key, credential=conn.credential)
        return self._pipeline.send(request, ctx)

    def decode(self, response: httpx.Response) -> Any:
        """JSON body under the hub's limits (``shared.jsonio``), or FailRun naming the problem."""
        try:
            return jsonio.loads(response.content, what=f"{self.spec.name}'s response")
        except jsonio.InvalidJson as exc:
            raise FailRun(
                f"{self.spec.name} answered {response.status_code} with unusable JSON "
                f"({response.headers.get('content-type', 'no content type')}): {exc}"
            ) from None

    def observe_rate_limit(self, response: httpx.Response) -> float | None:
        """Epoch time until which this connection must not call again, from the headers."""
        spec = self.spec.rate_limit
        if spec.remaining_header and spec.reset_header:
            remaining = response.headers.get(spec.remaining_header)
            if remaining is not None and remaining.strip() == "0":
                at = retry_at_from_headers(
                    response,
                    reset_header=spec.reset_header,
                    reset_kind=spec.reset_kind,
                    max_wait_seconds=self.max_wait_seconds,
                )
                if at is not None:
                    return at.timestamp()
        return None

    def classify_error(self, response: httpx.Response) -> HubError | None:
        """Success -> None; otherwise the error class telling the caller what to do (hook)."""
        status = response.status_code
        if status < 400:
            return None
        spec = self.spec.rate_limit
        detail = self.error_detail(response)
        if status == 401:
            return ReauthRequired(f"{self.spec.name} rejected the credential (401): {detail}")
        if status in spec.limited_statuses and self.is_rate_limited(response):
            at = retry_at_from_headers(
                response,
                retry_after_header=spec.retry_after_header,
                reset_header=spec.reset_header,
                reset_kind=spec.reset_kind,
                max_wait_seconds=self.max_wait_seconds,
            )
            if at is None:
                at = datetime.fromtimestamp(time.time() + min(spec.default_wait_seconds, self.max_wait_seconds), UTC)
            return RateLimited(f"{self.spec.name} rate limit ({status}): {detail}", retry_at=at)
        if status in self.spec.retry.retry_statuses or status >= 500:
            at = retry_at_from_headers(
                response, retry_after_header=spec.retry_after_header, max_wait_seconds=self.max_wait_seconds
            )
            return RetryLater(f"{self.spec.name} transient error {status}: {detail}", retry_at=at)
        if status == 403:
            return ReauthRequired(f"{self.spec.name} refused access (403): {detail}", code="forbidden")
        return FailRun(f"{self.spec.name} answered {status}: {detail}", code=f"http_{status}")

    def is_rate_limited(self, response: httpx.Response) -> bool:
        """Whether a limited-status answer is a rate limit (hook; default: always)."""
        return True

    @staticmethod
    def error_detail(response: httpx.Response) -> str:
        """A short readable message from an error body."""
        try:
            body = jsonio.loads(response.content, what="error body")
        except jsonio.InvalidJson:
            return response.text[:200]
        if isinstance(body, dict):
            for key in ("message", "error_description", "error", "detail"):
                if isinstance(body.get(key), str):
                    return str(body[key])[:200]
        return str(body)[:200]

    def push(
        self, conn: Connection, stream: str, record: Mapping[str, Any], changes: Mapping[str, Any], idempotency_key: str
    ) -> list[Entity]:
        """Send a local change to the provider; returns the provider's new version mapped.

        ``push_path`` placeholders come from the integration config and the stored record.
        """
        spec = self.stream_spec(stream)
        if spec.push_path is None:
            raise FailRun(f"{self.spec.name} stream {stream!r} does not accept changes", code="push_unsupported")
        try:
            path = spec.push_path.format(**{**conn.config, **record})
        except KeyError as exc:
            raise FailRun(f"cannot build the push URL: {exc.args[0]!r} missing") from None
        response = self.send(
            conn,
            spec.push_method,
            conn.base_url.rstrip("/") + path,
            json=dict(changes),
            headers={"Idempotency-Key": idempotency_key},
        )
        body = self.decode(response)
        return self.map_record(stream, body) if isinstance(body, dict) else []

    def health_check(self, conn: Connection) -> HealthResult:
        """A cheap authenticated GET of ``spec.health_path``."""
        if not self.spec.health_path:
            return HealthResult(True, "no health endpoint declared")
        try:
            self.send(conn, "GET", conn.base_url.rstrip("/") + self.spec.health_path)
        except HubError as exc:
            return HealthResult(False, f"{exc.code}: {exc}")
        return HealthResult(True, "ok")

    # ------------------------------------------------------------------ webhooks

    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, secret: str, now: float | None = None
    ) -> webhooks.Verdict:
        """Check the delivery's signature against the raw bytes."""
        if self.spec.webhook is None:
            return webhooks.Verdict(False, f"{self.spec.name} does not send webhooks")
        return webhooks.verify(self.spec.webhook, headers, body, secret, time.time() if now is None else now)

    def webhook_info(self, headers: Mapping[str, str], payload: Any) -> WebhookInfo:
        """Delivery id and event type from headers or body (InvalidInput when absent)."""
        spec = self.spec.webhook
        if spec is None:
            raise InvalidInput(f"{self.spec.name} does not send webhooks")
        delivery = webhooks.header(headers, spec.delivery_id_header) or get_path(payload, spec.delivery_id_path)
        if not delivery:
            raise InvalidInput(f"delivery id missing ({spec.delivery_id_header or spec.delivery_id_path})")
        event = webhooks.header(headers, spec.event_header) or get_path(payload, spec.event_type_path) or "unknown"
        return WebhookInfo(str(delivery)[:200], str(event)[:100])

    def webhook_work(self, event_type: str, payload: Any) -> WebhookWork:
        """What a verified delivery asks for (hook). Default: sync every stream."""
        return WebhookWork(sync_streams=list(self.spec.streams))

    def close(self) -> None:
        self._pipeline.close()
