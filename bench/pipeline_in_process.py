"""``pipeline_in_process`` and ``store_ops_per_record``: the sync engine's write path, in process.

Pre-fetched provider records (GitHub issues and Salesforce contacts, shaped like the
sandboxes' answers) go page by page (100 records) through the adapter's record mapping, the
canonical mapping (derived author/assignee persons, links), dedupe (external id, content hash,
natural key, fuzzy), conflict detection and storage on the embedded SQLite document store, on
one core. Pages are generated as they are consumed, so memory holds one page at a time.

- ``pipeline_in_process``: 100,000 records (50,000 of each) in a fresh child process, and
  10,000 in another, for each one's peak RSS. Key ``records_per_second`` (wall clock; target
  >= 20,000), with ``cpu_records_per_second`` (the process's own CPU time) and the load average
  beside it, since the one core it is pinned to is shared with whatever else runs.
- ``store_ops_per_record``: store operations counted by a proxy around the store, for a first
  sync of 10,000 records and an unchanged re-sync of the same pages. Keys
  ``first_sync_writes_per_record`` (documents written / provider records; target <= 1; the
  derived author persons are documents too, so ``first_sync_writes_per_stored_record`` counts
  them among the records) and
  ``unchanged_writes_per_record`` (target 0), with reads and transactions beside them.
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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAGE = 100
TENANT = "bench-tenant"
_FIRST = ["Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger"]
_LAST = ["Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie", "Allen"]
_USERS = [{"login": f"dev{i:02d}", "id": 9000 + i} for i in range(40)]


def _pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def github_pages(count: int, version: int = 0) -> Iterator[list[dict[str, Any]]]:
    """``count`` issues as the GitHub API lists them (``version`` changes every title)."""
    for start in range(0, count, PAGE):
        page = []
        for n in range(start + 1, min(count, start + PAGE) + 1):
            user = _USERS[n % len(_USERS)]
            stamp = f"2024-01-{1 + n // 86400 % 28:02d}T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"
            page.append(
                {
                    "id": 100000 + n,
                    "node_id": f"I_kwSANDBOX{100000 + n}",
                    "number": n,
                    "title": f"Sync crash problem {n}" + (f" v{version}" if version else ""),
                    "body": "Steps to reproduce the sync crash issue.",
                    "state": "open" if n % 5 else "closed",
                    "labels": [{"id": 9318, "name": "bug", "color": "d73a4a"}],
                    "locked": False,
                    "comments": 0,
                    "assignees": [_USERS[(n + 7) % len(_USERS)]] if n % 3 == 0 else [],
                    "user": user,
                    "created_at": stamp,
                    "updated_at": stamp,
                    "closed_at": None,
                    "url": f"https://api.github.com/repos/acme/widgets/issues/{n}",
                    "repository_url": "https://api.github.com/repos/acme/widgets",
                    "html_url": f"https://github.com/acme/widgets/issues/{n}",
                }
            )
        yield page


def salesforce_pages(count: int) -> Iterator[list[dict[str, Any]]]:
    """``count`` Contacts as SOQL returns them."""
    for start in range(0, count, PAGE):
        page = []
        for n in range(start, min(count, start + PAGE)):
            first, last = _FIRST[n % len(_FIRST)], _LAST[n // len(_FIRST) % len(_LAST)]
            stamp = f"2024-02-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.000+0000"
            page.append(
                {
                    "attributes": {"type": "Contact", "url": f"/services/data/v60.0/sobjects/Contact/003{n:015d}"},
                    "Id": f"003{n:015d}",
                    "AccountId": f"001{n % 500:015d}",
                    "FirstName": first,
                    "LastName": last,
                    "Email": f"{first.lower()}.{last.lower()}{n}@acme.example.com",
                    "Phone": f"+1 650 555 {n % 10000:04d}",
                    "Title": "Engineer",
                    "MailingCity": "London",
                    "CreatedDate": stamp,
                    "LastModifiedDate": stamp,
                    "SystemModstamp": stamp,
                }
            )
        yield page


def _hub(data: Path, store: Any = None) -> tuple[Any, Any, Any, Any]:
    """Writer, integrations and adapters over a fresh SQLite file (``store`` wraps it when given)."""
    from adapters.providers.github import GitHubAdapter
    from adapters.providers.salesforce import SalesforceAdapter
    from shared.backends.sqlite_documents import SqliteDocumentStore
    from shared.config import Settings
    from shared.domain import Integration, StreamConfig
    from shared.services.records import RecordWriter
    from shared.services.repositories import Repositories

    docs = SqliteDocumentStore(data / "docs.sqlite")
    wrapped = store(docs) if store is not None else docs
    containers = Settings().containers
    repos = Repositories(wrapped, containers)
    writer = RecordWriter(repos.records, containers=containers)
    gh = Integration(
        id="gh", tenant_id=TENANT, provider="github", display_name="gh", streams=[StreamConfig(name="issues")]
    )
    sf = Integration(
        id="sf", tenant_id=TENANT, provider="salesforce", display_name="sf", streams=[StreamConfig(name="contacts")]
    )
    return writer, (gh, sf), (GitHubAdapter(), SalesforceAdapter()), wrapped


def _sync(
    writer: Any, integrations: Sequence[Any], adapters: Sequence[Any], count: int, version: int = 0
) -> dict[str, int]:
    """Half GitHub issues, half Salesforce contacts, page by page; results counted."""
    counts: dict[str, int] = {}
    feeds = (
        (integrations[0], adapters[0], "issues", github_pages(count // 2, version)),
        (integrations[1], adapters[1], "contacts", salesforce_pages(count - count // 2)),
    )
    for integration, adapter, stream, pages in feeds:
        for raw_page in pages:
            entities = [e for raw in raw_page for e in adapter.map_record(stream, raw)]
            outcome = writer.write_page(integration, entities, stream=stream)
            for result in outcome.results:
                counts[result.value] = counts.get(result.value, 0) + 1
    return counts


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _child_pipeline(count: int, data: Path) -> dict[str, Any]:
    _pin_one_core()
    writer, integrations, adapters, _ = _hub(data)
    _sync(writer, integrations, adapters, 2 * PAGE)  # warm-up: imports, compiled mappings, prepared statements
    started, cpu = time.perf_counter(), time.process_time()
    counts = _sync(writer, integrations, adapters, count, version=1)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "records": count,
        "seconds": round(elapsed, 3),
        "cpu_seconds": round(cpu, 3),
        "results": counts,
        "peak_rss_mb": _peak_rss_mb(),
    }


class CountingStore:
    """A document store proxy that counts operations and documents written."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads = self.writes = self.transactions = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in ("read", "query", "count"):

            def counted_read(*a: Any, **k: Any) -> Any:
                self.reads += 1
                return attr(*a, **k)

            return counted_read
        if name in ("create", "upsert", "replace", "patch", "delete"):

            def counted_write(*a: Any, **k: Any) -> Any:
                self.writes += 1
                self.transactions += 1
                return attr(*a, **k)

            return counted_write
        if name == "batch":

            def counted_batch(container: str, pk: str, ops: Sequence[Any]) -> Any:
                self.writes += len(ops)
                self.transactions += 1 if ops else 0
                return attr(container, pk, ops)

            return counted_batch
        return attr

    def snapshot(self) -> tuple[int, int, int]:
        return self.reads, self.writes, self.transactions


def store_ops_per_record(count: int = 10_000) -> dict[str, Any]:
    """Reads, documents written and transactions per record: first sync, then an unchanged re-sync."""
    with tempfile.TemporaryDirectory(prefix="ihub-bench-ops-") as tmp:
        writer, integrations, adapters, store = _hub(Path(tmp), CountingStore)
        first = _sync(writer, integrations, adapters, count)
        r1, w1, t1 = store.snapshot()
        again = _sync(writer, integrations, adapters, count)
        r2, w2, _ = store.snapshot()
        derived = store.inner.count("derived_records", partition_key=TENANT)
        store.inner.close()
    return {
        "records": count,
        "pages": count // PAGE,
        "first_sync_writes_per_record": round(w1 / count, 4),
        "first_sync_writes_per_stored_record": round(w1 / (count + derived), 4),
        "first_sync_reads_per_record": round(r1 / count, 4),
        "first_sync_transactions_per_record": round(t1 / count, 4),
        "first_sync_results": first,
        "derived_person_records": derived,
        "unchanged_writes_per_record": round((w2 - w1) / count, 4),
        "unchanged_reads_per_record": round((r2 - r1) / count, 4),
        "unchanged_results": again,
        "target_first_sync_writes_per_record": 1,
        "target_unchanged_writes_per_record": 0,
        "counted": "documents written (each op of a batch counts one) and store calls that read, by a proxy",
    }


def _child(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ihub-bench-pipe-") as data:
        command = [sys.executable, "-m", "bench.pipeline_in_process", "--child", str(count), "--data", data]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise SystemExit(f"pipeline_in_process ({count} records) failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def pipeline_in_process(sizes: tuple[int, int] = (10_000, 100_000)) -> dict[str, Any]:
    """Records/s at 100k and peak RSS at 10k and 100k, each in a child process pinned to one core."""
    small, big = _child(sizes[0]), _child(sizes[1])
    return {
        "records": sizes[1],
        "records_per_second": round(big["records"] / big["seconds"]),
        "target_records_per_second": 20_000,
        "cpu_records_per_second": round(big["records"] / big["cpu_seconds"]),
        "seconds": big["seconds"],
        "load_average_1m": round(os.getloadavg()[0], 2),
        "results": big["results"],
        "peak_rss_mb_10k": small["peak_rss_mb"],
        "peak_rss_mb_100k": big["peak_rss_mb"],
        "records_per_second_10k": round(small["records"] / small["seconds"]),
        "setup": "GitHub issues + Salesforce contacts (half each), pages of 100, adapter map_record + engine, "
        "SQLite document store in a temp dir, one core, child process per size",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="child process of the pipeline_in_process benchmark")
    parser.add_argument("--child", type=int, required=True)
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    print(json.dumps(_child_pipeline(args.child, args.data)))


if __name__ == "__main__":
    main()
