"""Requests as data (``adapters.base.request``) and the paginators that transform them."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base.pagination import BodyCursorPaginator, LinkHeaderPaginator, NextUrlPaginator, paginator_for
from adapters.base.request import ApiRequest, deep_merge, join_url, render, render_value
from adapters.base.spec import PaginationSpec
from shared.errors import FailRun, HubError

NOTION = PaginationSpec(
    style="body_cursor",
    token_path="next_cursor",
    token_param="start_cursor",
    has_more_path="has_more",
    page_size_param="page_size",
    page_size=100,
    token_in="body",
    page_size_in="body",
)
QUERY = "https://api.notion.com/v1/databases/db1/query"

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


# ---------------------------------------------------------------------------------------- ApiRequest


def test_api_request_is_immutable_and_copies_on_change() -> None:
    first = ApiRequest("POST", QUERY, {"a": "1"}, {"filter": {"x": 1}}, {"Notion-Version": "2022-06-28"}, "tier3")
    second = first.with_params(b="2").with_body(page_size=10)
    assert first.params == {"a": "1"} and first.json == {"filter": {"x": 1}}
    assert second.params == {"a": "1", "b": "2"}
    assert second.json == {"filter": {"x": 1}, "page_size": 10}
    assert second.method == "POST" and second.headers == first.headers and second.bucket == "tier3"
    assert first.replace(url="https://x.test/").url == "https://x.test/"
    with pytest.raises(AttributeError):
        first.url = "changed"  # type: ignore[misc]


def test_with_body_on_a_request_without_a_body_starts_an_object() -> None:
    assert ApiRequest().with_body(start_cursor="c").json == {"start_cursor": "c"}


# ---------------------------------------------------------------------------------------- templates


def test_render_fills_placeholders_from_values() -> None:
    values = {"owner": "octo", "repo": "hello", "flag": True, "config": {"org_id": "00D1"}}
    assert render("/repos/{owner}/{repo}", values, what="path") == "/repos/octo/hello"
    assert render("{flag}", values, what="x") == "true"
    assert render("{provider}:{config[org_id]}", {**values, "provider": "sf"}, what="bucket") == "sf:00D1"
    assert render("literal {{braces}}", values, what="x") == "literal {braces}"


def test_render_quotes_each_value_as_one_path_segment() -> None:
    rendered = render("/channels/{parent_id}/history", {"parent_id": "../../admin?x=1#f"}, what="p", quote_values=True)
    assert rendered == "/channels/..%2F..%2Fadmin%3Fx%3D1%23f/history"


@pytest.mark.parametrize(
    ("template", "values", "missing"),
    [
        ("/repos/{owner}", {}, "'owner'"),
        ("{config[org_id]}", {"config": {}}, "'config[org_id]'"),
        ("{config[org_id]}", {}, "'config[org_id]'"),
        ("{parent_id}", {"parent_id": None}, "'parent_id'"),
        ("{nested}", {"nested": {"a": 1}}, "'nested'"),
    ],
)
def test_render_names_a_missing_value(template: str, values: dict[str, Any], missing: str) -> None:
    with pytest.raises(FailRun, match=re.escape(missing)) as info:
        render(template, values, what="stream 'items' path")
    assert "stream 'items' path" in str(info.value)


def test_render_value_renders_strings_inside_json_and_keeps_other_values() -> None:
    template = {"filter": {"after": "{watermark}", "n": 3, "on": True, "list": ["{db}", None]}}
    assert render_value(template, {"watermark": "2024-01-01", "db": "d1"}, what="body") == {
        "filter": {"after": "2024-01-01", "n": 3, "on": True, "list": ["d1", None]}
    }


def test_deep_merge_merges_objects_and_replaces_the_rest() -> None:
    assert deep_merge({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"c": 3}, "l": [2], "n": 1}) == {
        "a": {"b": 1, "c": 3},
        "l": [2],
        "n": 1,
    }
    assert deep_merge(None, {"a": 1}) == {"a": 1}


@pytest.mark.parametrize(
    ("base", "path", "joined"),
    [
        ("https://api.x.test", "/v1/items", "https://api.x.test/v1/items"),
        ("https://api.x.test/", "v1/items", "https://api.x.test/v1/items"),
        ("https://api.x.test/api/v3/", "/repos", "https://api.x.test/api/v3/repos"),
        ("https://api.x.test", "https://other.test/abs", "https://other.test/abs"),
        ("https://api.x.test", "", "https://api.x.test"),
    ],
)
def test_join_url(base: str, path: str, joined: str) -> None:
    assert join_url(base, path) == joined


@settings(max_examples=300, deadline=None)
@given(
    template=st.text(alphabet=st.sampled_from("{}[]ab_0 /:?%"), max_size=40) | st.text(max_size=40),
    values=st.dictionaries(st.sampled_from(["a", "b", "a_0", "config"]), JSON, max_size=4),
    quote_values=st.booleans(),
)
def test_render_with_outside_values_raises_only_hub_errors(
    template: str, values: dict[str, Any], quote_values: bool
) -> None:
    try:
        out = render(template, values, what="t", quote_values=quote_values)
    except HubError as exc:
        assert "'" in str(exc)  # names the placeholder
    else:
        assert isinstance(out, str)
        if quote_values:  # a value never adds a path segment: every "/" comes from the template
            assert out.count("/") <= template.count("/")


@settings(max_examples=200, deadline=None)
@given(template=JSON, values=st.dictionaries(st.text(max_size=5), JSON, max_size=4))
def test_render_value_with_outside_json_raises_only_hub_errors(template: Any, values: dict[str, Any]) -> None:
    try:
        render_value(template, values, what="body")
    except HubError:
        pass


# ---------------------------------------------------------------------------------------- paginators


def test_body_cursor_in_the_body_for_a_notion_style_query() -> None:
    first = ApiRequest("POST", QUERY, json={"filter": {"property": "x"}})
    paginator = BodyCursorPaginator(NOTION)
    page1 = paginator.prepare(first, None)
    assert page1.method == "POST" and page1.url == QUERY and page1.params == {}
    assert page1.json == {"filter": {"property": "x"}, "page_size": 100}
    page2 = paginator.prepare(first, "cur-2")
    assert page2.json == {"filter": {"property": "x"}, "page_size": 100, "start_cursor": "cur-2"}
    assert first.json == {"filter": {"property": "x"}}  # the first request is untouched


def test_body_cursor_mixed_token_in_body_and_page_size_in_query() -> None:
    spec = NOTION.model_copy(update={"page_size_in": "query"})
    request = BodyCursorPaginator(spec).prepare(ApiRequest("POST", QUERY), "c")
    assert request.params == {"page_size": "100"} and request.json == {"start_cursor": "c"}


def test_link_header_pages_keep_method_headers_and_bucket() -> None:
    spec = PaginationSpec(style="link_header", page_size_param="per_page")
    first = ApiRequest("GET", "https://api.x.test/items", {"since": "w"}, headers={"X-A": "1"}, bucket="core")
    nxt = paginator_for(spec).prepare(first, "https://api.x.test/items?page=2")
    assert nxt.url == "https://api.x.test/items?page=2" and nxt.params == {}
    assert nxt.headers == {"X-A": "1"} and nxt.bucket == "core"


@pytest.mark.parametrize(
    "token",
    [
        "http://api.x.test/items?page=2",  # https -> http downgrade
        "https://API.X.TEST.evil.test/items",
        "http://[::1/items",  # not even a URL
    ],
)
def test_link_header_refuses_another_scheme_host_or_a_broken_url(token: str) -> None:
    with pytest.raises(FailRun, match="next-page link"):
        LinkHeaderPaginator(PaginationSpec(style="link_header")).prepare(ApiRequest(url="https://api.x.test/i"), token)


def test_next_url_refuses_a_broken_url() -> None:
    spec = PaginationSpec(style="next_url", token_path="nextRecordsUrl")
    with pytest.raises(FailRun):
        NextUrlPaginator(spec).prepare(ApiRequest(url="https://sf.test/q"), "//[::1/x")


@pytest.mark.parametrize("value", [{"a": 1}, ["x"]])
def test_a_cursor_that_is_not_a_scalar_fails_the_run(value: Any) -> None:
    body = {"has_more": True, "next_cursor": value}
    with pytest.raises(FailRun, match="not a string"):
        BodyCursorPaginator(NOTION).next_token(httpx.Response(200, json=body), body, None)


@settings(max_examples=300, deadline=None)
@given(
    body=JSON,
    token=st.none() | st.text(max_size=30),
    link=st.text(max_size=60),
    style=st.sampled_from(["link", "cursor", "next_url"]),
)
def test_paginators_read_outside_pages_without_raising_anything_but_hub_errors(
    body: Any, token: str | None, link: str, style: str
) -> None:
    specs = {
        "link": PaginationSpec(style="link_header"),
        "cursor": NOTION,
        "next_url": PaginationSpec(style="next_url", token_path="next", done_path="done"),
    }
    paginator = paginator_for(specs[style])
    clean = link.encode("ascii", "ignore").decode().replace("\r", "").replace("\n", "")
    response = httpx.Response(200, headers={"Link": clean})
    try:
        nxt = paginator.next_token(response, body, token)
        if nxt is not None:
            assert nxt != token
            paginator.prepare(ApiRequest("GET", "https://api.x.test/items"), nxt)
    except HubError:
        pass
