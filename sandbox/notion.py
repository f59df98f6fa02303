"""Loopback simulator of the Notion API: OAuth, database queries, pages, search, rate limits, webhooks.

Behaviour follows the Notion section of ``PROVIDERS.md`` and the API reference:

- OAuth: ``GET /v1/oauth/authorize`` auto-approves (302 to ``redirect_uri`` with ``code`` and
  ``state``); ``POST /v1/oauth/token`` takes HTTP Basic client credentials and a JSON body
  (``authorization_code`` or ``refresh_token``), answers ``access_token``, ``token_type``,
  ``refresh_token`` (rotating; ``null`` for non-expiring tokens), ``expires_in`` (when expiring),
  ``bot_id``, ``workspace_id``, ``workspace_name``, ``owner``; failures are Notion error objects
  (``400 invalid_grant``). ``POST /v1/oauth/revoke`` and ``/v1/oauth/introspect`` exist too.
- API: every ``/v1`` call needs ``Notion-Version`` (``400 missing_version`` otherwise) and a
  bearer token (``401 unauthorized``). ``POST /v1/databases/{id}/query`` with ``filter``,
  ``sorts``, ``start_cursor`` and ``page_size`` (max 100) answers ``{object: "list", results,
  has_more, next_cursor, type: "page_or_database"}``; ``POST /v1/search`` finds databases and
  pages; ``GET|PATCH /v1/pages/{id}``, ``POST /v1/pages``, ``GET /v1/databases/{id}``,
  ``GET /v1/users[/me]``.
- Limits: about 3 requests per second per connection (a token bucket per grant, configurable);
  past it ``429 rate_limited`` with an integer ``Retry-After``. Faults add ``529
  service_overload``, 5xx, timeouts, broken bodies and a repeated cursor.
- Webhooks: see :mod:`sandbox.notion_webhooks`.

Run it alone with ``python -m sandbox.notion --pages 50``; control endpoints under
``/_sandbox/`` need no auth and are not counted.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sandbox.common import Fault, ProviderSandbox, SandboxClock, TokenBucket, retry_after_seconds
from sandbox.notion_oauth import NotionOAuthEndpoints, notion_error
from sandbox.notion_props import NotionError, compile_filter, invalid, parse_properties
from sandbox.notion_store import NotionWorkspace
from sandbox.notion_webhooks import NotionSubscription, NotionWebhooks
from sandbox.oauth_server import OAuthServer
from sandbox.server import Request, Response, json_response, run_until_signal

NOTION_VERSIONS = ("2021-05-13", "2021-08-16", "2022-02-22", "2022-06-28")
_ID = r"(?P<id>[0-9a-fA-F-]{32,36})"
_FAULT_CODES = {400: ("validation_error", "body failed validation."), 401: ("unauthorized", "API token is invalid."),
                404: ("object_not_found", "Could not find object."), 409: ("conflict_error", "Conflict occurred "
                      "while saving. Please try again."),
                429: ("rate_limited", "You have been rated limited. Please try again in a few minutes."),
                500: ("internal_server_error", "Unexpected error occurred."),
                502: ("bad_gateway", "Notion encountered an issue while attempting to complete this request."),
                503: ("service_unavailable", "Notion is unavailable, please try again later."),
                504: ("gateway_timeout", "Notion timed out while attempting to complete this request."),
                529: ("service_overload", "Notion is unavailable due to high load. Please try again later.")}


_error = notion_error


def _uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise invalid(f"path failed validation: path.{what} should be a valid uuid, instead was `{value}`.") from None


class NotionSandbox(NotionOAuthEndpoints, NotionWebhooks, ProviderSandbox):
    """A Notion workspace simulator.

    Args:
        pages: Pages to seed into each database.
        databases: Titles of the databases to create.
        seed: Seed of ids and generated content (ids are deterministic per seed).
        token: A static internal-integration token that is always accepted.
        client_id: The public integration's OAuth client id.
        client_secret: Its client secret.
        expiring_tokens: Access tokens expire (``expires_in``) and refresh tokens rotate; when
            ``False`` the token endpoint answers ``refresh_token: null`` and tokens never expire.
        access_ttl: Lifetime of an expiring access token, in seconds.
        requests_per_second: The per-connection rate limit (``None`` disables it).
        burst: How many requests a quiet connection may send at once.
        epoch: First timestamp of the data clock (default: two days before now).
        clock_step_seconds: How far each mutation moves the data clock.
        timestamp_granularity_seconds: Public timestamps are rounded down to this (Notion: 60).
        latency_seconds: Sleep before answering each API request.
        port: Port on 127.0.0.1 (0 picks a free one).
    """

    def __init__(
        self, pages: int = 0, databases: Sequence[str] = ("Tasks",), seed: int = 1, *,
        token: str = "secret_notion_sandbox_token", client_id: str = "notion-client-id",
        client_secret: str = "notion-client-secret", expiring_tokens: bool = True, access_ttl: float = 3600.0,
        requests_per_second: float | None = 3.0, burst: int = 30, epoch: datetime | None = None,
        clock_step_seconds: float = 1.0, timestamp_granularity_seconds: int = 60, latency_seconds: float = 0.0,
        port: int = 0,
    ) -> None:
        super().__init__(port=port, latency_seconds=latency_seconds)
        clock = SandboxClock(epoch, timedelta(seconds=clock_step_seconds))
        self.workspace = NotionWorkspace(seed, clock, self.metrics, timestamp_granularity_seconds)
        self.client_id, self.client_secret, self.expiring_tokens = client_id, client_secret, expiring_tokens
        self._check_rate(requests_per_second, burst)
        self.requests_per_second, self.burst = requests_per_second, burst
        self.deny_authorizations = False
        self.subscriptions: dict[str, NotionSubscription] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self.oauth = OAuthServer({client_id: client_secret}, access_ttl=access_ttl if expiring_tokens else None,
                                 rotate_refresh_tokens=True, issue_refresh_tokens=expiring_tokens,
                                 make_token=lambda kind: f"{'ntn' if kind != 'code' else 'code'}_{uuid.uuid4().hex}")
        self.oauth.add_static_token(token)
        self.add_token_controls(self.oauth, client_id)
        for method, pattern, handler in [
            ("GET", "/v1/oauth/authorize", self._authorize), ("POST", "/v1/oauth/token", self._token),
            ("POST", "/v1/oauth/revoke", self._revoke), ("POST", "/v1/oauth/introspect", self._introspect),
            ("GET", "/v1/users/me", lambda r: json_response(200, self._bot_user())),
            ("GET", "/v1/users", lambda r: json_response(200, self._list([dict(u) for u in self.workspace.users]))),
            ("POST", "/v1/search", self._search),
            ("GET", rf"/v1/databases/{_ID}", self._get_database),
            ("POST", rf"/v1/databases/{_ID}/query", self._query),
            ("POST", "/v1/pages", self._create_page),
            ("GET", rf"/v1/pages/{_ID}", self._get_page), ("PATCH", rf"/v1/pages/{_ID}", self._patch_page),
            ("POST", "/_sandbox/seed", self._ctl_seed), ("POST", "/_sandbox/databases", self._ctl_database),
            ("POST", "/_sandbox/pages", self._ctl_create), ("POST", rf"/_sandbox/pages/{_ID}", self._ctl_update),
            ("POST", rf"/_sandbox/pages/{_ID}/content", self._ctl_content),
            ("POST", "/_sandbox/config", self._ctl_config),
            ("POST", "/_sandbox/webhooks/subscriptions", self._ctl_subscribe),
            ("POST", "/_sandbox/webhooks/deliver", self._ctl_deliver),
        ]:
            self.route(method, pattern, handler)
        for title in databases:
            db = self.workspace.create_database(title)
            self.workspace.seed(db["id"], pages)
        self.workspace.events.clear()

    # -- data control (Python API) --------------------------------------------------------------

    @property
    def database_ids(self) -> list[str]:
        """Ids of the databases (trashed ones included), oldest first."""
        with self.lock:
            return list(self.workspace.databases)

    def _db(self, database_id: str | None) -> str:
        return database_id or next(iter(self.workspace.databases))

    def create_database(self, title: str) -> dict[str, Any]:
        """A new database with the six sandbox properties (records ``database.created``)."""
        with self.lock:
            return self.workspace.create_database(title)

    def seed(self, pages: int, database_id: str | None = None) -> None:
        """Generate pages in a database (the first one by default), without webhook events."""
        with self.lock:
            self.workspace.seed(self._db(database_id), pages)

    def create_page(self, database_id: str | None = None, **values: Any) -> dict[str, Any]:
        """Create a page from plain values (``Name="x", Status="Done", Assignee=[user_id], Due="2024-05-01"``)."""
        with self.lock:
            return self.workspace.create_page(self._db(database_id), values)

    def update_page(self, page_id: str, *, in_trash: bool | None = None, **values: Any) -> dict[str, Any]:
        """Change plain values and/or trash (``in_trash=True``) or restore a page; returns the page object."""
        with self.lock:
            return self.workspace.update_page(page_id, values, in_trash=in_trash)

    def trash_page(self, page_id: str) -> dict[str, Any]:
        """Move a page to the trash: database queries stop returning it (``page.deleted``)."""
        return self.update_page(page_id, in_trash=True)

    def edit_page_content(self, page_id: str) -> dict[str, Any]:
        """Edit a page's blocks: ``last_edited_time`` moves (``page.content_updated``)."""
        with self.lock:
            return self.workspace.edit_content(page_id)

    def trash_database(self, database_id: str) -> None:
        """Move a database to the trash (``database.deleted``; its queries answer 404)."""
        with self.lock:
            self.workspace.trash_database(database_id)

    def page(self, page_id: str) -> dict[str, Any]:
        """The page object of any page, trashed or not."""
        with self.lock:
            self.workspace.page(page_id)
            return self.workspace.render_page(page_id)

    def pages(self, database_id: str | None = None, *, include_trashed: bool = False) -> list[dict[str, Any]]:
        """Page objects of a database in creation order."""
        with self.lock:
            db_id = self._db(database_id)
            return [self.workspace.render_page(p["id"]) for p in self.workspace.pages.values()
                    if p["database_id"] == db_id and (include_trashed or not p["in_trash"])]

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every change recorded so far (type, entity, data, timestamp, authors), oldest first."""
        with self.lock:
            return [dict(e) for e in self.workspace.events]

    @staticmethod
    def _check_rate(rate: object, burst: int) -> None:
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0):
            raise ValueError(f"requests_per_second must be a positive number or null, not {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, not {burst}")

    # -- tokens, limits, faults -----------------------------------------------------------------

    def revoke_all_tokens(self) -> None:
        """The user removed the integration: 401 everywhere, ``invalid_grant`` on refresh."""
        self.oauth.revoke_all()

    def expire_access_tokens(self) -> None:
        """Every access token expires now (refresh tokens stay valid)."""
        self.oauth.expire_access_tokens()

    def expire_cursors(self) -> None:
        """Forget every issued ``next_cursor``: using one gives 400 ``validation_error``."""
        with self.lock:
            self.workspace.cursors.clear()

    def repeat_next_cursor(self, times: int = 1) -> None:
        """The next ``times`` query pages that were asked with a cursor hand the same cursor back."""
        self.inject("repeat_cursor", times=times)

    def exhaust_rate_limit(self) -> None:
        """Empty the bucket of every connection that has made a call: its next call gets ``429 rate_limited``."""
        with self.lock:
            for bucket in self._buckets.values():
                bucket.drain()

    def fault_response(self, fault: Fault, request: Request) -> Response:
        """Notion's error object for an injected status (429 always carries ``Retry-After``)."""
        code, message = _FAULT_CODES.get(fault.status, ("internal_server_error", "Unexpected error occurred."))
        headers = {}
        if fault.retry_after is not None or fault.status == 429:
            headers["Retry-After"] = str(fault.retry_after if fault.retry_after is not None else 1)
        return _error(NotionError(fault.status, fault.code or code, message), headers)

    def in_fault_scope(self, request: Request) -> bool:
        """Faults without a path hit the API, not the OAuth endpoints."""
        return request.path.startswith("/v1/") and not request.path.startswith("/v1/oauth/")

    def stats(self) -> dict[str, Any]:
        """Counters (``GET /_sandbox/stats``): requests, pages, OAuth calls, events, subscriptions."""
        base = super().stats()
        with self.lock:
            ws = self.workspace
            return base | {"databases": len(ws.databases), "pages": sum(not p["in_trash"] for p in ws.pages.values()),
                           "oauth": dict(self.oauth.counters), "events": len(ws.events),
                           "subscriptions": {s.subscription_id: {"url": s.url, "retry": len(s.retry),
                                                                 "dropped": len(s.dropped)}
                                             for s in self.subscriptions.values()}}

    # -- pipeline -------------------------------------------------------------------------------

    def api(self, request: Request) -> Response:
        """OAuth endpoints answer directly; other calls need Notion-Version, a live token and rate budget."""
        if request.path.startswith("/v1/oauth/"):
            return self._guarded(request)
        version = request.headers.get("notion-version")
        if version is None:
            return _error(NotionError(400, "missing_version", "Notion-Version header failed validation: "
                                      "Notion-Version header should be defined, instead was `undefined`."))
        if version not in NOTION_VERSIONS:
            return _error(invalid(f"Notion-Version header failed validation: Notion-Version header should be one "
                                  f"of {', '.join(NOTION_VERSIONS)}, instead was `{version}`."))
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        grant = self.oauth.validate(credential.strip()) if scheme.lower() == "bearer" else None
        if grant is None:
            return _error(NotionError(401, "unauthorized", "API token is invalid."))
        if self.requests_per_second is not None:
            bucket = self._buckets.get(grant.grant_id)
            if bucket is None:
                bucket = self._buckets[grant.grant_id] = TokenBucket(self.requests_per_second, self.burst)
            wait = bucket.take()
            if wait > 0:
                self.metrics["rate_limited"] += 1
                return _error(NotionError(429, "rate_limited", "You have been rated limited. Please try again in a "
                                          "few minutes."), {"Retry-After": str(retry_after_seconds(wait))})
        return self._guarded(request)

    def _guarded(self, request: Request) -> Response:
        try:
            response = self.dispatch(request)
        except NotionError as exc:
            return _error(exc)
        except ValueError as exc:
            return _error(NotionError(400, "invalid_json", f"Error parsing JSON body. {exc}"))
        if response.status in (404, 405):
            return _error(NotionError(400, "invalid_request_url", "Invalid request URL."))
        return response

    def _body(self, request: Request, allowed: set[str]) -> dict[str, Any]:
        body = request.json_object(allow_empty=True)
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise invalid(f"body failed validation. Fix one: body.{unknown[0]} should be not present, "
                          f"instead was `{body[unknown[0]]!r}`.")
        return body

    @staticmethod
    def _list(results: list[dict[str, Any]], next_cursor: str | None = None) -> dict[str, Any]:
        return {"object": "list", "results": results, "next_cursor": next_cursor, "has_more": next_cursor is not None,
                "type": "page_or_database", "page_or_database": {}, "request_id": str(uuid.uuid4())}

    @staticmethod
    def _page_size(body: dict[str, Any]) -> int:
        size = body.get("page_size", 100)
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 100:
            raise invalid(f"body failed validation: body.page_size should be a number between 1 and 100, instead "
                          f"was `{size!r}`.")
        return size

    # -- API routes -------------------------------------------------------------------------------

    def _bot_user(self) -> dict[str, Any]:
        ws = self.workspace
        return {"object": "user", "id": ws.bot_id, "name": "Integration Hub", "avatar_url": None, "type": "bot",
                "bot": {"owner": {"type": "workspace", "workspace": True}, "workspace_name": ws.workspace_name}}

    def _get_database(self, request: Request) -> Response:
        db_id = _uuid(request.params["id"], "database_id")
        self.workspace.database(db_id)
        return json_response(200, self.workspace.render_database(db_id))

    def _query(self, request: Request) -> Response:
        db_id = _uuid(request.params["id"], "database_id")
        body = self._body(request, {"filter", "sorts", "start_cursor", "page_size", "filter_properties",
                                    "archived", "in_trash"})
        size, cursor, sorts, flt = (self._page_size(body), body.get("start_cursor"), body.get("sorts") or [],
                                    body.get("filter"))
        db = self.workspace.database(db_id)
        if cursor is not None and not isinstance(cursor, str):
            raise invalid("body failed validation: body.start_cursor should be a string")
        if not isinstance(sorts, list) or not all(
                isinstance(s, dict) and s.get("direction", "ascending") in ("ascending", "descending") and (
                    s.get("timestamp") in ("created_time", "last_edited_time")
                    or (isinstance(s.get("property"), str) and s["property"] in db["schema"]))
                for s in sorts):
            raise invalid("body failed validation: body.sorts should be an array of {timestamp: created_time|"
                          "last_edited_time or property: <name>, direction: ascending|descending}")
        predicate = compile_filter(flt, db["schema"], self.workspace.public_time) if flt is not None else None
        ids, following = self.workspace.query(db_id, flt, sorts, cursor, size, predicate)
        if following and cursor and self.take_repeat_cursor(request):
            following = cursor
        return json_response(200, self._list([self.workspace.render_page(i) for i in ids], following))

    def _search(self, request: Request) -> Response:
        body = self._body(request, {"query", "filter", "sort", "start_cursor", "page_size"})
        size, ws = self._page_size(body), self.workspace
        flt, sort = body.get("filter") or {}, body.get("sort") or {}
        if not isinstance(flt, dict) or not isinstance(sort, dict):
            raise invalid("body failed validation: body.filter and body.sort should be objects")
        if not isinstance(body.get("start_cursor") or "", str) or not isinstance(body.get("query") or "", str):
            raise invalid("body failed validation: body.start_cursor and body.query should be strings")
        kind = flt.get("value")
        if kind not in (None, "page", "database"):
            raise invalid("body failed validation: body.filter.value should be `page` or `database`")
        text = str(body.get("query") or "").lower()
        found = [("database", d["id"], d["edited"]) for d in ws.databases.values()
                 if kind in (None, "database") and not d["in_trash"] and text in d["title"].lower()]
        found += [("page", p["id"], p["edited"]) for p in ws.pages.values()
                  if kind in (None, "page") and not p["in_trash"] and text in (p["values"]["Name"] or "").lower()]
        self.metrics["touched"] += len(ws.databases) + (len(ws.pages) if kind != "database" else 0)
        found.sort(key=lambda f: f[2], reverse=sort.get("direction") == "descending")
        ids = [f[1] for f in found]
        start = 0
        if body.get("start_cursor"):
            if body["start_cursor"] not in ids:
                raise invalid(f"The start_cursor provided is invalid: {body['start_cursor']}")
            start = ids.index(body["start_cursor"])
        window = found[start : start + size]
        following = ids[start + size] if len(ids) > start + size else None
        results = [ws.render_database(i) if k == "database" else ws.render_page(i) for k, i, _ in window]
        return json_response(200, self._list(results, following))

    def _get_page(self, request: Request) -> Response:
        return json_response(200, self.page(_uuid(request.params["id"], "page_id")))

    def _patch_page(self, request: Request) -> Response:
        page_id = _uuid(request.params["id"], "page_id")
        body = self._body(request, {"properties", "archived", "in_trash", "icon", "cover"})
        page = self.workspace.page(page_id)
        values = parse_properties(body.get("properties", {}), self.workspace.databases[page["database_id"]]["schema"])
        trash = body.get("in_trash", body.get("archived"))
        if trash is not None and not isinstance(trash, bool):
            raise invalid("body failed validation: body.in_trash should be a boolean")
        return json_response(200, self.workspace.update_page(page_id, values, in_trash=trash))

    def _create_page(self, request: Request) -> Response:
        body = self._body(request, {"parent", "properties", "icon", "cover", "children"})
        parent = body.get("parent")
        if not isinstance(parent, dict) or not isinstance(parent.get("database_id"), str):
            raise invalid("body failed validation: body.parent.database_id should be defined (the sandbox creates "
                          "pages in databases).")
        db_id = _uuid(parent["database_id"], "database_id")
        values = parse_properties(body.get("properties", {}), self.workspace.database(db_id)["schema"])
        return json_response(200, self.workspace.create_page(db_id, values))

    # -- control endpoints --------------------------------------------------------------------------

    def _control(self, request: Request) -> Response:
        try:
            return super()._control(request)
        except NotionError as exc:
            return _error(exc)

    def _ctl_seed(self, request: Request) -> Response:
        data = request.json_object(allow_empty=True)
        self.seed(int(data.get("pages", 0)), data.get("database_id"))
        return json_response(200, self.stats())

    def _ctl_database(self, request: Request) -> Response:
        return json_response(201, self.create_database(str(request.json_object().get("title", "Untitled"))))

    def _ctl_create(self, request: Request) -> Response:
        data = request.json_object()
        return json_response(201, self.create_page(data.pop("database_id", None), **data))

    def _ctl_update(self, request: Request) -> Response:
        data = request.json_object()
        return json_response(200, self.update_page(request.params["id"], in_trash=data.pop("in_trash", None), **data))

    def _ctl_content(self, request: Request) -> Response:
        return json_response(200, self.edit_page_content(request.params["id"]))

    def _ctl_config(self, request: Request) -> Response:
        """Apply ``requests_per_second`` (null disables), ``burst``, ``latency_seconds``, ``deny_authorizations``,
        ``revoke_all_tokens``, ``expire_access_tokens``, ``expire_cursors``, ``exhaust_rate_limit``."""
        data = request.json_object()
        rate, burst = data.get("requests_per_second", self.requests_per_second), int(data.get("burst", self.burst))
        self._check_rate(rate, burst)
        self.requests_per_second, self.burst = (None if rate is None else float(rate)), burst
        if "requests_per_second" in data or "burst" in data:
            self._buckets.clear()
        self.latency_seconds = float(data.get("latency_seconds", self.latency_seconds))
        self.deny_authorizations = bool(data.get("deny_authorizations", self.deny_authorizations))
        for flag, action in [("revoke_all_tokens", self.revoke_all_tokens), ("expire_access_tokens",
                             self.expire_access_tokens), ("expire_cursors", self.expire_cursors),
                             ("exhaust_rate_limit", self.exhaust_rate_limit)]:
            if data.get(flag):
                action()
        return json_response(200, self.stats())

    def _ctl_subscribe(self, request: Request) -> Response:
        data = request.json_object()
        if not isinstance(data.get("url"), str):
            raise ValueError("url (string) is required")
        subscription, answer = self.create_subscription(data["url"], signed=bool(data.get("signed", False)))
        return json_response(201, {"subscription_id": subscription.subscription_id, "status": answer.status_code,
                                   "verification_token": subscription.verification_token})

    def _ctl_deliver(self, request: Request) -> Response:
        subscription = self.subscriptions[str(request.json_object().get("subscription_id"))]
        outcomes = self.deliver_events(subscription)
        return json_response(200, {"delivered": [[e["type"], e["id"], status] for e, status in outcomes]})


def main(argv: list[str] | None = None) -> None:
    """Run a Notion sandbox in the foreground until SIGTERM/SIGINT, printing its base URL first."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.notion", description="Notion API sandbox")
    for flag, default in [("--port", 0), ("--pages", 0), ("--seed", 1), ("--token", "secret_notion_sandbox_token"),
                          ("--requests-per-second", 3.0), ("--latency", 0.0)]:
        parser.add_argument(flag, type=type(default), default=default)
    a = parser.parse_args(argv)
    run_until_signal(NotionSandbox(a.pages, seed=a.seed, token=a.token, requests_per_second=a.requests_per_second,
                                   latency_seconds=a.latency, port=a.port))


if __name__ == "__main__":
    main()
