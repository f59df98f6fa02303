"""Kill -9 the dev host mid-sync, start it again: the sync finishes with exactly the right records."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, TENANT, connect_github, hub_environment

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_devhost(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.cli", "dev", "--port", str(port), "--no-timers"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dev host exited with {proc.returncode}:\n{log.read_text()}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/manage/integrations", headers={"x-tenant-id": TENANT}, timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"dev host did not start:\n{log.read_text()}")


def test_kill_dash_nine_mid_sync_then_restart_finishes_exactly(tmp_path: Path, github_sandbox: Any) -> None:
    github_sandbox.seed(250)
    github_sandbox.latency_seconds = 0.6  # each page takes a while, so the kill lands mid-run
    port = _free_port()
    env = {
        **os.environ,
        **hub_environment(
            tmp_path / "data",
            IHUB_PROVIDER_BASE_URLS=json.dumps({"github": github_sandbox.base_url}),
            IHUB_QUEUE_LOCK_SECONDS="2",
        ),
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "devhost.log"
    proc = _start_devhost(env, port, log)
    admin = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/manage", headers={"x-tenant-id": TENANT}, timeout=10)
    try:
        connect_github(admin, github_sandbox)
        started = admin.post("/integrations/gh-1/sync", json={})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_ids"][0]

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            records = admin.get("/integrations/gh-1/stats").json()["records"]
            if 100 <= records < 250:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("sync never reached the middle")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        admin.close()

        proc = _start_devhost(env, port, log)
        admin = httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api/manage", headers={"x-tenant-id": TENANT}, timeout=10
        )
        deadline = time.monotonic() + 90
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            run = next(r for r in admin.get("/integrations/gh-1/runs").json() if r["id"] == run_id)
            if run["status"] != "running":
                break
            time.sleep(0.2)
        assert run["status"] == "succeeded", (run, log.read_text()[-3000:])
        records = admin.get("/integrations/gh-1/records", params={"limit": 1000}).json()
        assert len(records) == 250
        assert sorted(r["data"]["number"] for r in records) == list(range(1, 251))
        assert admin.get("/dead-letters").json() == []
    finally:
        admin.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
