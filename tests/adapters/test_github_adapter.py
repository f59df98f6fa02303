"""The GitHub adapter over real loopback HTTP against ``sandbox.github.GitHubSandbox``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from adapters.base.adapter import Connection, Entity, Page
from adapters.providers.github import GitHubAdapter
from sandbox.github import GitHubSandbox
from shared.domain import IncrementalState
from shared.errors import FailRun, RateLimited, ReauthRequired, RetryLater

TOKEN = "gh-adapter-test-token"
SECRET = "wh-adapter-test-secret"


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[GitHubSandbox]:
    sb = GitHubSandbox(token=TOKEN, issues=getattr(request, "param", 5)).start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def adapter() -> Iterator[GitHubAdapter]:
    gh = GitHubAdapter(timeout=10.0)
    try:
        yield gh
    finally:
        gh.close()


def connect(sb: GitHubSandbox, token: str | None = TOKEN, repo: str | None = None) -> Connection:
    credential = SecretStr(token) if token is not None else None
    return Connection("tenant-a", "gh-1", sb.base_url, credential, {"owner": sb.owner, "repo": repo or sb.repo})


def fetch_all(adapter: GitHubAdapter, conn: Connection, watermark: str | None = None) -> list[Page]:
    pages: list[Page] = []
    token: str | None = None
    while True:
        page = adapter.fetch_page(conn, "issues", IncrementalState(watermark=watermark), token)
        pages.append(page)
        token = page.next_token
        if token is None:
            return pages
        assert len(pages) < 20, "pagination does not end"


def entities(pages: list[Page]) -> list[Entity]:
    return [entity for page in pages for entity in page.entities]


# ---------------------------------------------------------------------------------------- pulling


@pytest.mark.parametrize("sandbox", [250], indirect=True)
def test_full_sync_follows_next_links_and_returns_every_issue_once(
    sandbox: GitHubSandbox, adapter: GitHubAdapter
) -> None:
    pages = fetch_all(adapter, connect(sandbox))
    assert [len(page.entities) for page in pages] == [100, 100, 50]
    got = entities(pages)
    ids = [e.external_id for e in got]
    assert len(ids) == len(set(ids)) == 250
    assert set(ids) == {str(issue["id"]) for issue in sandbox.issues}
    assert {e.entity_type for e in got} == {"issue"}
    by_id = {str(issue["id"]): issue for issue in sandbox.issues}
    assert all(e.updated_at == by_id[e.external_id]["updated_at"] for e in got)
    assert all(e.data["title"] == by_id[e.external_id]["title"] for e in got)


@pytest.mark.parametrize("sandbox", [250], indirect=True)
def test_page_urls_come_from_link_headers_never_built(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    pages = fetch_all(adapter, connect(sandbox))
    log = sandbox.request_log
    assert len(log) == 3
    assert all(method == "GET" and status == 200 for method, _, status in log)
    first = log[0][1]
    assert first.startswith(f"/repos/{sandbox.owner}/{sandbox.repo}/issues?")
    query = parse_qs(urlsplit(first).query)
    assert query["per_page"] == ["100"] and query["state"] == ["all"] and "page" not in query
    assert [sandbox.base_url + path for _, path, _ in log[1:]] == [pages[0].next_token, pages[1].next_token]
    assert pages[2].next_token is None


@pytest.mark.parametrize("sandbox", [250], indirect=True)
def test_watermark_is_the_max_updated_at(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    pages = fetch_all(adapter, connect(sandbox))
    newest = max(issue["updated_at"] for issue in sandbox.issues)
    assert max(p.watermark for p in pages if p.watermark) == newest
    assert pages[-1].watermark == newest  # sorted by updated asc: the last page holds the newest
    for page in pages:
        assert page.watermark == max(e.updated_at for e in page.entities if e.updated_at)


@pytest.mark.parametrize("sandbox", [250], indirect=True)
def test_incremental_sync_returns_only_changed_issues(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    conn = connect(sandbox)
    watermark = max(p.watermark for p in fetch_all(adapter, conn) if p.watermark)
    changed_a = sandbox.update_issue(17, title="Changed title")
    changed_b = sandbox.update_issue(123, state="closed")
    before = sandbox.request_count

    pages = fetch_all(adapter, conn, watermark)
    assert len(pages) == 1 and sandbox.request_count == before + 1
    assert f"since={watermark.replace(':', '%3A')}" in sandbox.request_log[-1][1]
    got = {e.external_id: e for e in entities(pages)}
    assert {str(changed_a["id"]), str(changed_b["id"])} <= set(got)
    assert len(got) <= 3  # `since` is inclusive: the issue at the old watermark may come back
    assert got[str(changed_a["id"])].data["title"] == "Changed title"
    assert got[str(changed_b["id"])].data["state"] == "closed"
    assert pages[0].watermark == changed_b["updated_at"] > watermark


def test_no_changes_since_watermark_gives_at_most_the_boundary_issue(
    sandbox: GitHubSandbox, adapter: GitHubAdapter
) -> None:
    conn = connect(sandbox)
    watermark = fetch_all(adapter, conn)[-1].watermark
    page = adapter.fetch_page(conn, "issues", IncrementalState(watermark=watermark), None)
    assert len(page.entities) <= 1 and page.next_token is None
    assert page.state == IncrementalState(watermark=watermark)  # nothing newer: the state stays


# ---------------------------------------------------------------------------------------- auth & errors


def test_bearer_token_is_sent(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    assert len(adapter.fetch_page(connect(sandbox), "issues", IncrementalState(), None).entities) == 5


def test_wrong_token_is_reauth_required_without_retry(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    with pytest.raises(ReauthRequired, match="401"):
        adapter.fetch_page(connect(sandbox, token="wrong"), "issues", IncrementalState(), None)
    assert [status for _, _, status in sandbox.request_log] == [401]


def test_missing_credential_is_reauth_required_without_request(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    with pytest.raises(ReauthRequired):
        adapter.fetch_page(connect(sandbox, token=None), "issues", IncrementalState(), None)
    assert sandbox.request_count == 0


def test_primary_rate_limit_is_rate_limited_until_reset(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    sandbox.exhaust_rate_limit(reset_in_seconds=120)
    started = time.monotonic()
    with pytest.raises(RateLimited) as info:
        adapter.fetch_page(connect(sandbox), "issues", IncrementalState(), None)
    assert time.monotonic() - started < 2  # no sleeping for a rate limit
    assert [status for _, _, status in sandbox.request_log] == [403]
    assert info.value.retry_at == datetime.fromtimestamp(sandbox.quota.info()["reset"], UTC)
    assert (info.value.retry_at - datetime.now(UTC)).total_seconds() == pytest.approx(120, abs=3)


def test_primary_rate_limit_blocks_later_calls_without_requests(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    sandbox.exhaust_rate_limit(reset_in_seconds=120)
    conn = connect(sandbox)
    for _ in range(2):
        with pytest.raises(RateLimited):
            adapter.fetch_page(conn, "issues", IncrementalState(), None)
    assert sandbox.request_count == 1


def test_last_request_of_the_budget_blocks_the_connection() -> None:
    with GitHubSandbox(token=TOKEN, issues=3, rate_limit=1) as sb:
        gh = GitHubAdapter(timeout=10.0)
        try:
            conn = connect(sb)
            assert (
                len(gh.fetch_page(conn, "issues", IncrementalState(), None).entities) == 3
            )  # remaining: 0 after this one
            with pytest.raises(RateLimited) as info:
                gh.fetch_page(conn, "issues", IncrementalState(), None)
        finally:
            gh.close()
        assert sb.request_count == 1  # the second call never left the process
        assert info.value.retry_at == datetime.fromtimestamp(sb.quota.info()["reset"], UTC)


def test_secondary_limit_429_is_rate_limited_for_retry_after(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    sandbox.secondary_limit(retry_after_seconds=30, times=1)
    with pytest.raises(RateLimited) as info:
        adapter.fetch_page(connect(sandbox), "issues", IncrementalState(), None)
    assert [status for _, _, status in sandbox.request_log] == [429]
    assert info.value.retry_at is not None
    assert (info.value.retry_at - datetime.now(UTC)).total_seconds() == pytest.approx(30, abs=2)


def test_forbidden_without_rate_limit_signs_is_reauth(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    sandbox.fail_next(403)
    with pytest.raises(ReauthRequired) as info:
        adapter.fetch_page(connect(sandbox), "issues", IncrementalState(), None)
    assert info.value.code == "forbidden"
    assert sandbox.request_count == 1


def test_one_500_is_retried_in_place(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    sandbox.fail_next(500, times=1)
    page = adapter.fetch_page(connect(sandbox), "issues", IncrementalState(), None)
    assert len(page.entities) == 5
    assert [status for _, _, status in sandbox.request_log] == [500, 200]


def test_three_500s_are_retry_later(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    sandbox.fail_next(500, times=3)
    with pytest.raises(RetryLater) as info:
        adapter.fetch_page(connect(sandbox), "issues", IncrementalState(), None)
    assert not isinstance(info.value, RateLimited)
    assert [status for _, _, status in sandbox.request_log] == [500, 500, 500]


def test_unknown_repo_is_fail_run(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    with pytest.raises(FailRun) as info:
        adapter.fetch_page(connect(sandbox, repo="no-such-repo"), "issues", IncrementalState(), None)
    assert info.value.code == "http_404"
    assert "Not Found" in str(info.value)
    assert sandbox.request_count == 1


def test_missing_config_is_fail_run_without_request(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    conn = Connection("tenant-a", "gh-1", sandbox.base_url, SecretStr(TOKEN), {"owner": sandbox.owner})
    with pytest.raises(FailRun, match="repo"):
        adapter.fetch_page(conn, "issues", IncrementalState(), None)
    assert sandbox.request_count == 0


def test_health_check(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    assert adapter.health_check(connect(sandbox)).healthy
    result = adapter.health_check(connect(sandbox, token="wrong"))
    assert not result.healthy and "unauthorized" in result.detail


# ---------------------------------------------------------------------------------------- webhooks


def delivery(sb: GitHubSandbox, event: str, payload: object, secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "X-Hub-Signature-256": sb.sign(secret, body),
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    }
    return headers, body


def test_verify_webhook_accepts_a_sandbox_signature(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    headers, body = delivery(sandbox, "issues", sandbox.issue_event_payload(1))
    verdict = adapter.verify_webhook(headers, body, SECRET)
    assert verdict.valid, verdict.reason
    lower = {k.lower(): v for k, v in headers.items()}
    assert adapter.verify_webhook(lower, body, SECRET).valid
    info = adapter.webhook_info(headers, json.loads(body))
    assert (info.delivery_id, info.event_type) == ("72d3162e-cc78-11e3-81ab-4c9367dc0958", "issues")


def test_verify_webhook_rejects_bad_deliveries(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    headers, body = delivery(sandbox, "issues", sandbox.issue_event_payload(1))
    cases = {
        "wrong secret": (headers, body, "other-secret"),
        "tampered body": (headers, body.replace(b'"edited"', b'"closed"'), SECRET),
        "missing": ({k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}, body, SECRET),
        "legacy sha1 only": (
            {"X-Hub-Signature": sandbox.sign(SECRET, body, "sha1"), "X-GitHub-Event": "issues"},
            body,
            SECRET,
        ),
        "no prefix": ({**headers, "X-Hub-Signature-256": headers["X-Hub-Signature-256"][7:]}, body, SECRET),
    }
    for name, (hdrs, raw, secret) in cases.items():
        verdict = adapter.verify_webhook(hdrs, raw, secret)
        assert not verdict.valid, name
        assert verdict.reason, name


def test_webhook_work_for_an_issues_event_stores_the_issue(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    payload = sandbox.issue_event_payload(2, action="edited")
    work = adapter.webhook_work("issues", payload)
    assert work.sync_streams == []
    (entity,) = work.entities
    assert entity.entity_type == "issue"
    assert entity.external_id == str(payload["issue"]["id"])
    assert entity.updated_at == payload["issue"]["updated_at"]
    assert entity.data["number"] == 2


def test_webhook_work_for_an_issue_comment_and_a_pull_request(adapter: GitHubAdapter) -> None:
    issue = {"id": 9, "number": 9, "updated_at": "2024-01-01T00:00:00Z", "pull_request": {"url": "x"}}
    (entity,) = adapter.webhook_work("issue_comment", {"action": "created", "issue": issue}).entities
    assert (entity.entity_type, entity.external_id) == ("pull_request", "9")


def test_webhook_work_ping_is_ignored_with_a_reason(adapter: GitHubAdapter) -> None:
    work = adapter.webhook_work("ping", {"zen": "Keep it logically awesome.", "hook_id": 1})
    assert work.entities == [] and work.sync_streams == [] and work.ignored and "ping" in work.ignored


@pytest.mark.parametrize(("event", "payload"), [("label", {"action": "created"}), ("issues", {"action": "opened"})])
def test_webhook_work_events_without_the_issue_ask_for_an_issues_sync(
    adapter: GitHubAdapter, event: str, payload: object
) -> None:
    work = adapter.webhook_work(event, payload)
    assert work.entities == [] and work.sync_streams == ["issues"] and work.ignored is None


def test_webhook_work_unused_events_are_ignored_not_errors(adapter: GitHubAdapter) -> None:
    work = adapter.webhook_work("push", {"ref": "refs/heads/main"})
    assert work.entities == [] and work.sync_streams == [] and work.ignored == "'push' events are not used by the hub"


def test_webhook_work_a_deleted_issue_is_a_tombstone(adapter: GitHubAdapter) -> None:
    work = adapter.webhook_work("issues", {"action": "deleted", "issue": {"id": 7, "number": 3}})
    (entity,) = work.entities
    assert (entity.external_id, entity.deleted, work.stream) == ("7", True, "issues")


# ---------------------------------------------------------------------------------------- push


def test_push_patches_the_issue_and_returns_the_mapped_entity(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    record = sandbox.issues[2]
    result = adapter.push(
        connect(sandbox), "issues", "update", record, {"title": "Renamed", "state": "closed"}, "idem-1"
    )
    (entity,) = result.entities
    assert result.external_id == str(record["id"]) and result.version == entity.updated_at
    assert entity.entity_type == "issue"
    assert entity.external_id == str(record["id"])
    assert entity.data["title"] == "Renamed" and entity.data["state"] == "closed"
    assert entity.updated_at is not None and entity.updated_at > record["updated_at"]
    stored = sandbox.issues[2]
    assert (stored["title"], stored["state"]) == ("Renamed", "closed")
    assert sandbox.request_log == [("PATCH", f"/repos/{sandbox.owner}/{sandbox.repo}/issues/{record['number']}", 200)]


def test_push_without_the_record_number_is_fail_run(sandbox: GitHubSandbox, adapter: GitHubAdapter) -> None:
    with pytest.raises(FailRun, match="number"):
        adapter.push(connect(sandbox), "issues", "update", {"id": 1}, {"title": "x"}, "idem-2")
    assert sandbox.request_count == 0


@pytest.mark.parametrize("operation", ["create", "delete"])
def test_issues_accept_only_updates(sandbox: GitHubSandbox, adapter: GitHubAdapter, operation: str) -> None:
    with pytest.raises(FailRun, match="accepts update") as info:
        adapter.push(connect(sandbox), "issues", operation, sandbox.issues[0], {"title": "x"}, "idem-3")  # type: ignore[arg-type]
    assert info.value.code == "push_unsupported" and sandbox.request_count == 0


def test_the_issues_spec_keeps_github_behaviour() -> None:
    spec = GitHubAdapter.spec.streams["issues"]
    assert spec.deletes == "full_listing" and spec.parent is None and spec.method == "GET"
    assert GitHubAdapter.spec.rate_limit.bucket_key == "{connection}"
