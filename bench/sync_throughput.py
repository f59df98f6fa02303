"""``sync_throughput``: records/s of a full GitHub sync of 50,000 sandbox issues through the real
queue and inbound worker, against the same run's floor (fetching and parsing every page with
the adapter, storing nothing), and peak RSS at 10,000 and 50,000 records.

Each measurement runs in a child process of its own (``python -m bench.sync_throughput
--child ...``), so its peak RSS is its own; the GitHub sandbox runs in a further process, so
neither side shares its CPU with it. Reported: ``records_per_second``,
``floor_records_per_second``, ``ratio_to_floor`` (target >= 0.8), ``peak_rss_mb_10k`` and
``peak_rss_mb_50k`` (target: flat).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.devhost_backlog import ROOT, SANDBOX_TOKEN, SECRET, TENANT, _integration, _settings, _start_sandbox, _stop


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: kilobytes


def _sync(data: Path, github_url: str) -> dict[str, Any]:
    """One full sync through the inbound queue and worker, as the Functions host delivers it."""
    os.environ.update(_settings(data, github_url))
    from shared.api import inbound_worker
    from shared.runtime import get_hub

    hub = get_hub()
    hub.admin.create_integration(TENANT, _integration("gh-bench"))
    hub.admin.set_credential(TENANT, "gh-bench", {"access_token": SANDBOX_TOKEN, "webhook_secret": SECRET})
    queue: Any = hub.ports.queue
    name = hub.settings.sync_inbound_queue
    started = time.perf_counter()
    [run_id] = hub.admin.trigger_sync(TENANT, "gh-bench", {})
    while messages := queue.receive(name):
        for m in messages:
            inbound_worker(m.body, m.message_id, m.delivery_count, m.session_id)
            queue.complete(name, m.lock_token)
    elapsed = time.perf_counter() - started
    run = hub.repos.runs.get(TENANT, run_id)
    assert run is not None and run.status == "succeeded", run
    return {"seconds": elapsed, "records": run.records_created, "pages": run.pages, "peak_rss_mb": _peak_rss_mb()}


def _floor(github_url: str) -> dict[str, Any]:
    """Every page fetched and parsed by the adapter; nothing stored."""
    from pydantic import SecretStr

    from adapters.base.adapter import Connection
    from adapters.providers.github import GitHubAdapter
    from shared.domain import IncrementalState

    conn = Connection(TENANT, "gh-floor", github_url, SecretStr(SANDBOX_TOKEN), {"owner": "acme", "repo": "widgets"})
    records = pages = 0
    with GitHubAdapter(timeout=60) as adapter:
        started = time.perf_counter()
        token: str | None = None
        while True:
            page = adapter.fetch_page(conn, "issues", IncrementalState(), token)
            records, pages, token = records + len(page.entities), pages + 1, page.next_token
            if token is None:
                break
        elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "records": records, "pages": pages, "peak_rss_mb": _peak_rss_mb()}


def _child(kind: str, issues: int, github_url: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.sync_throughput", "--child", kind, "--github-url", github_url]
    with tempfile.TemporaryDirectory(prefix="ihub-bench-") as data:
        command += ["--data", data]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"sync_throughput {kind} ({issues} issues) failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["records"] != issues:
        raise SystemExit(f"sync_throughput {kind}: {result['records']} records, expected {issues}")
    return result


def sync_throughput(sizes: tuple[int, int] = (10_000, 50_000)) -> dict[str, Any]:
    """Measure both sides at 50k (and the sync's memory at 10k) in this run."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ihub-bench-sandbox-") as tmp:
        for issues in sizes:
            sandbox, github_url = _start_sandbox(issues, Path(tmp))
            try:
                floor = _child("floor", issues, github_url)
                sync = _child("sync", issues, github_url)
            finally:
                _stop(sandbox)
            out[issues] = {"sync": sync, "floor": floor}
    big, small = out[sizes[1]], out[sizes[0]]
    rate = big["sync"]["records"] / big["sync"]["seconds"]
    floor_rate = big["floor"]["records"] / big["floor"]["seconds"]
    return {
        "records": sizes[1],
        "pages": big["sync"]["pages"],
        "records_per_second": round(rate),
        "floor_records_per_second": round(floor_rate),
        "ratio_to_floor": round(rate / floor_rate, 3),
        "target_ratio_to_floor": 0.8,
        "peak_rss_mb_10k": small["sync"]["peak_rss_mb"],
        "peak_rss_mb_50k": big["sync"]["peak_rss_mb"],
        "floor_peak_rss_mb_50k": big["floor"]["peak_rss_mb"],
        "setup": "GitHub sandbox in its own process; sync and floor each in a fresh child process; embedded backends",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="child process of the sync_throughput benchmark")
    parser.add_argument("--child", choices=("sync", "floor"), required=True)
    parser.add_argument("--github-url", required=True)
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    result = _sync(args.data, args.github_url) if args.child == "sync" else _floor(args.github_url)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
