"""The demo a newcomer runs (issue 5, section 6): ``ihub demo`` as a real process, output piped."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _demo(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "IHUB_DEMO_DATA_DIR": str(tmp_path / "demo"), "PYTHONUNBUFFERED": "1"}
    env.pop("COLUMNS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "devtools.cli", "demo", "--issues", "20", "--port", "0", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 120) -> str:
    assert proc.stdout is not None
    seen = ""
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while marker not in seen:
        if time.monotonic() > deadline or (proc.poll() is not None and not selector.select(0)):
            raise AssertionError(f"{marker!r} not printed:\n{seen}")
        if selector.select(1):  # read the pipe itself: a buffered readline() could hide lines from select()
            chunk = os.read(proc.stdout.fileno(), 65536)
            seen += chunk.decode(errors="replace")
            if not chunk and proc.poll() is not None:
                raise AssertionError(f"{marker!r} not printed:\n{seen}")
    return seen


def test_demo_once_prints_an_unwrapped_first_line_and_no_dead_admin_url(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    proc = _demo(tmp_path, "--once", "--report", str(report))
    output, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, output
    # issue 7 section 6: every provider synced from its sandbox, with records and no dead letters
    providers = json.loads(report.read_text())["providers"]
    assert set(providers) == {"github", "salesforce", "notion", "slack", "google"}
    for name, body in providers.items():
        assert sum(body["records_by_entity_type"].values()) > 0, name
        assert body["dead_letters"] == 0 and body["runs_by_status"].get("failed") is None, name
        assert body["status"] == "connected", name
    first = output.splitlines()[0]
    one_line = r"dev host http://127\.0\.0\.1:\d+/api +GitHub sandbox http://127\.0\.0\.1:\d+ \(20 issues\)$"
    assert re.search(one_line, first), output
    assert "/api/manage/" not in output  # the host has stopped: no URL that nothing answers


def test_demo_stops_gracefully_on_sigterm_and_serves_the_admin_page_until_then(tmp_path: Path) -> None:
    proc = _demo(tmp_path)
    try:
        output = _read_until(proc, "keep running")
        admin_url = re.search(r"Admin page: (\S+)", output)
        assert admin_url, output
        page = httpx.get(admin_url.group(1), timeout=10)
        assert page.status_code == 200 and "gh-demo" in page.text
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output + rest
    assert "Stopping the dev host and the sandbox" in rest and "Traceback" not in rest
    with pytest.raises(httpx.ConnectError):
        httpx.get(admin_url.group(1), timeout=5)
