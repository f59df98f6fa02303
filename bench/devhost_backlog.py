"""Benchmarks ``devhost_sync`` and ``webhook_backlog``: queue work through ``ihub dev`` (issue 5, section 5).

``devhost_sync``: a GitHub sync of 10,000 sandbox issues (100 pages), twice in the same run:

1. in process: the services called directly - the admin service starts the run, then one
   loop receives each page message from the embedded queue, calls the SyncInboundWorker's
   handler (``shared.api.inbound_worker``) and completes it;
2. through a real ``ihub dev`` process: the admin API over loopback HTTP starts the run and
   the dev host's pump delivers the page messages to the function; the run's status is read
   back over HTTP.

The GitHub sandbox runs in its own process for both, so neither side shares its CPU with it.
Reported: ``records_per_second`` of each, ``ratio_to_in_process`` (target >= 0.8).

``webhook_backlog``: 3,000 signed GitHub deliveries to ONE integration over HTTP (8 client
threads, one connection per request) into a real ``ihub dev`` process with every function
loaded. Reported: ``sending_seconds`` (first request to last response), ``drain_seconds``
(first request until the queue holds no message of that integration), and
``drain_ratio = drain_seconds / sending_seconds`` (target <= 2).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
TENANT = "bench-tenant"
SANDBOX_TOKEN = "bench-sandbox-token"
SECRET = "bench-secret"
CLIENTS = 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


BENCH_BUDGETS = json.dumps(
    [{"provider": "github", "budget": budget, "tenant": TENANT, "disabled": True} for budget in ("token", "secondary")]
)
"""The benchmarks measure the hub, not GitHub's limits: 5,000 requests an hour per token (and 900 a
minute) would pace a 50,000-issue sync over minutes, so the bench tenant's token and secondary
budgets are off, as an operator may set them against a GitHub Enterprise server without limits.
The sandbox itself allows 100,000 an hour and says so in its headers."""


def _settings(data: Path, github_url: str) -> dict[str, str]:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    return {**sample, "IHUB_DATA_DIR": str(data), "IHUB_PROVIDER_BASE_URLS": json.dumps({"github": github_url}),
            "IHUB_RATE_LIMIT_OVERRIDES": BENCH_BUDGETS}


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{what} did not start:\n{log.read_text()[-2000:]}")


def _start(command: list[str], env: dict[str, str], port: int, log: Path, what: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    _wait_port(port, proc, log, what)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _start_devhost(settings: dict[str, str], data: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = {**os.environ, **settings, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "devtools.cli", "dev", "--port", str(port), "--no-timers"]
    return _start(command, env, port, data / "devhost.log", "ihub dev"), port


def _start_sandbox(issues: int, data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [sys.executable, "-m", "sandbox.github", "--port", str(port), "--issues", str(issues)]
    command += ["--token", SANDBOX_TOKEN, "--rate-limit", "100000"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return _start(command, env, port, data / "sandbox.log", "GitHub sandbox"), f"http://127.0.0.1:{port}"


def _integration(integration_id: str) -> dict[str, Any]:
    config = {"owner": "acme", "repo": "widgets"}  # the sandbox's defaults
    return {"id": integration_id, "provider": "github", "display_name": "bench", "config": config}


def _in_process_sync(settings: dict[str, str], integration_id: str) -> tuple[float, dict[str, Any]]:
    """Seconds for one full sync with the services called directly, and the run."""
    os.environ.update(settings)
    from shared.api import inbound_worker
    from shared.runtime import get_hub, reset_hub

    reset_hub()
    hub = get_hub()
    try:
        hub.admin.create_integration(TENANT, _integration(integration_id))
        hub.admin.set_credential(TENANT, integration_id, {"access_token": SANDBOX_TOKEN, "webhook_secret": SECRET})
        queue: Any = hub.ports.queue
        name = hub.settings.sync_inbound_queue
        started = time.perf_counter()
        [run_id] = hub.admin.trigger_sync(TENANT, integration_id, {})
        while messages := queue.receive(name):
            for m in messages:
                inbound_worker(m.body, m.message_id, m.delivery_count, m.session_id)
                queue.complete(name, m.lock_token)
        elapsed = time.perf_counter() - started
        run = hub.repos.runs.get(TENANT, run_id)
        return elapsed, run.model_dump(mode="json") if run else {}
    finally:
        reset_hub()


def _devhost_sync(admin: httpx.Client, queue: Any, inbound: str, integration_id: str) -> tuple[float, dict[str, Any]]:
    """Seconds for one full sync through ``ihub dev`` (started over HTTP), and the run.

    The end is seen from outside the dev host (its queue file holds no message any more), so
    watching costs the host nothing; the run is then read over HTTP.
    """
    assert admin.post("/integrations", json=_integration(integration_id)).status_code == 201
    cred = {"access_token": SANDBOX_TOKEN, "webhook_secret": SECRET}
    assert admin.put(f"/integrations/{integration_id}/credential", json=cred).status_code == 200
    started = time.perf_counter()
    [run_id] = admin.post(f"/integrations/{integration_id}/sync", json={}).json()["run_ids"]
    deadline = time.monotonic() + 600
    while queue.active_count(inbound) and time.monotonic() < deadline:
        time.sleep(0.002)
    elapsed = time.perf_counter() - started
    run = next(r for r in admin.get(f"/integrations/{integration_id}/runs").json() if r["id"] == run_id)
    return elapsed, dict(run)


def devhost_sync(issues: int = 10_000, rounds: int = 3) -> dict[str, Any]:
    """A 10,000-issue GitHub sync through ``ihub dev`` vs the same sync with the services called directly.

    ``rounds`` syncs of each, interleaved (a fresh integration each time, so each is a full
    sync); the medians are reported, so a noisy moment on the machine hits both sides alike.
    """
    from shared.backends.sqlite_queue import SqliteWorkQueue

    if hasattr(os, "sched_setaffinity"):  # undo webhook_intake's pinning: three processes share the machine
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    root = Path(tempfile.mkdtemp(prefix="ihub-bench-sync-"))
    (root / "in-process").mkdir()
    (root / "devhost").mkdir()
    sandbox, github_url = _start_sandbox(issues, root)
    in_runs: list[tuple[float, dict[str, Any]]] = []
    dev_runs: list[tuple[float, dict[str, Any]]] = []
    try:
        dev_settings = _settings(root / "devhost", github_url)
        proc, port = _start_devhost(dev_settings, root / "devhost")
        queue = SqliteWorkQueue(root / "devhost" / "queue.sqlite")
        headers = {"x-tenant-id": TENANT}
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/manage", headers=headers, timeout=60) as admin:
                for n in range(rounds):
                    in_runs.append(_in_process_sync(_settings(root / "in-process", github_url), f"gh-in-{n}"))
                    dev_runs.append(_devhost_sync(admin, queue, dev_settings["SYNC_INBOUND_QUEUE"], f"gh-dev-{n}"))
        finally:
            queue.close()
            _stop(proc)
    finally:
        _stop(sandbox)
    for label, (_, run) in [*(("in-process", r) for r in in_runs), *(("devhost", r) for r in dev_runs)]:
        if run.get("status") != "succeeded" or run.get("records_created") != issues:
            raise SystemExit(f"devhost_sync: the {label} run did not sync {issues} issues: {run}")
    in_seconds = statistics.median(t for t, _ in in_runs)
    dev_seconds = statistics.median(t for t, _ in dev_runs)
    in_rate, dev_rate = issues / in_seconds, issues / dev_seconds
    return {
        "issues": issues,
        "pages": dev_runs[0][1].get("pages"),
        "rounds": rounds,
        "in_process_seconds": [round(t, 3) for t, _ in in_runs],
        "devhost_seconds": [round(t, 3) for t, _ in dev_runs],
        "in_process_records_per_second": round(in_rate),
        "devhost_records_per_second": round(dev_rate),
        "ratio_to_in_process": round(dev_rate / in_rate, 3),
        "target_ratio": 0.8,
        "setup": "GitHub sandbox and ihub dev in their own processes; run started over the admin API; medians",
        "cpu_count": os.cpu_count(),
    }


# --- webhook_backlog ------------------------------------------------------------------------------


def _signed_deliveries(count: int, integration_id: str, port: int) -> list[bytes]:
    """Raw HTTP requests: signed ``issues`` deliveries, each about a different issue."""
    from sandbox.github import GitHubSandbox

    sandbox = GitHubSandbox(issues=count)  # not started: realistic payloads and signatures only
    requests = []
    for issue in sandbox.issues:
        issue = {**issue, "title": f"{issue['title']} (edited)"}
        body = json.dumps(sandbox.issue_event_payload(issue), separators=(",", ":")).encode()
        lines = [
            f"POST /api/webhooks/github/{integration_id} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Content-Type: application/json",
            "X-GitHub-Event: issues",
            f"X-GitHub-Delivery: {uuid.uuid4()}",
            f"X-Hub-Signature-256: {sandbox.sign(SECRET, body)}",
            f"Content-Length: {len(body)}",
        ]
        requests.append(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    return requests


def _post(port: int, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    return int(received.split(b" ", 2)[1])


def _send_all(port: int, requests: list[bytes]) -> tuple[float, float, dict[int, int]]:
    """Send with CLIENTS threads; returns (start, end) perf_counter times and the statuses."""
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS + 1)

    def client(share: list[bytes]) -> None:
        barrier.wait()
        for request in share:
            status = _post(port, request)
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=client, args=(requests[i::CLIENTS],)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return started, time.perf_counter(), statuses


def _until(check: Callable[[], bool], timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.perf_counter()
        time.sleep(0.01)
    raise SystemExit(f"webhook_backlog: {what} did not happen within {timeout:.0f} s")


def webhook_backlog(count: int = 3000, warmup: int = 200) -> dict[str, Any]:
    """3,000 signed deliveries to one integration over HTTP: time until all are processed / sending time."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    from shared.backends.sqlite_queue import SqliteWorkQueue

    data = Path(tempfile.mkdtemp(prefix="ihub-bench-backlog-"))
    settings = _settings(data, "http://127.0.0.1:9")  # deliveries carry their issue: no provider call
    proc, port = _start_devhost(settings, data)
    queue = SqliteWorkQueue(data / "queue.sqlite")
    inbound = settings["SYNC_INBOUND_QUEUE"]
    try:
        headers = {"x-tenant-id": TENANT}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/manage", headers=headers, timeout=60) as admin:
            assert admin.post("/integrations", json=_integration("gh-backlog")).status_code == 201
            cred = {"access_token": "unused", "webhook_secret": SECRET}
            assert admin.put("/integrations/gh-backlog/credential", json=cred).status_code == 200
            requests = _signed_deliveries(count + warmup, "gh-backlog", port)
            _send_all(port, requests[:warmup])  # warm-up: imports, caches, prepared statements
            _until(lambda: queue.active_count(inbound) == 0, 120, "draining the warm-up")
            started, sent, statuses = _send_all(port, requests[warmup:])
            done = _until(lambda: queue.active_count(inbound) == 0, 300, "draining the backlog")
            stats = admin.get("/integrations/gh-backlog/stats").json()
            records = stats.get("records")
    finally:
        queue.close()
        _stop(proc)
    if statuses != {202: count}:
        raise SystemExit(f"webhook_backlog: unexpected statuses {statuses}; log: {data / 'devhost.log'}")
    if records != count + warmup or stats.get("dead_letters"):
        raise SystemExit(f"webhook_backlog: not every delivery was applied: {stats}")
    sending, drain = sent - started, done - started
    return {
        "webhooks": count,
        "clients": CLIENTS,
        "sending_seconds": round(sending, 2),
        "sending_per_second": round(count / sending),
        "drain_seconds": round(drain, 2),
        "processed_per_second": round(count / drain),
        "drain_ratio": round(drain / sending, 3),
        "target_drain_ratio": 2.0,
        "setup": "ihub dev (all functions) in its own process; 8 client threads, raw sockets, one connection each",
        "cpu_count": os.cpu_count(),
    }
