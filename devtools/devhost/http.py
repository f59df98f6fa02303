"""The dev host's HTTP front end: the app's HTTP functions on ``http://host:port/api/<route>``.

Requests become real ``azure.functions.HttpRequest`` objects and the returned
``azure.functions.HttpResponse`` is written back, so a function behaves as under the Functions
host. Authorization levels are not enforced: like Core Tools running locally, ``FUNCTION``
and ``ADMIN`` routes accept requests without a key (``?code=`` / ``x-functions-key`` are ignored).

Answers that do not come from a function are JSON ``{"error": {"code": ..., "message": ...}}``:
404 when no route matches, 405 (with ``Allow``) when the route exists for other methods, 413
when the body is over the limit (100 MB by default, the Functions host limit) and 500 when the
function raised (the traceback goes to the log, not to the client).

``POST /admin/functions/<name>`` runs a non-HTTP function now, like the Functions host admin
API (the dev host supports it for timer functions); it answers 202.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from devtools.devhost.bindings import FunctionSpec
from devtools.devhost.routes import Route, compile_route

__all__ = ["DEFAULT_MAX_BODY_BYTES", "HttpFrontend", "HttpRouteTable"]

DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024
_ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")

Invoke = Callable[..., Any]
AdminTrigger = Callable[[str], int]


@dataclass(frozen=True)
class _Entry:
    spec: FunctionSpec
    route: Route
    methods: frozenset[str] | None  # None: every method


class HttpRouteTable:
    """The HTTP functions of an app, ordered by route specificity.

    Args:
        specs: The app's functions; only HTTP-triggered ones are kept.
    """

    def __init__(self, specs: Iterable[FunctionSpec]) -> None:
        entries: list[_Entry] = []
        for spec in specs:
            if spec.trigger_type != "httpTrigger":
                continue
            template = spec.trigger.get("route")
            methods = spec.trigger.get("methods")
            entries.append(
                _Entry(
                    spec=spec,
                    route=compile_route(spec.name if template is None else str(template)),
                    methods=frozenset(str(m).upper() for m in methods) if methods else None,
                )
            )
        self.entries = sorted(entries, key=lambda entry: entry.route.rank)

    def find(self, method: str, path: str) -> tuple[FunctionSpec, dict[str, str]] | list[str] | None:
        """Find the function for a request.

        Args:
            method: The HTTP method, upper case.
            path: The path after the route prefix, still URL-encoded (``"items/42"``).

        Returns:
            ``(spec, route_params)`` on a match; the allowed methods when the path matches only
            for other methods; None when no route matches.
        """
        allowed: set[str] = set()
        for entry in self.entries:
            params = entry.route.match(path)
            if params is None:
                continue
            if entry.methods is None or method in entry.methods:
                return entry.spec, params
            allowed |= entry.methods
        return sorted(allowed) if allowed else None


class _BodyTooLarge(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    frontend: HttpFrontend


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "IntegrationHubDevHost"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib access log; the front end logs one line per request itself."""

    def handle_expect_100(self) -> bool:
        """Refuse an over-limit body before the client sends it."""
        if self._content_length() > self.server.frontend.max_body_bytes:
            self.close_connection = True
            self._send_json(413, "payload_too_large", self._too_large_message())
            return False
        return super().handle_expect_100()

    def _handle(self) -> None:
        started = time.perf_counter()
        path = urlsplit(self.path).path
        status = 500
        try:
            status = self._dispatch()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            status = 499  # the client went away (nginx's code for it)
        except Exception:
            self.server.frontend.log.exception("dev host failed to answer %s %s", self.command, path)
            self.close_connection = True
            self._send_json(500, "internal_error", "The dev host failed while answering the request.")
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            self.server.frontend.log.info("%s %s %d %.0fms", self.command, path, status, elapsed)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_TRACE = _handle

    def _dispatch(self) -> int:
        frontend = self.server.frontend
        url = urlsplit(self.path)
        if url.path.startswith("/admin/functions/") and self.command == "POST":
            self._discard_body()
            status = frontend.admin_trigger(url.path[len("/admin/functions/") :])
            messages = {202: "accepted", 404: "no such function", 400: "not a timer function"}
            return self._send_json(status, "admin", messages.get(status, ""))
        prefix = frontend.route_prefix
        if url.path != prefix.rstrip("/") and not url.path.startswith(prefix):
            return self._no_route()
        found = frontend.routes.find(self.command, url.path[len(prefix) :])
        if found is None:
            return self._no_route()
        if isinstance(found, list):
            self._discard_body()
            message = f"{self.command} is not allowed on {url.path}; allowed: {', '.join(found)}"
            return self._send_json(405, "method_not_allowed", message, [("Allow", ", ".join(found))])
        spec, route_params = found
        try:
            body = self._read_body()
        except _BodyTooLarge:
            self.close_connection = True
            return self._send_json(413, "payload_too_large", self._too_large_message())
        request = func.HttpRequest(
            self.command,
            f"http://{self.headers.get('Host') or frontend.authority}{self.path}",
            headers=_joined(self.headers.items()),
            params=_joined(parse_qsl(url.query, keep_blank_values=True), ","),
            route_params=route_params,
            body=body,
        )
        try:
            result = frontend.invoke(
                spec, reason="This function was programmatically called via the host APIs.", **{spec.arg_name: request}
            )
        except Exception as exc:
            message = f"Exception while executing function: Functions.{spec.name} ({type(exc).__name__})"
            return self._send_json(500, "function_failed", message)
        return self._send_result(spec, result)

    def _no_route(self) -> int:
        self._discard_body()
        return self._send_json(404, "not_found", f"No function route matches {self.command} {urlsplit(self.path).path}")

    def _content_length(self) -> int:
        try:
            return max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            return 0

    def _too_large_message(self) -> str:
        return f"Request body is larger than the limit of {self.server.frontend.max_body_bytes} bytes."

    def _read_body(self) -> bytes:
        limit = self.server.frontend.max_body_bytes
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > limit:
                    raise _BodyTooLarge
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = self._content_length()
        if length > limit:
            raise _BodyTooLarge
        return self.rfile.read(length) if length else b""

    def _discard_body(self) -> None:
        if self._content_length() or self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # leave the unread body with the closing connection

    def _send_result(self, spec: FunctionSpec, result: Any) -> int:
        if isinstance(result, func.HttpResponse):
            headers = [(str(k), str(v)) for k, v in result.headers.items()]
            if not any(k.lower() == "content-type" for k, _ in headers):
                headers.append(("Content-Type", f"{result.mimetype}; charset={result.charset}"))
            return self._send(int(result.status_code), headers, result.get_body())
        if result is None:
            return self._send(204, [], b"")
        if isinstance(result, str | bytes):
            body = result.encode("utf-8") if isinstance(result, str) else result
            return self._send(200, [("Content-Type", "text/plain; charset=utf-8")], body)
        try:
            body = json.dumps(result).encode("utf-8")
        except TypeError:
            self.server.frontend.log.error(
                "function %s returned %s, which is not an HttpResponse", spec.name, type(result).__name__
            )
            return self._send_json(500, "function_failed", f"Functions.{spec.name} returned an unsupported value")
        return self._send(200, [("Content-Type", "application/json; charset=utf-8")], body)

    def _send_json(self, status: int, code: str, message: str, headers: list[tuple[str, str]] | None = None) -> int:
        body = json.dumps({"error": {"code": code, "message": message}}).encode("utf-8")
        if status < 400:
            body = json.dumps({"status": code, "message": message}).encode("utf-8")
        return self._send(status, [("Content-Type", "application/json; charset=utf-8"), *(headers or [])], body)

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> int:
        self.send_response(status)
        for key, value in headers:
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)
        return status


def _joined(items: Iterable[tuple[str, str]], separator: str = ", ") -> dict[str, str]:
    joined: dict[str, str] = {}
    for key, value in items:
        joined[key] = f"{joined[key]}{separator}{value}" if key in joined else value
    return joined


class HttpFrontend:
    """A threading HTTP server for the app's HTTP functions.

    Args:
        routes: The HTTP route table.
        invoke: The host's invoke path, ``invoke(spec, reason=..., **kwargs)``.
        admin_trigger: Runs a non-HTTP function by name, returning the HTTP status to answer.
        log: Request log (one line per request: method, path, status, milliseconds).
        max_body_bytes: Largest accepted request body.
        route_prefix: The route prefix (``api`` like ``host.json`` default).
    """

    def __init__(
        self,
        routes: HttpRouteTable,
        *,
        invoke: Invoke,
        admin_trigger: AdminTrigger,
        log: logging.Logger,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        route_prefix: str = "api",
    ) -> None:
        self.routes = routes
        self.invoke = invoke
        self.admin_trigger = admin_trigger
        self.log = log
        self.max_body_bytes = max_body_bytes
        self.route_prefix = "/" + f"{route_prefix.strip('/')}/".lstrip("/")
        self._server: _Server | None = None
        self._authority: str | None = None
        self._thread: threading.Thread | None = None

    @property
    def authority(self) -> str:
        """``host:port`` the server is bound to (the real port when 0 was asked)."""
        if self._authority is None:
            raise RuntimeError("the HTTP front end is not started")
        return self._authority

    def start(self, host: str, port: int) -> None:
        """Bind and serve in a background thread.

        Args:
            host: Interface to bind.
            port: Port, 0 for any free port.
        """
        server = (_Server6 if ":" in host else _Server)((host, port), _Handler)
        server.frontend = self
        self._server = server
        bound_host, bound_port = str(server.server_address[0]), server.server_address[1]
        self._authority = f"[{bound_host}]:{bound_port}" if ":" in bound_host else f"{bound_host}:{bound_port}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="devhost-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting requests (requests being handled finish on their own threads)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
