"""Provider responses are outside JSON too: the same limits, a readable FailRun, never a crash.

A real loopback HTTP server plays a broken provider; the real GitHub adapter fetches from it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from adapters.base.adapter import Connection
from adapters.providers.github import GitHubAdapter
from shared.errors import FailRun

BODIES = {
    "deep": b"[" * 5000 + b"]" * 5000,
    "surrogate": b'[{"id":1,"number":1,"title":"\\ud800","updated_at":"2024-01-01T00:00:00Z"}]',
    "not_utf8": b'[{"id":1,"title":"\xff"}]',
}


class _Provider(BaseHTTPRequestHandler):
    body = b"[]"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def provider() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("name", sorted(BODIES))
def test_hostile_provider_json_fails_the_run_with_a_reason(name: str, provider: ThreadingHTTPServer) -> None:
    _Provider.body = BODIES[name]
    adapter = GitHubAdapter()
    conn = Connection(
        "t", "gh-1", f"http://127.0.0.1:{provider.server_address[1]}", SecretStr("tok"), {"owner": "o", "repo": "r"}
    )
    try:
        with pytest.raises(FailRun) as failed:
            adapter.fetch_page(conn, "issues", None, None)
    finally:
        adapter.close()
    message = str(failed.value)
    assert message.startswith("github answered 200 with unusable JSON"), message
