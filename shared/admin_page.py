"""The admin API's two HTML pages: a tenant's overview, and help for a request without a tenant.

Read-only and dependency-free: every value is HTML-escaped, every link is a JSON endpoint of
the admin API under ``/api/manage/...`` carrying the tenant (and the function key, when the
page was opened with ``?code=``), and the overview reloads itself while a run is active.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

if TYPE_CHECKING:
    from shared.runtime import Hub

REFRESH_SECONDS = 3
RUNS_SHOWN = 5
DEAD_LETTERS_SHOWN = 20

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}th{background:#f4f4f4}"
    "code{background:#f4f4f4;padding:1px 4px}.running{color:#b60}.failed,.error,.unauthorized{color:#b00}"
    ".succeeded,.connected{color:#070}small{color:#666}"
)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str, *, refresh: bool = False) -> str:
    meta = f"<meta http-equiv='refresh' content='{REFRESH_SECONDS}'>" if refresh else ""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{meta}<title>{_e(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def manage_url(request_url: str) -> str:
    """The absolute ``.../manage`` path of an admin request URL (``/api/manage`` if unknown)."""
    path = urlsplit(request_url).path
    at = path.find("/manage")
    return path[: at + len("/manage")] if at >= 0 else "/api/manage"


def help_page(request_url: str) -> str:
    """What to send: shown for ``GET /api/manage/`` without a tenant (status 400)."""
    base = manage_url(request_url)
    example = f"{base}/?tenant=demo-tenant"
    body = (
        "<h1>Integration Hub admin</h1>"
        "<p><b>No tenant given.</b> Every admin call is scoped to one tenant. Send its id in the "
        "<code>X-Tenant-Id</code> header, or in the query string as <code>?tenant=</code>: "
        "1-128 characters (letters, digits, <code>_ . : -</code>), starting with a letter or digit.</p>"
        f"<p>For example: <a href='{_e(example)}'>{_e(example)}</a></p>"
        "<p>In Azure, also send the function key: <code>x-functions-key</code> header or <code>?code=</code>.</p>"
        "<table><tr><th>method and path</th><th>does</th></tr>"
        f"<tr><td>GET {_e(base)}/</td><td>this tenant's overview page</td></tr>"
        f"<tr><td>GET/POST {_e(base)}/integrations</td><td>list / create integrations</td></tr>"
        f"<tr><td>GET {_e(base)}/integrations/{{id}}[/runs|/records|/stats]</td><td>one integration</td></tr>"
        f"<tr><td>PUT {_e(base)}/integrations/{{id}}/credential</td><td>store its credential</td></tr>"
        f"<tr><td>POST {_e(base)}/integrations/{{id}}/sync</td><td>start a sync now</td></tr>"
        f"<tr><td>GET {_e(base)}/dead-letters</td><td>work given up on, with reasons</td></tr></table>"
    )
    return _page("Integration Hub admin: tenant required", body)


def render_admin_page(hub: Hub, tenant: str, params: Mapping[str, str], request_url: str = "") -> str:
    """The tenant's overview: integrations with links to their runs, records, stats and dead letters.

    Args:
        hub: The hub whose admin service is read.
        tenant: The (validated) tenant id.
        params: The request's query parameters (a ``code`` function key is carried into links).
        request_url: The page's own URL, to build absolute links.

    Returns:
        The HTML page; it reloads every few seconds while any shown run is running.
    """
    base = manage_url(request_url) if request_url else "/api/manage"
    query = {"tenant": tenant}
    if params.get("code"):
        query["code"] = params["code"]
    qs = "?" + urlencode(query)

    def link(path: str, text: str) -> str:
        return f"<a href='{_e(base + '/' + path + qs)}'>{_e(text)}</a>"

    rows = []
    active = False
    for integ in hub.admin.list_integrations(tenant):
        stats = hub.admin.stats(tenant, integ.id)
        runs = hub.admin.list_runs(tenant, integ.id, RUNS_SHOWN)
        active = active or any(r.status.value == "running" for r in runs)
        run_text = "<br>".join(
            f"{_e(r.key)} {_e(r.trigger)} <span class='{_e(r.status.value)}'>{_e(r.status.value)}</span> "
            f"pages={r.pages} +{r.records_created} ~{r.records_updated} ={r.records_unchanged} -{r.records_deleted}"
            + (f" <small>{_e(r.error)}</small>" if r.error else "")
            for r in runs
        )
        reason = f"<br><small>{_e(integ.status_reason)}</small>" if integ.status_reason else ""
        prefix = f"integrations/{integ.id}"
        rows.append(
            f"<tr><td>{link(prefix, integ.id)}</td><td>{_e(integ.provider)}</td><td>{_e(integ.display_name)}</td>"
            f"<td class='{_e(integ.status.value)}'>{_e(integ.status.value)}{reason}</td>"
            f"<td>{link(prefix + '/records', str(stats['records']))}</td>"
            f"<td>{link(prefix + '/runs', str(stats['runs']))}</td>"
            f"<td>{stats['webhook_events']}</td>"
            f"<td>{link('dead-letters', str(stats['dead_letters']))}</td>"
            f"<td>{link(prefix + '/stats', 'stats')}</td><td>{run_text}</td></tr>"
        )
    dead = hub.admin.list_dead_letters(tenant, DEAD_LETTERS_SHOWN)
    dead_rows = "".join(
        f"<tr><td>{_e(d.created_at.isoformat(timespec='seconds'))}</td><td>{_e(getattr(d, 'integration_id', '') or '')}"
        f"</td><td>{_e(d.queue)}</td><td>{_e(d.reason)}</td><td>{_e(d.description[:300])}</td></tr>"
        for d in dead
    )
    body = (
        f"<h1>Integration Hub</h1><p>Tenant <b>{_e(tenant)}</b> &middot; {link('integrations', 'integrations (JSON)')}"
        f" &middot; {link('dead-letters', 'dead letters (JSON)')}"
        + (f" &middot; <span class='running'>a run is active; reloading every {REFRESH_SECONDS} s</span>" * active)
        + "</p><table><tr><th>id</th><th>provider</th><th>name</th><th>status</th><th>records</th><th>runs</th>"
        "<th>webhooks</th><th>dead letters</th><th>stats</th><th>latest runs</th></tr>"
        + ("".join(rows) or "<tr><td colspan='10'>no integrations yet</td></tr>")
        + "</table><h2>Dead letters</h2>"
        + (
            "<table><tr><th>when</th><th>integration</th><th>queue</th><th>reason</th><th>description</th></tr>"
            + dead_rows
            + "</table>"
            if dead_rows
            else "<p>none</p>"
        )
    )
    return _page(f"Integration Hub: {tenant}", body, refresh=active)
