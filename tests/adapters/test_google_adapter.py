"""The Google adapter over real loopback HTTP against ``sandbox.google.GoogleSandbox``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from adapters.base.adapter import Connection, Entity, Page
from adapters.providers.google import GoogleAdapter
from sandbox.google import GoogleSandbox
from shared.domain import IncrementalState
from shared.errors import RateLimited, ReauthRequired, ResyncRequired

TOKEN = "ya29.adapter-test"


@pytest.fixture
def sandbox() -> Iterator[GoogleSandbox]:
    sb = GoogleSandbox(files=7, events=9, token=TOKEN).start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def adapter() -> Iterator[GoogleAdapter]:
    with GoogleAdapter(timeout=10.0) as google:
        yield google


def connect(sb: GoogleSandbox, token: str = TOKEN, integration: str = "g-1") -> Connection:
    return Connection("tenant-a", integration, sb.base_url, SecretStr(token), {"calendar_id": "primary"})


def fetch_all(adapter: GoogleAdapter, conn: Connection, stream: str, state: IncrementalState) -> list[Page]:
    pages: list[Page] = []
    token: str | None = None
    while True:
        page = adapter.fetch_page(conn, stream, state, token)
        pages.append(page)
        token = page.next_token
        if token is None:
            return pages
        assert len(pages) < 50, "pagination does not end"


def entities(pages: list[Page]) -> list[Entity]:
    return [e for page in pages for e in page.entities]


def test_calendar_lists_fully_then_by_sync_token_with_cancelled_events_as_tombstones(
    sandbox: GoogleSandbox, adapter: GoogleAdapter
) -> None:
    conn = connect(sandbox)
    listing = fetch_all(adapter, conn, "calendar_events", IncrementalState())
    assert len({e.external_id for e in entities(listing)}) == 9
    state = listing[-1].state
    assert state.sync_token
    assert entities(fetch_all(adapter, conn, "calendar_events", state)) == []

    [first, second] = [e.external_id for e in entities(listing)][:2]
    sandbox.patch_event(first, summary="moved")
    sandbox.delete_event(second)
    delta = {e.external_id: e for e in entities(fetch_all(adapter, conn, "calendar_events", state))}
    assert set(delta) == {first, second}
    assert not delta[first].deleted and delta[second].deleted


def test_a_dead_sync_token_asks_for_a_full_resync(sandbox: GoogleSandbox, adapter: GoogleAdapter) -> None:
    conn = connect(sandbox)
    state = fetch_all(adapter, conn, "calendar_events", IncrementalState())[-1].state
    sandbox.calendar.invalidate_sync_tokens()
    with pytest.raises(ResyncRequired):
        adapter.fetch_page(conn, "calendar_events", state, None)


def test_drive_lists_files_from_a_start_token_then_follows_the_change_feed(
    sandbox: GoogleSandbox, adapter: GoogleAdapter
) -> None:
    conn = connect(sandbox)
    listing = fetch_all(adapter, conn, "drive_files", IncrementalState())
    files = entities(listing)
    assert len({e.external_id for e in files}) == 7 and all(e.entity_type == "file" for e in files)
    state = listing[-1].state
    assert state.start_page_token
    assert entities(fetch_all(adapter, conn, "drive_files", state)) == []

    renamed, removed = files[0].external_id, files[1].external_id
    sandbox.update_file(renamed, name="renamed")
    sandbox.delete_file(removed)
    feed = fetch_all(adapter, conn, "drive_files", state)
    delta = {e.external_id: e for e in entities(feed)}
    assert set(delta) == {renamed, removed}
    assert delta[renamed].data["name"] == "renamed" and delta[removed].deleted
    assert feed[-1].state.start_page_token != state.start_page_token


def test_rate_limits_back_off_and_a_revoked_token_needs_reauth(sandbox: GoogleSandbox, adapter: GoogleAdapter) -> None:
    conn = connect(sandbox)
    sandbox.inject("rate_limit", times=5)
    with pytest.raises(RateLimited) as limited:
        adapter.fetch_page(conn, "calendar_events", IncrementalState(), None)
    assert limited.value.retry_at is not None
    with pytest.raises(ReauthRequired):
        # another connection: the first one's bucket is closed until the backoff ends
        revoked = connect(sandbox, token="ya29.not-issued", integration="g-2")
        adapter.fetch_page(revoked, "calendar_events", IncrementalState(), None)


def test_push_patches_an_event_and_reports_its_etag(sandbox: GoogleSandbox, adapter: GoogleAdapter) -> None:
    conn = connect(sandbox)
    event = entities(fetch_all(adapter, conn, "calendar_events", IncrementalState()))[0].data
    result = adapter.push(conn, "calendar_events", "update", event, {"summary": "Planning"}, "key-1")
    assert result.external_id == event["id"] and result.version and result.version != event["etag"]
    assert result.entities[0].data["summary"] == "Planning"
