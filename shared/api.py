"""HTTP glue between ``azure.functions`` types and the services.

``function_app.py`` imports this module lazily, inside function bodies, so importing the app
stays cheap and does no I/O.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Callable
from typing import Any

import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared.domain import validation_message
from shared.errors import HubError, InvalidInput, NotFound
from shared.messages import parse_inbound, parse_outbound
from shared.runtime import Hub, get_hub

log = logging.getLogger("ihub.api")

TENANT_HEADER = "x-tenant-id"
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def _json(status: int, body: Any) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, default=_default, separators=(",", ":")), status_code=status, mimetype="application/json"
    )


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def error_response(exc: Exception) -> func.HttpResponse:
    """Readable JSON error with the status its class names."""
    if isinstance(exc, ValidationError):
        return _json(400, {"error": "invalid_input", "message": validation_message(exc)})
    if isinstance(exc, HubError):
        return _json(getattr(exc, "status", 500), {"error": exc.code, "message": str(exc)})
    log.exception("unhandled error")
    return _json(500, {"error": "internal_error", "message": "unexpected error; see the function logs"})


# ---------------------------------------------------------------------------- webhooks


def webhook_receiver(req: func.HttpRequest) -> func.HttpResponse:
    """POST webhooks/{provider}/{integration_id}."""
    hub = get_hub()
    try:
        result = hub.webhooks.receive(
            req.route_params.get("provider", ""),
            req.route_params.get("integration_id", ""),
            req.headers,
            req.get_body(),
        )
    except HubError as exc:
        return error_response(exc)
    return _json(result.status, result.body)


# ---------------------------------------------------------------------------- queues


def inbound_worker(body: bytes, message_id: str, delivery_count: int | None, session_id: str | None) -> str:
    """One sync-inbound message: a page of a run or a webhook event."""
    hub = get_hub()

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
        body, message_id, parse_inbound, process, on_failure, session_id=session_id, delivery_count=delivery_count or 1
    )


def outbound_worker(body: bytes, message_id: str, delivery_count: int | None, session_id: str | None) -> str:
    """One sync-outbound message: push a local change."""
    hub = get_hub()

    def on_failure(msg: Any, exc: HubError) -> None:
        hub.sync.fail(msg.tenant_id, msg.integration_id, None, None, exc)

    return hub.outbound_runner.run(
        body,
        message_id,
        parse_outbound,
        hub.outbound.handle,
        on_failure,
        session_id=session_id,
        delivery_count=delivery_count or 1,
    )


# ---------------------------------------------------------------------------- admin API

Route = tuple[str, re.Pattern[str], Callable[..., Any]]


def _routes(hub: Hub) -> list[Route]:
    a = hub.admin

    def r(method: str, pattern: str, fn: Callable[..., Any]) -> Route:
        return method, re.compile("^" + pattern + "$"), fn

    return [
        r("GET", r"", lambda t, q, b: ("html", render_page(hub, t))),
        r("GET", r"integrations", lambda t, q, b: (200, a.list_integrations(t))),
        r("POST", r"integrations", lambda t, q, b: (201, a.create_integration(t, b))),
        r("GET", r"integrations/(?P<id>[^/]+)", lambda t, q, b, id: (200, a.get_integration(t, id))),
        r("PUT", r"integrations/(?P<id>[^/]+)/credential", lambda t, q, b, id: (200, a.set_credential(t, id, b))),
        r("POST", r"integrations/(?P<id>[^/]+)/sync", lambda t, q, b, id: (202, {"run_ids": a.trigger_sync(t, id, b)})),
        r(
            "POST",
            r"integrations/(?P<id>[^/]+)/changes",
            lambda t, q, b, id: (202, {"idempotency_key": a.queue_change(t, id, b)}),
        ),
        r("GET", r"integrations/(?P<id>[^/]+)/runs", lambda t, q, b, id: (200, a.list_runs(t, id, _limit(q)))),
        r("GET", r"integrations/(?P<id>[^/]+)/records", lambda t, q, b, id: (200, a.list_records(t, id, _limit(q)))),
        r("GET", r"integrations/(?P<id>[^/]+)/stats", lambda t, q, b, id: (200, a.stats(t, id))),
        r("GET", r"dead-letters", lambda t, q, b: (200, a.list_dead_letters(t, _limit(q)))),
    ]


def _limit(query: Any) -> int:
    raw = query.get("limit", "50")
    if not str(raw).isdigit() or not 1 <= int(raw) <= 1000:
        raise InvalidInput("limit: must be a whole number from 1 to 1000")
    return int(raw)


def admin_api(req: func.HttpRequest) -> func.HttpResponse:
    """``manage/{*path}``: the admin API (function key required in Azure)."""
    try:
        hub = get_hub()
        path = (req.route_params.get("path") or "").strip("/")
        tenant = req.headers.get(TENANT_HEADER) or req.params.get("tenant") or ""
        if not _TENANT_RE.match(tenant):
            raise InvalidInput(f"the {TENANT_HEADER} header (or ?tenant=) must name the tenant")
        body: Any = None
        if req.method in ("POST", "PUT", "PATCH"):
            raw = req.get_body()
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise InvalidInput(f"body is not valid JSON: {exc}") from None
        allowed = []
        for method, pattern, fn in _routes(hub):
            match = pattern.match(path)
            if not match:
                continue
            allowed.append(method)
            if method == req.method:
                status, result = fn(tenant, req.params, body, **match.groupdict())
                if status == "html":
                    return func.HttpResponse(result, status_code=200, mimetype="text/html")
                return _json(status, result)
        if allowed:
            return _json(405, {"error": "method_not_allowed", "message": f"use {', '.join(allowed)}"})
        raise NotFound(f"no admin route {path!r}")
    except (HubError, ValidationError) as exc:
        return error_response(exc)


def render_page(hub: Hub, tenant: str) -> str:
    """A small read-only admin page: integrations, their counts and latest runs."""
    rows = []
    for integ in hub.admin.list_integrations(tenant):
        stats = hub.admin.stats(tenant, integ.id)
        runs = hub.admin.list_runs(tenant, integ.id, 5)
        run_text = "<br>".join(
            f"{html.escape(r.stream)} {html.escape(r.trigger)} {html.escape(r.status.value)} "
            f"pages={r.pages} +{r.records_created} ~{r.records_updated} ={r.records_unchanged}"
            for r in runs
        )
        rows.append(
            f"<tr><td>{html.escape(integ.id)}</td><td>{html.escape(integ.provider)}</td>"
            f"<td>{html.escape(integ.display_name)}</td><td>{html.escape(integ.status.value)}</td>"
            f"<td>{stats['records']}</td><td>{stats['webhook_events']}</td><td>{run_text}</td></tr>"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Integration Hub</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}</style></head><body>"
        f"<h1>Integration Hub</h1><p>Tenant <b>{html.escape(tenant)}</b></p>"
        "<table><tr><th>id</th><th>provider</th><th>name</th><th>status</th><th>records</th>"
        "<th>webhooks</th><th>latest runs</th></tr>" + "".join(rows) + "</table></body></html>"
    )
