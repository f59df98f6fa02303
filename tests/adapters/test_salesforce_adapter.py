"""The Salesforce adapter over real loopback HTTP against ``sandbox.salesforce.SalesforceSandbox``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from adapters.base.adapter import Connection, Entity, Page
from adapters.providers.salesforce import SalesforceAdapter
from sandbox.salesforce import SalesforceSandbox
from shared.domain import IncrementalState
from shared.errors import FailRun, RateLimited, ReauthRequired, ResyncRequired

TOKEN = "sf-adapter-test-token"


@pytest.fixture
def sandbox() -> Iterator[SalesforceSandbox]:
    sb = SalesforceSandbox(accounts=25, contacts=10, token=TOKEN, batch_size=10).start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def adapter() -> Iterator[SalesforceAdapter]:
    with SalesforceAdapter(timeout=10.0) as sf:
        yield sf


def connect(sb: SalesforceSandbox, token: str = TOKEN) -> Connection:
    # the base URL is the org's instance_url from the token answer, kept in config (AdapterHub
    # resolves it into Connection.base_url: spec.base_url_from)
    return Connection("tenant-a", "sf-1", sb.base_url, SecretStr(token), {"instance_url": sb.base_url})


def fetch_all(adapter: SalesforceAdapter, conn: Connection, stream: str, state: IncrementalState) -> list[Page]:
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


def test_full_listing_pages_by_next_records_url_then_delta_by_system_modstamp(
    sandbox: SalesforceSandbox, adapter: SalesforceAdapter
) -> None:
    conn = connect(sandbox)
    pages = fetch_all(adapter, conn, "accounts", IncrementalState())
    listed = entities(pages)
    assert len(pages) == 3 and len({e.external_id for e in listed}) == 25
    assert all(e.entity_type == "account" and not e.deleted for e in listed)
    state = pages[-1].state
    assert state.watermark == max(e.updated_at or "" for e in listed)

    assert entities(fetch_all(adapter, conn, "accounts", state)) == []  # nothing changed
    changed = [r["Id"] for r in sandbox.records("Account")[:3]]
    for record_id in changed:
        sandbox.update_record("Account", record_id, Phone="+1 555 0100")
    delta = entities(fetch_all(adapter, conn, "accounts", state))
    assert sorted(e.external_id for e in delta) == sorted(changed)


def test_deletions_come_from_the_deleted_endpoint_as_tombstones(
    sandbox: SalesforceSandbox, adapter: SalesforceAdapter
) -> None:
    conn = connect(sandbox)
    first = fetch_all(adapter, conn, "accounts_deleted", IncrementalState())
    assert entities(first) == []
    gone = sandbox.records("Account")[0]["Id"]
    sandbox.delete_record("Account", gone)
    [tombstone] = entities(fetch_all(adapter, conn, "accounts_deleted", IncrementalState()))
    assert tombstone.external_id == gone and tombstone.deleted and tombstone.entity_type == "account"


def test_quota_exhausted_waits_for_the_window_and_a_bad_session_needs_reauth(
    sandbox: SalesforceSandbox, adapter: SalesforceAdapter
) -> None:
    sandbox.exhaust_daily_limit()
    with pytest.raises(RateLimited) as limited:
        adapter.fetch_page(connect(sandbox), "accounts", IncrementalState(), None)
    assert limited.value.retry_at is not None
    with SalesforceAdapter(timeout=10.0) as fresh, pytest.raises(ReauthRequired, match=r"INVALID_SESSION_ID|Session"):
        sandbox.reset_daily_limit()
        fresh.fetch_page(connect(sandbox, token="not-a-session"), "accounts", IncrementalState(), None)


def test_an_expired_query_locator_asks_for_a_resync(sandbox: SalesforceSandbox, adapter: SalesforceAdapter) -> None:
    conn = connect(sandbox)
    first = adapter.fetch_page(conn, "accounts", IncrementalState(), None)
    sandbox.expire_query_locators()
    with pytest.raises(ResyncRequired):
        adapter.fetch_page(conn, "accounts", IncrementalState(), first.next_token)


def test_a_watermark_that_is_not_a_date_time_never_reaches_soql(adapter: SalesforceAdapter) -> None:
    conn = Connection("t", "i", "https://x.invalid", SecretStr("t"), {"instance_url": "https://x.invalid"})
    with pytest.raises(FailRun, match="not a date-time"):
        adapter.fetch_page(conn, "accounts", IncrementalState(watermark="2024-01-01 OR Name != null"), None)


def test_push_updates_the_row_and_reads_back_its_version(
    sandbox: SalesforceSandbox, adapter: SalesforceAdapter
) -> None:
    conn = connect(sandbox)
    record = sandbox.records("Contact")[0]
    result = adapter.push(conn, "contacts", "update", record, {"Title": "CTO"}, "key-1")
    assert result.external_id == record["Id"]
    assert result.version is not None and result.version > record["SystemModstamp"]
    assert result.entities[0].data["Title"] == "CTO"
    assert sandbox.record("Contact", record["Id"])["Title"] == "CTO"
    created = adapter.push(conn, "contacts", "create", {}, {"LastName": "Lovelace"}, "key-2")
    assert created.entities[0].data["LastName"] == "Lovelace"
    deleted = adapter.push(conn, "contacts", "delete", {"Id": created.external_id}, {}, "key-3")
    assert deleted.entities[0].deleted
    assert httpx.get(f"{sandbox.base_url}/services/data/v60.0/sobjects/Contact/{created.external_id}",
                     headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
