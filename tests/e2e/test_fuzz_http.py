"""Hypothesis fuzz of the webhook and admin endpoints over real HTTP (issue 5, section 3).

Random bodies (hostile JSON, random bytes, valid payloads with random changes), signed and
unsigned, random headers, methods and paths, and random framings (Content-Length, chunked
with random chunk sizes, and hand-written requests on a raw socket, some of them malformed)
are sent to the dev host. For every request:

- the answer is never a 5xx;
- a rejection (any non-2xx) changes no state: documents, events, queue messages, blobs;
- every accepted delivery is processed exactly once: its work is applied by one worker
  invocation, however often it was delivered.

Bounded: a fixed number of examples per test and a wall-clock budget (examples past the
budget are skipped), no example database, no deadline per example.
"""

from __future__ import annotations

import itertools
import json
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.domain import WebhookStatus
from tests.conftest import TENANT, WEBHOOK_SECRET, connect_github

pytestmark = pytest.mark.slow

BUDGET_SECONDS = 25.0
FUZZ = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
ADMIN_TENANT = "tenant-fuzz"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
hostile_bodies = st.sampled_from(
    [
        b'{"a":' * 1000 + b"1" + b"}" * 1000,
        b"[" * 70 + b"]" * 70,
        b'{"issue":{"id":1,"title":"\\ud800"}}',
        b'{"\\udc00":1}',
        b'{"t":"\xed\xa0\x80"}',
        b'{"t":"\xff"}',
        b'{"n":NaN}',
        b'{"n":1e999}',
        b"\xef\xbb\xbf{}",
        b"",
        b"null",
        b'"just a string"',
        b"{" * 3,
    ]
)
header_names = st.sampled_from(
    ["X-GitHub-Event", "X-GitHub-Delivery", "X-Hub-Signature-256", "Content-Type", "X-Tenant-Id", "Transfer-Encoding"]
)
header_values = st.text(
    st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=60
).map(str.strip)  # a field value has no surrounding whitespace (RFC 9110 5.5)


class Spy:
    """Counts worker applications per webhook event (calls that found it not yet done)."""

    def __init__(self, hub: Any) -> None:
        self.applied: Counter[str] = Counter()
        original = hub.sync.handle_webhook

        def handle_webhook(msg: Any) -> None:
            event = hub.repos.webhook_events.get(msg.tenant_id, msg.event_id)
            if event is not None and event.status in (WebhookStatus.RECEIVED, WebhookStatus.ENQUEUED):
                self.applied[msg.event_id] += 1
            original(msg)

        hub.sync.handle_webhook = handle_webhook


def _state(hub: Any) -> dict[str, Any]:
    repos = hub.repos
    queue = hub.ports.queue
    return {
        "integrations": [i.model_dump(mode="json", exclude={"updated_at"}) for i in repos.integrations.query(None)],
        "checkpoints": repos.checkpoints.count(None),
        "runs": repos.runs.count(None),
        "records": repos.records.count(None),
        "events": repos.webhook_events.count(None),
        "dead_letters": repos.dead_letters.count(None),
        "inbound": queue.active_count(hub.settings.sync_inbound_queue),
        "outbound": queue.active_count(hub.settings.sync_outbound_queue),
        "queue_dead": len(queue.dead_letters(hub.settings.sync_inbound_queue)),
        "blobs": len(hub.ports.blobs.list(hub.settings.blob_container_webhooks)),
        "secrets": sorted(p.name for p in hub.ports.secrets.list_properties()),
    }


def _chunks(body: bytes, cuts: list[int]) -> Iterator[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    for start, end in itertools.pairwise(points):
        yield body[start:end]


def _raw(base_url: str, method: str, path: str, headers: dict[str, str], body: bytes, mode: str) -> tuple[int, Any]:
    """Send a hand-written HTTP/1.1 request; returns the status (0 if none came back) and JSON body."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if mode == "chunked":
        framed = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n" if body else b"0\r\n\r\n"
        lines.append("Transfer-Encoding: chunked")
    elif mode == "bad-chunk":
        framed = b"zz\r\n" + body + b"\r\n0\r\n\r\n"
        lines.append("Transfer-Encoding: chunked")
    elif mode == "two-lengths":
        framed = body
        lines += [f"Content-Length: {len(body)}", f"Content-Length: {len(body) + 1}"]
    elif mode == "negative-length":
        framed = body
        lines.append("Content-Length: -1")
    else:  # shorter length than the body: the rest is garbage on the connection
        framed = body
        lines.append(f"Content-Length: {len(body) // 2}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + framed
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(raw)
        received = b""
        while chunk := sock.recv(65536):  # Connection: close - the server ends the response
            received += chunk
    head, _, content = received.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    status = int(status_line[1]) if len(status_line) >= 2 and status_line[1].isdigit() else 0
    try:
        return status, json.loads(content)
    except ValueError:
        return status, None


def _send(
    devhost: Any, method: str, path: str, headers: dict[str, str], body: bytes, framing: str, cuts: list[int]
) -> tuple[int, Any]:
    url = devhost.base_url + path
    raw_headers = {k: v.encode("latin-1") for k, v in headers.items()}  # any byte a client may send
    if framing == "length":
        response = httpx.request(method, url, headers=raw_headers, content=body, timeout=30)
    elif framing == "httpx-chunked":
        response = httpx.request(method, url, headers=raw_headers, content=_chunks(body, cuts), timeout=30)
    else:
        return _raw(devhost.base_url, method, path, headers, body, framing)
    try:
        payload = response.json()
    except ValueError:
        payload = None
    return response.status_code, payload


framings = st.sampled_from(
    ["length"] * 6 + ["httpx-chunked"] * 3 + ["chunked", "bad-chunk", "two-lengths", "negative-length", "short-length"]
)


@pytest.fixture
def fuzz_env(github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any) -> dict[str, Any]:
    github_sandbox.seed(3)
    connect_github(admin, github_sandbox)
    assert devhost.drain(30)
    return {"sandbox": github_sandbox, "devhost": devhost, "hub": hub, "spy": Spy(hub), "deliveries": []}


@st.composite
def webhook_requests(draw: st.DrawFn, sandbox: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["valid", "valid", "json", "hostile", "bytes"]))
    if kind == "valid":
        issue = draw(st.integers(1, 3))
        payload: Any = sandbox.issue_event_payload(issue, action=draw(st.sampled_from(["edited", "opened", "x"])))
        if draw(st.booleans()):
            payload["issue"]["title"] = draw(st.text(max_size=40))
        if draw(st.integers(0, 5)) == 0:
            payload = draw(json_values)
        body = json.dumps(payload).encode()
    elif kind == "json":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "hostile":
        body = draw(hostile_bodies)
    else:
        body = draw(st.binary(max_size=300))
    signing = draw(st.sampled_from(["right", "right", "right", "wrong", "none", "garbage"]))
    headers = {"X-GitHub-Event": draw(st.sampled_from(["issues", "issues", "ping", "push", ""]))}
    delivery = draw(st.sampled_from(["new", "new", "new", "reuse", "none"]))
    if signing == "right":
        headers["X-Hub-Signature-256"] = sandbox.sign(WEBHOOK_SECRET, body)
    elif signing == "wrong":
        headers["X-Hub-Signature-256"] = sandbox.sign("not-the-secret", body)
    elif signing == "garbage":
        headers["X-Hub-Signature-256"] = draw(header_values)
    for name, value in draw(st.dictionaries(header_names, header_values, max_size=2)).items():
        if name.lower() not in ("x-hub-signature-256", "transfer-encoding") or draw(st.booleans()):
            headers.setdefault(name, value)
    headers.pop("Transfer-Encoding", None)
    method = draw(st.sampled_from(["POST"] * 12 + ["GET", "PUT", "DELETE", "PATCH", "BREW"]))
    target = draw(st.sampled_from(["gh-1"] * 8 + ["gh-nope", "gh-1%0A", "%ED%A0%80", "a" * 200]))
    provider = draw(st.sampled_from(["github"] * 8 + ["nosuch", "GitHub", "%00"]))
    return {
        "method": method,
        "path": f"/api/webhooks/{provider}/{target}",
        "headers": headers,
        "body": body,
        "delivery": delivery,
        "framing": draw(framings),
        "cuts": draw(st.lists(st.integers(0, 10_000), max_size=4)),
    }


def test_fuzz_webhooks_over_http(fuzz_env: dict[str, Any]) -> None:
    env = fuzz_env
    devhost, hub, spy, sandbox = env["devhost"], env["hub"], env["spy"], env["sandbox"]
    accepted: dict[str, int] = {}
    end = time.monotonic() + BUDGET_SECONDS
    previous: list[str] = env["deliveries"]

    @FUZZ
    @given(request=webhook_requests(sandbox))
    def one(request: dict[str, Any]) -> None:
        if time.monotonic() > end:
            return
        headers = dict(request["headers"])
        if request["delivery"] == "new" or (request["delivery"] == "reuse" and not previous):
            headers["X-GitHub-Delivery"] = str(uuid.uuid4())
        elif request["delivery"] == "reuse":
            headers["X-GitHub-Delivery"] = previous[-1]
        before = _state(hub)
        status, payload = _send(
            devhost, request["method"], request["path"], headers, request["body"], request["framing"], request["cuts"]
        )
        assert 0 < status < 500, (status, payload, request)
        if 200 <= status < 300:
            assert payload is not None and payload["status"] in ("accepted", "duplicate"), payload
            accepted[payload["event_id"]] = accepted.get(payload["event_id"], 0) + 1
            if "X-GitHub-Delivery" in headers:
                previous.append(headers["X-GitHub-Delivery"])
            assert devhost.drain(60)
        else:
            assert _state(hub) == before, (status, payload, request)

    one()
    assert devhost.drain(60)
    assert accepted, "no delivery was accepted: the generator is broken"
    events = {e.id: e for e in hub.repos.webhook_events.query(TENANT)}
    assert set(events) == set(accepted)
    for event_id in accepted:
        assert spy.applied[event_id] == 1, (event_id, spy.applied[event_id], events[event_id])
        assert events[event_id].status != WebhookStatus.RECEIVED
    assert hub.ports.queue.dead_letters(hub.settings.sync_inbound_queue) == []


@st.composite
def admin_requests(draw: st.DrawFn) -> dict[str, Any]:
    route = draw(
        st.sampled_from(
            [
                ("POST", "integrations"),
                ("PUT", "integrations/fz-1/credential"),
                ("POST", "integrations/fz-1/sync"),
                ("POST", "integrations/fz-1/changes"),
                ("GET", "integrations/fz-1/runs?limit=" + draw(st.sampled_from(["5", "0", "\u00b2", "x", "10%0A"]))),
                ("GET", ""),
                ("GET", "dead-letters"),
                (draw(st.sampled_from(["DELETE", "PATCH", "GET"])), "integrations/fz-1/sync"),
            ]
        )
    )
    kind = draw(st.sampled_from(["valid", "json", "hostile", "bytes"]))
    if kind == "valid":
        body = json.dumps(
            draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "id": st.sampled_from(["fz-1", "fz-2", "gh-1", "a\n", ""]) | st.text(max_size=10),
                        "provider": st.sampled_from(["github", "nosuch", ""]),
                        "display_name": st.text(max_size=20),
                        "config": st.just({"owner": "acme", "repo": "widgets"}) | json_values,
                        "stream": st.sampled_from(["issues", "nosuch"]) | st.text(max_size=5),
                        "webhook_secret": st.text(max_size=10),
                        "entity_type": st.text(max_size=5),
                        "changes": json_values,
                    },
                )
            )
        ).encode()
    elif kind == "json":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "hostile":
        body = draw(hostile_bodies)
    else:
        body = draw(st.binary(max_size=200))
    tenant = draw(st.sampled_from([ADMIN_TENANT] * 6 + ["", "tenant-fuzz\n", "-x", "t" * 129]) | header_values)
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain", ""]))}
    path = "/api/manage/" + route[1]
    if "\n" in tenant or draw(st.booleans()):  # a newline cannot travel in a header; in a query it can
        path += ("&" if "?" in path else "?") + urlencode({"tenant": tenant}, encoding="latin-1")
    else:
        headers["X-Tenant-Id"] = tenant
    return {
        "method": route[0],
        "path": path,
        "headers": {k: v for k, v in headers.items() if v},
        "body": body,
        "framing": draw(framings),
        "cuts": draw(st.lists(st.integers(0, 10_000), max_size=4)),
    }


def test_fuzz_admin_api_over_http(fuzz_env: dict[str, Any]) -> None:
    devhost, hub = fuzz_env["devhost"], fuzz_env["hub"]
    httpx.post(
        f"{devhost.base_url}/api/manage/integrations",
        headers={"X-Tenant-Id": ADMIN_TENANT},
        json={"id": "fz-1", "provider": "github", "display_name": "f", "config": {"owner": "acme", "repo": "w"}},
    ).raise_for_status()
    end = time.monotonic() + BUDGET_SECONDS
    statuses: Counter[int] = Counter()

    @FUZZ
    @given(request=admin_requests())
    def one(request: dict[str, Any]) -> None:
        if time.monotonic() > end:
            return
        before = _state(hub)
        status, payload = _send(
            devhost, request["method"], request["path"], request["headers"], request["body"], request["framing"],
            request["cuts"],
        )
        statuses[status // 100] += 1
        assert 0 < status < 500, (status, payload, request)
        if 200 <= status < 300:
            assert devhost.drain(60)
        else:
            assert _state(hub) == before, (status, payload, request)

    one()
    assert statuses[4] > 0 and statuses[2] > 0, statuses
