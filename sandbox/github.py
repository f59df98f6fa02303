"""Loopback simulator of the GitHub REST API (issues, rate limits, webhooks).

Behaviour follows the GitHub section of ``PROVIDERS.md``: bearer-token auth, ``x-ratelimit-*``
headers with a primary (403, remaining 0) and a secondary (429 + ``retry-after``) limit,
``Link``-header pagination with ``per_page`` (max 100), ``since`` for delta, and webhooks signed
with ``X-Hub-Signature-256``. Timestamps come from a deterministic clock that starts at
2024-01-01T00:00:00Z and advances one minute per mutation.

Run it alone with ``python -m sandbox.github --port 8001 --issues 50``. Control endpoints under
``/_sandbox/`` need no auth and are neither counted nor logged as API calls.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import hmac
import json
import math
import random
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from sandbox.common import SortedIndex
from sandbox.github_hooks import GitHubHooks
from sandbox.server import (
    RateWindow,
    Request,
    Response,
    SandboxServer,
    json_response,
    page_url,
    post_webhook,
    run_until_signal,
)

DOCS_URL = "https://docs.github.com/rest"
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
CLOCK_STEP = timedelta(minutes=1)
ISSUE_FIELDS = ("title", "body", "state", "labels")
_REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
_WORDS = ["login", "crash", "sync", "webhook", "token", "export", "timeout", "layout", "search", "billing"]
_LABELS = {"bug": "d73a4a", "enhancement": "a2eeef", "documentation": "0075ca"}
_USERS = {"octocat": 583231, "hubot": 480938, "monalisa": 2154}


def iso(moment: datetime) -> str:
    """Format a datetime the way GitHub does: ``YYYY-MM-DDTHH:MM:SSZ``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 timestamp (``Z`` or offset; naive means UTC). Raises ``ValueError``."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return json_response(status, {"message": message, "documentation_url": DOCS_URL}, headers)


def _body(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    try:
        return request.json_object(allow_empty=allow_empty)
    except ValueError:
        raise ValueError("Problems parsing JSON") from None


class GitHubSandbox(GitHubHooks, SandboxServer):
    """A GitHub REST API simulator for one repository.

    Args:
        owner: Repository owner login.
        repo: Repository name.
        token: The only accepted token (``Bearer`` or ``token`` scheme); change it with :meth:`set_token`.
        issues: How many issues to seed at construction.
        rate_limit: Primary rate limit per window.
        latency_seconds: Sleep before answering each API request.
        seed: Seed of the generator used for titles, labels, authors and states.
        port: Port on 127.0.0.1 (0 picks a free one).
        rate_limit_window_seconds: Length of the primary rate-limit window.
    """

    hook_id = 424242
    repository_id = 7000001
    _cycle_page: int | None = None  # see link_cycle

    def __init__(
        self, owner: str = "acme", repo: str = "widgets", token: str = "gh-sandbox-token", issues: int = 0,
        rate_limit: int = 5000, latency_seconds: float = 0.0, seed: int = 1, *, port: int = 0,
        rate_limit_window_seconds: float = 3600.0,
    ) -> None:
        super().__init__(port=port)
        self.owner, self.repo, self.latency_seconds = owner, repo, latency_seconds
        self._token = token
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._clock = EPOCH
        self._issues: dict[int, dict[str, Any]] = {}
        # Per state ("all", "open", "closed"): keys (updated_at, number) and (number,) kept sorted, so a
        # page is a bisect plus a slice; numbers grow with created_at, so (number,) is created order.
        self._by_updated = {state: SortedIndex() for state in ("all", "open", "closed")}
        self._by_created = {state: SortedIndex() for state in ("all", "open", "closed")}
        self.touched = 0  # issues examined by listings (instrumentation: a page must not cost the whole repo)
        self._log: list[tuple[str, str, int]] = []
        self.quota = RateWindow(rate_limit, rate_limit_window_seconds)  # primary limit; mutate under the lock
        self._injected: list[tuple[int, str, dict[str, str]]] = []  # (status, message, headers) per upcoming call
        for method, suffix, handler in [
            ("GET", "", self._get_repo),
            ("GET", "/issues", self._list_issues),
            ("POST", "/issues", lambda r: json_response(201, self.create_issue(**self._issue_fields(r)))),
            ("GET", r"/issues/(?P<number>\d+)", lambda r: json_response(200, self._find(r))),
            ("PATCH", r"/issues/(?P<number>\d+)", self._patch_issue),
        ]:
            self.route(method, _REPO + suffix, handler)
        self.route("GET", "/user", lambda r: json_response(200, {"login": "sandbox-user", "id": 1, "type": "User"}))
        self.route("GET", "/rate_limit", self._rate_limit_status)
        self.route("POST", "/_sandbox/seed", self._ctl_seed)
        self.route("POST", r"/_sandbox/issues(?:/(?P<number>\d+))?", self._ctl_issue)
        self.route("POST", "/_sandbox/config", self._ctl_config)
        self.route("GET", "/_sandbox/stats", lambda r: json_response(200, self.stats()))
        self.route("POST", "/_sandbox/webhooks", self._ctl_webhook)
        self._install_hooks()
        self.seed(issues)

    # -- data control (Python API) -------------------------------------------------------------

    def now(self) -> datetime:
        """The sandbox clock (aware UTC datetime); it advances one step per mutation."""
        with self._lock:
            return self._clock

    def _tick(self) -> str:
        self._clock += CLOCK_STEP
        return iso(self._clock)

    def set_token(self, token: str) -> None:
        """Make ``token`` the only accepted token (the old one starts getting 401)."""
        with self._lock:
            self._token = token

    def seed(self, n: int) -> list[dict[str, Any]]:
        """Append ``n`` generated issues (numbers continue after the highest) and return them."""
        with self._lock:
            created = []
            for _ in range(n):
                a, b = self._rng.sample(_WORDS, 2)
                labels = [name for name in _LABELS if self._rng.random() < 0.3]
                state = "closed" if self._rng.random() < 0.2 else "open"
                user = self._rng.choice(sorted(_USERS))
                body = f"Steps to reproduce the {a} {b} issue."
                created.append(self.create_issue(f"{a.capitalize()} {b} problem", body, state, labels, user=user))
            return created

    def create_issue(
        self, title: str, body: str = "", state: str = "open", labels: list[Any] | None = None, *, user: str = "octocat"
    ) -> dict[str, Any]:
        """Create one issue (``created_at`` = ``updated_at`` = the next clock step) and return it."""
        if not isinstance(title, str) or not title or state not in ("open", "closed"):
            raise ValueError("Validation Failed: a title and a state of open|closed are required")
        with self._lock:
            number = max(self._issues, default=0) + 1
            stamp = self._tick()
            self._issues[number] = {
                "id": 100000 + number, "node_id": f"I_kwSANDBOX{100000 + number}", "number": number,
                "title": title, "body": body, "state": state, "labels": self._label_objects(labels or []),
                "locked": False, "comments": 0, "assignees": [], "user": {"login": user, "id": _USERS.get(user, 1)},
                "created_at": stamp, "updated_at": stamp, "closed_at": stamp if state == "closed" else None,
            }
            for index_state in ("all", state):
                self._by_updated[index_state].add((stamp, number))
                self._by_created[index_state].add((number,))
            return self._render(self._issues[number])

    def update_issue(self, number: int, **fields: Any) -> dict[str, Any]:
        """Change ``title``/``body``/``state``/``labels`` of an issue, bump ``updated_at`` and return it.

        Raises:
            KeyError: No such issue.
            ValueError: A field is unknown or its value is invalid.
        """
        with self._lock:
            issue = self._issues[number]
            unknown = set(fields) - set(ISSUE_FIELDS)
            if unknown or fields.get("state", "open") not in ("open", "closed"):
                raise ValueError(f"Validation Failed: {sorted(unknown) or fields['state']!r}")
            stamp = self._tick()
            old_key, old_state = (issue["updated_at"], number), issue["state"]
            for name, value in fields.items():
                issue[name] = self._label_objects(value) if name == "labels" else value
            if "state" in fields:
                issue["closed_at"] = stamp if fields["state"] == "closed" else None
            issue["updated_at"] = stamp
            self._by_updated["all"].move(old_key, (stamp, number))
            self._by_updated[old_state].remove(old_key)
            self._by_updated[issue["state"]].add((stamp, number))
            if issue["state"] != old_state:
                self._by_created[old_state].remove((number,))
                self._by_created[issue["state"]].add((number,))
            return self._render(issue)

    @property
    def issues(self) -> list[dict[str, Any]]:
        """A copy of every issue, by number."""
        with self._lock:
            return [self._render(self._issues[n]) for n in sorted(self._issues)]

    @property
    def request_log(self) -> list[tuple[str, str, int]]:
        """A copy of ``(method, path_with_query, status)`` per API request (control calls excluded)."""
        with self._lock:
            return list(self._log)

    @property
    def request_count(self) -> int:
        """How many API requests were answered (whatever their status)."""
        with self._lock:
            return len(self._log)

    @staticmethod
    def _label_objects(names: list[Any]) -> list[dict[str, Any]]:
        result = []
        for item in names:
            name = item["name"] if isinstance(item, dict) else str(item)
            result.append({"id": 9000 + sum(map(ord, name)), "name": name, "color": _LABELS.get(name, "ededed")})
        return result

    def _render(self, issue: dict[str, Any]) -> dict[str, Any]:
        api = f"{self.base_url if self.running else 'https://api.github.com'}/repos/{self.owner}/{self.repo}"
        number = issue["number"]
        html = f"https://github.com/{self.owner}/{self.repo}/issues/{number}"
        return copy.deepcopy(issue) | {"url": f"{api}/issues/{number}", "repository_url": api, "html_url": html}

    # -- rate limits and fault injection ---------------------------------------------------------

    def exhaust_rate_limit(self, reset_in_seconds: float = 60.0) -> None:
        """Use up the primary limit (403, remaining 0) until ``reset_in_seconds`` from now."""
        with self._lock:
            self.quota.exhaust(reset_in_seconds)

    def reset_rate_limit(self) -> None:
        """Start a fresh primary window with the whole limit available."""
        with self._lock:
            self.quota.reset()

    def secondary_limit(self, retry_after_seconds: int = 60, times: int = 1) -> None:
        """Answer the next ``times`` authenticated API calls with 429 and ``retry-after``."""
        message = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
        with self._lock:
            self._injected += [(429, message, {"retry-after": str(int(retry_after_seconds))})] * times

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        """Answer the next ``times`` authenticated API calls with ``status`` (e.g. 500, 502, 503)."""
        with self._lock:
            self._injected += [(status, "Sandbox injected failure", {})] * times

    def inject(self, status: int, headers: Mapping[str, str], times: int = 1) -> None:
        """Answer the next ``times`` API calls with ``status`` and these exact headers (``Retry-After: inf``)."""
        with self._lock:
            self._injected += [(status, "Sandbox injected failure", dict(headers))] * times

    def link_cycle(self, last_page: int | None) -> None:
        """Make page ``last_page``'s ``rel="next"`` point back to page 1: a cycle of that many pages (None: off)."""
        with self._lock:
            self._cycle_page = last_page

    def _cycled(self, request: Request, response: Response) -> Response:
        if self._cycle_page != _int(request.query.get("page"), 1) or "Link" not in response.headers:
            return response
        first = page_url(self.base_url, request.path, request.query_items, "page", 1)
        parts = response.headers["Link"].split(", ")
        response.headers["Link"] = ", ".join(f'<{first}>; rel="next"' if 'rel="next"' in p else p for p in parts)
        return response

    def _rate_headers(self) -> dict[str, str]:
        info = self.quota.info()
        return {f"x-ratelimit-{k}": str(v) for k, v in info.items()} | {"x-ratelimit-resource": "core"}

    # -- request pipeline ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Control calls go straight to the router; API calls pass latency, auth, faults and limits."""
        if request.path.startswith("/_sandbox/"):
            return self._guarded(request)
        if self.latency_seconds > 0:
            time.sleep(self.latency_seconds)
        with self._lock:
            response = self._api(request)
            response.headers.setdefault("x-github-request-id", uuid.uuid4().hex[:20].upper())
            self._log.append((request.method, request.target, response.status))
            return response

    def _api(self, request: Request) -> Response:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "token") or not hmac.compare_digest(credential.strip(), self._token):
            return _error(401, "Bad credentials", self._rate_headers())
        if self._injected:
            status, message, extra = self._injected.pop(0)
            return _error(status, message, self._rate_headers() | extra)
        if request.path != "/rate_limit" and not self.quota.consume():  # /rate_limit is free, like GitHub's
            return _error(403, "API rate limit exceeded for user ID 1.", self._rate_headers())
        response = self._cycled(request, self._guarded(request))
        response.headers.update(self._rate_headers())
        return response

    def _guarded(self, request: Request) -> Response:
        """Dispatch, turning ``LookupError`` into 404 and ``ValueError``/``TypeError`` into 422."""
        try:
            return self.dispatch(request)
        except LookupError:
            return _error(404, "Not Found")
        except (ValueError, TypeError) as exc:
            return _error(422, str(exc))

    # -- API routes ------------------------------------------------------------------------------

    def _check_repo(self, request: Request) -> None:
        if (request.params["owner"].lower(), request.params["repo"].lower()) != (self.owner.lower(), self.repo.lower()):
            raise LookupError("no such repository")

    def _find(self, request: Request) -> dict[str, Any]:
        self._check_repo(request)
        return self._render(self._issues[int(request.params["number"])])

    def _issue_fields(self, request: Request) -> dict[str, Any]:
        self._check_repo(request)
        return {k: v for k, v in _body(request).items() if k in ISSUE_FIELDS}

    def _repository(self) -> dict[str, Any]:
        full_name = f"{self.owner}/{self.repo}"
        return {"id": self.repository_id, "node_id": "R_kgSANDBOX", "name": self.repo, "full_name": full_name,
                "private": False, "owner": {"login": self.owner, "id": 7000, "type": "Organization"},
                "html_url": f"https://github.com/{full_name}"}

    def _get_repo(self, request: Request) -> Response:
        self._check_repo(request)
        return json_response(200, self._repository())

    def _rate_limit_status(self, request: Request) -> Response:
        core = self.quota.info() | {"resource": "core"}
        return json_response(200, {"resources": {"core": core}, "rate": core})

    def _patch_issue(self, request: Request) -> Response:
        issue = self._find(request)
        return json_response(200, self.update_issue(issue["number"], **self._issue_fields(request)))

    def _list_issues(self, request: Request) -> Response:
        self._check_repo(request)
        q = request.query
        state, sort, direction = q.get("state", "open"), q.get("sort", "created"), q.get("direction", "desc")
        if state not in ("open", "closed", "all") or sort not in ("created", "updated") or direction not in (
            "asc", "desc"
        ):
            raise ValueError("Validation Failed: state, sort or direction")
        since = iso(parse_iso(q["since"])) if "since" in q else ""  # same format, so strings compare
        per_page, page = min(max(_int(q.get("per_page"), 30), 1), 100), max(_int(q.get("page"), 1), 1)
        numbers, total = self._select(state, sort, direction == "desc", since, (page - 1) * per_page, per_page)
        last = max(math.ceil(total / per_page), 1)
        body = [self._render(self._issues[n]) for n in numbers]
        links = [(min(page - 1, last), "prev")] if page > 1 else []
        links += [(page + 1, "next"), (last, "last")] if page < last else []
        links += [(1, "first")] if page > 1 else []
        if not links:
            return json_response(200, body)
        urls = [(page_url(self.base_url, request.path, request.query_items, "page", n), rel) for n, rel in links]
        return json_response(200, body, {"Link": ", ".join(f'<{url}>; rel="{rel}"' for url, rel in urls)})

    def _select(self, state: str, sort: str, descending: bool, since: str, skip: int, limit: int) -> tuple[
            list[int], int]:
        """The issue numbers of one page and the size of the whole selection, in time proportional to the page.

        ``sort=updated`` bisects the updated index for ``since``; ``sort=created`` without ``since`` slices
        the created index. Only ``sort=created`` with ``since`` (no index orders by one field and filters
        by the other) scans the state's issues.
        """
        if sort == "created" and since:
            keys: SortedIndex | list[tuple[Any, ...]] = [
                key for key in self._by_created[state] if self._issues[key[0]]["updated_at"] >= since]
            self.touched += len(self._by_created[state])
            lo, hi = 0, len(keys)
        else:
            keys = self._by_updated[state] if sort == "updated" else self._by_created[state]
            lo, hi = (keys.lower((since,)) if since else 0), len(keys)
        start, stop = (max(hi - skip - limit, lo), hi - skip) if descending else (lo + skip, min(lo + skip + limit, hi))
        chosen = keys[max(start, 0) : max(stop, 0)] if isinstance(keys, list) else keys.slice(start, stop)
        numbers = [key[-1] for key in (reversed(chosen) if descending else chosen)]
        self.touched += len(numbers)
        return numbers, hi - lo

    # -- control endpoints (no auth) -------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """A snapshot of counters and settings (``GET /_sandbox/stats``)."""
        with self._lock:
            return {
                "request_count": len(self._log), "issues": len(self._issues),
                "open_issues": len(self._by_created["open"]),
                "clock": iso(self._clock), "rate_limit": self.quota.info(), "latency_seconds": self.latency_seconds,
                "recent_requests": [list(entry) for entry in self._log[-20:]],
            }

    def _ctl_seed(self, request: Request) -> Response:
        created = self.seed(int(_body(request, allow_empty=True).get("count", 0)))
        return json_response(200, {"created": len(created), "total": len(self._issues)})

    def _ctl_issue(self, request: Request) -> Response:
        if "number" not in request.params:
            return json_response(201, self.create_issue(**_body(request)))
        return json_response(200, self.update_issue(int(request.params["number"]), **_body(request)))

    def _ctl_config(self, request: Request) -> Response:
        """Apply ``latency_seconds``, ``rate_limit``, ``token``, ``reset_rate_limit``, ``exhaust_rate_limit``
        (seconds), ``secondary_limit`` and ``fail_next`` (keyword objects of the same-named methods)."""
        data = _body(request)
        with self._lock:
            self.latency_seconds = float(data.get("latency_seconds", self.latency_seconds))
            self.quota.limit = int(data.get("rate_limit", self.quota.limit))
            self.set_token(str(data.get("token", self._token)))
            if data.get("reset_rate_limit"):
                self.reset_rate_limit()
            if "exhaust_rate_limit" in data:
                self.exhaust_rate_limit(float(data["exhaust_rate_limit"]))
            if "secondary_limit" in data:
                self.secondary_limit(**data["secondary_limit"])
            if "fail_next" in data:
                self.fail_next(**data["fail_next"])
        return json_response(200, self.stats())

    def _ctl_webhook(self, request: Request) -> Response:
        data = _body(request)
        if not isinstance(data.get("url"), str) or not isinstance(data.get("issue_number"), int):
            raise ValueError("Validation Failed: url and issue_number are required")
        payload = self.issue_event_payload(data["issue_number"], action=data.get("action", "edited"))
        delivery_id = str(data.get("delivery_id") or uuid.uuid4())
        try:
            sent = self.send_webhook(
                data["url"], data.get("secret", ""), data.get("event", "issues"), payload, delivery_id=delivery_id
            )
        except httpx.HTTPError as exc:
            return json_response(502, {"message": f"delivery failed: {exc!r}", "delivery_id": delivery_id})
        return json_response(200, {"status": sent.status_code, "delivery_id": delivery_id})

    # -- webhooks --------------------------------------------------------------------------------

    @staticmethod
    def sign(secret: str | bytes, body: bytes, algorithm: str = "sha256") -> str:
        """``sha256=<hex HMAC(secret, body)>`` (the ``X-Hub-Signature-256`` value; ``sha1`` for the legacy one)."""
        key = secret.encode() if isinstance(secret, str) else secret
        return f"{algorithm}=" + hmac.new(key, body, getattr(hashlib, algorithm)).hexdigest()

    def issue_event_payload(self, issue: Mapping[str, Any] | int, action: str = "edited") -> dict[str, Any]:
        """Build an ``issues`` event payload for an issue object or number (``KeyError`` if unknown)."""
        if isinstance(issue, int):
            with self._lock:
                issue = self._render(self._issues[issue])
        sender = {"login": "sandbox-user", "id": 1, "type": "User"}
        return {"action": action, "issue": dict(issue), "repository": self._repository(), "sender": sender}

    def send_webhook(
        self, url: str, secret: str | bytes, event: str, payload: Mapping[str, Any] | bytes, *,
        delivery_id: str | None = None, headers_override: Mapping[str, str | None] | None = None,
        client: httpx.Client | None = None,
    ) -> httpx.Response:
        """POST a signed delivery the way GitHub-Hookshot does.

        Args:
            url: Receiver URL.
            secret: Webhook secret used for both signatures.
            event: ``X-GitHub-Event`` value, e.g. ``issues``.
            payload: The event (serialised compactly) or exact body bytes.
            delivery_id: ``X-GitHub-Delivery``; a new UUID4 when omitted (reuse one to simulate a redelivery).
            headers_override: Headers to replace; a ``None`` value removes that header.
            client: An ``httpx.Client`` to send with (a short-lived one otherwise).

        Returns:
            The receiver's response.
        """
        body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
        headers: dict[str, str | None] = {
            "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/sandbox",
            "X-GitHub-Event": event, "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
            "X-GitHub-Hook-ID": str(self.hook_id), "X-GitHub-Hook-Installation-Target-Type": "repository",
            "X-GitHub-Hook-Installation-Target-ID": str(self.repository_id),
            "X-Hub-Signature-256": self.sign(secret, body), "X-Hub-Signature": self.sign(secret, body, "sha1"),
        }
        return post_webhook(url, body, headers | dict(headers_override or {}), client)


def main(argv: list[str] | None = None) -> None:
    """Run a GitHub sandbox in the foreground until SIGTERM/SIGINT, printing its base URL first."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.github", description="GitHub REST API sandbox")
    for flag, default in [("--port", 0), ("--issues", 0), ("--owner", "acme"), ("--repo", "widgets"),
                          ("--token", "gh-sandbox-token"), ("--rate-limit", 5000), ("--latency", 0.0), ("--seed", 1)]:
        parser.add_argument(flag, type=type(default), default=default)
    a = parser.parse_args(argv)
    sandbox = GitHubSandbox(a.owner, a.repo, a.token, a.issues, a.rate_limit, a.latency, a.seed, port=a.port)
    run_until_signal(sandbox)


if __name__ == "__main__":
    main()
