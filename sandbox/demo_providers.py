"""The demo's second act: one integration per provider besides GitHub, each against its sandbox.

Each :class:`ProviderDemo` starts its provider's sandbox on loopback with a little data, says
how to connect an integration to it through the admin API (the API base travels in the
integration config, as a token response's ``instance_url`` would), which streams to sync (child
streams start from their parents) and how many live records the hub should end with.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@dataclass(frozen=True)
class ProviderDemo:
    """How the demo connects and syncs one provider.

    Attributes:
        provider: The registry name.
        label: What the progress bar says.
        start: Starts the sandbox; returns it, the integration config and the access token.
        streams: Top-level streams to sync.
        expected: Live records the hub must hold afterwards, read from the sandbox.
    """

    provider: str
    label: str
    start: Callable[[], tuple[Any, dict[str, Any], str]]
    streams: tuple[str, ...]
    expected: Callable[[Any], int]


def _salesforce() -> tuple[Any, dict[str, Any], str]:
    from sandbox.salesforce import SalesforceSandbox

    sb = SalesforceSandbox(accounts=40, contacts=60, token="sf-demo-token", batch_size=10).start()
    return sb, {"instance_url": sb.base_url}, "sf-demo-token"


def _notion() -> tuple[Any, dict[str, Any], str]:
    from sandbox.notion import NotionSandbox

    sb = NotionSandbox(pages=30, databases=("Tasks", "Projects"), token="secret_notion_demo").start()
    return sb, {"api_base_url": sb.base_url}, "secret_notion_demo"


def _slack() -> tuple[Any, dict[str, Any], str]:
    from sandbox.slack import SlackSandbox

    sb = SlackSandbox(users=12, channels=4, messages_per_channel=15, token="xoxb-demo", post_interval_seconds=0)
    return sb.start(), {"api_base_url": sb.base_url}, "xoxb-demo"


def _google() -> tuple[Any, dict[str, Any], str]:
    from sandbox.google import GoogleSandbox

    sb = GoogleSandbox(files=25, events=40, token="ya29.demo").start()
    return sb, {"api_base_url": sb.base_url, "calendar_id": "primary"}, "ya29.demo"


DEMOS = (
    ProviderDemo(
        "salesforce", "Salesforce accounts and contacts", _salesforce,
        ("accounts", "contacts", "accounts_deleted", "contacts_deleted"),
        lambda sb: len(sb.records("Account")) + len(sb.records("Contact")),
    ),
    ProviderDemo(
        "notion", "Notion databases and pages", _notion, ("databases",),
        lambda sb: len(sb.database_ids) + sum(len(sb.pages(db)) for db in sb.database_ids),
    ),
    ProviderDemo(
        "slack", "Slack users, channels and messages", _slack, ("users", "channels"),
        lambda sb: len(sb.workspace.users) + len(sb.workspace.channels)
        + sum(len(sb.workspace.messages(c["id"])) for c in sb.workspace.channels),
    ),
    ProviderDemo(
        "google", "Google calendar events and drive files", _google, ("calendar_events", "drive_files"),
        lambda sb: len(sb.calendar.events) + len(sb.drive.files),
    ),
)


def _ok(response: httpx.Response, *expected: int) -> Any:
    if response.status_code not in expected:
        request = response.request
        raise RuntimeError(f"{request.method} {request.url} -> {response.status_code}: {response.text}")
    return response.json() if response.content else None


def sync_providers(
    console: Console, http: httpx.Client, stack: contextlib.ExitStack, *, timeout: float = 300,
    sandboxes: dict[str, Any] | None = None,
) -> dict[str, tuple[int, int]]:
    """Connect and sync every provider demo; returns ``{provider: (expected, stored)}`` (``sandboxes``: filled)."""
    started: list[tuple[ProviderDemo, str, Any]] = []
    for demo in DEMOS:
        sandbox, config, token = demo.start()
        stack.callback(sandbox.stop)
        integration = f"{demo.provider}-demo"
        _ok(http.post("/manage/integrations", json={
            "id": integration, "provider": demo.provider, "display_name": demo.label, "config": config}), 201)
        _ok(http.put(f"/manage/integrations/{integration}/credential", json={"access_token": token}), 200)
        for stream in demo.streams:
            _ok(http.post(f"/manage/integrations/{integration}/sync", json={"stream": stream}), 202)
        started.append((demo, integration, sandbox))
        if sandboxes is not None:
            sandboxes[demo.provider] = sandbox
        console.print(f"Connected [cyan]{integration}[/] ({demo.label}) to its sandbox at {sandbox.base_url}")

    outcome: dict[str, tuple[int, int]] = {}
    columns = (TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bars:
        tasks = {d.provider: bars.add_task(d.label, total=d.expected(sb)) for d, _, sb in started}
        deadline = time.monotonic() + timeout
        pending = {d.provider for d, _, _ in started}
        while pending and time.monotonic() < deadline:
            for demo, integration, sandbox in started:
                if demo.provider not in pending:
                    continue
                stats = _ok(http.get(f"/manage/integrations/{integration}/stats"), 200)
                runs = _ok(http.get(f"/manage/integrations/{integration}/runs"), 200)
                bars.update(tasks[demo.provider], completed=stats["records"])
                if runs and all(r["status"] != "running" for r in runs) and len(runs) >= len(demo.streams):
                    pending.discard(demo.provider)
                    outcome[demo.provider] = (demo.expected(sandbox), stats["records"])
            time.sleep(0.2)
    for provider in pending:
        outcome[provider] = (-1, -1)
    return outcome


def send_provider_webhooks(
    console: Console, http: httpx.Client, api: str, sandboxes: dict[str, Any], *, timeout: float = 60
) -> dict[str, list[int]]:
    """Each provider's sandbox (or its documented delivery, signed with the provider's scheme) sends webhooks.

    Slack: a signed Events API message; Salesforce: a signed Apex callout with two accounts; a
    custom source: three Standard Webhooks deliveries;
    Notion: the subscription's verification request (its token becomes the webhook secret),
    then a signed ``page.content_updated`` the hub answers by fetching the page; Google: the hub
    opens its watch channels at the sandbox, a new calendar event makes the sandbox notify them.

    Returns:
        ``{provider: [HTTP status of each delivery]}``.

    Raises:
        RuntimeError: A delivery was refused, or its events did not finish (processed or ignored) in time.
    """
    from pydantic import SecretStr

    from adapters.base.verify.model import WebhookKey
    from adapters.base.verify.profiles import profile
    from adapters.base.verify.registry import build_strategy
    from adapters.base.verify.samples import sample

    secret = "demo-provider-webhook-secret"

    def signed(profile_name: str, event: str, provider: str, integration: str, *, count: int = 1) -> int:
        key = WebhookKey(secret=SecretStr(secret))
        body = sample(profile_name, event, now=time.time(), key=key, count=count)
        strategy = build_strategy(profile(profile_name).config)
        out = strategy.sign(body.body, key, now=time.time(), delivery_id=body.delivery_id, event_type=event)
        return httpx.post(f"{api}/webhooks/{provider}/{integration}", content=out.body, headers=out.headers,
                          timeout=10).status_code

    statuses: dict[str, list[int]] = {}
    for provider in ("slack", "salesforce", "google"):
        _ok(http.put(f"/manage/integrations/{provider}-demo/credential", json={"webhook_secret": secret}), 200)
    statuses["slack"] = [signed("slack", "message", "slack", "slack-demo")]
    statuses["salesforce"] = [signed("salesforce-apex", "updated", "salesforce", "salesforce-demo", count=2)]
    notion = sandboxes["notion"]
    subscription, answer = notion.create_subscription(f"{api}/webhooks/notion/notion-demo")
    page_id = next(iter(notion.workspace.pages))
    statuses["notion"] = [answer.status_code, notion.send_event(
        subscription, notion.build_event(subscription, "page.content_updated", page_id)).status_code]
    from sandbox.custom_source import CustomSourceSandbox

    whsec = "whsec_ZGVtby1jdXN0b20tc291cmNlLWtleS0zMmJ5dGVz"
    _ok(http.post("/manage/integrations", json={"id": "webhook-demo", "provider": "webhook", "streams": [],
                                                "display_name": "A custom source (Standard Webhooks)"}), 201)
    _ok(http.put("/manage/integrations/webhook-demo/credential", json={"webhook_secret": whsec}), 200)
    source = CustomSourceSandbox(records=3)  # not started: it only sends
    statuses["webhook"] = [source.send_webhook(f"{api}/webhooks/webhook/webhook-demo", whsec, "record.updated",
                                               record).status_code for record in source.records()]
    google = sandboxes["google"]
    _ok(http.post("/manage/integrations/google-demo/subscriptions"), 200)
    google.create_event("Demo review")
    statuses["google"] = [n.statuses[-1] for n in google.channels.flush()]
    refused = {p: s for p, s in statuses.items() if not s or any(not 200 <= code < 300 for code in s)}
    if refused:
        raise RuntimeError(f"webhook deliveries refused: {refused}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = _ok(http.get("/manage/webhook-events", params={"limit": "1000"}), 200)
        mine = [e for e in events if e["integration_id"] != "gh-demo"]
        if mine and all(e["status"] in ("processed", "ignored", "failed") for e in mine):
            failed = [e for e in mine if e["status"] == "failed"]
            if failed:
                raise RuntimeError(f"webhook events failed: {[(e['provider'], e['error']) for e in failed]}")
            break
        time.sleep(0.2)
    else:
        raise RuntimeError("provider webhook events did not finish within the timeout")
    for provider, codes in statuses.items():
        console.print(f"Webhooks from the [cyan]{provider}[/] sandbox: HTTP {', '.join(map(str, codes))}")
    return statuses
