"""``make demo``: the main job end to end on embedded backends and the provider sandboxes.

Starts the GitHub sandbox and the dev host (in this process, on loopback), connects one
GitHub integration for a demo tenant through the admin API over HTTP, syncs the sandbox's
issues with a progress bar, has the sandbox change issues and send signed webhooks (plus a
duplicate and a forged one), and prints what happened. Then it connects one integration
per other provider (Salesforce, Notion, Slack, Google) to its own sandbox and syncs them all
with a progress bar each (:mod:`sandbox.demo_providers`); ``--report FILE`` writes, per
provider, records by entity type, runs by status, webhook events by status and dead letters.
Without ``--once`` it leaves the dev host and the admin page up until Ctrl-C or SIGTERM;
with ``--once`` it stops them and
prints no admin URL (nothing would answer it). ``IHUB_DEMO_DATA_DIR`` moves the demo's data
(default ``.local/demo``, wiped at start).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import threading
import time
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

TENANT = "demo-tenant"
WEBHOOK_SECRET = "demo-webhook-secret"
SANDBOX_TOKEN = "gh-demo-token"
DATA_DIR = Path(".local/demo")


class DemoFailed(RuntimeError):
    """A step of the scenario did not do what it should."""


def _free_port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


def _check(response: httpx.Response, *expected: int) -> Any:
    if response.status_code not in expected:
        raise DemoFailed(f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text}")
    return response.json() if response.content else None


class _Stopped(Exception):
    """SIGTERM arrived: stop the way Ctrl-C does."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def _console() -> Console:
    """The demo's console; without a terminal, lines are never wrapped at 80 columns."""
    console = Console()
    if not console.is_terminal:
        console = Console(soft_wrap=True, width=max(console.width, 160))
    return console


def run_demo(*, once: bool, issues: int, port: int, report: Path | None = None) -> int:
    """Run the scenario; returns the process exit code.

    Ctrl-C and SIGTERM stop it gracefully at any point: the dev host and the sandbox are
    stopped, and the exit code is 0 after a completed scenario, 130 when interrupted during it.
    """
    console = _console()
    for noisy in ("httpx", "devtools.devhost", "ihub"):  # the demo prints its own account of what happened
        logging.getLogger(noisy).setLevel(logging.ERROR)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    stack = contextlib.ExitStack()
    completed = False
    try:
        host, sandbox, api = _start(stack, issues, port, once)
        console.print(
            f"[bold]Integration Hub demo[/]  dev host {api}  GitHub sandbox {sandbox.base_url} ({issues} issues)"
        )
        _scenario(console, sandbox, host, api, issues)
        _other_providers(console, stack, api, report)
        completed = True
        if once:
            console.print("\nDemo complete; the dev host and the sandbox are stopping.")
            return 0
        admin_url = f"{api}/manage/?tenant={TENANT}"
        console.print(f"\nAdmin page: [link={admin_url}]{admin_url}[/link]")
        console.print("Dev host and sandbox keep running; Ctrl-C (or SIGTERM) to stop.")
        while True:
            time.sleep(1)
    except DemoFailed as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        return 1
    except (KeyboardInterrupt, _Stopped):
        console.print("\nStopping the dev host and the sandbox.")
        return 0 if completed else 130
    finally:
        stack.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _start(stack: contextlib.ExitStack, issues: int, port: int, once: bool) -> tuple[Any, Any, str]:
    """Start the sandbox and the dev host on embedded backends; ``stack`` stops them."""
    from sandbox.github import GitHubSandbox

    sandbox = GitHubSandbox(token=SANDBOX_TOKEN, issues=issues, latency_seconds=0.2).start()
    stack.callback(sandbox.stop)
    from sandbox.github_oauth import GitHubOAuthSandbox

    oauth = GitHubOAuthSandbox(on_token=sandbox.set_token).start()  # github.com's OAuth host; tokens reach the API
    stack.callback(oauth.stop)
    port = _free_port(port)
    data_dir = Path(os.environ.get("IHUB_DEMO_DATA_DIR") or DATA_DIR)
    shutil.rmtree(data_dir, ignore_errors=True)
    from devtools.devhost.settings_file import apply_to_environ, load_local_settings

    apply_to_environ(load_local_settings(None, root=Path.cwd()))
    os.environ.update(
        {
            "IHUB_DATA_DIR": str(data_dir),
            "IHUB_DOCUMENT_BACKEND": "sqlite",
            "IHUB_SECRET_BACKEND": "local",
            "IHUB_QUEUE_BACKEND": "sqlite",
            "IHUB_EVENT_BACKEND": "local",
            "IHUB_BLOB_BACKEND": "local",
            "IHUB_PROVIDER_BASE_URLS": f'{{"github": "{sandbox.base_url}"}}',
            "IHUB_OAUTH_BASE_URLS": json.dumps({"github": oauth.base_url}),
            "IHUB_OAUTH_CLIENTS": json.dumps({"github": {"client_id": oauth.client_id,
                                                         "client_secret": oauth.client_secret}}),
            "IHUB_QUEUE_LOCK_SECONDS": "30",
        }
    )
    import function_app
    from devtools.devhost.host import DevHost
    from shared.runtime import get_hub, reset_hub

    reset_hub()
    stack.callback(reset_hub)
    hub = get_hub()
    host = DevHost(
        function_app.app,
        settings=dict(os.environ),
        queue=hub.ports.queue,  # type: ignore[arg-type]
        events=hub.ports.events,  # type: ignore[arg-type]
        port=port,
        enable_timers=not once,
    )
    host.start()
    stack.callback(host.stop)
    return host, sandbox, f"{host.base_url}/api"


def _other_providers(console: Console, stack: contextlib.ExitStack, api: str, report: Path | None) -> None:
    """Connect and sync one integration per other provider; write the report when asked."""
    from sandbox.demo_providers import send_provider_webhooks, sync_providers

    console.print("\n[bold]Every provider[/]: one integration each, synced from its own sandbox")
    http = httpx.Client(base_url=api, headers={"x-tenant-id": TENANT}, timeout=30)
    stack.callback(http.close)
    sandboxes: dict[str, Any] = {}
    try:
        outcome = sync_providers(console, http, stack, sandboxes=sandboxes)
        console.print("\n[bold]Webhooks from every provider[/]: signed as each provider signs, verified by its scheme")
        send_provider_webhooks(console, http, api, sandboxes)
        from sandbox.demo_engine import engine_act  # the sync engine: a merged person, six strategies

        engine_act(console, http, stack)
    except RuntimeError as exc:
        raise DemoFailed(str(exc)) from None
    integrations = {"github": "gh-demo"} | {provider: f"{provider}-demo" for provider in outcome}
    reports = {p: _check(http.get(f"/manage/integrations/{i}/report"), 200) for p, i in integrations.items()}
    table = Table(title="Providers")
    for col in ("provider", "records by entity type", "runs", "dead letters"):
        table.add_column(col)
    for provider, body in reports.items():
        types = ", ".join(f"{t} {n}" for t, n in body["records_by_entity_type"].items())
        runs = ", ".join(f"{s} {n}" for s, n in body["runs_by_status"].items())
        table.add_row(provider, types, runs, str(body["dead_letters"]))
    console.print(table)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps({"tenant": TENANT, "providers": reports}, indent=2, sort_keys=True) + "\n")
        console.print(f"Report written to {report}")
    wrong = {p: o for p, o in outcome.items() if o[0] != o[1]}
    if wrong:
        raise DemoFailed(f"records expected vs stored differ: {wrong}")
    failed = {p: b["dead_letters"] for p, b in reports.items() if b["dead_letters"]}
    if failed:
        raise DemoFailed(f"dead letters: {failed}")


def _connect_through_oauth(console: Console, http: httpx.Client, integration_id: str) -> None:
    """Connect through the full OAuth flow: authorize URL (PKCE, signed state) → the sandbox's consent
    (auto-approved) → the OAuth callback, which exchanges the code; then one fenced refresh."""
    started = _check(http.post(f"/manage/integrations/{integration_id}/connect"), 200)
    with httpx.Client(timeout=30, follow_redirects=True) as browser:
        page = browser.get(started["authorize_url"])
    status = _check(http.get(f"/manage/integrations/{integration_id}"), 200)["status"]
    if page.status_code != 200 or status != "connected":
        raise DemoFailed(f"OAuth connect ended {page.status_code} with the integration {status}: {page.text[:300]}")
    console.print(f"OAuth: authorize (PKCE S256, signed single-use state) -> callback -> [green]{status}[/]")
    refreshed = _check(http.post(f"/manage/integrations/{integration_id}/refresh", json={"force": True}), 200)
    if refreshed["status"] != "refreshed":
        raise DemoFailed(f"the forced refresh did not refresh: {refreshed}")
    console.print(f"Fenced refresh: new version under fence {refreshed['fence']} (the old refresh token is now dead)")


def _scenario(console: Console, sandbox: Any, host: Any, api: str, issues: int) -> None:
    http = httpx.Client(base_url=api, headers={"x-tenant-id": TENANT}, timeout=30)
    integ = _check(
        http.post(
            "/manage/integrations",
            json={
                "id": "gh-demo",
                "provider": "github",
                "display_name": "Acme widgets (GitHub)",
                "config": {"owner": sandbox.owner, "repo": sandbox.repo},
            },
        ),
        201,
    )
    _connect_through_oauth(console, http, integ["id"])
    _check(http.put(f"/manage/integrations/{integ['id']}/credential", json={"webhook_secret": WEBHOOK_SECRET}), 200)
    console.print(f"Connected integration [cyan]{integ['id']}[/] for tenant [cyan]{TENANT}[/]")

    run_ids = _check(http.post(f"/manage/integrations/{integ['id']}/sync", json={}), 202)["run_ids"]
    with Progress(
        TextColumn("syncing issues"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("sync", total=issues)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            stats = _check(http.get(f"/manage/integrations/{integ['id']}/stats"), 200)
            bar.update(task, completed=stats["records"])
            runs = _check(http.get(f"/manage/integrations/{integ['id']}/runs"), 200)
            run = next((r for r in runs if r["id"] == run_ids[0]), None)
            if run and run["status"] != "running":
                break
            time.sleep(0.2)
        stats = _check(http.get(f"/manage/integrations/{integ['id']}/stats"), 200)  # read after the run ended
        bar.update(task, completed=stats["records"])
    if not run or run["status"] != "succeeded":
        raise DemoFailed(f"initial sync did not succeed: {run}")
    if stats["records"] != issues:
        raise DemoFailed(f"expected {issues} records, found {stats['records']}")
    console.print(f"Initial sync: {run['pages']} pages, {run['records_created']} records created")

    hook_url = f"{api}/webhooks/github/{integ['id']}"
    statuses: list[tuple[str, int]] = []
    changed = []
    for number in (1, 2, 3, 4, 5):
        issue = sandbox.update_issue(number, title=f"[demo] issue {number} renamed by a webhook")
        changed.append(issue)
        delivery = str(uuid.uuid4())
        payload = sandbox.issue_event_payload(issue, action="edited")
        statuses.append(
            (
                f"issue #{number} edited",
                sandbox.send_webhook(hook_url, WEBHOOK_SECRET, "issues", payload, delivery_id=delivery).status_code,
            )
        )
        if number == 1:
            statuses.append(
                (
                    "same delivery again",
                    sandbox.send_webhook(hook_url, WEBHOOK_SECRET, "issues", payload, delivery_id=delivery).status_code,
                )
            )
    forged = sandbox.send_webhook(hook_url, "not-the-secret", "issues", sandbox.issue_event_payload(changed[0]))
    statuses.append(("forged signature", forged.status_code))
    if not host.drain(60):
        raise DemoFailed("webhook work did not finish within 60 s")

    table = Table(title="Webhook deliveries")
    table.add_column("delivery")
    table.add_column("HTTP status", justify="right")
    for name, status in statuses:
        table.add_row(name, str(status))
    console.print(table)
    expected = [202, 200, 202, 202, 202, 202, 401]
    if [s for _, s in statuses] != expected:
        raise DemoFailed(f"webhook statuses {[s for _, s in statuses]} != {expected}")

    records = _check(http.get(f"/manage/integrations/{integ['id']}/records", params={"limit": 1000}), 200)
    by_number = {r["data"]["number"]: r for r in records}
    for issue in changed:
        if by_number[issue["number"]]["data"]["title"] != issue["title"]:
            raise DemoFailed(f"record of issue #{issue['number']} was not updated by its webhook")

    stats = _check(http.get(f"/manage/integrations/{integ['id']}/stats"), 200)
    runs = _check(http.get(f"/manage/integrations/{integ['id']}/runs"), 200)
    summary = Table(title="Summary")
    summary.add_column("what")
    summary.add_column("count", justify="right")
    summary.add_row("records stored", str(stats["records"]))
    summary.add_row("records changed by webhooks", str(len(changed)))
    summary.add_row("sync runs", str(stats["runs"]))
    summary.add_row("webhook events stored (duplicate and forged not stored)", str(stats["webhook_events"]))
    summary.add_row("dead letters", str(stats["dead_letters"]))
    console.print(summary)
    runs_table = Table(title="Runs")
    for col in ("stream", "trigger", "status", "pages", "created", "updated", "unchanged"):
        runs_table.add_column(col)
    for r in runs:
        runs_table.add_row(
            r["stream"],
            r["trigger"],
            r["status"],
            str(r["pages"]),
            str(r["records_created"]),
            str(r["records_updated"]),
            str(r["records_unchanged"]),
        )
    console.print(runs_table)
