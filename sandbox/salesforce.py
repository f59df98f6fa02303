"""Loopback simulator of a Salesforce org: OAuth server, REST API (query, deleted, sObject rows), push senders.

Behaviour follows the Salesforce section of ``PROVIDERS.md`` and the REST API guide:

- OAuth at ``/services/oauth2/{authorize,token,revoke}``: the authorize endpoint auto-approves
  (302 to ``redirect_uri`` with ``code`` and ``state``); the token endpoint takes form-encoded
  ``authorization_code`` (with PKCE) and ``refresh_token`` grants, answers ``instance_url`` =
  this sandbox, ``id``, ``issued_at``, ``signature`` and no ``expires_in`` (the access token
  lives for the session timeout); refresh-token rotation is optional (off by default, as in a
  connected app); failures are ``400 {"error": "invalid_grant", "error_description": ...}``.
- REST under ``/services/data/vXX.X/``: ``query?q=SOQL`` paged by ``nextRecordsUrl`` (a query
  locator ``01g...-2000``) with ``done`` and ``totalSize``; ``sobjects/{type}/deleted/?start&end``;
  ``GET|PATCH|DELETE sobjects/{type}/{id}`` (PATCH answers 204) and ``POST sobjects/{type}``;
  ``limits``. Every API answer carries ``Sforce-Limit-Info: api-usage=N/LIMIT`` (a daily quota);
  past the quota: ``403 REQUEST_LIMIT_EXCEEDED`` with no ``Retry-After``. A bad, expired or
  revoked token: ``401 INVALID_SESSION_ID``. Errors are lists of ``{message, errorCode}``.
- Pushes: Outbound Messages (SOAP, up to 100 notifications, retried until acknowledged) and
  Apex-signed JSON callouts (HMAC-SHA256 in a configurable header, hex or base64).

A query's result is snapshotted as a list of ids when it runs, so each ``nextRecordsUrl`` page
costs only its own records. Run it alone with ``python -m sandbox.salesforce --contacts 50``;
control endpoints under ``/_sandbox/`` need no auth and are not counted.
"""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from sandbox.common import Fault, ProviderSandbox, SandboxClock
from sandbox.oauth_server import OAuthServer
from sandbox.salesforce_oauth import SalesforceOAuthEndpoints
from sandbox.salesforce_outbound import OutboundRule, SalesforcePushes
from sandbox.salesforce_store import API_VERSION, SCHEMAS, SalesforceError, SalesforceOrg, parse_datetime, parse_soql
from sandbox.server import RateWindow, Request, Response, json_response, run_until_signal

_DATA = r"/services/data/v(?P<version>\d+\.\d)"
_SOBJECT = _DATA + r"/sobjects/(?P<sobject>\w+)"
_FAULT_CODES = {400: "MALFORMED_QUERY", 401: "INVALID_SESSION_ID", 403: "REQUEST_LIMIT_EXCEEDED", 404: "NOT_FOUND",
                429: "REQUEST_LIMIT_EXCEEDED", 500: "UNKNOWN_EXCEPTION", 502: "SERVER_UNAVAILABLE",
                503: "SERVER_UNAVAILABLE"}



def _error(error: SalesforceError, headers: Mapping[str, str] | None = None) -> Response:
    return json_response(error.status, error.body(), headers)


class _Locator:
    """A server-side query cursor: the snapshot of ids and what to render for them."""

    def __init__(self, sobject: str, fields: list[str], ids: list[str], batch: int) -> None:
        self.sobject, self.fields, self.ids, self.batch = sobject, fields, ids, batch


class SalesforceSandbox(SalesforceOAuthEndpoints, SalesforcePushes, ProviderSandbox):
    """A Salesforce org simulator (Account and Contact).

    Args:
        accounts: Accounts to seed at construction.
        contacts: Contacts to seed (spread over the Accounts).
        seed: Seed of ids and generated content (ids are deterministic per seed).
        token: A static access token that is always accepted (besides OAuth-issued ones).
        client_id: The connected app's consumer key.
        client_secret: The connected app's consumer secret.
        daily_limit: The org's daily API request allocation (``Sforce-Limit-Info``).
        batch_size: Records per query page (Salesforce's default is 2,000; smaller for tests);
            a ``Sforce-Query-Options: batchSize=N`` header (200..2000) overrides it per query.
        session_seconds: Access-token lifetime (the session timeout).
        rotate_refresh_tokens: Whether a refresh returns a new refresh token and retires the old one.
        epoch: First timestamp of the clock (default: two days before now); each mutation adds a second.
        latency_seconds: Sleep before answering each API request.
        max_open_cursors: Query locators kept per org; opening one more releases the oldest.
        port: Port on 127.0.0.1 (0 picks a free one).
    """

    def __init__(
        self, accounts: int = 0, contacts: int = 0, seed: int = 1, *, token: str = "sf-sandbox-token",
        client_id: str = "sf-client-id", client_secret: str = "sf-client-secret", daily_limit: int = 100_000,
        batch_size: int = 2000, session_seconds: float = 7200.0, rotate_refresh_tokens: bool = False,
        epoch: datetime | None = None, latency_seconds: float = 0.0, max_open_cursors: int = 10, port: int = 0,
    ) -> None:
        super().__init__(port=port, latency_seconds=latency_seconds)
        self.org = SalesforceOrg(seed, SandboxClock(epoch, timedelta(seconds=1)), self.metrics)
        self.action_id = self.org.new_id("04k")  # ActionId of ad-hoc outbound messages
        self.client_id, self.client_secret = client_id, client_secret
        if not 1 <= batch_size <= 2000 or max_open_cursors < 1 or daily_limit < 0:
            raise ValueError("batch_size must be 1..2000, max_open_cursors >= 1 and daily_limit >= 0")
        self.batch_size, self.max_open_cursors = batch_size, max_open_cursors
        self.quota = RateWindow(daily_limit, 86400.0)
        self.deny_authorizations = False
        self.oauth = OAuthServer({client_id: client_secret}, access_ttl=session_seconds,
                                 rotate_refresh_tokens=rotate_refresh_tokens, make_token=self._make_token)
        self.oauth.add_static_token(token)
        self.add_token_controls(self.oauth, client_id)
        self._locators: dict[str, _Locator] = {}
        self._rules: list[OutboundRule] = []
        for method, pattern, handler in [
            ("GET", "/services/oauth2/authorize", self._authorize),
            ("POST", "/services/oauth2/token", self._token),
            ("POST", "/services/oauth2/revoke", self._revoke),
            ("GET", "/services/oauth2/revoke", self._revoke),
            ("GET", r"/services/data/?", self._versions),
            ("GET", _DATA + r"/limits/?", self._limits),
            ("GET", _DATA + r"/query/?", self._query),
            ("GET", _DATA + r"/query/(?P<locator>01g\w+)-(?P<offset>\d+)", self._query_more),
            ("GET", _SOBJECT + r"/deleted/?", self._deleted),
            ("POST", _SOBJECT + r"/?", self._create),
            ("GET", _SOBJECT + r"/(?P<id>[a-zA-Z0-9]{15,18})", self._get),
            ("PATCH", _SOBJECT + r"/(?P<id>[a-zA-Z0-9]{15,18})", self._patch),
            ("DELETE", _SOBJECT + r"/(?P<id>[a-zA-Z0-9]{15,18})", self._delete),
            ("POST", "/_sandbox/seed", self._ctl_seed),
            ("POST", r"/_sandbox/records/(?P<sobject>\w+)", self._ctl_create),
            ("POST", r"/_sandbox/records/(?P<sobject>\w+)/(?P<id>\w+)", self._ctl_update),
            ("DELETE", r"/_sandbox/records/(?P<sobject>\w+)/(?P<id>\w+)", self._ctl_delete),
            ("POST", "/_sandbox/config", self._ctl_config),
            ("POST", "/_sandbox/outbound", self._ctl_outbound),
        ]:
            self.route(method, pattern, handler)
        self.org.seed(accounts, contacts)

    # -- data control (Python API) ------------------------------------------------------------

    @property
    def org_id(self) -> str:
        """The org's 18-character id (``OrganizationId`` in Outbound Messages)."""
        return self.org.org_id

    @property
    def instance_url(self) -> str:
        """The API base the token endpoint hands out (this sandbox's base URL)."""
        return self.base_url if self.running else "https://sandbox.my.salesforce.com"

    def now(self) -> datetime:
        """The data clock (the latest mutation's timestamp)."""
        with self.lock:
            return self.org.clock.now()

    def seed(self, accounts: int = 0, contacts: int = 0) -> None:
        """Generate more Accounts and Contacts."""
        with self.lock:
            self.org.seed(accounts, contacts)

    def records(self, sobject: str) -> list[dict[str, Any]]:
        """Copies of every live record of a type, oldest ``SystemModstamp`` first."""
        with self.lock:
            return self.org.records(self.org.sobject(sobject))

    def record(self, sobject: str, record_id: str) -> dict[str, Any]:
        """A copy of one live record (``SalesforceError`` 404 if missing or deleted)."""
        with self.lock:
            return self.org.get(sobject, record_id)

    def create_record(self, sobject: str, **fields: Any) -> dict[str, Any]:
        """Create a record as a user would (queues outbound notifications); returns it."""
        with self.lock:
            record = self.org.create(sobject, fields)
            self._changed(self.org.sobject(sobject), record)
            return record

    def update_record(
        self, sobject: str, record_id: str, *, system_only: bool = False, **fields: Any
    ) -> dict[str, Any]:
        """Change a record (``system_only``: only ``SystemModstamp`` moves, as for a system process)."""
        with self.lock:
            record = self.org.update(sobject, record_id, fields, system_only=system_only)
            self._changed(self.org.sobject(sobject), record)
            return record

    def delete_record(self, sobject: str, record_id: str) -> list[tuple[str, str]]:
        """Delete a record (an Account's Contacts go too); returns every ``(type, id)`` deleted."""
        with self.lock:
            return self.org.delete(sobject, record_id)

    def purge_deleted(self) -> None:
        """Purge the delete log: ``deleted`` calls starting earlier now fail with ``INVALID_REPLICATION_DATE``."""
        with self.lock:
            self.org.purge_deleted(datetime.now(UTC))

    # -- limits, tokens and faults ------------------------------------------------------------

    def exhaust_daily_limit(self) -> None:
        """Use up the daily quota: API calls get 403 ``REQUEST_LIMIT_EXCEEDED`` until :meth:`reset_daily_limit`."""
        with self.lock:
            self.quota.exhaust(86400.0)

    def reset_daily_limit(self) -> None:
        """Start a fresh daily window."""
        with self.lock:
            self.quota.reset()

    def revoke_all_tokens(self) -> None:
        """The user revoked the app: every token gets 401, every refresh ``invalid_grant``."""
        self.oauth.revoke_all()

    def expire_sessions(self) -> None:
        """Every access token's session times out (refresh tokens stay valid)."""
        self.oauth.expire_access_tokens()

    def expire_query_locators(self) -> None:
        """Forget every open query cursor: following ``nextRecordsUrl`` gives ``INVALID_QUERY_LOCATOR``."""
        with self.lock:
            self._locators.clear()

    def repeat_next_cursor(self, times: int = 1) -> None:
        """The next ``times`` ``nextRecordsUrl`` pages point back at themselves (a cursor loop)."""
        self.inject("repeat_cursor", times=times)

    def fault_response(self, fault: Fault, request: Request) -> Response:
        """Salesforce's error list for an injected status (``errorCode`` from the fault or the status)."""
        code = fault.code or _FAULT_CODES.get(fault.status, "UNKNOWN_EXCEPTION")
        message = {"REQUEST_LIMIT_EXCEEDED": "TotalRequests Limit exceeded.",
                   "INVALID_SESSION_ID": "Session expired or invalid"}.get(
            code, "An unexpected error occurred. Please include this ErrorId if you contact support: "
                  f"{secrets.randbelow(10**9)}-{secrets.randbelow(10**5)} (-{secrets.randbelow(10**9)})")
        headers = self._limit_headers() if request.path.startswith("/services/data/v") else {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        return json_response(fault.status, [{"message": message, "errorCode": code}], headers)

    def in_fault_scope(self, request: Request) -> bool:
        """Faults without a path hit the REST API, not the OAuth endpoints."""
        return request.path.startswith("/services/data/v")

    def stats(self) -> dict[str, Any]:
        """Counters (``GET /_sandbox/stats``): requests, records, quota, OAuth calls, outbound queue."""
        base = super().stats()
        with self.lock:
            return base | {"accounts": self.org.count("Account"), "contacts": self.org.count("Contact"),
                           "api_usage": self.quota.info(), "oauth": dict(self.oauth.counters),
                           "open_query_locators": len(self._locators), "outbound_pending": self.pending_outbound()}

    # -- pipeline -------------------------------------------------------------------------------

    def _limit_headers(self) -> dict[str, str]:
        info = self.quota.info()
        return {"Sforce-Limit-Info": f"api-usage={info['used']}/{info['limit']}"}

    def api(self, request: Request) -> Response:
        """OAuth endpoints answer directly; REST calls need a live token and quota."""
        if not request.path.startswith("/services/data/v"):
            return self._guarded(request)
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or self.oauth.validate(credential.strip()) is None:
            error = SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            return _error(error, {"WWW-Authenticate": 'Token realm="Salesforce"'})
        if not self.quota.consume():
            return _error(SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
                          self._limit_headers())
        response = self._guarded(request)
        response.headers.update(self._limit_headers())
        return response

    def _guarded(self, request: Request) -> Response:
        try:
            response = self.dispatch(request)
        except SalesforceError as exc:
            return _error(exc)
        if response.status == 404 and request.path.startswith("/services/"):
            return _error(SalesforceError(404, "NOT_FOUND", "The requested resource does not exist"))
        if response.status == 405:
            return _error(SalesforceError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed. "
                                          "Allowed are GET,PATCH,DELETE,HEAD"))
        return response

    # -- REST -----------------------------------------------------------------------------------

    def _versions(self, request: Request) -> Response:
        return json_response(200, [{"label": "Spring '24", "url": f"/services/data/v{API_VERSION}",
                                    "version": API_VERSION}])

    def _limits(self, request: Request) -> Response:
        info = self.quota.info()
        return json_response(200, {"DailyApiRequests": {"Max": info["limit"], "Remaining": info["remaining"]}})

    def _batch(self, request: Request) -> int:
        option = request.headers.get("sforce-query-options", "")
        for part in option.split(","):
            name, _, value = part.strip().partition("=")
            if name.lower() == "batchsize" and value.strip().isascii() and value.strip().isdigit():
                return min(max(int(value), 200), 2000)
        return self.batch_size

    def _query(self, request: Request) -> Response:
        text = request.query.get("q", "")
        if not text.strip():
            raise SalesforceError(400, "MALFORMED_QUERY", "A query string has to be specified")
        query = parse_soql(text)
        ids = self.org.run(query)
        locator = None
        batch = self._batch(request)
        if len(ids) > batch:
            locator = self.org.new_id("01g")
            self._locators[locator] = _Locator(query.sobject, query.fields, ids, batch)
            while len(self._locators) > self.max_open_cursors:  # Salesforce releases the oldest cursor
                del self._locators[next(iter(self._locators))]
            return self._page(request, locator, 0)
        return json_response(200, self._render(request, _Locator(query.sobject, query.fields, ids, batch), 0, None))

    def _query_more(self, request: Request) -> Response:
        locator = request.params["locator"]
        if locator not in self._locators:
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(request, locator, int(request.params["offset"]))

    def _page(self, request: Request, locator: str, offset: int) -> Response:
        cursor = self._locators[locator]
        body = self._render(request, cursor, offset, locator)
        if body["done"]:
            del self._locators[locator]  # a finished cursor is released
        return json_response(200, body)

    def _render(self, request: Request, cursor: _Locator, offset: int, locator: str | None) -> dict[str, Any]:
        version = request.params["version"]
        chosen = cursor.ids[offset : offset + cursor.batch]
        records = []
        for record_id in chosen:
            record = self.org.peek(cursor.sobject, record_id)
            if record is not None:  # deleted since the query ran
                url = f"/services/data/v{version}/sobjects/{cursor.sobject}/{record_id}"
                records.append({"attributes": {"type": cursor.sobject, "url": url}} |
                               {name: record[name] for name in cursor.fields})
        self.metrics["touched"] += len(chosen)
        body: dict[str, Any] = {"totalSize": len(cursor.ids), "done": offset + cursor.batch >= len(cursor.ids)}
        if not body["done"] and locator is not None:
            next_offset = offset if offset and self.take_repeat_cursor(request) else offset + cursor.batch
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{next_offset}"
        body["records"] = records
        return body

    def _deleted(self, request: Request) -> Response:
        q = request.query
        if "start" not in q or "end" not in q:
            raise SalesforceError(400, "MISSING_ARGUMENT", "start and end are required (ISO 8601 date-times with a "
                                  "time zone, e.g. 2024-01-01T00:00:00+00:00)")
        try:
            start, end = parse_datetime(q["start"]), parse_datetime(q["end"])
        except ValueError as exc:
            raise SalesforceError(400, "INVALID_PARAMETER_VALUE", f"start/end: {exc}") from None
        return json_response(200, self.org.deleted(request.params["sobject"], start, end, datetime.now(UTC)))

    def _fields(self, request: Request) -> dict[str, Any]:
        try:
            return request.json_object()
        except ValueError as exc:
            raise SalesforceError(400, "JSON_PARSER_ERROR", f"The request body is not a JSON object: {exc}") from None

    def _create(self, request: Request) -> Response:
        record = self.org.create(request.params["sobject"], self._fields(request))
        self._changed(self.org.sobject(request.params["sobject"]), record)
        return json_response(201, {"id": record["Id"], "success": True, "errors": []})

    def _get(self, request: Request) -> Response:
        sobject = self.org.sobject(request.params["sobject"])
        record = self.org.get(sobject, request.params["id"])
        wanted = [f.strip() for f in request.query.get("fields", "").split(",") if f.strip()] or list(SCHEMAS[sobject])
        url = f"/services/data/v{request.params['version']}/sobjects/{sobject}/{record['Id']}"
        return json_response(200, {"attributes": {"type": sobject, "url": url}} |
                             {name: record[name] for name in wanted if name in record})

    def _patch(self, request: Request) -> Response:
        since = request.headers.get("if-unmodified-since")
        try:
            moment = parsedate_to_datetime(since) if since else None
        except (TypeError, ValueError):
            raise SalesforceError(400, "INVALID_HEADER_TYPE", "If-Unmodified-Since must be an HTTP date") from None
        record = self.org.update(request.params["sobject"], request.params["id"], self._fields(request),
                                 unmodified_since=moment)
        self._changed(self.org.sobject(request.params["sobject"]), record)
        return Response(204, {}, b"")

    def _delete(self, request: Request) -> Response:
        self.org.delete(request.params["sobject"], request.params["id"])
        return Response(204, {}, b"")

    # -- control endpoints ------------------------------------------------------------------------

    def _ctl_seed(self, request: Request) -> Response:
        data = request.json_object(allow_empty=True)
        self.org.seed(int(data.get("accounts", 0)), int(data.get("contacts", 0)))
        return json_response(200, {"accounts": self.org.count("Account"), "contacts": self.org.count("Contact")})

    def _ctl_create(self, request: Request) -> Response:
        return json_response(201, self.create_record(request.params["sobject"], **request.json_object()))

    def _ctl_update(self, request: Request) -> Response:
        data = request.json_object()
        system_only = bool(data.pop("_system_only", False))
        return json_response(200, self.update_record(request.params["sobject"], request.params["id"],
                                                     system_only=system_only, **data))

    def _ctl_delete(self, request: Request) -> Response:
        removed = self.delete_record(request.params["sobject"], request.params["id"])
        return json_response(200, {"deleted": [list(entry) for entry in removed]})

    def _ctl_config(self, request: Request) -> Response:
        """Apply ``daily_limit``, ``exhaust_daily_limit``, ``reset_daily_limit``, ``batch_size``,
        ``latency_seconds``, ``rotate_refresh_tokens``, ``deny_authorizations``, ``revoke_all_tokens``,
        ``expire_sessions``, ``expire_query_locators``, ``purge_deleted``."""
        data = request.json_object()
        limit, batch = int(data.get("daily_limit", self.quota.limit)), int(data.get("batch_size", self.batch_size))
        if limit < 0 or not 1 <= batch <= 2000:
            raise ValueError("daily_limit must be >= 0 and batch_size 1..2000")
        self.quota.limit, self.batch_size = limit, batch
        self.latency_seconds = float(data.get("latency_seconds", self.latency_seconds))
        self.oauth.rotate_refresh_tokens = bool(data.get("rotate_refresh_tokens", self.oauth.rotate_refresh_tokens))
        self.deny_authorizations = bool(data.get("deny_authorizations", self.deny_authorizations))
        for flag, action in [("exhaust_daily_limit", self.exhaust_daily_limit), ("reset_daily_limit",
                             self.reset_daily_limit), ("revoke_all_tokens", self.revoke_all_tokens),
                             ("expire_sessions", self.expire_sessions), ("expire_query_locators",
                             self.expire_query_locators), ("purge_deleted", self.purge_deleted)]:
            if data.get(flag):
                action()
        return json_response(200, self.stats())

    def _ctl_outbound(self, request: Request) -> Response:
        data = request.json_object()
        if not isinstance(data.get("url"), str) or not isinstance(data.get("record_ids"), list):
            raise ValueError("url (string) and record_ids (list) are required")
        delivery = self.send_outbound_message(data["url"], str(data.get("sobject", "Contact")), data["record_ids"],
                                              data.get("fields"))
        return json_response(200, {"status": delivery.status, "acked": delivery.acked,
                                   "notification_ids": delivery.notification_ids, "error": delivery.error})

    def _control(self, request: Request) -> Response:
        try:
            return super()._control(request)
        except SalesforceError as exc:
            return _error(exc)


def main(argv: list[str] | None = None) -> None:
    """Run a Salesforce sandbox in the foreground until SIGTERM/SIGINT, printing its base URL first."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.salesforce", description="Salesforce REST API sandbox")
    for flag, default in [("--port", 0), ("--accounts", 0), ("--contacts", 0), ("--seed", 1),
                          ("--token", "sf-sandbox-token"), ("--daily-limit", 100_000), ("--batch-size", 2000),
                          ("--latency", 0.0)]:
        parser.add_argument(flag, type=type(default), default=default)
    a = parser.parse_args(argv)
    run_until_signal(SalesforceSandbox(a.accounts, a.contacts, a.seed, token=a.token, daily_limit=a.daily_limit,
                                       batch_size=a.batch_size, latency_seconds=a.latency, port=a.port))


if __name__ == "__main__":
    main()

