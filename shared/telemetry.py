"""Correlation ids, traces and metrics: one small API, configured lazily.

**Correlation.** The ids of the work in hand live in a context variable: webhook ``delivery_id``
-> ``event_id`` -> queue ``message_id`` -> ``run_id`` -> ``page`` (plus ``tenant_id``,
``integration_id``, ``stream``, ``provider``). Every log record carries them (a log record factory
copies them onto the record, so any handler sees ``record.run_id``; the text formatter appends
them, the JSON formatter writes them as fields, Azure Monitor exports them as custom dimensions),
and every queue message sent while they are set carries them as application properties
(``ihub.<name>``) next to a W3C ``traceparent``, so the receiving function continues the same
correlation and the same trace. Services set them with::

    from shared import telemetry
    telemetry.bind(delivery_id=carried.id, event_id=event.id)   # for the rest of this invocation
    with telemetry.correlated(run_id=run.id, page=n):           # for a block
        ...

Nothing else is needed: the queue backends stamp every sent message with :func:`to_properties`,
:func:`received` restores them on the receiving side, and the queue handler
(``shared.services.work``) binds the message's own ids.

**Traces.** :func:`span` opens an OpenTelemetry span when tracing is configured and costs one
context-variable set otherwise. :func:`configure` runs once, from the first ``get_hub()`` (never at
import: importing ``function_app`` loads no OpenTelemetry module), and picks the exporter:
``APPLICATIONINSIGHTS_CONNECTION_STRING`` set -> ``azure-monitor-opentelemetry`` (Entra ID auth when
``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` says ``Authorization=AAD``); else
``IHUB_TRACES_EXPORTER=console`` (stderr, or JSON lines to ``IHUB_TRACES_FILE``) or ``otlp``
(``OTEL_EXPORTER_OTLP_ENDPOINT``); else none.

**Metrics.** :func:`count` and :func:`observe` take a name from :data:`METRICS`; they always add to
an in-process total (:func:`snapshot`, for tests and the dev host) and, when configured, to an
OpenTelemetry instrument.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

CORRELATION_FIELDS = (
    "delivery_id",
    "event_id",
    "message_id",
    "run_id",
    "page",
    "tenant_id",
    "integration_id",
    "stream",
    "provider",
)
"""The ids carried through logs, spans and queue messages, in chain order."""

PROPERTY_PREFIX = "ihub."
"""Application property prefix of a correlation id on a queue message (``ihub.run_id``)."""

TRACEPARENT = "traceparent"
"""W3C trace context, as an application property (the Azure SDK adds ``Diagnostic-Id`` too)."""

MAX_ID_CHARS = 200

METRICS: dict[str, tuple[str, str, str]] = {
    "ihub.webhooks.accepted": ("counter", "1", "webhook deliveries accepted (by provider, status: new or duplicate)"),
    "ihub.webhooks.rejected": ("counter", "1", "webhook deliveries refused (by provider and reason)"),
    "ihub.records.created": ("counter", "1", "records created by sync runs (by provider, stream)"),
    "ihub.records.updated": ("counter", "1", "records updated by sync runs"),
    "ihub.records.deleted": ("counter", "1", "records tombstoned by sync runs"),
    "ihub.sync.lag": ("histogram", "s", "run start to DataSynced, per stream: how far behind the provider a stream is"),
    "ihub.credentials.refresh": ("counter", "1", "credential refreshes (by provider and outcome)"),
    "ihub.ratelimit.deferrals": ("counter", "1", "messages rescheduled for a rate limit or retry time (by reason)"),
    "ihub.queue.age": ("histogram", "s", "time from enqueue to the start of processing (by queue)"),
    "ihub.dead_letters": ("counter", "1", "messages given up on and recorded in dead_letters (by queue, reason)"),
}
"""Every metric the hub emits: name -> (kind, unit, description)."""

log = logging.getLogger("ihub.telemetry")

_ids: ContextVar[dict[str, str]] = ContextVar("ihub_correlation")
_scoped: ContextVar[bool] = ContextVar("ihub_correlation_scope", default=False)
_lock = threading.Lock()
_configured = False
_tracer: Any = None
_meter: Any = None
_instruments: dict[str, Any] = {}
_totals: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}


# --------------------------------------------------------------------------- correlation


def current() -> dict[str, str]:
    """The correlation ids in effect (a copy)."""
    return dict(_ids.get({}))


def _clean(ids: Mapping[str, object]) -> dict[str, str]:
    return {k: str(v)[:MAX_ID_CHARS] for k, v in ids.items() if k in CORRELATION_FIELDS and v not in (None, "")}


def bind(**ids: object) -> None:
    """Add ids to the enclosing scope (:func:`correlated`, :func:`span`, :func:`received`) until it ends.

    Every function entry point opens a scope; outside one this does nothing, so ids never leak
    from one invocation into the next on a reused worker thread. Unknown names are ignored (see
    :data:`CORRELATION_FIELDS`); ``None`` values are skipped.
    """
    clean = _clean(ids)
    if clean and _scoped.get():
        _ids.set({**_ids.get({}), **clean})
        if _tracer is not None:
            _set_span_attributes(clean)


@contextmanager
def correlated(**ids: object) -> Iterator[dict[str, str]]:
    """Ids in effect for a block (and on the current span); the previous ids come back afterwards."""
    clean = _clean(ids)
    token = _ids.set({**_ids.get({}), **clean})
    scope = _scoped.set(True)
    if _tracer is not None and clean:
        _set_span_attributes(clean)
    try:
        yield _ids.get()
    finally:
        _scoped.reset(scope)
        _ids.reset(token)


def to_properties() -> dict[str, str]:
    """Application properties carrying the current ids and trace context to the next message."""
    props = {PROPERTY_PREFIX + k: v for k, v in _ids.get({}).items() if k != "message_id"}
    if _tracer is not None:
        parent = _traceparent()
        if parent:
            props[TRACEPARENT] = parent
    return props


def from_properties(properties: Mapping[str, Any] | None) -> tuple[dict[str, str], str | None]:
    """``(ids, traceparent)`` carried by a received message's application properties."""
    if not properties:
        return {}, None
    ids = {}
    for key, value in properties.items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        if name.startswith(PROPERTY_PREFIX):
            ids[name[len(PROPERTY_PREFIX) :]] = value.decode() if isinstance(value, bytes) else value
    parent = properties.get(TRACEPARENT)
    return _clean(ids), (parent.decode() if isinstance(parent, bytes) else parent) or None


# --------------------------------------------------------------------------- logs


def _install_record_factory() -> None:
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_ihub", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        ids = _ids.get({})
        record.correlation = ids
        for name, value in ids.items():
            setattr(record, name, value)
        return record

    factory._ihub = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class CorrelationFormatter(logging.Formatter):
    """Text lines with the record's correlation ids appended: ``... [event_id=wh-1 run_id=r-2]``."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = getattr(record, "correlation", None)
        if ids:
            text += " [" + " ".join(f"{k}={ids[k]}" for k in CORRELATION_FIELDS if k in ids) + "]"
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, every correlation id, trace ids."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **(getattr(record, "correlation", None) or {}),
        }
        for name in ("otelTraceID", "otelSpanID"):
            if getattr(record, name, None):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _format_handlers(kind: str) -> None:
    """Give the root logger's plain handlers a formatter that writes the ids (``IHUB_LOG_FORMAT``)."""
    for handler in logging.getLogger().handlers:
        current = handler.formatter
        if current is not None and type(current) is not logging.Formatter:
            continue  # someone chose a formatter on purpose
        fmt = current._fmt if current is not None else None
        handler.setFormatter(JsonFormatter() if kind == "json" else CorrelationFormatter(fmt))


# --------------------------------------------------------------------------- configuration


def configure(env: Mapping[str, str] | None = None) -> str:
    """Set up logs, traces and metrics once per process; returns the exporter chosen.

    Args:
        env: Where to read the settings (default ``os.environ``).

    Returns:
        ``azure-monitor``, ``console``, ``otlp`` or ``none``.
    """
    global _configured
    with _lock:
        if _configured:
            return _exporter_name
        _configured = True
        _install_record_factory()
        env = os.environ if env is None else env
        _format_handlers(env.get("IHUB_LOG_FORMAT", "text").strip().lower())
        try:
            name = _configure_exporter(env)
        except Exception:  # telemetry must never stop the app
            log.exception("telemetry exporter could not be configured; continuing without traces")
            name = "none"
        _set_exporter_name(name)
        return name


_exporter_name = "none"


def _set_exporter_name(name: str) -> None:
    global _exporter_name
    _exporter_name = name


def _configure_exporter(env: Mapping[str, str]) -> str:
    global _tracer, _meter
    if env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip():
        from azure.monitor.opentelemetry import configure_azure_monitor

        kwargs: dict[str, Any] = {"logger_name": "ihub"}
        auth = env.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "")
        if "authorization=aad" in auth.lower():
            from azure.identity import ManagedIdentityCredential

            parts = dict(p.split("=", 1) for p in auth.split(";") if "=" in p)
            client_id = parts.get("ClientId") or env.get("AZURE_CLIENT_ID") or None
            kwargs["credential"] = ManagedIdentityCredential(client_id=client_id)
        configure_azure_monitor(**kwargs)
        hub_logger = logging.getLogger("ihub")
        if hub_logger.level == logging.NOTSET:  # the correlated INFO lines (one per message) are exported too
            hub_logger.setLevel(logging.INFO)
        name = "azure-monitor"
    else:
        kind = env.get("IHUB_TRACES_EXPORTER", "").strip().lower()
        if kind in ("", "none"):
            return "none"
        _configure_sdk(kind, env.get("IHUB_TRACES_FILE", "").strip())
        name = kind
    from opentelemetry import metrics, trace

    _tracer = trace.get_tracer("ihub")
    _meter = metrics.get_meter("ihub")
    return name


def _configure_sdk(kind: str, path: str) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "integration-hub"}))
    if kind == "console":
        out = open(path, "a", encoding="utf-8", buffering=1) if path else sys.stderr  # open for the process
        exporter = ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif kind == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        raise ValueError(f"IHUB_TRACES_EXPORTER must be none, console or otlp, not {kind!r}")
    trace.set_tracer_provider(provider)


def configured_exporter() -> str:
    """The exporter :func:`configure` chose (``none`` before it ran)."""
    return _exporter_name


# --------------------------------------------------------------------------- traces


def _traceparent() -> str | None:
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get(TRACEPARENT)


def _set_span_attributes(ids: Mapping[str, str]) -> None:
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({f"ihub.{k}": v for k, v in ids.items()})


@contextmanager
def span(name: str, *, kind: str = "internal", parent: str | None = None, **ids: object) -> Iterator[None]:
    """A span named ``name`` (when tracing is configured) with the ids bound for its duration.

    Args:
        name: Span name, e.g. ``webhook.receive``.
        kind: ``internal``, ``server``, ``consumer`` or ``producer``.
        parent: A W3C ``traceparent`` to continue (a received message's); default the current span.
        **ids: Correlation ids (see :data:`CORRELATION_FIELDS`) bound inside the span.
    """
    with correlated(**ids) as bound:
        if _tracer is None:
            yield
            return
        from opentelemetry import context, trace
        from opentelemetry.propagate import extract

        parent_ctx = extract({TRACEPARENT: parent}) if parent else None
        span_kind = getattr(trace.SpanKind, kind.upper(), trace.SpanKind.INTERNAL)
        attributes = {f"ihub.{k}": v for k, v in bound.items()}
        token = context.attach(parent_ctx) if parent_ctx is not None else None
        try:
            with _tracer.start_as_current_span(name, kind=span_kind, attributes=attributes):
                yield
        finally:
            if token is not None:
                context.detach(token)


@contextmanager
def received(
    queue: str,
    message_id: str,
    properties: Mapping[str, Any] | None,
    *,
    enqueued_at: datetime | None = None,
    delivery_count: int | None = None,
) -> Iterator[None]:
    """Continue the correlation and trace of a received queue message, and record its age."""
    ids, parent = from_properties(properties)
    if enqueued_at is not None:
        when = enqueued_at if enqueued_at.tzinfo else enqueued_at.replace(tzinfo=UTC)
        observe("ihub.queue.age", max(0.0, (datetime.now(UTC) - when).total_seconds()), queue=queue)
    with span(f"queue.process {queue}", kind="consumer", parent=parent, **ids, message_id=message_id):
        if _tracer is not None and delivery_count is not None:
            _set_span_attributes({"delivery_count": str(delivery_count)})
        yield


# --------------------------------------------------------------------------- metrics


def _key(attributes: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in attributes.items() if v is not None))


def _instrument(name: str) -> Any:
    instrument = _instruments.get(name)
    if instrument is None and _meter is not None:
        kind, unit, description = METRICS[name]
        create = _meter.create_histogram if kind == "histogram" else _meter.create_counter
        instrument = _instruments[name] = create(name, unit=unit, description=description)
    return instrument


def count(name: str, value: int = 1, **attributes: object) -> None:
    """Add ``value`` to counter ``name`` (one of :data:`METRICS`) for these attributes."""
    _record(name, float(value), attributes, "add")


def observe(name: str, value: float, **attributes: object) -> None:
    """Record ``value`` in histogram ``name`` (one of :data:`METRICS`)."""
    _record(name, float(value), attributes, "record")


def _record(name: str, value: float, attributes: Mapping[str, object], method: str) -> None:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}: declare it in shared.telemetry.METRICS")
    key = (name, _key(attributes))
    with _lock:
        total = _totals.get(key)
        if total is None:
            total = _totals[key] = [0.0, 0.0, 0.0]  # count, sum, max
        total[0] += 1
        total[1] += value
        total[2] = max(total[2], value)
    if _meter is not None:
        try:
            getattr(_instrument(name), method)(value, attributes=dict(_key(attributes)))
        except Exception:  # a metric must never fail the work
            log.debug("metric %s not recorded", name, exc_info=True)


def snapshot() -> dict[str, dict[str, float]]:
    """In-process totals: ``{"name{a=1,b=2}": {"count", "sum", "max"}}``."""
    with _lock:
        return {
            name + "{" + ",".join(f"{k}={v}" for k, v in attrs) + "}": {"count": t[0], "sum": t[1], "max": t[2]}
            for (name, attrs), t in _totals.items()
        }


def total(name: str, **attributes: object) -> float:
    """Sum of ``name`` over every attribute set that includes ``attributes``."""
    wanted = set(_key(attributes))
    with _lock:
        return sum(t[1] for (n, attrs), t in _totals.items() if n == name and wanted <= set(attrs))


def reset_metrics() -> None:
    """Forget the in-process totals (tests)."""
    with _lock:
        _totals.clear()


def webhook_outcome(provider: str, status: int, body: bytes) -> None:
    """Count a webhook answer as accepted (new/duplicate/answered) or rejected (by its error code).

    The event id of a stored delivery is bound, so the lines logged after it carry it.
    """
    info: dict[str, Any] = {}
    if body[:1] == b"{" and len(body) < 4096:
        try:
            info = json.loads(body)
        except ValueError:
            info = {}
    if status < 400:
        bind(event_id=info.get("event_id"))
        count("ihub.webhooks.accepted", provider=provider, status=str(info.get("status") or "answered"))
        log.info("webhook %s answered %d (%s)", provider, status, info.get("status") or "answered")
    else:
        reason = str(info.get("error") or status)
        count("ihub.webhooks.rejected", provider=provider, reason=reason)
        log.info("webhook %s refused %d (%s)", provider, status, reason)


# --------------------------------------------------------------------------- port wrappers


class MeteredEvents:
    """An event publisher that turns the hub's own domain events into metrics, then publishes them.

    ``IntegrationHub.DataSynced`` gives ``ihub.records.created/updated/deleted`` and ``ihub.sync.lag``
    (the run's start, read with ``run_started``, to the event).

    Args:
        inner: The real publisher.
        run_started: ``(tenant_id, run_id) -> started_at`` (one point read per finished run).
    """

    def __init__(self, inner: Any, run_started: Any = None) -> None:
        self._inner = inner
        self._run_started = run_started

    def publish(self, events: Any) -> None:
        for event in events:
            if event.event_type == "IntegrationHub.DataSynced":
                self._data_synced(event.data, event.event_time)
        self._inner.publish(events)

    def _data_synced(self, data: Mapping[str, Any], at: datetime) -> None:
        attrs = {"provider": data.get("provider"), "stream": data.get("stream")}
        for what in ("created", "updated", "deleted"):
            if data.get(f"records_{what}"):
                count(f"ihub.records.{what}", int(data[f"records_{what}"]), **attrs)
        if self._run_started is None:
            return
        try:
            started = self._run_started(data.get("tenant_id"), data.get("run_id"))
        except Exception:  # a metric must never fail the work
            log.debug("run start of %s not read", data.get("run_id"), exc_info=True)
            return
        if started is not None:
            observe("ihub.sync.lag", max(0.0, (at - started).total_seconds()), **attrs)

    def close(self) -> None:
        self._inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
