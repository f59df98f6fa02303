"""HTTP glue between ``azure.functions`` types and the services.

``function_app.py`` imports this module lazily, inside function bodies, so importing the app
stays cheap and does no I/O.

Outside input is checked here before any service sees it: bodies are parsed by
:mod:`shared.jsonio` (one set of JSON limits for every entry point), the tenant and every id
in a path must be a *full* match of the id pattern, and any error becomes a JSON response
with a bounded, ASCII-safe message, so building the error can never fail in turn.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared import jsonio, telemetry
from shared.admin_page import help_page, render_admin_page
from shared.credentials.api import credential_routes
from shared.domain import Integration, validation_message
from shared.errors import HubError, InvalidInput, NotFound, RetryLater
from shared.messages import parse_inbound, parse_outbound, valid_id
from shared.ratelimit.api import rate_limit_routes
from shared.runtime import Hub, get_hub
from shared.webhook_api import webhook_routes

log = logging.getLogger("ihub.api")

TENANT_HEADER = "x-tenant-id"
MAX_MESSAGE_CHARS = 2000
_TENANT_HELP = (
    f"send the tenant id in the {TENANT_HEADER} header (or as ?tenant=): 1-128 characters, letters, digits "
    "and _ . : - , starting with a letter or digit"
)


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    try:
        text = json.dumps(body, default=_default, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        log.exception("response body could not be serialised")
        status, text = 500, '{"error":"internal_error","message":"unexpected error; see the function logs"}'
    return func.HttpResponse(text, status_code=status, mimetype="application/json", headers=dict(headers or {}))


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def _bounded(message: str) -> str:
    """An error message short enough to echo (it may quote caller input)."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[:MAX_MESSAGE_CHARS] + f"... ({len(message) - MAX_MESSAGE_CHARS} more characters)"


def error_response(exc: BaseException) -> func.HttpResponse:
    """Readable JSON error with the status its class names; never raises.

    The message is truncated to :data:`MAX_MESSAGE_CHARS` and serialised with ASCII escapes,
    so an echoed string (a lone surrogate, a megabyte of text) cannot break the response.
    """
    try:
        if isinstance(exc, ValidationError):
            return _json(400, {"error": "invalid_input", "message": _bounded(validation_message(exc))})
        if isinstance(exc, HubError):
            status = getattr(exc, "status", None)
            headers: dict[str, str] = {}
            if status is None and isinstance(exc, RetryLater):
                status, headers = 503, {"Retry-After": "30"}
            return _json(status or 500, {"error": exc.code, "message": _bounded(str(exc))}, headers)
    except Exception:  # the error path must answer, whatever happens
        log.exception("could not describe %s", type(exc).__name__)
    log.error("unhandled error", exc_info=exc)
    return _json(500, {"error": "internal_error", "message": "unexpected error; see the function logs"})


# ---------------------------------------------------------------------------- webhooks


def webhook_receiver(req: func.HttpRequest) -> func.HttpResponse:
    """POST webhooks/{provider}/{integration_id}: traced, counted and correlated (``shared.telemetry``)."""
    provider, integration_id = req.route_params.get("provider", ""), req.route_params.get("integration_id", "")
    with telemetry.span("webhook.receive", kind="server", provider=provider, integration_id=integration_id):
        response = _webhook_receiver(req)
        telemetry.webhook_outcome(provider, response.status_code, response.get_body())
        return response


def _webhook_receiver(req: func.HttpRequest) -> func.HttpResponse:
    try:
        hub = get_hub()
        result = hub.webhooks.receive(
            req.route_params.get("provider", ""),
            req.route_params.get("integration_id", ""),
            req.headers,
            req.get_body(),
            req.route_params.get("token") or None,
        )
    except Exception as exc:  # answered as JSON, with the status the error's class names
        return error_response(exc)
    if result.raw is not None or result.body is None:  # the exact answer the provider's scheme expects
        return func.HttpResponse(
            result.raw or b"", status_code=result.status, headers=result.headers, mimetype=result.content_type
        )
    return _json(result.status, result.body, result.headers)


# ---------------------------------------------------------------------------- queues


def inbound_worker(
    body: bytes,
    message_id: str,
    delivery_count: int | None,
    session_id: str | None,
    properties: Mapping[str, Any] | None = None,
    enqueued_at: datetime | None = None,
) -> str:
    """One sync-inbound message: a page of a run or a webhook event (continuing its sender's correlation)."""
    hub = get_hub()
    with telemetry.received(
        hub.settings.sync_inbound_queue, message_id, properties, enqueued_at=enqueued_at, delivery_count=delivery_count
    ):
        return _inbound(hub, body, message_id, delivery_count, session_id)


def _inbound(hub: Hub, body: bytes, message_id: str, delivery_count: int | None, session_id: str | None) -> str:

    def process(msg: Any) -> None:
        if msg.kind == "page":
            hub.sync.handle_page(msg)
        else:
            hub.sync.handle_webhook(msg)

    def on_failure(msg: Any, exc: HubError) -> None:
        hub.sync.fail(
            msg.tenant_id, msg.integration_id, getattr(msg, "stream", None), getattr(msg, "run_id", None), exc
        )

    return hub.inbound_runner.run(
        body,
        message_id,
        hub.queue.parsing(parse_inbound),
        process,
        on_failure,
        session_id=session_id,
        delivery_count=delivery_count or 1,
    )


def outbound_worker(
    body: bytes,
    message_id: str,
    delivery_count: int | None,
    session_id: str | None,
    properties: Mapping[str, Any] | None = None,
    enqueued_at: datetime | None = None,
) -> str:
    """One sync-outbound message: push a local change (continuing its sender's correlation)."""
    hub = get_hub()
    with telemetry.received(
        hub.settings.sync_outbound_queue, message_id, properties, enqueued_at=enqueued_at, delivery_count=delivery_count
    ):
        return _outbound(hub, body, message_id, delivery_count, session_id)


def _outbound(hub: Hub, body: bytes, message_id: str, delivery_count: int | None, session_id: str | None) -> str:

    def on_failure(msg: Any, exc: HubError) -> None:
        hub.sync.fail(msg.tenant_id, msg.integration_id, None, None, exc)

    return hub.outbound_runner.run(
        body,
        message_id,
        hub.queue.parsing(parse_outbound),
        hub.outbound.handle,
        on_failure,
        session_id=session_id,
        delivery_count=delivery_count or 1,
    )


def dead_letter_worker(msg: func.ServiceBusMessage, queue: str) -> str:
    """A message Service Bus dead-lettered on the ``inbound`` or ``outbound`` queue.

    Records it in ``dead_letters`` with the queue's reason and fails its run (or webhook event).
    """
    hub = get_hub()
    runner, parse = (hub.inbound_runner, parse_inbound) if queue == "inbound" else (hub.outbound_runner, parse_outbound)
    props = msg.application_properties or {}
    with telemetry.received(runner.queue_name + "/$DeadLetterQueue", msg.message_id or "", props):
        return _settle_dead_letter(hub, runner, parse, msg, props)


def _settle_dead_letter(
    hub: Hub, runner: Any, parse: Any, msg: func.ServiceBusMessage, props: Mapping[str, Any]
) -> str:
    return runner.settle_queue_dead_letter(
        msg.get_body(),
        msg.message_id or "",
        msg.delivery_count or 0,
        msg.dead_letter_reason or str(props.get("DeadLetterReason") or ""),
        msg.dead_letter_error_description or str(props.get("DeadLetterErrorDescription") or ""),
        hub.queue.parsing(parse),
        hub.sync.fail_message,
    )


# ---------------------------------------------------------------------------- admin API

Handler = Callable[..., tuple[Any, Any]]
Route = tuple[str, re.Pattern[str], Handler]
_ID = r"(?P<id>[^/]+)"


class _Request:
    """What a route handler needs from the HTTP request."""

    def __init__(self, req: func.HttpRequest, tenant: str, body: Any) -> None:
        self.tenant = tenant
        self.params = req.params
        self.body = body
        self.url = req.url
        self.base_url = _base_url(req.url)

    def integration(self, integration: Integration) -> dict[str, Any]:
        """An integration as the API shows it, with the webhook URL its provider should call."""
        shown = integration.model_dump(mode="json")
        shown["webhook_url"] = (
            f"{self.base_url}/webhooks/{integration.provider}/{integration.id}" if self.base_url else None
        )
        return shown


def _base_url(url: str) -> str:
    """``scheme://host[:port]/<route prefix>`` of an admin request URL (``.../api/manage/...``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    match = re.match(r"(.*?)/manage(?:/|$)", parts.path)
    if not parts.scheme or not parts.netloc or match is None:
        return ""
    return f"{parts.scheme}://{parts.netloc}{match.group(1)}"


def _routes(hub: Hub) -> list[Route]:
    a = hub.admin

    def r(method: str, pattern: str, fn: Handler) -> Route:
        return method, re.compile(pattern), fn

    return [
        r("GET", r"", lambda q: ("html", render_page(hub, q.tenant, q.params, q.url))),
        r("GET", r"integrations", lambda q: (200, [q.integration(i) for i in a.list_integrations(q.tenant)])),
        r("POST", r"integrations", lambda q: (201, q.integration(a.create_integration(q.tenant, q.body)))),
        r("GET", rf"integrations/{_ID}", lambda q, id: (200, q.integration(a.get_integration(q.tenant, id)))),
        r(
            "PUT",
            rf"integrations/{_ID}/credential",
            lambda q, id: (200, q.integration(a.set_credential(q.tenant, id, q.body))),
        ),
        r("POST", rf"integrations/{_ID}/sync", lambda q, id: (202, {"run_ids": a.trigger_sync(q.tenant, id, q.body)})),
        r(
            "POST",
            rf"integrations/{_ID}/changes",
            lambda q, id: (202, {"idempotency_key": a.queue_change(q.tenant, id, q.body)}),
        ),
        r("GET", rf"integrations/{_ID}/runs", lambda q, id: (200, a.list_runs(q.tenant, id, _limit(q.params)))),
        r("GET", rf"integrations/{_ID}/records", lambda q, id: (200, a.list_records(q.tenant, id, _limit(q.params)))),
        r("GET", rf"integrations/{_ID}/stats", lambda q, id: (200, a.stats(q.tenant, id))),
        r("GET", rf"integrations/{_ID}/report", lambda q, id: (200, a.report(q.tenant, id))),
        r("GET", r"dead-letters", lambda q: (200, a.list_dead_letters(q.tenant, _limit(q.params)))),
        r("GET", r"entities", lambda q: (200, hub.entities.list_entities(q.tenant, q.params))),
        r("GET", rf"entities/{_ID}", lambda q, id: (200, hub.entities.get(q.tenant, id))),
        r("POST", rf"entities/{_ID}/changes", lambda q, id: (200, hub.entities.change(q.tenant, id, q.body))),
        r("POST", rf"entities/{_ID}/split", lambda q, id: (200, hub.entities.split(q.tenant, id, q.body))),
        r("GET", r"conflicts", lambda q: (200, hub.entities.conflicts(q.tenant, q.params))),
        r("POST", rf"conflicts/{_ID}/resolve", lambda q, id: (200, hub.entities.resolve(q.tenant, id, q.body))),
        r("GET", r"merge-proposals", lambda q: (200, hub.entities.proposals(q.tenant, q.params))),
        *webhook_routes(hub, r),
        *credential_routes(hub, r),
        *rate_limit_routes(hub, r),
    ]


def _limit(query: Mapping[str, str]) -> int:
    raw = query.get("limit", "50")
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= 1000:
        raise InvalidInput("limit: must be a whole number from 1 to 1000")
    return int(raw)


def _tenant(req: func.HttpRequest) -> str:
    tenant = req.headers.get(TENANT_HEADER) or req.params.get("tenant") or ""
    if not tenant:
        raise InvalidInput(f"no tenant: {_TENANT_HELP}", code="tenant_required")
    if not valid_id(tenant):
        raise InvalidInput(f"tenant {tenant[:140]!r} is not a valid tenant id: {_TENANT_HELP}", code="invalid_tenant")
    return tenant


def admin_api(req: func.HttpRequest) -> func.HttpResponse:
    """``manage/{*path}``: the admin API (function key required in Azure)."""
    path = (req.route_params.get("path") or "").strip("/")
    try:
        if path == "" and req.method == "GET" and not (req.headers.get(TENANT_HEADER) or req.params.get("tenant")):
            return func.HttpResponse(help_page(req.url), status_code=400, mimetype="text/html")
        tenant = _tenant(req)
        hub = get_hub()
        body: Any = None
        if req.method in ("POST", "PUT", "PATCH"):
            raw = req.get_body()
            if raw:
                body = jsonio.loads(raw, what="body")
        allowed = []
        for method, pattern, fn in _routes(hub):
            match = pattern.fullmatch(path)
            if not match:
                continue
            allowed.append(method)
            if method == req.method:
                ids = match.groupdict()
                if not all(valid_id(value) for value in ids.values()):
                    raise NotFound(f"no integration {ids.get('id', '')[:140]!r} for tenant {tenant}")
                status, result = fn(_Request(req, tenant, body), **ids)
                if status == "html":
                    return func.HttpResponse(result, status_code=200, mimetype="text/html")
                return _json(status, result)
        if allowed:
            return _json(405, {"error": "method_not_allowed", "message": f"use {', '.join(allowed)}"})
        raise NotFound(f"no admin route {path[:140]!r}")
    except Exception as exc:  # answered as JSON, with the status the error's class names
        return error_response(exc)


def render_page(hub: Hub, tenant: str, params: Mapping[str, str] | None = None, request_url: str = "") -> str:
    """The tenant's admin page (see :mod:`shared.admin_page`)."""
    return render_admin_page(hub, tenant, params or {}, request_url)
