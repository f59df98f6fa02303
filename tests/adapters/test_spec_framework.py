"""The provider-neutral framework over real loopback HTTP: one made-up provider whose spec uses
every issue-7 feature (POST queries with the cursor in the body, sync tokens, change feeds,
tombstones, a deleted-records endpoint, parent/child streams, per-stream hosts, rate buckets,
quota headers, errors inside 200 answers, pushes)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from adapters.base.adapter import Adapter, Connection, Page
from adapters.base.model import ChildScope
from adapters.base.spec import (
    BodyError,
    ErrorSpec,
    PaginationSpec,
    ProviderSpec,
    PushOp,
    PushSpec,
    RateLimitSpec,
    StreamSpec,
)
from adapters.providers.github import GitHubAdapter
from sandbox.server import Request, Response, SandboxServer, json_response
from shared.domain import IncrementalState, Integration
from shared.errors import FailRun, HubError, InvalidInput, RateLimited, ReauthRequired, ResyncRequired
from shared.http import RateLimitState
from shared.ports.secrets import SecretStore
from shared.services.connections import AdapterHub
from shared.services.credentials import CredentialService

TOKEN = "acme-token"
CURSOR = PaginationSpec(style="body_cursor", token_path="nextPageToken", token_param="pageToken")

SPEC = ProviderSpec(
    name="acme",
    display_name="Acme",
    base_url="https://api.acme.invalid",
    rate_limit=RateLimitSpec(
        bucket_key="{connection}:{bucket}", quota_header="X-Quota", quota_pattern=r"used=(\d+)/(\d+)"
    ),
    errors=ErrorSpec(
        body=(BodyError(when_path="ok", equals=False, code_path="error"),),
        codes={"invalid_auth": "reauth", "ratelimited": "rate_limited"},
        quota_reset_seconds=120,
    ),
    streams={
        "pages": StreamSpec(
            path="/v1/databases/{database_id}/query",
            method="POST",
            entity_type="page",
            record_path="results",
            updated_field="edited",
            body={"sorts": [{"timestamp": "edited", "direction": "ascending"}]},
            delta_body={"filter": {"timestamp": "edited", "edited": {"after": "{watermark}"}}},
            headers={"Acme-Version": "2024-01"},
            pagination=PaginationSpec(
                style="body_cursor",
                token_path="next_cursor",
                token_param="start_cursor",
                has_more_path="has_more",
                page_size_param="page_size",
                page_size=2,
                token_in="body",
                page_size_in="body",
            ),
        ),
        "events": StreamSpec(
            path="/calendars/{calendar_id}/events",
            entity_type="event",
            record_path="items",
            updated_field="updated",
            delta_param="updatedMin",
            sync_token_param="syncToken",
            sync_token_path="nextSyncToken",
            deletes="tombstone",
            tombstone_path="status",
            tombstone_value="cancelled",
            errors=ErrorSpec(statuses={410: "resync"}),
            pagination=CURSOR,
        ),
        "changes": StreamSpec(
            path="/changes",
            entity_type="file",
            record_path="changes",
            id_field="fileId",
            start_page_token_path="newStartPageToken",
            deletes="tombstone",
            tombstone_path="removed",
            pagination=CURSOR,
        ),
        "channels": StreamSpec(path="/channels", entity_type="channel", record_path="channels", rate_bucket="tier2"),
        "history": StreamSpec(
            path="/channels/{parent_id}/history",
            entity_type="message",
            record_path="messages",
            id_field="ts",
            parent="channels",
            rate_bucket="tier3",
            push=PushSpec(
                create=PushOp(method="POST", path="/chat.postMessage", record_path="message"),
                update=PushOp(method="PATCH", path="/messages/{ts}", body_field="fields", record_path="message"),
                delete=PushOp(method="DELETE", path="/messages/{ts}"),
                idempotency_header="Idem-Key",
                version_path="ts",
            ),
        ),
        "threads": StreamSpec(
            path="/threads",
            entity_type="message",
            id_field="ts",
            push=PushSpec(
                update=PushOp(method="POST", path="/chat.update", body={"channel": "{channel}", "ts": "{ts}"}),
                version_path="ts",
            ),
        ),
        "accounts": StreamSpec(
            path="/query",
            entity_type="account",
            record_path="records",
            id_field="Id",
            updated_field="Modstamp",
            params={"q": "SELECT Id FROM Account ORDER BY Modstamp"},
            delta_params={"q": "SELECT Id FROM Account WHERE Modstamp > {watermark} ORDER BY Modstamp"},
            deletes="endpoint",
            deleted_stream="accounts_deleted",
            base_url_key="accounts_host",
        ),
        "accounts_deleted": StreamSpec(
            path="/deleted",
            entity_type="account",
            record_path="deletedRecords",
            id_field="id",
            deletes="none",
            base_url_key="accounts_host",
        ),
    },
)


class AcmeAdapter(Adapter):
    spec = SPEC


Answer = Callable[[Request], Response]


class ScriptedApi(SandboxServer):
    """Loopback API answering each path from a script and recording every request."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[str, list[Answer]] = {}
        self.seen: list[Request] = []
        self.route("GET", r"/.*", self._answer)
        self.route("POST", r"/.*", self._answer)
        self.route("PATCH", r"/.*", self._answer)
        self.route("DELETE", r"/.*", self._answer)

    def script(self, path: str, *answers: Answer | Any) -> None:
        self.answers[path] = [a if callable(a) else (lambda _r, data=a: json_response(200, data)) for a in answers]

    def _answer(self, request: Request) -> Response:
        self.seen.append(request)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return json_response(401, {"message": "bad token"})
        queue = self.answers.get(request.path)
        if not queue:
            return json_response(404, {"message": f"no answer scripted for {request.path}"})
        return (queue.pop(0) if len(queue) > 1 else queue[0])(request)

    def body_of(self, index: int) -> Any:
        return json.loads(self.seen[index].body) if self.seen[index].body else None


@pytest.fixture
def api() -> Iterator[ScriptedApi]:
    server = ScriptedApi().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def adapter() -> Iterator[AcmeAdapter]:
    acme = AcmeAdapter(timeout=10.0, rate_limits=RateLimitState())
    try:
        yield acme
    finally:
        acme.close()


def connect(api: ScriptedApi, **config: Any) -> Connection:
    settings = {"database_id": "db1", "calendar_id": "primary", **config}
    return Connection("tenant-a", "acme-1", api.base_url, SecretStr(TOKEN), settings)


def run(adapter: Adapter, conn: Connection, stream: str, state: IncrementalState, **kw: Any) -> list[Page]:
    pages, token = [], None
    while True:
        page = adapter.fetch_page(conn, stream, state, token, **kw)
        pages.append(page)
        token = page.next_token
        if token is None:
            return pages
        assert len(pages) < 10


# ---------------------------------------------------------------------------------------- POST queries


def test_post_query_carries_cursor_and_page_size_in_the_body_and_delta_in_a_filter(
    api: ScriptedApi, adapter: AcmeAdapter
) -> None:
    path = "/v1/databases/db1/query"
    api.script(
        path,
        {"results": [{"id": "p1", "edited": "2024-01-01"}, {"id": "p2", "edited": "2024-01-03"}],
         "has_more": True, "next_cursor": "c2"},
        {"results": [{"id": "p3", "edited": "2024-01-02"}], "has_more": False, "next_cursor": None},
    )  # fmt: skip
    pages = run(adapter, connect(api), "pages", IncrementalState())
    assert [e.external_id for p in pages for e in p.entities] == ["p1", "p2", "p3"]
    assert [r.method for r in api.seen] == ["POST", "POST"]
    sorts = [{"timestamp": "edited", "direction": "ascending"}]
    assert api.body_of(0) == {"sorts": sorts, "page_size": 2}
    assert api.body_of(1) == {"sorts": sorts, "page_size": 2, "start_cursor": "c2"}
    assert api.seen[0].headers["Acme-Version"] == "2024-01" and api.seen[0].query == {}
    assert pages[-1].state == IncrementalState(watermark="2024-01-02")
    assert pages[0].state.watermark == "2024-01-03" and pages[0].watermark == "2024-01-03"

    api.seen.clear()
    api.script(path, {"results": [], "has_more": False})
    run(adapter, connect(api), "pages", IncrementalState(watermark="2024-01-03"))
    assert api.body_of(0)["filter"] == {"timestamp": "edited", "edited": {"after": "2024-01-03"}}


def test_no_state_is_a_full_listing(api: ScriptedApi, adapter: AcmeAdapter) -> None:
    api.script("/v1/databases/db1/query", {"results": [{"id": "p1", "edited": "2024-02-02"}], "has_more": False})
    page = adapter.fetch_page(connect(api), "pages", None, None)
    assert "filter" not in api.body_of(0)
    assert page.state == IncrementalState(watermark="2024-02-02")


# ---------------------------------------------------------------------------------------- sync tokens, 410


def test_sync_token_arrives_on_the_last_page_and_is_sent_back_instead_of_the_watermark(
    api: ScriptedApi, adapter: AcmeAdapter
) -> None:
    path = "/calendars/primary/events"
    api.script(
        path,
        {"items": [{"id": "e1", "updated": "2024-01-01"}], "nextPageToken": "p2"},
        {"items": [{"id": "e2", "updated": "2024-01-02"}], "nextSyncToken": "sync-1"},
    )
    pages = run(adapter, connect(api), "events", IncrementalState())
    assert "syncToken" not in api.seen[0].query and "updatedMin" not in api.seen[0].query
    assert api.seen[1].query == {"pageToken": "p2"}
    assert pages[0].state.sync_token is None
    assert pages[-1].state == IncrementalState(watermark="2024-01-02", sync_token="sync-1")

    api.seen.clear()
    api.script(path, {"items": [{"id": "e1", "status": "cancelled", "updated": "2024-01-05"}], "nextSyncToken": "s2"})
    (page,) = run(adapter, connect(api), "events", pages[-1].state)
    assert api.seen[0].query == {"syncToken": "sync-1"}  # not updatedMin as well
    assert [(e.external_id, e.deleted) for e in page.entities] == [("e1", True)]
    assert page.state.sync_token == "s2"


def test_410_gone_raises_resync_required_and_a_full_resync_sends_no_old_token(
    api: ScriptedApi, adapter: AcmeAdapter
) -> None:
    path = "/calendars/primary/events"
    old = IncrementalState(watermark="2024-01-02", sync_token="expired")
    api.script(
        path, lambda _r: json_response(410, {"error": {"code": 410, "message": "Sync token is no longer valid"}})
    )
    with pytest.raises(ResyncRequired, match="410"):
        adapter.fetch_page(connect(api), "events", old, None)

    api.seen.clear()
    api.script(path, {"items": [{"id": "e9", "updated": "2023-12-01"}], "nextSyncToken": "fresh"})
    (page,) = run(adapter, connect(api), "events", IncrementalState(full_resync=True))
    assert api.seen[0].query == {}
    assert page.state == IncrementalState(watermark="2023-12-01", sync_token="fresh")  # full_resync is done


# ---------------------------------------------------------------------------------------- change feeds


def test_a_change_feed_resumes_from_its_start_page_token_and_ends_on_the_new_one(
    api: ScriptedApi, adapter: AcmeAdapter
) -> None:
    api.script(
        "/changes",
        {"changes": [{"fileId": "f1", "removed": False}], "nextPageToken": "6"},
        {"changes": [{"fileId": "f2", "removed": True}], "newStartPageToken": "9", "nextPageToken": "ignored"},
    )
    pages = run(adapter, connect(api), "changes", IncrementalState(start_page_token="5"))
    assert [r.query for r in api.seen] == [{"pageToken": "5"}, {"pageToken": "6"}]
    assert [(e.external_id, e.deleted) for p in pages for e in p.entities] == [("f1", False), ("f2", True)]
    assert pages[-1].state.start_page_token == "9" and pages[-1].next_token is None


class FeedAdapter(AcmeAdapter):
    """Fetches a start page token when the state has none (``initial_token`` hook)."""

    def initial_token(self, conn: Connection, stream: str, state: IncrementalState) -> str | None:
        return super().initial_token(conn, stream, state) or "from-hook"


def test_initial_token_hook_names_the_first_page(api: ScriptedApi) -> None:
    api.script("/changes", {"changes": [], "newStartPageToken": "10"})
    with FeedAdapter(timeout=10.0) as feed:
        page = feed.fetch_page(connect(api), "changes", IncrementalState(), None)
    assert api.seen[0].query == {"pageToken": "from-hook"} and page.state.start_page_token == "10"


# ---------------------------------------------------------------------------------------- parents and children


def test_a_parent_page_lists_its_children_and_a_child_fills_parent_id(api: ScriptedApi, adapter: AcmeAdapter) -> None:
    api.script("/channels", {"channels": [{"id": "C1"}, {"id": "C2"}, {"id": "C1"}, {"name": "no id"}]})
    (page,) = run(adapter, connect(api), "channels", IncrementalState())
    assert page.children == [ChildScope("history", "C1"), ChildScope("history", "C2")]

    api.script("/channels/C1/history", {"messages": [{"ts": "1.0"}]})
    (child,) = run(adapter, connect(api), "history", IncrementalState(), parent_id="C1")
    assert [e.external_id for e in child.entities] == ["1.0"] and child.children == []
    with pytest.raises(FailRun, match="parent_id"):
        adapter.fetch_page(connect(api), "history", IncrementalState(), None)


def test_a_parent_id_from_outside_stays_one_path_segment(api: ScriptedApi, adapter: AcmeAdapter) -> None:
    api.script("/channels/..%2Fadmin/history", {"messages": []})
    adapter.fetch_page(connect(api), "history", IncrementalState(), None, parent_id="../admin")
    assert api.seen[0].path == "/channels/..%2Fadmin/history"


# ---------------------------------------------------------------------------------------- hosts and deletes


def test_per_stream_host_delta_in_the_query_and_a_deleted_records_endpoint(adapter: AcmeAdapter) -> None:
    with ScriptedApi() as main, ScriptedApi() as other:
        other.script("/query", {"records": [{"Id": "001", "Modstamp": "2024-01-02"}]})
        other.script("/deleted", {"deletedRecords": [{"id": "002", "deletedDate": "2024-01-03"}]})
        conn = connect(main, accounts_host=other.base_url)
        (page,) = run(adapter, conn, "accounts", IncrementalState(watermark="2024-01-01"))
        assert other.seen[0].query == {"q": "SELECT Id FROM Account WHERE Modstamp > 2024-01-01 ORDER BY Modstamp"}
        assert [(e.entity_type, e.external_id, e.deleted) for e in page.entities] == [("account", "001", False)]
        (gone,) = run(adapter, conn, "accounts_deleted", IncrementalState())
        assert [(e.entity_type, e.external_id, e.deleted) for e in gone.entities] == [("account", "002", True)]
        assert main.seen == []
        run(adapter, conn, "accounts", IncrementalState())
        assert other.seen[-1].query == {"q": "SELECT Id FROM Account ORDER BY Modstamp"}


def test_unknown_stream_is_invalid_input(api: ScriptedApi, adapter: AcmeAdapter) -> None:
    with pytest.raises(InvalidInput, match="no stream"):
        adapter.fetch_page(connect(api), "nope", IncrementalState(), None)


def test_spec_refuses_a_parent_or_deleted_stream_that_does_not_exist() -> None:
    with pytest.raises(ValueError, match="parent"):
        ProviderSpec(name="x", display_name="X", base_url="https://x", streams={
            "a": StreamSpec(path="/a", entity_type="a", parent="ghost")})  # fmt: skip
    with pytest.raises(ValueError, match="deleted_stream"):
        ProviderSpec(name="x", display_name="X", base_url="https://x", streams={
            "a": StreamSpec(path="/a", entity_type="a", deleted_stream="ghost")})  # fmt: skip
    with pytest.raises(ValueError, match="needs deleted_stream"):
        ProviderSpec(name="x", display_name="X", base_url="https://x", streams={
            "a": StreamSpec(path="/a", entity_type="a", deletes="endpoint")})  # fmt: skip
    with pytest.raises(ValueError, match="lists 'b', not 'a'"):
        ProviderSpec(name="x", display_name="X", base_url="https://x", streams={
            "a": StreamSpec(path="/a", entity_type="a", deletes="endpoint", deleted_stream="gone"),
            "gone": StreamSpec(path="/g", entity_type="b")})  # fmt: skip


# ---------------------------------------------------------------------------------------- limits and errors


def test_a_429_blocks_its_bucket_only(api: ScriptedApi, adapter: AcmeAdapter) -> None:
    api.script("/channels/C1/history", lambda _r: json_response(429, {"ok": False, "error": "ratelimited"},
                                                                {"Retry-After": "30"}))  # fmt: skip
    api.script("/channels", {"channels": []})
    conn = connect(api)
    with pytest.raises(RateLimited):
        adapter.fetch_page(conn, "history", IncrementalState(), None, parent_id="C1")
    with pytest.raises(RateLimited, match="until"):
        adapter.fetch_page(conn, "history", IncrementalState(), None, parent_id="C2")  # same tier: not sent
    assert len(api.seen) == 1
    adapter.fetch_page(conn, "channels", IncrementalState(), None)  # another tier still works
    assert len(api.seen) == 2


def test_a_quota_header_at_its_limit_blocks_the_bucket_for_the_quota_window(
    api: ScriptedApi, adapter: AcmeAdapter
) -> None:
    api.script("/channels", lambda _r: json_response(200, {"channels": []}, {"X-Quota": "used=100/100"}))
    conn = connect(api)
    adapter.fetch_page(conn, "channels", IncrementalState(), None)
    before = datetime.now(UTC).timestamp()
    with pytest.raises(RateLimited) as info:
        adapter.fetch_page(conn, "channels", IncrementalState(), None)
    assert info.value.retry_at is not None
    assert before + 110 <= info.value.retry_at.timestamp() <= before + 121
    assert len(api.seen) == 1


def test_an_error_inside_a_200_answer_is_classified(api: ScriptedApi, adapter: AcmeAdapter) -> None:
    api.script("/channels", {"ok": False, "error": "invalid_auth"})
    with pytest.raises(ReauthRequired, match="invalid_auth"):
        adapter.fetch_page(connect(api), "channels", IncrementalState(), None)
    api.script("/channels", {"ok": False, "error": "something_else"})
    with pytest.raises(FailRun) as info:
        adapter.fetch_page(connect(api), "channels", IncrementalState(), None)
    assert info.value.code == "something_else"


def test_a_missing_bucket_config_value_names_it(api: ScriptedApi) -> None:
    class OrgAdapter(AcmeAdapter):
        spec = SPEC.model_copy(update={"rate_limit": RateLimitSpec(bucket_key="{provider}:{config[org_id]}")})

    with OrgAdapter(timeout=10.0) as org, pytest.raises(FailRun, match=r"config\[org_id\]"):
        org.fetch_page(connect(api), "channels", IncrementalState(), None)


# ---------------------------------------------------------------------------------------- pushes


def test_push_create_update_delete(api: ScriptedApi, adapter: AcmeAdapter) -> None:
    api.script("/chat.postMessage", {"ok": True, "ts": "5.0", "message": {"ts": "5.0", "text": "hi"}})
    conn = connect(api)
    created = adapter.push(conn, "history", "create", {}, {"channel": "C1", "text": "hi"}, "key-1")
    assert (created.external_id, created.version) == ("5.0", "5.0")
    assert [(e.entity_type, e.external_id, e.updated_at) for e in created.entities] == [("message", "5.0", "5.0")]
    assert api.seen[0].method == "POST" and api.seen[0].headers["Idem-Key"] == "key-1"
    assert api.body_of(0) == {"channel": "C1", "text": "hi"}

    api.script("/messages/5.0", {"ok": True, "ts": "5.0", "message": {"ts": "5.0", "text": "edited"}})
    updated = adapter.push(conn, "history", "update", {"ts": "5.0", "text": "hi"}, {"text": "edited"}, "key-2")
    assert api.seen[1].method == "PATCH" and api.body_of(1) == {"fields": {"text": "edited"}}
    assert updated.entities[0].data["text"] == "edited"

    api.script("/messages/5.0", lambda _r: Response(204))
    deleted = adapter.push(conn, "history", "delete", {"ts": "5.0"}, {}, "key-3")
    assert api.seen[2].method == "DELETE" and api.seen[2].body == b""
    assert (deleted.external_id, [e.deleted for e in deleted.entities]) == ("5.0", [True])


def test_push_body_template_names_the_target_from_the_record(api: ScriptedApi, adapter: AcmeAdapter) -> None:
    api.script("/chat.update", {"ok": True, "ts": "5.0"})
    result = adapter.push(connect(api), "threads", "update", {"ts": "5.0", "channel": "C1"}, {"text": "x"}, "k")
    assert api.body_of(0) == {"channel": "C1", "ts": "5.0", "text": "x"}
    assert result.external_id == "5.0" and [e.data for e in result.entities] == [{"ok": True, "ts": "5.0"}]
    with pytest.raises(FailRun, match="push body needs 'channel'"):
        adapter.push(connect(api), "threads", "update", {"ts": "5.0"}, {"text": "x"}, "k")


def test_push_of_an_operation_the_stream_does_not_accept(api: ScriptedApi, adapter: AcmeAdapter) -> None:
    with pytest.raises(FailRun, match="does not accept changes") as info:
        adapter.push(connect(api), "channels", "update", {}, {}, "k")
    assert info.value.code == "push_unsupported"
    with pytest.raises(FailRun, match="'upsert'"):
        adapter.push(connect(api), "history", cast(Any, "upsert"), {}, {}, "k")
    assert api.seen == []


def test_push_path_placeholders_name_what_is_missing(api: ScriptedApi, adapter: AcmeAdapter) -> None:
    with pytest.raises(FailRun, match="'ts'"):
        adapter.push(connect(api), "history", "update", {}, {"text": "x"}, "k")


def test_push_path_shorthand_is_an_update_only_push_spec() -> None:
    stream = StreamSpec(path="/x", entity_type="x", push_path="/x/{id}", push_method="PUT")
    push = stream.push_spec()
    assert push is not None and push.create is None and push.delete is None
    assert push.update == PushOp(method="PUT", path="/x/{id}")


# ---------------------------------------------------------------------------------------- base URL resolution


def integration(config: dict[str, Any]) -> Integration:
    return Integration(id="gh-1", tenant_id="tenant-a", provider="github", display_name="GH", config=config)


def test_base_url_precedence_config_then_setting_then_spec() -> None:
    hub = AdapterHub(CredentialService(cast(SecretStore, None)), base_urls={"github": "http://127.0.0.1:1"})
    try:
        enterprise = integration({"owner": "o", "repo": "r", "base_url": "https://ghe.example.com/api/v3/"})
        assert hub.connection(enterprise, with_credential=False).base_url == "https://ghe.example.com/api/v3"
        assert hub.connection(integration({}), with_credential=False).base_url == "http://127.0.0.1:1"
    finally:
        hub.close()
    bare = AdapterHub(CredentialService(cast(SecretStore, None)))
    try:
        assert bare.connection(integration({}), with_credential=False).base_url == "https://api.github.com"
    finally:
        bare.close()


@pytest.mark.parametrize(
    "value", ["ftp://x.test", "not a url", "https://user:pw@x.test", "https://x.test/?q=1", "", 42, "http://[::1"]
)
def test_a_base_url_from_config_that_is_not_a_plain_http_url_is_refused(value: Any) -> None:
    hub = AdapterHub(CredentialService(cast(SecretStore, None)))
    try:
        with pytest.raises(FailRun, match="'base_url'") as info:
            hub.connection(integration({"base_url": value}), with_credential=False)
        assert info.value.code == "invalid_base_url"
    finally:
        hub.close()


def test_github_enterprise_base_url_from_config_reaches_the_server() -> None:
    from sandbox.github import GitHubSandbox

    sandbox = GitHubSandbox(token=TOKEN, issues=3).start()
    hub = AdapterHub(CredentialService(cast(SecretStore, None)))
    try:
        found = integration({"owner": sandbox.owner, "repo": sandbox.repo, "base_url": sandbox.base_url})
        conn = hub.connection(found, with_credential=False)
        conn = Connection(conn.tenant_id, conn.integration_id, conn.base_url, SecretStr(TOKEN), conn.config)
        gh = hub.adapter("github")
        assert isinstance(gh, GitHubAdapter)
        assert len(gh.fetch_page(conn, "issues", IncrementalState(), None).entities) == 3
    finally:
        hub.close()
        sandbox.stop()


# ---------------------------------------------------------------------------------------- outside pages

PAGE_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(
        st.sampled_from(["results", "items", "changes", "channels", "messages", "records", "deletedRecords", "id",
                         "ts", "fileId", "Id", "removed", "status", "nextPageToken", "nextSyncToken",
                         "newStartPageToken", "has_more", "next_cursor", "ok", "error", "edited"]),
        inner,
        max_size=6,
    ),
    max_leaves=30,
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=PAGE_JSON, stream=st.sampled_from(sorted(SPEC.streams)), status=st.sampled_from([200, 400, 410, 429]))
def test_any_page_an_api_sends_gives_a_page_or_a_hub_error(body: Any, stream: str, status: int) -> None:
    transport = httpx.MockTransport(lambda _r: httpx.Response(status, json=body))
    with AcmeAdapter(transport=transport, rate_limits=RateLimitState()) as acme:
        conn = Connection(
            "t", "i", "https://api.acme.invalid", SecretStr(TOKEN), {"database_id": "d", "calendar_id": "c"}
        )
        state = IncrementalState(watermark="w", sync_token="s", start_page_token="p")
        try:
            page = acme.fetch_page(conn, stream, state, None, parent_id="P" if SPEC.streams[stream].parent else None)
        except HubError:
            return
    assert status == 200
    assert all(isinstance(e.external_id, str) for e in page.entities)
    assert page.next_token is None or isinstance(page.next_token, str)
    assert page.state.watermark is not None and page.state.watermark >= "w"
