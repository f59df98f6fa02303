"""The Slack adapter over real loopback HTTP against ``sandbox.slack.SlackSandbox``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from adapters.base.adapter import Connection, Entity, Page
from adapters.providers.slack import SPEC, SlackAdapter
from sandbox.slack import SlackSandbox
from shared.domain import IncrementalState
from shared.errors import RateLimited, ReauthRequired, SkipRecord

TOKEN = "xoxb-adapter-test"


class SmallPages(SlackAdapter):
    spec = SPEC.model_copy(update={"pagination": SPEC.pagination.model_copy(update={"page_size": 4})})


@pytest.fixture
def sandbox() -> Iterator[SlackSandbox]:
    sb = SlackSandbox(users=6, channels=3, messages_per_channel=9, token=TOKEN, post_interval_seconds=0).start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def adapter() -> Iterator[SlackAdapter]:
    with SmallPages(timeout=10.0) as slack:
        yield slack


def connect(sb: SlackSandbox, token: str = TOKEN, integration: str = "slack-1") -> Connection:
    return Connection("tenant-a", integration, sb.base_url, SecretStr(token), {})


def fetch_all(
    adapter: SlackAdapter, conn: Connection, stream: str, state: IncrementalState, parent_id: str | None = None
) -> list[Page]:
    pages: list[Page] = []
    token: str | None = None
    while True:
        page = adapter.fetch_page(conn, stream, state, token, parent_id=parent_id)
        pages.append(page)
        token = page.next_token
        if token is None:
            return pages
        assert len(pages) < 50, "pagination does not end"


def entities(pages: list[Page]) -> list[Entity]:
    return [e for page in pages for e in page.entities]


def test_channels_lead_to_histories_paged_by_cursor_then_by_oldest(
    sandbox: SlackSandbox, adapter: SlackAdapter
) -> None:
    conn = connect(sandbox)
    users = entities(fetch_all(adapter, conn, "users", IncrementalState()))
    assert len({u.external_id for u in users}) == len(sandbox.workspace.users)
    channels = fetch_all(adapter, conn, "channels", IncrementalState())
    children = [c for page in channels for c in page.children]
    assert sorted(c.parent_id for c in children) == sorted(c["id"] for c in sandbox.workspace.channels)

    channel = children[0].parent_id
    history = fetch_all(adapter, conn, "messages", IncrementalState(), channel)
    messages = entities(history)
    expected = sandbox.workspace.messages(channel)
    assert len(history) >= 3 and sorted(m.external_id for m in messages) == sorted(
        f"{channel}:{m['ts']}" for m in expected
    )
    assert all(m.data["channel"] == channel for m in messages)
    state = IncrementalState()
    for page in history:  # newest first: the run's candidate keeps the latest watermark of all pages
        state = state.merged(page.state)
    assert state.watermark == max(m["ts"] for m in expected)

    assert entities(fetch_all(adapter, conn, "messages", state, channel)) == []
    posted = sandbox.post_message(channel, "new since the watermark")
    [new] = entities(fetch_all(adapter, conn, "messages", state, channel))
    assert new.external_id == f"{channel}:{posted['ts']}"


def test_ok_false_answers_are_classified(sandbox: SlackSandbox, adapter: SlackAdapter) -> None:
    with pytest.raises(ReauthRequired, match=r"invalid_auth|not_authed"):
        adapter.fetch_page(connect(sandbox, token="xoxb-wrong"), "users", IncrementalState(), None)
    with pytest.raises(SkipRecord, match="channel_not_found"):
        adapter.fetch_page(connect(sandbox), "messages", IncrementalState(), None, parent_id="C0NOSUCHCHAN")


def test_a_tier_limit_closes_only_that_tier(sandbox: SlackSandbox, adapter: SlackAdapter) -> None:
    conn = connect(sandbox)
    sandbox.inject("ratelimited", method="users\\.list", retry_after=30)
    with pytest.raises(RateLimited) as limited:
        adapter.fetch_page(conn, "users", IncrementalState(), None)
    assert limited.value.retry_at is not None
    channel = sandbox.workspace.channels[0]["id"]
    assert adapter.fetch_page(conn, "messages", IncrementalState(), None, parent_id=channel).entities  # tier 3 open


def test_post_and_update_messages(sandbox: SlackSandbox, adapter: SlackAdapter) -> None:
    conn = connect(sandbox)
    channel = sandbox.workspace.channels[0]["id"]
    created = adapter.push(conn, "messages", "create", {}, {"channel": channel, "text": "hello"}, "key-1")
    assert created.external_id.startswith(f"{channel}:") and created.entities[0].data["text"] == "hello"
    record = created.entities[0].data
    updated = adapter.push(conn, "messages", "update", record, {"text": "hello again"}, "key-2")
    assert updated.external_id == created.external_id
    assert sandbox.workspace.message(channel, record["ts"])["text"] == "hello again"
