"""The Notion adapter over real loopback HTTP against ``sandbox.notion.NotionSandbox``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from adapters.base.adapter import Connection, Entity, Page
from adapters.providers.notion import LISTING, SPEC, NotionAdapter
from sandbox.notion import NotionSandbox
from shared.domain import IncrementalState
from shared.errors import RateLimited, ReauthRequired, RetryLater, SkipRecord

TOKEN = "secret_notion_adapter_test"


@pytest.fixture
def sandbox() -> Iterator[NotionSandbox]:
    with NotionSandbox(pages=23, databases=("Tasks", "Projects"), token=TOKEN, requests_per_second=None) as sb:
        yield sb


@pytest.fixture
def adapter() -> Iterator[NotionAdapter]:
    with NotionAdapter(timeout=10.0) as notion:
        yield notion


def connect(sb: NotionSandbox, token: str = TOKEN) -> Connection:
    return Connection("tenant-a", "notion-1", sb.base_url, SecretStr(token), {})


def fetch_all(
    adapter: NotionAdapter, conn: Connection, stream: str, state: IncrementalState, parent_id: str | None = None
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


def test_databases_lead_to_their_pages_which_list_fully_then_by_last_edited_time(
    sandbox: NotionSandbox, adapter: NotionAdapter
) -> None:
    conn = connect(sandbox)
    [databases] = fetch_all(adapter, conn, "databases", IncrementalState())
    assert sorted(e.external_id for e in databases.entities) == sorted(sandbox.database_ids)
    assert sorted(c.parent_id for c in databases.children) == sorted(sandbox.database_ids)
    assert {c.stream for c in databases.children} == {"pages"}

    tasks = sandbox.database_ids[0]
    listing = fetch_all(adapter, conn, "pages", IncrementalState(), tasks)
    listed = entities(listing)
    expected = {p["id"] for p in sandbox.pages(tasks)}
    assert {e.external_id for e in listed} == expected and len(listed) == len(expected)
    state = listing[-1].state
    assert state.watermark == max(e.updated_at or "" for e in listed)

    edited = sandbox.pages(tasks)[0]["id"]
    sandbox.update_page(edited, Notes="edited later")
    delta = {e.external_id for e in entities(fetch_all(adapter, conn, "pages", state, tasks))}
    assert edited in delta and delta <= expected  # on_or_after repeats the watermark's minute, never less


class SmallPages(NotionAdapter):
    spec = SPEC.model_copy(update={"pagination": LISTING.model_copy(update={"page_size": 4})})


def test_cursor_and_page_size_travel_in_the_body(sandbox: NotionSandbox) -> None:
    tasks = sandbox.database_ids[0]
    with SmallPages(timeout=10.0) as small:
        pages = fetch_all(small, connect(sandbox), "pages", IncrementalState(), tasks)
    listed = [e.external_id for p in pages for e in p.entities]
    assert len(pages) > 2 and sorted(listed) == sorted(p["id"] for p in sandbox.pages(tasks))


def test_errors_in_notion_bodies_are_classified(sandbox: NotionSandbox, adapter: NotionAdapter) -> None:
    with pytest.raises(ReauthRequired):
        adapter.fetch_page(connect(sandbox, token="ntn_wrong"), "databases", IncrementalState(), None)
    missing = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(SkipRecord):
        adapter.fetch_page(connect(sandbox), "pages", IncrementalState(), None, parent_id=missing)


def test_rate_limits_and_overload(adapter: NotionAdapter) -> None:
    with NotionSandbox(pages=3, token=TOKEN, requests_per_second=0.2, burst=1) as sb:
        conn = connect(sb)
        adapter.fetch_page(conn, "databases", IncrementalState(), None)
        with pytest.raises(RateLimited) as limited:
            adapter.fetch_page(conn, "databases", IncrementalState(), None)
        assert limited.value.retry_at is not None
    assert issubclass(RateLimited, RetryLater)


def test_push_patches_properties_and_reports_last_edited_time(sandbox: NotionSandbox, adapter: NotionAdapter) -> None:
    conn = connect(sandbox)
    page = sandbox.pages()[0]
    changes = {"Notes": {"rich_text": [{"type": "text", "text": {"content": "from the hub"}}]}}
    result = adapter.push(conn, "pages", "update", page, changes, "key-1")
    assert result.external_id == page["id"] and result.version == result.entities[0].updated_at
    trashed = adapter.push(conn, "pages", "delete", page, {}, "key-2")
    assert trashed.entities[0].deleted
    assert page["id"] not in {p["id"] for p in sandbox.pages()}
