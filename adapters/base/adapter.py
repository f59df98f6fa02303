"""The base adapter: generic fetch/push/classify driven by the provider spec, plus hooks.

An adapter knows its provider's HTTP API and nothing about storage or queues. A provider
module subclasses :class:`Adapter`, sets ``spec`` and overrides only the hooks it needs:
``build_request`` (first page of a stream), ``initial_token``, ``parse_records``,
``map_record``, ``is_deleted``, ``push_request``/``push_result``, ``classify_error``,
``is_rate_limited`` and ``webhook_work``.

The boundary values (:class:`Connection`, :class:`Entity`, :class:`Page`,
:class:`ChildScope`, :class:`PushResult`) live in :mod:`adapters.base.model`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar, Self

import httpx

from adapters.base import push as pushing
from adapters.base import webhooks
from adapters.base.auth import auth_strategy_for
from adapters.base.budgets import BudgetRenderer
from adapters.base.classify import ErrorClassifier, NotJson, error_detail, parsed_body, quota_usage
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
from adapters.base.pagination import Paginator, paginator_for
from adapters.base.paths import get_path
from adapters.base.push import PushOperation
from adapters.base.request import ApiRequest, deep_merge, join_url, render, render_value
from adapters.base.spec import ErrorSpec, ProviderSpec, StreamSpec
from shared.domain import IncrementalState
from shared.errors import FailRun, HubError, InvalidInput, SkipRecord
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
from shared.ratelimit.model import Budget
from shared.ratelimit.priority import current_priority

__all__ = [
    "Adapter",
    "ApiRequest",
    "ChildScope",
    "Connection",
    "Entity",
    "HealthResult",
    "Page",
    "PushResult",
    "WebhookInfo",
    "WebhookWork",
]

_STREAM_EXTENSION = "ihub.stream"


class Adapter(webhooks.WebhookHooks):
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
        self._classifier = ErrorClassifier(
            self.spec.name,
            self.spec.rate_limit,
            retry,
            is_rate_limited=self.is_rate_limited,
            max_wait_seconds=max_wait_seconds,
            clock=time.time,
        )
        self._errors: dict[str | None, ErrorSpec] = {}
        self._deletion_streams = {s.deleted_stream for s in self.spec.streams.values() if s.deleted_stream}
        self._children = {
            name: [child for child, s in self.spec.streams.items() if s.parent == name] for name in self.spec.streams
        }
        rate = self.spec.rate_limit
        self._quota = re.compile(rate.quota_pattern) if rate.quota_header and rate.quota_pattern else None
        self._budgets = BudgetRenderer(self.spec.name, rate)
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
                    max_backoff=min(retry.max_backoff_seconds, max_wait_seconds),
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

    def template_values(
        self, conn: Connection, state: IncrementalState | None = None, parent_id: str | None = None
    ) -> dict[str, Any]:
        """Placeholder values of request templates: config, ``parent_id`` and the state's tokens."""
        values: dict[str, Any] = dict(conn.config)
        if parent_id is not None:
            values["parent_id"] = parent_id
        if state is not None:
            values.update(watermark=state.watermark, sync_token=state.sync_token)
            values["start_page_token"] = state.start_page_token
        return values

    def stream_base_url(self, conn: Connection, stream: str) -> str:
        """The stream's host: config ``base_url_key``, else the stream's ``base_url``, else the connection's."""
        spec = self.stream_spec(stream)
        if spec.base_url_key:
            configured = conn.config.get(spec.base_url_key)
            if isinstance(configured, str) and configured:
                return configured
        return spec.base_url or conn.base_url

    def build_request(
        self, conn: Connection, stream: str, state: IncrementalState, *, parent_id: str | None = None
    ) -> ApiRequest:
        """The request of a stream's first page (hook).

        A full listing (empty state or ``full_resync``) sends no delta; otherwise a stored sync
        token goes as ``sync_token_param``, else the watermark as ``delta_param`` /
        ``delta_params`` / ``delta_body`` (see :class:`~adapters.base.spec.StreamSpec`).
        """
        spec = self.stream_spec(stream)
        values = self.template_values(conn, state, parent_id)
        what = f"stream {stream!r}"
        path = render(spec.path, values, what=f"{what} path", quote_values=True)
        params = {k: render(v, values, what=f"{what} param {k!r}") for k, v in spec.params.items()}
        body = render_value(spec.body, values, what=f"{what} body") if spec.body is not None else None
        if not state.full_resync:
            if state.sync_token and spec.sync_token_param:
                params[spec.sync_token_param] = state.sync_token
            elif state.watermark:
                if spec.delta_param:
                    params[spec.delta_param] = state.watermark
                for k, v in spec.delta_params.items():
                    params[k] = render(v, values, what=f"{what} delta param {k!r}")
                if spec.delta_body is not None:
                    body = deep_merge(body or {}, render_value(spec.delta_body, values, what=f"{what} delta body"))
        headers = {k: render(v, values, what=f"{what} header {k!r}") for k, v in spec.headers.items()}
        url = join_url(self.stream_base_url(conn, stream), path)
        return ApiRequest(spec.method, url, params, body, headers, spec.rate_bucket)

    def initial_token(self, conn: Connection, stream: str, state: IncrementalState) -> str | None:
        """Token of a run's first page (hook). Default: a change feed's stored start page token.

        A stream with ``start_page_token_path`` resumes from ``state.start_page_token`` (unless a
        full resync is asked for); override to fetch one (Drive ``changes.getStartPageToken``).
        """
        spec = self.stream_spec(stream)
        if spec.start_page_token_path and not state.full_resync:
            return state.start_page_token
        return None

    def paginator(self, stream: str) -> Paginator:
        """The stream's pagination strategy."""
        return paginator_for(self.spec.pagination_for(stream))

    def fetch_page(
        self,
        conn: Connection,
        stream: str,
        state: IncrementalState | None,
        token: str | None,
        *,
        parent_id: str | None = None,
    ) -> Page:
        """Fetch one page of ``stream``.

        Args:
            conn: The connection.
            stream: The stream's name.
            state: The run's start state (None, an empty state or ``full_resync`` = a full listing).
            token: The page token; None = the run's first page.
            parent_id: The parent record of a child stream's run.

        Returns:
            The page, with the candidate state after it.

        Raises:
            ResyncRequired, RateLimited, RetryLater, ReauthRequired, FailRun: as classified.
        """
        start = state if state is not None else IncrementalState()
        spec = self.stream_spec(stream)
        if spec.parent and parent_id is None:
            raise FailRun(f"{self.spec.name} stream {stream!r} runs once per {spec.parent!r} record: parent_id missing")
        paginator = self.paginator(stream)
        if token is None:
            token = self.initial_token(conn, stream, start)
        request = paginator.prepare(self.build_request(conn, stream, start, parent_id=parent_id), token)
        response = self.send_request(conn, request, stream=stream)
        body = self.decode(response)
        next_token = paginator.next_token(response, body, token)
        tokens: dict[str, str | None] = {}
        if spec.sync_token_path:
            tokens["sync_token"] = _token_at(body, spec.sync_token_path)
        if spec.start_page_token_path:
            tokens["start_page_token"] = _token_at(body, spec.start_page_token_path)
            if tokens["start_page_token"] is not None:
                next_token = None
        entities, skipped, children, high = self._map_page(stream, spec, self.parse_records(stream, body))
        base = IncrementalState() if start.full_resync else start
        return Page(entities, next_token, base.advanced(high, **tokens), skipped, children)

    def _map_page(
        self, stream: str, spec: StreamSpec, records: list[dict[str, Any]]
    ) -> tuple[list[Entity], list[str], list[ChildScope], str | None]:
        entities: list[Entity] = []
        skipped: list[str] = []
        children: list[ChildScope] = []
        seen: set[tuple[str, str]] = set()
        child_streams = self._children.get(stream, [])
        all_deleted = stream in self._deletion_streams
        tombstones = spec.deletes == "tombstone"
        high: str | None = None
        for raw in records:
            try:
                mapped = self.map_record(stream, raw)
                deleted = all_deleted or (tombstones and self.is_deleted(stream, raw))
            except SkipRecord as exc:
                skipped.append(str(exc))
                continue
            for entity in mapped:
                if deleted and not entity.deleted:
                    entity = replace(entity, deleted=True)
                entities.append(entity)
                if entity.updated_at and (high is None or entity.updated_at > high):
                    high = entity.updated_at
            if deleted:
                continue
            for child in child_streams:
                parent_key = _token_at(raw, self.spec.streams[child].parent_id_field)
                if parent_key is not None and (child, parent_key) not in seen:
                    seen.add((child, parent_key))
                    children.append(ChildScope(child, parent_key))
        return entities, skipped, children, high

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
        if external_id is None or isinstance(external_id, (dict, list)):
            raise SkipRecord(f"record without {spec.id_field!r}")
        updated = get_path(raw, spec.updated_field) if spec.updated_field else None
        return [Entity(spec.entity_type, str(external_id), raw, str(updated) if updated else None)]

    def is_deleted(self, stream: str, raw: dict[str, Any]) -> bool:
        """Whether a delta record is a tombstone (hook). Default: ``tombstone_path == tombstone_value``."""
        spec = self.stream_spec(stream)
        if spec.tombstone_path is None:
            return False
        found = get_path(raw, spec.tombstone_path)
        if isinstance(found, bool) or isinstance(spec.tombstone_value, bool):
            return found is spec.tombstone_value
        return bool(found == spec.tombstone_value)

    # ------------------------------------------------------------------ HTTP

    def bucket_for(self, conn: Connection, bucket: str | None = None) -> str:
        """The rendered rate-limit bucket key of a request (``RateLimitSpec.bucket_key``)."""
        values = {
            "provider": self.spec.name,
            "tenant": conn.tenant_id,
            "integration": conn.integration_id,
            "connection": conn.key,
            "bucket": bucket or "",
            "config": conn.config,
        }
        return render(self.spec.rate_limit.bucket_key, values, what="the rate-limit bucket_key")

    def budgets_for(self, conn: Connection, method: str, url: str, bucket: str | None = None,
                    params: Mapping[str, Any] | None = None, body: Any = None) -> tuple[Budget, ...]:
        """The spec's rate-limit budgets (every level) that apply to one request."""
        values = {
            "provider": self.spec.name,
            "tenant": conn.tenant_id,
            "integration": conn.integration_id,
            "connection": conn.key,
            "bucket": bucket or "",
            "config": conn.config,
        }
        return self._budgets.render(values, method=method, url=url, params=params, body=body)

    def _context(self, conn: Connection, bucket: str | None, budgets: tuple[Budget, ...],
                 priority: str | None) -> RequestContext:
        return RequestContext(
            provider=self.spec.name,
            connection_key=conn.key,
            credential=conn.credential,
            bucket=self.bucket_for(conn, bucket),
            tenant=conn.tenant_id,
            integration=conn.integration_id,
            priority=priority or current_priority(),
            budgets=budgets,
            usage=self._budgets.usage,
        )

    def send_request(
        self, conn: Connection, request: ApiRequest, *, stream: str | None = None, priority: str | None = None
    ) -> httpx.Response:
        """Send an :class:`ApiRequest` through the policy pipeline; ``stream`` picks its error spec.

        ``priority`` (default: the work's, :func:`shared.ratelimit.priority.current_priority`) decides
        how much of a budget's burst the request may use.
        """
        kwargs: dict[str, Any] = {}
        if request.params:  # None, not {}: httpx replaces a URL's query with an empty params dict
            kwargs["params"] = dict(request.params)
        if request.json is not None:
            kwargs["json"] = request.json
        if request.headers:
            kwargs["headers"] = dict(request.headers)
        try:
            built = self._pipeline.build_request(request.method, request.url, **kwargs)
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            raise FailRun(f"{self.spec.name}: cannot build a request to {request.url[:120]!r}: {exc}") from None
        built.extensions[_STREAM_EXTENSION] = stream
        budgets = self.budgets_for(conn, request.method, request.url, request.bucket, request.params, request.json)
        return self._pipeline.send(built, self._context(conn, request.bucket, budgets, priority))

    def send(self, conn: Connection, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send ``method url`` through the pipeline (httpx keyword arguments: params, json, headers)."""
        request = self._pipeline.build_request(method, url, **kwargs)
        budgets = self.budgets_for(conn, method, url, None, kwargs.get("params"), kwargs.get("json"))
        return self._pipeline.send(request, self._context(conn, None, budgets, None))

    def decode(self, response: httpx.Response) -> Any:
        """JSON body under the hub's limits (``shared.jsonio``), or FailRun naming the problem."""
        body = parsed_body(response)
        if isinstance(body, NotJson):
            raise FailRun(
                f"{self.spec.name} answered {response.status_code} with unusable JSON "
                f"({response.headers.get('content-type', 'no content type')}): {body.reason}"
            )
        return body

    def observe_rate_limit(self, response: httpx.Response) -> float | None:
        """Epoch time until which this bucket must not call again, from the headers.

        ``remaining`` at 0 blocks until the reset header's time; a quota header whose usage
        reached its limit blocks for ``quota_reset_seconds`` (else ``default_wait_seconds``).
        """
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
        if self._quota is not None and spec.quota_header:
            usage = quota_usage(self._quota, response.headers.get(spec.quota_header))
            if usage is not None and usage[1] > 0 and usage[0] >= usage[1]:
                wait = self.spec.errors.quota_reset_seconds
                return time.time() + min(spec.default_wait_seconds if wait is None else wait, self.max_wait_seconds)
        return None

    def classify_error(self, response: httpx.Response) -> HubError | None:
        """Success -> None; otherwise the error class telling the caller what to do (hook).

        Body rules of the stream's and provider's :class:`~adapters.base.spec.ErrorSpec` first
        (any status), then its ``statuses``, then the default by status.
        """
        return self._classifier.classify(response, self._error_spec(_stream_of(response)))

    def _error_spec(self, stream: str | None) -> ErrorSpec:
        found = self._errors.get(stream)
        if found is None:
            found = self._errors[stream] = self.spec.errors_for(stream if stream in self.spec.streams else None)
        return found

    def is_rate_limited(self, response: httpx.Response) -> bool:
        """Whether a limited-status answer is a rate limit (hook; default: always)."""
        return True

    @staticmethod
    def error_detail(response: httpx.Response) -> str:
        """A short readable message from an error body."""
        return error_detail(response)

    # ------------------------------------------------------------------ pushing changes

    def push(
        self,
        conn: Connection,
        stream: str,
        operation: PushOperation,
        record: Mapping[str, Any],
        changes: Mapping[str, Any],
        idempotency_key: str,
    ) -> PushResult:
        """Send a local change to the provider.

        Args:
            conn: The connection.
            stream: The stream whose record changes.
            operation: ``create``, ``update`` or ``delete``.
            record: The stored record (``{}`` for a create); path placeholders read it.
            changes: The fields to write.
            idempotency_key: Sent in the spec's ``idempotency_header`` when the provider has one.

        Returns:
            The provider's id and version of the record, and the record mapped for storage.

        Raises:
            FailRun: The stream does not accept this operation, or the request cannot be built.
        """
        request = self.push_request(conn, stream, operation, record, changes, idempotency_key)
        response = self.send_request(conn, request, stream=stream, priority=_push_priority())
        body = self.decode(response) if response.content.strip() else None
        return self.push_result(stream, operation, record, body)

    def push_request(
        self,
        conn: Connection,
        stream: str,
        operation: PushOperation,
        record: Mapping[str, Any],
        changes: Mapping[str, Any],
        idempotency_key: str,
    ) -> ApiRequest:
        """The request of one write (hook). Default: the stream's :class:`PushOp`."""
        spec = self.stream_spec(stream)
        push, op = pushing.push_op(self.spec.name, stream, spec, operation)
        base = self.stream_base_url(conn, stream)
        return pushing.push_request(conn, stream, spec, push, op, record, changes, idempotency_key, base)

    def push_result(self, stream: str, operation: PushOperation, record: Mapping[str, Any], body: Any) -> PushResult:
        """The provider's answer to a write as a :class:`PushResult` (hook)."""
        spec = self.stream_spec(stream)
        push, op = pushing.push_op(self.spec.name, stream, spec, operation)
        return pushing.push_result(stream, spec, push, op, operation, record, body, self.map_record)

    def health_check(self, conn: Connection) -> HealthResult:
        """A cheap authenticated GET of ``spec.health_path``."""
        if not self.spec.health_path:
            return HealthResult(True, "no health endpoint declared")
        try:
            self.send_request(conn, ApiRequest("GET", join_url(conn.base_url, self.spec.health_path)))
        except HubError as exc:
            return HealthResult(False, f"{exc.code}: {exc}")
        return HealthResult(True, "ok")

    def close(self) -> None:
        """Close the HTTP client."""
        self._pipeline.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _push_priority() -> str:
    """A pushed local change is interactive unless the work named its own priority."""
    current = current_priority()
    return "interactive" if current == "scheduled" else current


def _token_at(body: Any, path: str) -> str | None:
    """A scalar at ``path`` as a string (None when absent, empty or not a scalar)."""
    value = get_path(body, path)
    if value is None or value == "" or isinstance(value, (dict, list, bool)):
        return None
    return str(value)


def _stream_of(response: httpx.Response) -> str | None:
    try:
        stream = response.request.extensions.get(_STREAM_EXTENSION)
    except RuntimeError:  # a response built without a request (tests)
        return None
    return stream if isinstance(stream, str) else None
