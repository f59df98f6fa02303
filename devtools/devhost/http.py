"""The dev host's HTTP front end: the app's HTTP functions on ``http://host:port/api/<route>``.

The server is werkzeug's threaded WSGI server (``werkzeug.serving.make_server``) and routing is
``werkzeug.routing`` (see :mod:`devtools.devhost.routes`). Requests become real
``azure.functions.HttpRequest`` objects and the returned ``azure.functions.HttpResponse`` is
written back, so a function behaves as under the Functions host. Authorization levels are not
enforced: like Core Tools running locally, ``FUNCTION`` and ``ADMIN`` routes accept requests
without a key (``?code=`` / ``x-functions-key`` are ignored).

Every answer that does not come from a function is JSON ``{"error": {"code": ..., "message": ...}}``:

- 400 for malformed framing: a bad request line or header block, an invalid method token, a
  ``Content-Length`` that is not one non-negative integer, a ``Transfer-Encoding`` whose final
  coding is not ``chunked`` (RFC 9112 §6.1), a malformed chunk (bad size such as ``zz``, missing
  CRLF; werkzeug's dechunker also refuses chunk extensions and trailers), a body shorter than
  declared, an unsupported HTTP version;
- 404 when no route matches, 405 (with ``Allow``) when the route exists for other methods;
  methods nobody registered (``FOO``, ``PROPFIND``) get the same 404/405, never an HTML page;
- 408 when the client stops sending mid-request for ``read_timeout`` seconds (a declared
  ``Content-Length`` larger than what arrives); a client idle before its request line is dropped;
- 413 when the body is over the limit (100 MB by default, the Functions host limit), also
  before ``100 Continue``;
- 431 / 414 for header lines or request lines over http.server's 64 KiB limits;
- 500 when the function raised or timed out (the traceback goes to the log, not to the client).

werkzeug's server closes the connection after every response (``Connection: close``); clients
reconnect transparently. That also means a request can never be misread as part of the next one.

``POST /admin/functions/<name>`` runs a non-HTTP function now, like the Functions host admin
API (the dev host supports it for timer functions); it answers 202.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from werkzeug.serving import BaseWSGIServer, DechunkedInput, WSGIRequestHandler, make_server

from devtools.devhost.bindings import HTTP_TRIGGER, FunctionSpec
from devtools.devhost.routes import Route, RouteMatch, RouteTable, compile_route

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_READ_TIMEOUT", "HttpFrontend", "HttpRouteTable"]

DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024
DEFAULT_READ_TIMEOUT = 30.0
_READ_CHUNK = 64 * 1024
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_JSON = "application/json; charset=utf-8"
_ERROR_CODES = {
    400: "bad_request",
    408: "request_timeout",
    413: "payload_too_large",
    414: "uri_too_long",
    431: "request_header_fields_too_large",
}
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})

Invoke = Callable[..., Any]
AdminTrigger = Callable[[str], int]
StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class _Entry:
    spec: FunctionSpec
    route: Route
    methods: frozenset[str] | None  # None: every method


class HttpRouteTable:
    """The HTTP functions of an app and their routes.

    Args:
        specs: The app's functions; only HTTP-triggered ones are kept. A function without a
            ``route`` is served under its name, as the host does.
    """

    def __init__(self, specs: Iterable[FunctionSpec]) -> None:
        self.entries: list[_Entry] = []
        for index, spec in enumerate(s for s in specs if s.trigger_type == HTTP_TRIGGER):
            template = spec.trigger.get("route")
            methods = spec.trigger.get("methods")
            self.entries.append(
                _Entry(
                    spec=spec,
                    route=compile_route(str(template) if template else spec.name, key=f"f{index}"),
                    methods=frozenset(str(m).upper() for m in methods) if methods else None,
                )
            )
        self._table = RouteTable(
            (entry.spec, entry.route, sorted(entry.methods) if entry.methods else None) for entry in self.entries
        )

    def find(self, method: str, path: str) -> tuple[FunctionSpec, dict[str, str]] | list[str] | None:
        """Find the function for a request.

        Args:
            method: The HTTP method, upper case.
            path: The path after the route prefix, still URL-encoded (``"items/42"``).

        Returns:
            ``(spec, route_params)`` on a match; the allowed methods when the path matches only
            for other methods; None when no route matches.
        """
        found = self._table.find(method, path)
        if isinstance(found, RouteMatch):
            return found.target, found.params
        return found


class _Reject(Exception):
    """A request the front end answers itself (status, error code, message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode("utf-8")


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


class _Handler(WSGIRequestHandler):
    """werkzeug's request handler with a read timeout, JSON errors and the raw header list kept."""

    server: _Server

    @property
    def timeout(self) -> float | None:  # type: ignore[override]
        """Socket read timeout (``StreamRequestHandler.setup`` applies it to the connection)."""
        return self.server.frontend.read_timeout

    def make_environ(self) -> dict[str, Any]:
        """werkzeug's environ plus the header lines as received (names, order, duplicates)."""
        environ = super().make_environ()
        environ["devhost.headers"] = list(self.headers.items())
        environ["devhost.content_lengths"] = self.headers.get_all("Content-Length") or []
        return environ

    def parse_request(self) -> bool:
        """http.server's parsing, minus HTTP/0.9 (Kestrel does not speak it either)."""
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":
            self.send_error(400, "HTTP/0.9 requests are not supported")
            return False
        return True

    def handle_expect_100(self) -> bool:
        """Refuse an over-limit body before ``100 Continue`` is sent."""
        declared = (self.headers.get("Content-Length") or "").strip()
        if declared.isascii() and declared.isdigit() and int(declared) > self.server.frontend.max_body_bytes:
            self.send_error(413, self.server.frontend.too_large_message())
            return False
        return bool(super().handle_expect_100())

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer a request http.server could not parse, as JSON and always 4xx."""
        status = code if 400 <= code < 500 else 400  # e.g. 505 for "HTTP/2.0": still the client's framing
        text = message or HTTPStatus(code).phrase
        if code == 505:
            text = f"HTTP version not supported: {message or ''}".strip()
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.1"  # answer an unparsable line with a status line, not a bare body
        self.close_connection = True
        body = _error_body(_ERROR_CODES.get(status, "bad_request"), text)
        try:
            self.send_response(status, HTTPStatus(status).phrase)
            self.send_header("Content-Type", _JSON)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if getattr(self, "command", None) != "HEAD":
                self.wfile.write(body)
        except OSError:
            return
        self.server.frontend.log.info("%s - %d (%s)", getattr(self, "command", None) or "-", status, text)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silence werkzeug's access log; the front end logs one line per request itself."""

    def log_error(self, format: str, *args: Any) -> None:
        """Route http.server's error notes (e.g. read timeouts) to the dev host log at debug level."""
        self.server.frontend.log.debug("http: " + format, *args)

    def log_message(self, format: str, *args: Any) -> None:
        """Route http.server's notes to the dev host log at debug level."""
        self.server.frontend.log.debug("http: " + format, *args)


class _Server(BaseWSGIServer):
    frontend: HttpFrontend


def _joined(items: Iterable[tuple[str, str]], separator: str = ", ") -> dict[str, str]:
    joined: dict[str, str] = {}
    for key, value in items:
        joined[key] = f"{joined[key]}{separator}{value}" if key in joined else value
    return joined


class HttpFrontend:
    """A threaded werkzeug server for the app's HTTP functions.

    Args:
        routes: The HTTP route table.
        invoke: The host's invoke path, ``invoke(spec, reason=..., **kwargs)``.
        admin_trigger: Runs a non-HTTP function by name, returning the HTTP status to answer.
        log: Request log (one line per request: method, path, status, milliseconds).
        max_body_bytes: Largest accepted request body.
        route_prefix: The route prefix (``api`` like ``host.json`` default; ``""`` for none).
        read_timeout: Seconds a connection may stay silent while a request is being read.
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
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        self.routes = routes
        self.invoke = invoke
        self.admin_trigger = admin_trigger
        self.log = log
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout
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

    def too_large_message(self) -> str:
        """The 413 message."""
        return f"Request body is larger than the limit of {self.max_body_bytes} bytes."

    def start(self, host: str, port: int) -> None:
        """Bind and serve in a background thread.

        Args:
            host: Interface to bind.
            port: Port, 0 for any free port.

        Raises:
            OSError: The port is in use.
        """
        server = make_server(host, port, self.wsgi_app, threaded=True, request_handler=_Handler)
        assert isinstance(server, BaseWSGIServer)
        server.frontend = self  # type: ignore[attr-defined]
        self._server = server  # type: ignore[assignment]
        bound_host, bound_port = server.socket.getsockname()[:2]
        self._authority = f"[{bound_host}]:{bound_port}" if ":" in str(bound_host) else f"{bound_host}:{bound_port}"
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

    # --- the WSGI application -------------------------------------------------------------------

    def wsgi_app(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        """Answer one request (the WSGI entry point werkzeug's server calls).

        Args:
            environ: The WSGI environ, with ``devhost.headers`` added by the handler.
            start_response: The WSGI ``start_response``.

        Returns:
            The response body as one chunk (empty for ``HEAD``, 204 and 304).
        """
        started = time.perf_counter()
        method = str(environ.get("REQUEST_METHOD", ""))
        raw_target = str(environ.get("RAW_URI") or environ.get("PATH_INFO") or "/")
        path = urlsplit(raw_target).path
        try:
            status, headers, body = self._answer(environ, method, raw_target)
        except _Reject as reject:
            status, headers, body = reject.status, [("Content-Type", _JSON)], _error_body(reject.code, reject.message)
        except Exception:
            self.log.exception("dev host failed to answer %s %s", method, path)
            status, headers = 500, [("Content-Type", _JSON)]
            body = _error_body("internal_error", "The dev host failed while answering the request.")
        headers = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
        headers.append(("Content-Length", str(len(body))))
        start_response(_status_line(status), headers)
        self.log.info("%s %s %d %.0fms", method, path, status, (time.perf_counter() - started) * 1000)
        if method == "HEAD" or status in (204, 304) or status < 200:
            return []
        return [body]

    def _answer(
        self, environ: dict[str, Any], method: str, raw_target: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if not _TOKEN.fullmatch(method):
            raise _Reject(400, "bad_request", f"Invalid request method {method!r}")
        chunked = self._check_framing(environ)
        url = urlsplit(raw_target)
        if url.path.startswith("/admin/functions/") and method == "POST":
            status = self.admin_trigger(url.path[len("/admin/functions/") :])
            messages = {202: "accepted", 404: "no such function", 400: "not a timer function"}
            if status >= 400:
                raise _Reject(status, "admin", messages.get(status, ""))
            body = json.dumps({"status": "admin", "message": messages.get(status, "")}).encode("utf-8")
            return status, [("Content-Type", _JSON)], body
        prefix = self.route_prefix
        if url.path != prefix.rstrip("/") and not url.path.startswith(prefix):
            raise _Reject(404, "not_found", f"No function route matches {method} {url.path}")
        found = self.routes.find(method, url.path[len(prefix) :])
        if found is None:
            raise _Reject(404, "not_found", f"No function route matches {method} {url.path}")
        if isinstance(found, list):
            message = f"{method} is not allowed on {url.path}; allowed: {', '.join(found)}"
            body = _error_body("method_not_allowed", message)
            return 405, [("Content-Type", _JSON), ("Allow", ", ".join(found))], body
        spec, route_params = found
        body = self._read_body(environ, chunked)
        raw_headers: list[tuple[str, str]] = environ.get("devhost.headers", [])
        host = next((v for k, v in raw_headers if k.lower() == "host"), None) or self.authority
        request = func.HttpRequest(
            method,
            raw_target if url.scheme else f"http://{host}{raw_target}",
            headers=_joined(raw_headers),
            params=_joined(parse_qsl(url.query, keep_blank_values=True), ","),
            route_params=route_params,
            body=body,
        )
        reason = "This function was programmatically called via the host APIs."
        try:
            result = self.invoke(spec, reason=reason, **{spec.arg_name: request})
        except Exception as exc:
            message = f"Exception while executing function: Functions.{spec.name} ({type(exc).__name__})"
            raise _Reject(500, "function_failed", message) from None
        return self._result(spec, result)

    def _check_framing(self, environ: dict[str, Any]) -> bool:
        """Validate the body framing headers; True when the body is chunked."""
        encoding = str(environ.get("HTTP_TRANSFER_ENCODING") or "")
        if encoding.strip():
            codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
            if not codings or codings[-1] != "chunked" or codings.count("chunked") > 1:
                raise _Reject(
                    400, "bad_request", f"Transfer-Encoding {encoding!r}: the final coding must be 'chunked' (once)"
                )
            return True  # Content-Length, if any, is ignored (RFC 9112 §6.3); the connection closes after
        lengths = {v.strip() for v in environ.get("devhost.content_lengths", [])}
        if len(lengths) > 1:
            raise _Reject(400, "bad_request", f"Conflicting Content-Length headers: {sorted(lengths)}")
        declared = next(iter(lengths), "")
        if declared and not (declared.isascii() and declared.isdigit()):
            raise _Reject(400, "bad_request", f"Content-Length {declared!r} is not a non-negative integer")
        if declared and int(declared) > self.max_body_bytes:
            raise _Reject(413, "payload_too_large", self.too_large_message())
        return False

    def _read_body(self, environ: dict[str, Any], chunked: bool) -> bytes:
        stream = environ["wsgi.input"]
        if chunked and not isinstance(stream, DechunkedInput):
            stream = DechunkedInput(stream)  # werkzeug only dechunks an exact lower-case "chunked"
        parts: list[bytes] = []
        total = 0
        try:
            if chunked:
                while True:
                    buffer = bytearray(_READ_CHUNK)
                    count = stream.readinto(buffer)
                    if not count:
                        return b"".join(parts)
                    total += count
                    if total > self.max_body_bytes:
                        raise _Reject(413, "payload_too_large", self.too_large_message())
                    parts.append(bytes(buffer[:count]))
            remaining = int(environ.get("CONTENT_LENGTH") or 0)
            while remaining:
                data = stream.read(min(remaining, _READ_CHUNK))
                if not data:
                    raise _Reject(400, "bad_request", "The request body is shorter than its Content-Length")
                parts.append(data)
                remaining -= len(data)
            return b"".join(parts)
        except TimeoutError:
            raise _Reject(
                408, "request_timeout", f"The request body did not arrive within {self.read_timeout:g} seconds"
            ) from None
        except OSError as exc:  # werkzeug's dechunker: "Invalid chunk header", "Missing chunk terminating newline"
            raise _Reject(400, "bad_request", f"Malformed chunked body: {exc}") from None

    def _result(self, spec: FunctionSpec, result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
        if isinstance(result, func.HttpResponse):
            headers = [(str(k), str(v)) for k, v in result.headers.items()]
            if not any(k.lower() == "content-type" for k, _ in headers):
                headers.append(("Content-Type", f"{result.mimetype}; charset={result.charset}"))
            return int(result.status_code), headers, result.get_body()
        if result is None:
            return 204, [], b""
        if isinstance(result, str | bytes):
            body = result.encode("utf-8") if isinstance(result, str) else result
            return 200, [("Content-Type", "text/plain; charset=utf-8")], body
        try:
            body = json.dumps(result).encode("utf-8")
        except TypeError:
            self.log.error("function %s returned %s, which is not an HttpResponse", spec.name, type(result).__name__)
            raise _Reject(500, "function_failed", f"Functions.{spec.name} returned an unsupported value") from None
        return 200, [("Content-Type", _JSON)], body
