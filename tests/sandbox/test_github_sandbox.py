"""Tests of the GitHub sandbox over real loopback HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from sandbox.github import GitHubSandbox
from sandbox.server import Request, Response, SandboxServer, json_response

TOKEN = "gh-sandbox-token"
ISSUES = "/repos/acme/widgets/issues"
ROOT = Path(__file__).resolve().parents[2]
LINK_RE = re.compile(r'<([^>]+)>; rel="(\w+)"')


@pytest.fixture
def gh() -> Iterator[GitHubSandbox]:
    with GitHubSandbox(issues=53) as sandbox:
        yield sandbox


@pytest.fixture
def client(gh: GitHubSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gh.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as c:
        yield c


def parse_links(header: str) -> dict[str, str]:
    """Parse a GitHub Link header into {rel: url}."""
    return {rel: url for url, rel in LINK_RE.findall(header)}


def walk(client: httpx.Client, url: str) -> tuple[list[dict], list[httpx.Response]]:
    """Follow rel="next" links from url until there is none."""
    items: list[dict] = []
    responses: list[httpx.Response] = []
    next_url: str | None = url
    while next_url:
        response = client.get(next_url)
        assert response.status_code == 200, response.text
        responses.append(response)
        items += response.json()
        next_url = parse_links(response.headers.get("link", "")).get("next")
        assert len(responses) < 100, "pagination does not end"
    return items, responses


class Receiver(SandboxServer):
    """A tiny webhook receiver that records what it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Request] = []
        self.route("POST", "/hook", self._hook)

    def _hook(self, request: Request) -> Response:
        self.received.append(request)
        return json_response(202, {"ok": True})


def test_auth_required(gh: GitHubSandbox) -> None:
    url = f"{gh.base_url}{ISSUES}"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.json()["message"] == "Bad credentials"
    assert "documentation_url" in missing.json()
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"token {TOKEN}"}).status_code == 200
    gh.set_token("rotated")
    assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer rotated"}).status_code == 200


def test_user_and_rate_limit_endpoints(client: httpx.Client) -> None:
    assert client.get("/user").json()["login"] == "sandbox-user"
    before = client.get("/rate_limit").json()["resources"]["core"]
    after = client.get("/rate_limit").json()["resources"]["core"]
    assert before["remaining"] == after["remaining"] == 4999  # /user counted, /rate_limit is free
    assert client.get("/repos/acme/widgets").json()["full_name"] == "acme/widgets"


@pytest.mark.parametrize("per_page", [7, 100])
def test_pagination_walks_exactly_all_issues(gh: GitHubSandbox, client: httpx.Client, per_page: int) -> None:
    items, responses = walk(client, f"{ISSUES}?state=all&per_page={per_page}")
    numbers = [i["number"] for i in items]
    assert sorted(numbers) == list(range(1, 54))
    assert len(set(numbers)) == len(numbers) == 53
    assert len(responses) == math.ceil(53 / per_page)
    assert numbers == sorted(numbers, reverse=True)  # default sort=created, direction=desc
    if per_page == 100:
        assert "link" not in responses[0].headers
    else:
        assert "next" not in parse_links(responses[-1].headers["link"])


def test_default_state_is_open(gh: GitHubSandbox, client: httpx.Client) -> None:
    open_numbers = {i["number"] for i in gh.issues if i["state"] == "open"}
    closed_numbers = {i["number"] for i in gh.issues if i["state"] == "closed"}
    assert open_numbers and closed_numbers  # the seed yields both
    assert {i["number"] for i in walk(client, f"{ISSUES}?per_page=100")[0]} == open_numbers
    assert {i["number"] for i in walk(client, f"{ISSUES}?state=closed")[0]} == closed_numbers


def test_link_header_format(gh: GitHubSandbox, client: httpx.Client) -> None:
    base = f"{gh.base_url}{ISSUES}?state=all&sort=updated&per_page=7"
    first = client.get(f"{ISSUES}?state=all&sort=updated&per_page=7")
    assert first.headers["link"] == f'<{base}&page=2>; rel="next", <{base}&page=8>; rel="last"'
    middle = client.get(f"{ISSUES}?state=all&page=3&sort=updated&per_page=7")
    mid = f"{gh.base_url}{ISSUES}?state=all&page={{}}&sort=updated&per_page=7"
    assert middle.headers["link"] == ", ".join(
        f'<{mid.format(n)}>; rel="{rel}"' for n, rel in [(2, "prev"), (4, "next"), (8, "last"), (1, "first")]
    )
    assert set(middle.links) == {"prev", "next", "last", "first"}  # httpx parses it too
    last = client.get(parse_links(first.headers["link"])["last"])
    assert set(parse_links(last.headers["link"])) == {"prev", "first"}
    assert len(last.json()) == 53 - 7 * 7


def test_per_page_clamped_and_since_preserved_in_links(gh: GitHubSandbox, client: httpx.Client) -> None:
    gh.seed(60)
    response = client.get(ISSUES, params={"state": "all", "per_page": 500})
    assert len(response.json()) == 100
    since = "2024-01-01T00:00:00Z"
    linked = client.get(ISSUES, params={"state": "all", "since": since, "per_page": 10})
    next_url = parse_links(linked.headers["link"])["next"]
    assert httpx.URL(next_url).params["since"] == since
    assert client.get(next_url).status_code == 200


def test_since_filter(gh: GitHubSandbox, client: httpx.Client) -> None:
    watermark = gh.issues[39]["updated_at"]  # issue 40
    got = walk(client, f"{ISSUES}?state=all&since={watermark}&per_page=5")[0]
    expected = sorted(i["number"] for i in gh.issues if i["updated_at"] >= watermark)
    assert sorted(i["number"] for i in got) == expected == list(range(40, 54))
    updated = gh.update_issue(3, title="Changed")
    got = client.get(ISSUES, params={"state": "all", "since": updated["updated_at"]}).json()
    assert [i["number"] for i in got] == [3]
    assert got[0]["title"] == "Changed"
    assert client.get(ISSUES, params={"since": "yesterday"}).status_code == 422


def test_sort_and_direction(gh: GitHubSandbox, client: httpx.Client) -> None:
    gh.update_issue(10, body="x")
    gh.update_issue(2, body="y")
    asc = walk(client, f"{ISSUES}?state=all&sort=updated&direction=asc&per_page=100")[0]
    assert [i["updated_at"] for i in asc] == sorted(i["updated_at"] for i in asc)
    assert [i["number"] for i in asc][-2:] == [10, 2]
    desc = client.get(ISSUES, params={"state": "all", "sort": "updated", "per_page": 3}).json()
    assert [i["number"] for i in desc] == [2, 10, 53]
    created_asc = client.get(ISSUES, params={"state": "all", "direction": "asc", "per_page": 3}).json()
    assert [i["number"] for i in created_asc] == [1, 2, 3]
    assert client.get(ISSUES, params={"sort": "bogus"}).status_code == 422


def test_issue_shape(gh: GitHubSandbox, client: httpx.Client) -> None:
    issue = client.get(f"{ISSUES}/5").json()
    for key in ("id", "node_id", "number", "title", "body", "state", "labels", "user", "created_at", "updated_at",
                "closed_at", "html_url", "url"):
        assert key in issue
    assert issue["number"] == 5 and isinstance(issue["id"], int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", issue["created_at"])
    assert issue["url"] == f"{gh.base_url}{ISSUES}/5"
    assert set(issue["user"]) >= {"login", "id"}
    assert len({i["id"] for i in gh.issues}) == 53


def test_rate_limit_headers_decrement(client: httpx.Client) -> None:
    first = client.get(ISSUES).headers
    second = client.get(ISSUES).headers
    assert first["x-ratelimit-limit"] == "5000"
    assert first["x-ratelimit-resource"] == "core"
    assert int(second["x-ratelimit-remaining"]) == int(first["x-ratelimit-remaining"]) - 1 == 4998
    assert int(second["x-ratelimit-used"]) == 2
    assert int(second["x-ratelimit-reset"]) > time.time()


def test_exhausted_rate_limit_gives_403_until_reset(gh: GitHubSandbox, client: httpx.Client) -> None:
    gh.exhaust_rate_limit(reset_in_seconds=0.5)
    blocked = client.get(ISSUES)
    assert blocked.status_code == 403
    assert blocked.headers["x-ratelimit-remaining"] == "0"
    assert blocked.json()["message"].startswith("API rate limit exceeded")
    assert int(blocked.headers["x-ratelimit-reset"]) >= int(time.time())
    time.sleep(0.6)
    assert client.get(ISSUES).status_code == 200


def test_small_rate_limit_runs_out(client: httpx.Client) -> None:
    with GitHubSandbox(rate_limit=2) as small:
        url = f"{small.base_url}{ISSUES}"
        statuses = [client.get(url).status_code for _ in range(3)]
        assert statuses == [200, 200, 403]


def test_secondary_limit_gives_429_with_retry_after(gh: GitHubSandbox, client: httpx.Client) -> None:
    gh.secondary_limit(retry_after_seconds=7, times=2)
    for _ in range(2):
        limited = client.get(ISSUES)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "7"
    assert client.get(ISSUES).status_code == 200


def test_fail_next_injects_errors(gh: GitHubSandbox, client: httpx.Client) -> None:
    gh.fail_next(500, times=2)
    gh.fail_next(503)
    assert [client.get(ISSUES).status_code for _ in range(4)] == [500, 500, 503, 200]


def test_patch_bumps_updated_at(gh: GitHubSandbox, client: httpx.Client) -> None:
    before = client.get(f"{ISSUES}/4").json()
    clock_before = gh.now()
    patched = client.patch(f"{ISSUES}/4", json={"title": "New title", "state": "closed"})
    assert patched.status_code == 200
    body = patched.json()
    assert body["title"] == "New title" and body["state"] == "closed"
    assert body["updated_at"] > before["updated_at"]
    assert body["closed_at"] == body["updated_at"]
    assert body["created_at"] == before["created_at"]
    assert gh.now() > clock_before
    reopened = client.patch(f"{ISSUES}/4", json={"state": "open"}).json()
    assert reopened["closed_at"] is None
    assert client.get(f"{ISSUES}/4").json()["title"] == "New title"


def test_errors_404_and_422(client: httpx.Client) -> None:
    assert client.get(f"{ISSUES}/999").status_code == 404
    assert client.get(f"{ISSUES}/999").json()["message"] == "Not Found"
    assert client.get("/repos/other/repo/issues").status_code == 404
    assert client.patch(f"{ISSUES}/999", json={"title": "x"}).status_code == 404
    bad = client.patch(f"{ISSUES}/1", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 422
    assert client.post(ISSUES, content=b"[1, 2").status_code == 422
    assert client.patch(f"{ISSUES}/1", json={"state": "weird"}).status_code == 422
    assert client.post(ISSUES, json={"body": "no title"}).status_code == 422


def test_create_issue(gh: GitHubSandbox, client: httpx.Client) -> None:
    created = client.post(ISSUES, json={"title": "Brand new", "body": "b", "labels": ["bug"]})
    assert created.status_code == 201
    issue = created.json()
    assert issue["number"] == 54 and issue["state"] == "open"
    assert issue["labels"][0]["name"] == "bug"
    assert gh.issues[-1]["title"] == "Brand new"


def test_request_log_and_count(gh: GitHubSandbox, client: httpx.Client) -> None:
    client.get(ISSUES, params={"per_page": 2})
    httpx.get(f"{gh.base_url}/user")
    httpx.get(f"{gh.base_url}/_sandbox/stats")  # control calls are not logged
    assert gh.request_log == [("GET", f"{ISSUES}?per_page=2", 200), ("GET", "/user", 401)]
    assert gh.request_count == 2


def test_concurrent_requests_are_counted(gh: GitHubSandbox, client: httpx.Client) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: client.get(ISSUES).status_code, range(40)))
    assert statuses == [200] * 40
    assert gh.request_count == 40
    assert gh.quota.info()["remaining"] == 5000 - 40


def test_latency(gh: GitHubSandbox, client: httpx.Client) -> None:
    gh.latency_seconds = 0.2
    started = time.perf_counter()
    client.get("/user")
    assert time.perf_counter() - started >= 0.2


def test_webhook_signature_verifies(gh: GitHubSandbox) -> None:
    secret = "s3cret"
    with Receiver() as receiver:
        payload = gh.issue_event_payload(gh.issues[0], action="edited")
        response = gh.send_webhook(f"{receiver.base_url}/hook", secret, "issues", payload, delivery_id="d-1")
        assert response.status_code == 202
        request = receiver.received[0]
    headers = request.headers
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-hub-signature-256"], expected)
    assert headers["x-hub-signature"] == "sha1=" + hmac.new(secret.encode(), request.body, hashlib.sha1).hexdigest()
    assert headers["x-github-event"] == "issues"
    assert headers["x-github-delivery"] == "d-1"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("GitHub-Hookshot/")
    assert headers["x-github-hook-id"]
    assert request.body == json.dumps(payload, separators=(",", ":")).encode()
    body = request.json()
    assert body["action"] == "edited" and body["issue"]["number"] == 1
    assert body["repository"]["full_name"] == "acme/widgets" and body["repository"]["owner"]["login"] == "acme"
    assert "login" in body["sender"]
    assert GitHubSandbox.sign(secret, request.body) == expected


def test_webhook_header_override_and_fresh_delivery_ids(gh: GitHubSandbox) -> None:
    with Receiver() as receiver, httpx.Client() as http:
        url = f"{receiver.base_url}/hook"
        gh.send_webhook(url, "k", "issues", {"a": 1}, client=http)
        gh.send_webhook(url, "k", "issues", {"a": 1}, headers_override={"X-Hub-Signature-256": None}, client=http)
        first, second = receiver.received
    assert first.headers["x-github-delivery"] != second.headers["x-github-delivery"]
    assert "x-hub-signature-256" not in second.headers
    assert first.body == b'{"a":1}'


def test_control_endpoints(gh: GitHubSandbox, client: httpx.Client) -> None:
    ctl = httpx.Client(base_url=f"{gh.base_url}/_sandbox")
    seeded = ctl.post("/seed", json={"count": 5}).json()
    assert seeded == {"created": 5, "total": 58}
    updated = ctl.post("/issues/2", json={"title": "From control", "state": "closed"})
    assert updated.status_code == 200 and updated.json()["title"] == "From control"
    assert ctl.post("/issues/999", json={"title": "x"}).status_code == 404
    assert ctl.post("/issues/1", json={"nope": 1}).status_code == 422
    assert ctl.post("/issues", json={"title": "Made by control"}).json()["number"] == 59
    stats = ctl.get("/stats").json()
    assert stats["issues"] == 59 and stats["request_count"] == 0
    config = ctl.post("/config", json={"token": "new-token", "rate_limit": 10, "latency_seconds": 0})
    assert config.status_code == 200 and config.json()["rate_limit"]["limit"] == 10
    assert client.get(ISSUES).status_code == 401
    ok = client.get(ISSUES, headers={"Authorization": "Bearer new-token"})
    assert ok.headers["x-ratelimit-limit"] == "10"
    ctl.post("/config", json={"fail_next": {"status": 502}, "token": TOKEN})
    assert client.get(ISSUES).status_code == 502
    ctl.post("/config", json={"exhaust_rate_limit": 60})
    assert client.get(ISSUES).status_code == 403
    ctl.post("/config", json={"reset_rate_limit": True, "secondary_limit": {"retry_after_seconds": 3}})
    assert client.get(ISSUES).headers["retry-after"] == "3"
    with Receiver() as receiver:
        sent = ctl.post("/webhooks", json={"url": f"{receiver.base_url}/hook", "secret": "k", "event": "issues",
                                           "issue_number": 2, "action": "closed"})
        assert sent.json()["status"] == 202
        delivered = receiver.received[0]
    assert delivered.json()["issue"]["title"] == "From control"
    assert delivered.json()["action"] == "closed"
    assert delivered.headers["x-hub-signature-256"] == GitHubSandbox.sign("k", delivered.body)
    assert ctl.post("/webhooks", json={"url": "http://x", "issue_number": 999}).status_code == 404
    ctl.close()


def test_stop_frees_the_port() -> None:
    sandbox = GitHubSandbox().start()
    port = sandbox.port
    with httpx.Client() as keepalive:  # a kept-alive connection must not pin the port
        assert keepalive.get(f"{sandbox.base_url}/user").status_code == 401
        sandbox.stop()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/user", timeout=2)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
    with GitHubSandbox(port=port) as again:
        assert again.base_url == f"http://127.0.0.1:{port}"
        assert httpx.get(f"{again.base_url}/user").status_code == 401
    sandbox.stop()  # idempotent


def test_cli_runs_until_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.github", "--port", "0", "--issues", "4"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        response = httpx.get(f"{base_url}{ISSUES}?state=all", headers={"Authorization": f"Bearer {TOKEN}"})
        assert len(response.json()) == 4
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("query", ["state=all&sort=updated&direction=asc", "state=open&sort=updated&direction=desc",
                                   "state=all", "state=closed&direction=asc"])
def test_page_cost_does_not_grow_with_the_dataset(query: str) -> None:
    """A page examines only its own issues (issue 7 §4): the same work at 200 and at 4,000 issues."""
    costs = []
    for count in (200, 4000):
        with GitHubSandbox(issues=count) as sandbox, httpx.Client(
                base_url=sandbox.base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            since = sandbox.issues[count // 2]["updated_at"]
            before = sandbox.touched
            http.get(f"{ISSUES}?{query}&per_page=10&page=3")
            middle = sandbox.touched
            http.get(f"{ISSUES}?{query}&since={since}&per_page=25&page=2" if "updated" in query else ISSUES)
            costs.append((middle - before, sandbox.touched - middle))
    assert costs[0] == costs[1]
    assert costs[0][0] == 10


def test_index_follows_updates_and_state_changes(gh: GitHubSandbox, client: httpx.Client) -> None:
    """After edits and closes, every listing still equals a brute-force filter and sort of all issues."""
    for number, fields in [(5, {"state": "closed"}), (7, {"title": "t"}), (9, {"state": "open"}), (5, {"body": "b"}),
                           (30, {"state": "closed"}), (1, {"labels": ["bug"]})]:
        gh.update_issue(number, **fields)
    everything = gh.issues
    watermark = everything[20]["updated_at"]
    for state in ("open", "closed", "all"):
        for sort in ("created", "updated"):
            for direction in ("asc", "desc"):
                for since in ("", watermark):
                    expected = sorted((i for i in everything if state in ("all", i["state"])
                                       and i["updated_at"] >= since), key=lambda i: (i[f"{sort}_at"], i["number"]),
                                      reverse=direction == "desc")
                    query = f"{ISSUES}?state={state}&sort={sort}&direction={direction}&per_page=4"
                    got = walk(client, query + (f"&since={since}" if since else ""))[0]
                    assert [i["number"] for i in got] == [i["number"] for i in expected], (state, sort, direction)
