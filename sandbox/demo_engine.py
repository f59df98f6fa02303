"""The demo's third act: the sync engine. One person merged from Slack and Salesforce, then one
conflict resolved under each of the six strategies.

It starts a small Slack and Salesforce sandbox of its own, connects ``slack-engine`` (users) and
``sf-engine`` (contacts, with a strategy per field) through the admin API, and syncs both: the
Slack member and the Salesforce contact share an email address, so they become one ``person``
(``GET /api/manage/entities?type=person&q=<email>`` shows both sources). An operator then edits
six fields of that person through the admin API while Salesforce changes the same six; the next
contacts sync merges three-way and each field's strategy decides (``manual`` waits, and the demo
resolves it through ``POST /api/manage/conflicts/{id}/resolve``).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

EMAIL = "ada.lovelace@engine-demo.example"
STRATEGIES = {  # the Salesforce contacts stream: field_merge, with a strategy per field
    "title": "remote_wins",
    "phone": "local_wins",
    "city": "last_write_wins",
    "name": "source_priority",
    "email": "manual",
}
LOCAL = {
    "title": "Countess",
    "phone": "+44 20 7946 0000",
    "city": "Paris",
    "name": "Augusta Ada King",
    "email": "ada@hub.example",
    "first_name": "Augusta",
}
REMOTE: dict[str, Any] = {
    "Title": "Analyst of engines",
    "Phone": "+1 650 555 0199",
    "MailingCity": "London",
    "FirstName": "Ada Augusta",
    "LastName": "Byron",
    "Email": "ada.byron@engine-demo.example",
}


def _ok(response: httpx.Response, *expected: int) -> Any:
    if response.status_code not in expected:
        raise RuntimeError(
            f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text}"
        )
    return response.json() if response.content else None


def _sync(http: httpx.Client, integration: str, stream: str, timeout: float = 60) -> None:
    [run_id] = _ok(http.post(f"/manage/integrations/{integration}/sync", json={"stream": stream}), 202)["run_ids"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = _ok(http.get(f"/manage/integrations/{integration}/runs"), 200)
        run = next((r for r in runs if r["id"] == run_id), None)
        if run is not None and run["status"] != "running":
            if run["status"] != "succeeded":
                raise RuntimeError(f"{integration}/{stream} run {run['status']}: {run.get('error')}")
            return
        time.sleep(0.1)
    raise RuntimeError(f"{integration}/{stream} did not finish within {timeout} s")


def _connect(
    http: httpx.Client, integration: str, provider: str, config: dict[str, Any], token: str, stream: dict[str, Any]
) -> None:
    body = {"id": integration, "provider": provider, "display_name": integration, "config": config, "streams": [stream]}
    _ok(http.post("/manage/integrations", json=body), 201)
    _ok(http.put(f"/manage/integrations/{integration}/credential", json={"access_token": token}), 200)


def engine_act(console: Console, http: httpx.Client, stack: contextlib.ExitStack) -> dict[str, Any]:
    """Run the act; returns the merged person and the conflicts (RuntimeError when something is off)."""
    from sandbox.salesforce import SalesforceSandbox
    from sandbox.slack import SlackSandbox

    console.print("\n[bold]The sync engine[/]: one person from Slack and Salesforce, six conflict strategies")
    slack = SlackSandbox(token="xoxb-engine", post_interval_seconds=0).start()
    stack.callback(slack.stop)
    sf = SalesforceSandbox(accounts=1, token="sf-engine-token").start()
    stack.callback(sf.stop)
    slack.create_user("Ada Lovelace", EMAIL)
    account = sf.records("Account")[0]["Id"]
    contact = sf.create_record(
        "Contact",
        FirstName="Ada",
        LastName="Lovelace",
        Email=EMAIL.upper(),
        Title="Analyst",
        Phone="+1 650 555 0100",
        MailingCity="Oxford",
        AccountId=account,
    )
    _connect(http, "slack-engine", "slack", {"api_base_url": slack.base_url}, "xoxb-engine", {"name": "users"})
    _connect(
        http,
        "sf-engine",
        "salesforce",
        {"instance_url": sf.base_url},
        "sf-engine-token",
        {
            "name": "contacts",
            "conflict_strategy": "field_merge",
            "field_strategies": STRATEGIES,
            "source_priority": {"name": ["salesforce", "local"]},
        },
    )
    _sync(http, "slack-engine", "users")
    _sync(http, "sf-engine", "contacts")
    found = _ok(http.get("/manage/entities", params={"type": "person", "q": EMAIL}), 200)["entities"]
    if len(found) != 1 or {s["provider"] for s in found[0]["sources"]} != {"slack", "salesforce"}:
        raise RuntimeError(f"expected one person from slack and salesforce for {EMAIL}, found {found}")
    person = found[0]
    console.print(
        f"One [cyan]person[/] {person['id']}: {person['fields']['name']} <{EMAIL}>, from "
        + " and ".join(f"{s['provider']} {s['external_id']}" for s in person["sources"])
        + f" (merged by {person['merged'][0]['how']})"
    )

    _ok(http.post(f"/manage/entities/{person['id']}/changes", json={"fields": LOCAL}), 200)  # the operator's edit
    sf.update_record("Contact", contact["Id"], **REMOTE)  # ... while Salesforce changes the same fields
    _sync(http, "sf-engine", "contacts")
    conflicts = _ok(http.get("/manage/conflicts", params={"entity_id": person["id"]}), 200)
    waiting = [c for c in conflicts if c["status"] == "open"]
    for conflict in waiting:
        _ok(http.post(f"/manage/conflicts/{conflict['id']}/resolve", json={"pick": "local"}), 200)
    conflicts = _ok(http.get("/manage/conflicts", params={"entity_id": person["id"]}), 200)
    table = Table(title=f"Conflicts of {person['id']} (local edit vs Salesforce)")
    for col in ("field", "strategy", "local", "salesforce", "outcome", "decided by"):
        table.add_column(col)
    for c in sorted(conflicts, key=lambda c: c["field"]):
        table.add_row(
            c["field"], c["strategy"], str(c["local"]), str(c["remote"]), str(c["resolution"]), str(c["resolved_by"])
        )
    console.print(table)
    strategies = {c["strategy"] for c in conflicts}
    expected = {"remote_wins", "local_wins", "last_write_wins", "field_merge", "source_priority", "manual"}
    if strategies != expected or any(c["status"] != "resolved" for c in conflicts):
        seen = [(c["field"], c["strategy"], c["status"]) for c in conflicts]
        raise RuntimeError(f"expected one resolved conflict per strategy, found {seen}")
    final = _ok(http.get(f"/manage/entities/{person['id']}"), 200)
    console.print(f"Merged person now: {final['fields']} (status {final['status']})")
    return {"person": final, "conflicts": conflicts}
