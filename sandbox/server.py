"""A small reusable loopback HTTP server that provider sandboxes build on.

The server is standard library only (:class:`http.server.ThreadingHTTPServer`, daemon threads),
bound to ``127.0.0.1``; port ``0`` picks a free port. A subclass registers routes (method + path
regex, named groups become ``request.params``) whose handlers take a :class:`Request` and return
a :class:`Response`, e.g. ``self.route("GET", r"/items/(?P<id>\\d+)", self._get_item)``, and may
override :meth:`SandboxServer.handle` to wrap :meth:`SandboxServer.dispatch` with auth or limits.
Shared helpers: :class:`RateWindow` (a quota per window), :func:`page_url` (Link-header URLs),
:func:`post_webhook` (sends a delivery with httpx) and :func:`run_until_signal` (CLI entry).
"""

from __future__ import annotations

import json
import math
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

Handler = Callable[["Request"], "Response"]

LOOPBACK = "127.0.0.1"


class Headers(Mapping[str, str]):
    """A read-only, case-insensitive mapping of HTTP header names to values (last one wins)."""

    def __init__(self, items: Mapping[str, str] | list[tuple[str, str]] | None = None) -> None:
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items or [])
        self._data: dict[str, str] = {name.lower(): value for name, value in pairs}

    def __getitem__(self, name: str) -> str:
        return self._data[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Headers({self._data!r})"


@dataclass
class Request:
    """One parsed HTTP request.

    Attributes:
        method: Upper-case HTTP method.
        path: The path without the query string.
        query: Query parameters (the first value wins when a name repeats).
        headers: Case-insensitive request headers.
        body: The raw request body.
        target: The request target exactly as received (path plus ``?query``).
        query_items: Every query pair in its original order.
        params: Named groups of the route pattern that matched.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    body: bytes = b""
    target: str = ""
    query_items: list[tuple[str, str]] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """Decode the body as JSON.

        Returns:
            The decoded value, or ``None`` for an empty body.

        Raises:
            ValueError: The body is not valid UTF-8 JSON.
        """
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ValueError(f"body is not UTF-8: {exc}") from exc

    def json_object(self, *, allow_empty: bool = False) -> dict[str, Any]:
        """Decode the body as a JSON object (``{}`` for an empty body when ``allow_empty``).

        Raises:
            ValueError: The body is not a JSON object.
        """
        data = self.json()
        if data is None and allow_empty:
            return {}
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")
        return data


@dataclass
class Response:
    """An HTTP response produced by a route handler."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def json_response(status: int, data: Any, headers: Mapping[str, str] | None = None) -> Response:
    """Build a JSON response.

    Args:
        status: HTTP status code.
        data: Any JSON-serialisable value.
        headers: Extra headers to send.

    Returns:
        A response with ``Content-Type: application/json; charset=utf-8``.
    """
    all_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    return Response(status, all_headers, json.dumps(data).encode("utf-8"))


def page_url(base_url: str, path: str, query_items: list[tuple[str, str]], name: str, value: int) -> str:
    """Rebuild an absolute URL with every original query pair, replacing (or appending) one parameter.

    Args:
        base_url: ``scheme://host:port`` of the server.
        path: The request path.
        query_items: The original query pairs, in order.
        name: The parameter to set, e.g. ``page``.
        value: Its new value.

    Returns:
        The absolute URL.
    """
    items = [(k, v) for k, v in query_items if k != name]
    position = next((i for i, (k, _) in enumerate(query_items) if k == name), len(items))
    items.insert(min(position, len(items)), (name, str(value)))
    return f"{base_url}{path}?{urlencode(items)}"


class _RequestHandler(BaseHTTPRequestHandler):
    """Adapts ``http.server`` to :meth:`SandboxServer.handle`."""

    protocol_version = "HTTP/1.1"
    server_version = "IntegrationHubSandbox/1.0"
    disable_nagle_algorithm = True  # headers and body go out in separate writes; avoid 40 ms delayed-ACK stalls
    sandbox: SandboxServer  # set on the per-server subclass

    def setup(self) -> None:
        super().setup()
        self.sandbox._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.sandbox._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: sandboxes keep their own request log."""

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        items = parse_qsl(split.query, keep_blank_values=True)
        query: dict[str, str] = {}
        for key, value in items:
            query.setdefault(key, value)
        request = Request(
            method=self.command,
            path=split.path or "/",
            query=query,
            headers=Headers(list(self.headers.items())),
            body=self._read_body(),
            target=self.path,
            query_items=items,
        )
        try:
            response = self.sandbox.handle(request)
        except Exception as exc:  # a sandbox bug must still answer, not hang the client
            response = json_response(500, {"message": "Sandbox internal error", "error": repr(exc)})
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. an injected timeout): not an error
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class SandboxServer:
    """Base class of every provider sandbox: a threaded HTTP server on loopback plus a tiny router.

    Args:
        port: TCP port on 127.0.0.1; ``0`` picks a free one (read it back from :attr:`port`).
    """

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    # -- routing ---------------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Register ``handler`` for ``method`` and a path regex (matched in full; named groups become params)."""
        self._routes.append((method.upper(), re.compile(pattern), handler))

    def dispatch(self, request: Request) -> Response:
        """Find the route for a request and call it (404 when no path matches, 405 on a wrong method)."""
        path_matched = False
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            path_matched = True
            if method == request.method:
                request.params = {k: v for k, v in match.groupdict().items() if v is not None}
                return handler(request)
        if path_matched:
            return json_response(405, {"message": "Method Not Allowed"})
        return json_response(404, {"message": "Not Found"})

    def handle(self, request: Request) -> Response:
        """Answer one request; subclasses override this to add auth, limits or logging around :meth:`dispatch`."""
        return self.dispatch(request)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The bound port (the requested one before :meth:`start`)."""
        return self._httpd.server_address[1] if self._httpd else self._requested_port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the running server."""
        if self._httpd is None:
            raise RuntimeError("sandbox server is not started")
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Self:
        """Bind 127.0.0.1 and serve on a daemon thread. Idempotent; returns ``self``."""
        if self._httpd is not None:
            return self
        handler = type("BoundHandler", (_RequestHandler,), {"sandbox": self})
        httpd = ThreadingHTTPServer((LOOPBACK, self._requested_port), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"{type(self).__name__}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and free the port. Idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        with self._connections_lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class RateWindow:
    """A fixed-window request quota (``limit`` calls per ``window_seconds``) on the wall clock.

    Args:
        limit: Calls allowed per window.
        window_seconds: Window length; a new window starts when the current one has passed.
    """

    def __init__(self, limit: int, window_seconds: float) -> None:
        self.limit, self.window_seconds = limit, window_seconds
        self.used, self.reset_at = 0, time.time() + window_seconds

    def info(self) -> dict[str, int]:
        """``limit``, ``remaining``, ``used`` and ``reset`` (epoch seconds, rounded up), rolling the window first."""
        if time.time() >= self.reset_at:
            self.reset()
        remaining = max(self.limit - self.used, 0)
        return {"limit": self.limit, "remaining": remaining, "used": self.used, "reset": math.ceil(self.reset_at)}

    def consume(self) -> bool:
        """Count one call; ``False`` (and nothing counted) when the quota is used up."""
        if self.info()["remaining"] <= 0:
            return False
        self.used += 1
        return True

    def exhaust(self, reset_in_seconds: float) -> None:
        """Use up the quota; the window ends ``reset_in_seconds`` from now."""
        self.used, self.reset_at = self.limit, time.time() + reset_in_seconds

    def reset(self) -> None:
        """Start a fresh window with the whole quota."""
        self.used, self.reset_at = 0, time.time() + self.window_seconds


def post_webhook(
    url: str, body: bytes, headers: Mapping[str, str | None], client: httpx.Client | None = None
) -> httpx.Response:
    """POST exact body bytes to a webhook receiver; header values of ``None`` are left out."""
    final = {name: value for name, value in headers.items() if value is not None}
    if client is not None:
        return client.post(url, content=body, headers=final)
    with httpx.Client(timeout=10.0) as own:
        return own.post(url, content=body, headers=final)


def run_until_signal(server: SandboxServer) -> None:
    """Run a sandbox in the foreground: start it, print its base URL, stop on SIGTERM or SIGINT."""
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        print(server.base_url, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
