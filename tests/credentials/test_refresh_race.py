"""The fenced refresh against the GitHub OAuth sandbox (rotating refresh tokens, old access token killed).

50 concurrent refreshers - threads, then separate processes - end with exactly one refresh call at
the provider, one new secret version, and every caller holding the working token.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.common import token_json
from sandbox.github_oauth import GitHubOAuthSandbox
from shared.credentials.lease import FencedLeases, StaleFence
from shared.credentials.models import secret_name
from tests.credentials.helpers import CLIENT_ID, integration, rig, store_grant

RACERS = 50


@pytest.fixture
def oauth_sandbox() -> Iterator[GitHubOAuthSandbox]:
    sandbox = GitHubOAuthSandbox().start()
    sandbox.refresh_latency_seconds = 0.3  # a slow provider widens the window the racers meet in
    try:
        yield sandbox
    finally:
        sandbox.stop()


def _grant(sandbox: GitHubOAuthSandbox) -> dict[str, Any]:
    return token_json(sandbox.oauth.issue(CLIENT_ID))


def test_fifty_threads_refresh_once(tmp_path: Path, oauth_sandbox: GitHubOAuthSandbox) -> None:
    r = rig(tmp_path, oauth_sandbox.base_url)
    target = integration()
    old = _grant(oauth_sandbox)
    store_grant(r, old, target)
    barrier = threading.Barrier(RACERS)
    results: list[tuple[str, str]] = []
    lock = threading.Lock()

    def racer() -> None:
        barrier.wait()
        outcome = r.refresher.refresh(target)
        token = outcome.credential.bearer()
        assert token is not None
        with lock:
            results.append((outcome.status, token.get_secret_value()))

    threads = [threading.Thread(target=racer) for _ in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == RACERS
    assert oauth_sandbox.refresh_calls == 1
    assert sorted(s for s, _ in results).count("refreshed") == 1
    tokens = {t for _, t in results}
    assert len(tokens) == 1 and old["access_token"] not in tokens
    (token,) = tokens
    assert oauth_sandbox.oauth.validate(token) is not None  # the token every caller holds works
    assert oauth_sandbox.oauth.validate(old["access_token"]) is None  # GitHub killed the old one
    versions = r.secrets.list_versions(secret_name(target, "auth"))
    assert len(versions) == 2 and versions[-1].tags["fence"] == "1"
    r.close()


def _process_racer(data_dir: str, base: str, barrier: Any, out: Any) -> None:
    r = rig(Path(data_dir), base)
    barrier.wait()
    try:
        outcome = r.refresher.refresh(integration())
        token = outcome.credential.bearer()
        out.put((outcome.status, token.get_secret_value() if token else ""))
    except Exception as exc:  # reported to the parent, which fails the test
        out.put(("error", repr(exc)))
    finally:
        r.close()


def test_fifty_processes_refresh_once(tmp_path: Path, oauth_sandbox: GitHubOAuthSandbox) -> None:
    r = rig(tmp_path, oauth_sandbox.base_url)
    target = integration()
    old = _grant(oauth_sandbox)
    store_grant(r, old, target)
    r.close()
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(RACERS), ctx.Queue()
    procs = [ctx.Process(target=_process_racer, args=(str(tmp_path), oauth_sandbox.base_url, barrier, out))
             for _ in range(RACERS)]
    for p in procs:
        p.start()
    results = [out.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(30)
    assert [s for s, _ in results if s == "error"] == [], results
    assert oauth_sandbox.refresh_calls == 1
    assert [s for s, _ in results].count("refreshed") == 1
    tokens = {t for _, t in results}
    assert len(tokens) == 1
    assert oauth_sandbox.oauth.validate(tokens.pop()) is not None
    r = rig(tmp_path, oauth_sandbox.base_url)
    assert len(r.secrets.list_versions(secret_name(target, "auth"))) == 2
    r.close()


def test_a_holder_whose_lease_was_taken_over_is_refused(tmp_path: Path) -> None:
    now = [1000.0]
    from shared.backends.sqlite_documents import SqliteDocumentStore

    leases = FencedLeases(SqliteDocumentStore(tmp_path / "d.db"), "credential_leases", ttl_seconds=30,
                          clock=lambda: now[0])
    first = leases.acquire("t", "ihub-x", "a")
    assert first is not None and first.fence == 1
    assert leases.acquire("t", "ihub-x", "b") is None  # held
    now[0] += 31  # the first holder paused past its lease
    second = leases.acquire("t", "ihub-x", "b")
    assert second is not None and second.fence == 2
    with pytest.raises(StaleFence):
        leases.confirm(first)
    assert not leases.release(first)
    second = leases.confirm(second)  # each conditional write gives the holder the next ETag
    assert second.fence == 2
    assert leases.release(second, version="v2")
    third = leases.acquire("t", "ihub-x", "c")
    assert third is not None and third.fence == 3


def test_not_due_means_no_provider_call(tmp_path: Path, oauth_sandbox: GitHubOAuthSandbox) -> None:
    r = rig(tmp_path, oauth_sandbox.base_url)
    store_grant(r, _grant(oauth_sandbox), integration(), expires_in=8 * 3600)
    assert r.refresher.refresh(integration()).status == "fresh"
    assert oauth_sandbox.refresh_calls == 0
    r.close()


def test_a_transient_failure_is_retried_with_backoff(tmp_path: Path, oauth_sandbox: GitHubOAuthSandbox) -> None:
    r = rig(tmp_path, oauth_sandbox.base_url)
    oauth_sandbox.refresh_latency_seconds = 0
    store_grant(r, _grant(oauth_sandbox), integration())
    oauth_sandbox.fail_next(502)
    outcome = r.refresher.refresh(integration())
    assert outcome.status == "refreshed" and oauth_sandbox.refresh_calls == 2
    r.close()


def test_a_used_refresh_token_is_refused_in_a_200_body(tmp_path: Path, oauth_sandbox: GitHubOAuthSandbox) -> None:
    from shared.credentials.exchange import GrantRejected

    r = rig(tmp_path, oauth_sandbox.base_url)
    oauth_sandbox.refresh_latency_seconds = 0
    grant = _grant(oauth_sandbox)
    oauth_sandbox.oauth.refresh(CLIENT_ID, grant["refresh_token"])  # someone else used it
    store_grant(r, grant, integration())
    with pytest.raises(GrantRejected) as caught:
        r.refresher.refresh(integration())
    assert caught.value.error == "bad_refresh_token"
    r.close()


def test_thirty_threads_against_slack_rotation_refresh_once(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from adapters.base.spec import AuthSpec
    from sandbox.slack import SlackSandbox
    from shared.credentials.exchange import Endpoints, OAuthClient
    from shared.credentials.refresh import CredentialRefresher

    sandbox = SlackSandbox(rotation=True).start()
    try:
        sandbox.oauth.refresh_latency_seconds = 0.3
        r = rig(tmp_path, sandbox.base_url)
        url = f"{sandbox.base_url}/api/oauth.v2.access"
        ep = Endpoints("slack", AuthSpec(token_url=url, client_auth="basic"), sandbox.base_url, token_url=url,
                       client=OAuthClient(sandbox.oauth.client_id, SecretStr(sandbox.oauth.client_secret)))
        refresher = CredentialRefresher(r.credentials, r.leases, r.exchange, lambda _i: ep)
        target = integration("slack-race")
        store_grant(r, sandbox.oauth.issue(rotating=True), target)
        barrier = threading.Barrier(30)
        tokens: list[str] = []

        def racer() -> None:
            barrier.wait()
            token = refresher.refresh(target).credential.bearer()
            assert token is not None
            tokens.append(token.get_secret_value())

        threads = [threading.Thread(target=racer) for _ in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(tokens) == 30 and len(set(tokens)) == 1
        assert sandbox.oauth.refresh_calls == 1
        assert sandbox.oauth.check(tokens[0]).token == tokens[0]  # works at Slack
        r.close()
    finally:
        sandbox.stop()


def test_waiters_do_not_pile_on_a_failing_provider(tmp_path: Path, oauth_sandbox: GitHubOAuthSandbox) -> None:
    from shared.errors import RetryLater

    r = rig(tmp_path, oauth_sandbox.base_url)
    store_grant(r, _grant(oauth_sandbox), integration())
    oauth_sandbox.fail_next(503, times=100)  # down for everyone
    barrier = threading.Barrier(10)
    errors: list[str] = []

    def racer() -> None:
        barrier.wait()
        try:
            r.refresher.refresh(integration())
        except RetryLater as exc:
            errors.append(exc.code)

    threads = [threading.Thread(target=racer) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == ["retry_later"] * 10
    assert oauth_sandbox.refresh_calls == 3  # the holder's three tries with backoff; the waiters made none
    r.close()


def test_refresh_outcomes_are_counted_by_provider(tmp_path: Path, oauth_sandbox: GitHubOAuthSandbox) -> None:
    from shared import telemetry
    from shared.credentials.exchange import GrantRejected

    telemetry.reset_metrics()
    r = rig(tmp_path, oauth_sandbox.base_url)
    oauth_sandbox.refresh_latency_seconds = 0
    store_grant(r, _grant(oauth_sandbox), integration(), expires_in=8 * 3600)
    r.refresher.refresh(integration())  # not due: fresh
    r.refresher.refresh(integration(), force=True)  # refreshed
    grant = _grant(oauth_sandbox)
    oauth_sandbox.oauth.refresh(CLIENT_ID, grant["refresh_token"])  # used elsewhere: the next one is refused
    store_grant(r, grant, integration())
    with pytest.raises(GrantRejected):
        r.refresher.refresh(integration())
    provider = integration().provider
    for outcome in ("fresh", "refreshed", "rejected"):
        assert telemetry.total("ihub.credentials.refresh", provider=provider, outcome=outcome) == 1, outcome
    r.close()
