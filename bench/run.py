"""Benchmarks. Prints one JSON report (and writes it to bench/results/latest.json).

1. cold_import: ``python -c "import function_app"`` in fresh processes (what a cold start
   pays before the first invocation), with ``import azure.functions`` alone as the floor.
2. webhook_intake: verify + dedupe + persist + enqueue through the WebhookReceiver function
   (real ``azure.functions.HttpRequest``), embedded backends, pinned to one core.

Usage: ``make bench`` runs every benchmark; ``make bench ARGS='--only NAME'`` runs one
(repeat ``--only`` for several). Each benchmark is a function registered in ``BENCHMARKS``;
it returns a JSON-able dict, and the report maps benchmark names to those dicts. A run with
``--only`` merges its results into the existing ``latest.json`` instead of dropping the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def cold_import(runs: int) -> dict[str, object]:
    """Median wall time of a fresh interpreter importing the app (and the SDK floor)."""

    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    codes = {"app": "import function_app", "floor": "import azure.functions", "bare": "pass"}
    times: dict[str, list[float]] = {name: [] for name in codes}
    for round_ in range(runs + 1):  # interleaved, so machine noise hits all three alike
        for name, code in codes.items():
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
            if round_:  # round 0 warms the OS file cache
                times[name].append((time.perf_counter() - started) * 1000)
    app, floor, bare = times["app"], times["floor"], times["bare"]
    return {
        "runs": runs,
        "import_function_app_ms": {
            "median": round(statistics.median(app), 1),
            "p90": round(_percentile(app, 90), 1),
            "min": round(min(app), 1),
        },
        "import_azure_functions_alone_ms": {"median": round(statistics.median(floor), 1), "min": round(min(floor), 1)},
        "bare_interpreter_ms": {"median": round(statistics.median(bare), 1)},
        "app_cost_above_azure_functions_ms": round(statistics.median(app) - statistics.median(floor), 1),
        "target_median_ms": 250,
    }


def webhook_intake(count: int) -> dict[str, object]:
    """Webhooks/s and p99 through the WebhookReceiver function, per scheme (see bench/webhook_intake.py)."""
    from bench.webhook_intake import measure

    return measure(count)


def devhost_webhooks_http() -> dict[str, object]:
    """Signed webhooks over HTTP through a real ``ihub dev`` process vs in process (see bench/devhost_http.py)."""
    from bench.devhost_http import devhost_webhooks_http as measure

    return measure()


def devhost_sync() -> dict[str, object]:
    """A 10,000-issue GitHub sync through ``ihub dev`` vs in process (see bench/devhost_backlog.py)."""
    from bench.devhost_backlog import devhost_sync as measure

    return measure()


def webhook_backlog() -> dict[str, object]:
    """3,000 signed deliveries to one integration: drain time / sending time (see bench/devhost_backlog.py)."""
    from bench.devhost_backlog import webhook_backlog as measure

    return measure()


def sync_throughput() -> dict[str, object]:
    """A 50,000-issue GitHub sync through the queue and worker vs fetching alone (see bench/sync_throughput.py)."""
    from bench.sync_throughput import sync_throughput as measure

    return measure()


def pipeline_in_process() -> dict[str, object]:
    """100,000 GitHub issues + Salesforce contacts through the sync engine in process (bench/pipeline_in_process.py)."""
    from bench.pipeline_in_process import pipeline_in_process as measure

    return measure()


def store_ops_per_record() -> dict[str, object]:
    """Store reads and writes per record, first sync and unchanged re-sync (bench/pipeline_in_process.py)."""
    from bench.pipeline_in_process import store_ops_per_record as measure

    return measure()


def token_refresh() -> dict[str, object]:
    """1,000 due credentials refreshed against the OAuth sandbox, and a 50-thread race (bench/token_refresh.py)."""
    from bench.token_refresh import token_refresh as measure

    return measure()


def rate_limit_decision() -> dict[str, object]:
    """Budget decisions per second on one core, in process and on Redis (see bench/rate_limit_decision.py)."""
    from bench.rate_limit_decision import rate_limit_decision as measure

    return measure()


def rate_limit_simulation() -> dict[str, object]:
    """50 tenants x 4 integrations on one 5,000/h app limit (see bench/rate_limit_simulation.py)."""
    from bench.rate_limit_simulation import rate_limit_simulation as measure

    return measure()


# name -> (function taking the parsed args, one-line description). Add new benchmarks here.
BENCHMARKS: dict[str, tuple[Callable[[argparse.Namespace], dict[str, object]], str]] = {
    "cold_import": (lambda a: cold_import(a.imports), "cold `import function_app` vs `import azure.functions`"),
    "webhook_intake": (lambda a: webhook_intake(a.webhooks), "WebhookReceiver in-process, embedded backends"),
    "devhost_webhooks_http": (lambda a: devhost_webhooks_http(), "8 HTTP clients through `ihub dev` vs in-process"),
    "devhost_sync": (lambda a: devhost_sync(), "10,000-issue GitHub sync through `ihub dev` vs in-process"),
    "webhook_backlog": (lambda a: webhook_backlog(), "3,000 webhooks to one integration: drain / sending time"),
    "sync_throughput": (lambda a: sync_throughput(), "50,000-issue GitHub sync via queue and worker vs fetch floor"),
    "pipeline_in_process": (lambda a: pipeline_in_process(), "100,000 records through the sync engine, one core"),
    "store_ops_per_record": (lambda a: store_ops_per_record(), "store reads/writes per record: first and unchanged"),
    "token_refresh": (lambda a: token_refresh(), "1,000 due credentials refreshed; 50 racers -> provider calls"),
    "rate_limit_decision": (lambda a: rate_limit_decision(), "budget decisions/s on one core: in process, Redis"),
    "rate_limit_simulation": (lambda a: rate_limit_simulation(), "50x4 integrations, a 5,000/h app: 429s, fairness"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only this benchmark")
    parser.add_argument("--imports", type=int, default=21, help="cold_import: fresh interpreters per variant")
    parser.add_argument("--webhooks", type=int, default=10000, help="webhook_intake: deliveries")
    args = parser.parse_args()
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    latest = out / "latest.json"
    report: dict[str, object] = {}
    if args.only and latest.exists():
        try:
            report = json.loads(latest.read_text())
        except ValueError:
            report = {}
    report["python"] = sys.version.split()[0]
    for name in args.only or list(BENCHMARKS):
        fn, what = BENCHMARKS[name]
        print(f"{name}: {what} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        report[name] = fn(args)
        print(f"{name}: done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    text = json.dumps(report, indent=2)
    latest.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
