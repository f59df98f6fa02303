"""``GET /api/health``: is each port's backend reachable? Cheap, anonymous, no tenant data.

Each port gets one probe, the cheapest call its backend answers that proves the backend is
reachable *with the app's credentials* (a missing role shows as ``forbidden``):

- documents: a point read of a document that never exists (404 is the healthy answer);
- secrets: a read of a secret name that never exists (not found is healthy);
- blobs: an existence check of a blob that never exists;
- queue and events: the Azure senders have no read call, so their probe opens a TCP
  connection to the namespace or topic host (reachable, not authorised); the embedded ones
  count their own tables;
- rate limits, when the budgets are in Redis: a TCP connection to the cache.

Probes run at once, each bounded by :data:`PROBE_TIMEOUT_SECONDS` (then ``timeout``). The report
names only the port, its backend kind, ``ok``/``unreachable``/``forbidden``/``timeout``, the error
*class* and the probe's milliseconds, never a message (which could quote a name), and is cached for
:data:`CACHE_SECONDS` so a load balancer polling it costs nothing.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import urlsplit

from shared.errors import ConfigurationError

CACHE_SECONDS = 10.0
PROBE_ID = "ihub-health-probe"
CONNECT_TIMEOUT_SECONDS = 3.0
PROBE_TIMEOUT_SECONDS = 5.0

_cache: tuple[float, int, dict[str, Any]] | None = None
_lock = threading.Lock()


def _tcp(url: str, default_port: int) -> Callable[[], None]:
    parts = urlsplit(url if "//" in url else f"//{url}")
    host, port = parts.hostname or "", parts.port or default_port

    def probe() -> None:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_SECONDS):
            pass

    return probe


def _probes(hub: Any) -> dict[str, tuple[str, Callable[[], None]]]:
    settings, ports = hub.settings, hub.ports
    first_container = next(iter(settings.containers.values()))

    def documents() -> None:
        ports.documents.read(first_container, PROBE_ID, PROBE_ID)

    def secrets() -> None:
        from shared.ports.secrets import SecretNotFound

        try:
            ports.secrets.get(PROBE_ID)
        except SecretNotFound:
            pass

    def blobs() -> None:
        ports.blobs.exists(settings.blob_container_webhooks, PROBE_ID)

    probes: dict[str, tuple[str, Callable[[], None]]] = {
        "documents": (settings.document_backend, documents),
        "secrets": (settings.secret_backend, secrets),
        "blobs": (settings.blob_backend, blobs),
    }
    if settings.queue_backend == "servicebus":
        target = settings.servicebus_namespace or "servicebus.invalid"
        probes["queue"] = ("servicebus", _tcp(target, 5671))
    else:
        probes["queue"] = ("sqlite", lambda: ports.queue.active_count(settings.sync_inbound_queue))
    if settings.event_backend == "eventgrid":
        probes["events"] = ("eventgrid", _tcp(settings.eventgrid_topic_endpoint or "eventgrid.invalid", 443))
    else:
        probes["events"] = ("local", lambda: ports.events.pending(limit=1))
    if getattr(settings, "rate_limit_backend", "memory") == "redis" and getattr(settings, "redis_url", None):
        url = settings.redis_url.get_secret_value()  # only its host and port are used
        probes["ratelimit"] = ("redis", _tcp(url, 6380 if url.startswith("rediss:") else 6379))
    return probes


def _run(probe: Callable[[], None]) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        probe()
        status, error = "ok", None
    except ConfigurationError as exc:  # the backend answered: the identity lacks a role, or a setting is missing
        status, error = "forbidden", type(exc).__name__
    except Exception as exc:  # unreachable, timed out, refused
        status, error = "unreachable", type(exc).__name__
    report: dict[str, Any] = {"status": status, "ms": round((time.perf_counter() - start) * 1000, 1)}
    if error:
        report["error"] = error
    return report


def _run_all(probes: dict[str, tuple[str, Callable[[], None]]]) -> dict[str, dict[str, Any]]:
    """Every probe at once, each bounded by :data:`PROBE_TIMEOUT_SECONDS` (a hung backend is ``timeout``)."""
    pool = ThreadPoolExecutor(max_workers=len(probes), thread_name_prefix="health")
    try:
        futures = {name: pool.submit(_run, probe) for name, (_, probe) in probes.items()}
        wait(futures.values(), timeout=PROBE_TIMEOUT_SECONDS)
        ports: dict[str, dict[str, Any]] = {}
        for name, future in futures.items():
            result = future.result() if future.done() else {"status": "timeout", "ms": PROBE_TIMEOUT_SECONDS * 1000}
            ports[name] = {"backend": probes[name][0], **result}
        return ports
    finally:
        pool.shutdown(wait=False)  # a hung probe's thread ends with its own timeout; nobody waits for it


def health_report(
    hub_factory: Callable[[], Any], *, now: Callable[[], float] = time.monotonic
) -> tuple[int, dict[str, Any]]:
    """``(HTTP status, body)``: 200 when every port is ``ok``, else 503; cached for :data:`CACHE_SECONDS`.

    Args:
        hub_factory: Returns the hub (``shared.runtime.get_hub``); a failure to build it is reported
            as ``{"status": "error", "error": <class>}`` (a bad setting, say), not raised.
        now: Clock for the cache.
    """
    global _cache
    with _lock:
        if _cache is not None and now() - _cache[0] < CACHE_SECONDS:
            return _cache[1], _cache[2]
        try:
            hub = hub_factory()
        except Exception as exc:
            body: dict[str, Any] = {"status": "error", "error": type(exc).__name__, "ports": {}}
            _cache = (now(), 503, body)
            return 503, body
        ports = _run_all(_probes(hub))
        healthy = all(p["status"] == "ok" for p in ports.values())
        body = {"status": "ok" if healthy else "degraded", "ports": ports}
        from shared import telemetry

        body["telemetry"] = telemetry.configured_exporter()
        _cache = (now(), 200 if healthy else 503, body)
        return _cache[1], body


def http_health(req: Any) -> Any:
    """The ``Health`` function's answer: JSON, ``Cache-Control: no-store``."""
    import json

    import azure.functions as func

    from shared.runtime import get_hub

    status, body = health_report(get_hub)
    return func.HttpResponse(
        json.dumps(body), status_code=status, mimetype="application/json", headers={"Cache-Control": "no-store"}
    )


def reset_cache() -> None:
    """Forget the cached report (tests)."""
    global _cache
    with _lock:
        _cache = None
