"""Benchmark ``devhost_webhooks_http``: signed webhooks over HTTP through ``ihub dev``.

Both sides of the ratio are measured in the same run, on the same data directory layout:

1. in process: the WebhookReceiver function called directly with real ``func.HttpRequest``
   objects, one thread (what ``webhook_intake`` measures);
2. over HTTP: a real ``ihub dev --functions WebhookReceiver`` process (started with
   ``python -m devtools.cli``, like ``func start --functions``: only the HTTP function is loaded,
   so the queue worker does not compete for the host's CPU), with 8 client threads in this
   process sending pre-signed GitHub deliveries over raw loopback sockets (one connection per
   request: werkzeug's server closes after each response).

Reported: ``requests_per_second`` (HTTP), ``in_process_per_second`` and
``ratio_to_in_process`` (target >= 0.5).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TENANT = "bench-tenant"
INTEGRATION = "gh-http-bench"
SECRET = "bench-secret"
CLIENTS = 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _deliveries(count: int) -> list[tuple[bytes, dict[str, str]]]:
    from sandbox.github import GitHubSandbox

    sandbox = GitHubSandbox(issues=1)  # not started: realistic payloads and signatures only
    issue = sandbox.issues[0]
    out = []
    for i in range(count):
        issue = {**issue, "title": f"issue title {i}"}
        body = json.dumps(sandbox.issue_event_payload(issue), separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sandbox.sign(SECRET, body),
        }
        out.append((body, headers))
    return out


def _in_process_rate(deliveries: list[tuple[bytes, dict[str, str]]], warmup: int) -> float:
    import azure.functions as func

    import function_app

    requests = [
        func.HttpRequest(
            "POST",
            f"http://localhost/api/webhooks/github/{INTEGRATION}",
            headers=headers,
            route_params={"provider": "github", "integration_id": INTEGRATION},
            body=body,
        )
        for body, headers in deliveries
    ]
    handler = function_app.webhook_receiver
    for req in requests[:warmup]:
        assert handler(req).status_code == 202
    started = time.perf_counter()
    for req in requests[warmup:]:
        status = handler(req).status_code
        if status != 202:
            raise SystemExit(f"in-process: unexpected status {status}")
    return (len(requests) - warmup) / (time.perf_counter() - started)


def _raw_request(port: int, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST /api/webhooks/github/{INTEGRATION} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _send(port: int, payload: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(payload)
        received = b""
        while b"\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    return int(received.split(b" ", 2)[1])


def _http_rate(port: int, payloads: list[bytes]) -> tuple[float, dict[int, int]]:
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    shares = [payloads[i::CLIENTS] for i in range(CLIENTS)]
    barrier = threading.Barrier(CLIENTS + 1)

    def client(share: list[bytes]) -> None:
        local: dict[int, int] = {}
        barrier.wait()
        for payload in share:
            status = _send(port, payload)
            local[status] = local.get(status, 0) + 1
        with lock:
            for status, n in local.items():
                statuses[status] = statuses.get(status, 0) + n

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return len(payloads) / (time.perf_counter() - started), statuses


def _start_devhost(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "devtools.cli", "dev", "--port", str(port), "--no-timers"]
    command += ["--functions", "WebhookReceiver"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ihub dev exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"ihub dev did not start:\n{log.read_text()[-2000:]}")


def devhost_webhooks_http(count: int = 4000, in_process_count: int = 3000) -> dict[str, Any]:
    """Signed deliveries over HTTP through a real ``ihub dev`` process vs the same intake in process."""
    if hasattr(os, "sched_setaffinity"):  # undo webhook_intake's pinning: the host is its own process
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    data = Path(tempfile.mkdtemp(prefix="ihub-bench-http-"))
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    settings = {
        **sample,
        "IHUB_DATA_DIR": str(data),
        "IHUB_PROVIDER_BASE_URLS": '{"github": "http://127.0.0.1:9"}',
    }
    os.environ.update(settings)
    from shared.runtime import get_hub, reset_hub

    reset_hub()
    hub = get_hub()
    hub.admin.create_integration(
        TENANT,
        {"id": INTEGRATION, "provider": "github", "display_name": "bench", "config": {"owner": "a", "repo": "b"}},
    )
    hub.admin.set_credential(TENANT, INTEGRATION, {"access_token": "t", "webhook_secret": SECRET})

    warmup = 300
    in_process = _in_process_rate(_deliveries(in_process_count + warmup), warmup)

    port = _free_port()
    env = {**os.environ, **settings, "PYTHONPATH": str(ROOT)}
    log = data / "devhost.log"
    proc = _start_devhost(env, port, log)
    try:
        payloads = [_raw_request(port, body, headers) for body, headers in _deliveries(count + warmup)]
        _http_rate(port, payloads[:warmup])  # warm-up: imports, caches, prepared statements
        rate, statuses = _http_rate(port, payloads[warmup:])
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    reset_hub()
    if statuses != {202: count}:
        raise SystemExit(f"devhost_webhooks_http: unexpected statuses {statuses}; log: {log}")
    return {
        "webhooks": count,
        "clients": CLIENTS,
        "server": "ihub dev --functions WebhookReceiver (separate process, werkzeug threaded server)",
        "client": "raw sockets, one connection per request, 8 threads in the bench process",
        "requests_per_second": round(rate),
        "in_process_per_second": round(in_process),
        "ratio_to_in_process": round(rate / in_process, 3),
        "statuses": {str(k): v for k, v in statuses.items()},
        "target_ratio": 0.5,
        "cpu_count": os.cpu_count(),
    }
