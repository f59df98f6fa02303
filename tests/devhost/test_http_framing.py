"""HTTP framing at the dev host, over raw loopback sockets: malformed requests get a JSON 4xx.

Issue 5 §3: an invalid chunk size gave 500, a body shorter than its Content-Length hung the
connection (no read timeout), and unknown methods got Python's HTML 501 page.
"""

from __future__ import annotations

import json
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import azure.functions as func
import pytest

from devtools.devhost import DevHost
from shared.backends.sqlite_queue import SqliteWorkQueue

READ_TIMEOUT = 0.5


def build_app(seen: list[func.HttpRequest]) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="echo", methods=["POST", "PUT"])
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        seen.append(req)
        return func.HttpResponse(req.get_body(), status_code=201)

    @app.route(route="any")
    def any_method(req: func.HttpRequest) -> func.HttpResponse:
        seen.append(req)
        return func.HttpResponse(req.method)

    @app.route(route="get-only", methods=["GET"])
    def get_only(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("body of get")

    return app


@pytest.fixture
def seen() -> list[func.HttpRequest]:
    return []


@pytest.fixture
def host(tmp_path: Path, seen: list[func.HttpRequest]) -> Iterator[DevHost]:
    queue = SqliteWorkQueue(tmp_path / "queue.sqlite")
    dev = DevHost(
        build_app(seen),
        settings={},
        queue=queue,
        port=0,
        enable_timers=False,
        max_body_bytes=4096,
        read_timeout=READ_TIMEOUT,
    )
    with dev:
        yield dev
    queue.close()


def exchange(
    host: DevHost, data: bytes, *, shutdown: bool = False, wait: float = 10.0
) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes; returns status, headers, body."""
    address = host.base_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((address[0], int(address[1])), timeout=wait) as sock:
        sock.sendall(data)
        if shutdown:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def assert_json_error(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict[str, str]:
    assert status == expected, body
    assert headers["content-type"].startswith("application/json")
    error: dict[str, str] = json.loads(body)["error"]
    assert error["code"] and error["message"]
    return error


def test_invalid_chunk_size_is_400(host: DevHost, seen: list[func.HttpRequest]) -> None:
    request = b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
    error = assert_json_error(*exchange(host, request), 400)
    assert "chunk" in error["message"].lower()
    assert seen == []


@pytest.mark.parametrize(
    "chunks",
    [
        b"5\r\nhelloXX0\r\n\r\n",  # chunk data not followed by CRLF
        b"-5\r\nhello\r\n0\r\n\r\n",  # negative size
        b"5\r\nhel",  # connection ends inside a chunk
    ],
)
def test_other_malformed_chunks_are_400(host: DevHost, chunks: bytes, seen: list[func.HttpRequest]) -> None:
    request = b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    status, headers, _ = exchange(host, request, shutdown=True)
    assert 400 <= status < 500
    assert headers["content-type"].startswith("application/json")
    assert seen == []


def test_valid_chunked_body_any_case_and_content_length_ignored(host: DevHost) -> None:
    request = (
        b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nContent-Length: 3\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    status, _, body = exchange(host, request)
    assert (status, body) == (201, b"hello world")


def test_body_shorter_than_content_length_times_out_with_408(host: DevHost, seen: list[func.HttpRequest]) -> None:
    request = b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b"
    error = assert_json_error(*exchange(host, request, wait=READ_TIMEOUT * 20), 408)
    assert "did not arrive" in error["message"]
    assert seen == []


def test_body_cut_short_by_the_client_is_400(host: DevHost, seen: list[func.HttpRequest]) -> None:
    request = b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b"
    assert_json_error(*exchange(host, request, shutdown=True), 400)
    assert seen == []


def test_silent_client_is_dropped_not_held(host: DevHost) -> None:
    address = host.base_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((address[0], int(address[1])), timeout=READ_TIMEOUT * 20) as sock:
        sock.sendall(b"GET /api/any HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        assert sock.recv(100) == b""  # the server closed the connection


@pytest.mark.parametrize("method", [b"FOO", b"PROPFIND", b"BREW"])
def test_unknown_methods_get_json_405_or_404(host: DevHost, method: bytes) -> None:
    status, headers, body = exchange(host, method + b" /api/echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_json_error(status, headers, body, 405)
    assert headers["allow"] == "POST, PUT"
    assert_json_error(*exchange(host, method + b" /api/nope HTTP/1.1\r\nHost: x\r\n\r\n"), 404)


def test_route_without_methods_takes_any_method_token(host: DevHost) -> None:
    status, _, body = exchange(host, b"BREW /api/any HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, body) == (200, b"BREW")


def test_head_is_not_implied_by_get(host: DevHost) -> None:
    status, headers, body = exchange(host, b"HEAD /api/get-only HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 405 and headers["allow"] == "GET" and body == b""


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /api/any HTTP/2.0\r\nHost: x\r\n\r\n", 400),
        (b"GET /api/any HTTP/1.x\r\nHost: x\r\n\r\n", 400),
        (b"G(T /api/any HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /api/any HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
        (b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc", 400),
        (b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
        (b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413),
    ],
)
def test_malformed_framing_gets_a_json_4xx(
    host: DevHost, request_bytes: bytes, expected: int, seen: list[func.HttpRequest]
) -> None:
    assert_json_error(*exchange(host, request_bytes, shutdown=True), expected)
    assert seen == []


def test_over_limit_body_refused_before_100_continue(host: DevHost) -> None:
    request = b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
    status, headers, body = exchange(host, request)
    assert_json_error(status, headers, body, 413)


def test_mutated_requests_never_get_5xx(host: DevHost) -> None:
    """Random byte-level mutations of valid requests: every answer is a JSON error or a function's."""
    valid = [
        b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"GET /api/any?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    alphabet = b"\r\n :;-0123456789abcdefzZ\x00\xff%/?{}"
    rng = random.Random(20240601)
    for _ in range(120):
        data = bytearray(rng.choice(valid))
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(data))
            action = rng.random()
            if action < 0.4:
                data[position] = rng.choice(alphabet)
            elif action < 0.7:
                del data[position]
            else:
                data[position:position] = bytes([rng.choice(alphabet)])
        address = host.base_url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((address[0], int(address[1])), timeout=READ_TIMEOUT * 20) as sock:
            sock.sendall(bytes(data))
            sock.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        if not received:
            continue  # dropped before a request line: nothing to answer
        status = int(received.split(b" ", 2)[1])
        assert status < 500, (bytes(data), received[:300])
