"""Unit tests of the pagination strategies in ``adapters.base.pagination``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from adapters.base.pagination import (
    PAGINATORS,
    BodyCursorPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    Paginator,
    SinglePage,
    paginator_for,
    parse_link_header,
)
from adapters.base.request import ApiRequest
from adapters.base.spec import PaginationSpec
from shared.errors import FailRun

API = "https://api.github.com/repositories/1300192/issues"


def prep(paginator: Paginator, url: str, params: dict[str, str], token: str | None) -> tuple[str, dict[str, str]]:
    """(url, params) of the request ``paginator`` prepares from a GET of ``url`` with ``params``."""
    request = paginator.prepare(ApiRequest("GET", url, params), token)
    assert request.method == "GET" and request.json is None
    return request.url, dict(request.params)


def response(status: int = 200, *, headers: dict[str, str] | None = None, body: Any = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, json=body, request=httpx.Request("GET", API))


# ---------------------------------------------------------------------------------------- parse_link_header


def test_parse_link_header_github_format_with_all_four_rels() -> None:
    header = (
        f'<{API}?page=2>; rel="prev", <{API}?page=4>; rel="next", '
        f'<{API}?page=515>; rel="last", <{API}?page=1>; rel="first"'
    )
    assert parse_link_header(header) == {
        "prev": f"{API}?page=2",
        "next": f"{API}?page=4",
        "last": f"{API}?page=515",
        "first": f"{API}?page=1",
    }


def test_parse_link_header_keeps_the_url_with_its_query_verbatim() -> None:
    url = f"{API}?state=all&sort=updated&direction=asc&per_page=100&page=2"
    assert parse_link_header(f'<{url}>; rel="next"')["next"] == url


def test_parse_link_header_tolerates_extra_spaces() -> None:
    header = f'  <{API}?page=2>  ;   rel="next"  ,   <{API}?page=9>;rel="last"  '
    assert parse_link_header(header) == {"next": f"{API}?page=2", "last": f"{API}?page=9"}


def test_parse_link_header_skips_a_link_without_rel() -> None:
    header = f'<{API}?page=7>; title="no rel here", <{API}?page=2>; rel="next"'
    assert parse_link_header(header) == {"next": f"{API}?page=2"}


def test_parse_link_header_unquoted_rel_and_several_rels_in_one_param() -> None:
    assert parse_link_header(f"<{API}?page=2>; rel=next") == {"next": f"{API}?page=2"}
    assert parse_link_header(f'<{API}?page=2>; rel="next last"') == {
        "next": f"{API}?page=2",
        "last": f"{API}?page=2",
    }


@pytest.mark.parametrize("value", ["", None])
def test_parse_link_header_empty(value: Any) -> None:
    assert parse_link_header(value) == {}


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(f'<{API}?page=2>; rel = "next"', id="bws-around-equals"),
        pytest.param(f'<{API}?page=2>; REL="next"', id="uppercase-param-name"),
        pytest.param(f'<{API}?page=2>; title="a, b"; rel="next"', id="comma-inside-quoted-param"),
    ],
)
def test_parse_link_header_rfc8288_variants(header: str) -> None:
    assert parse_link_header(header).get("next") == f"{API}?page=2"


# ---------------------------------------------------------------------------------------- LinkHeaderPaginator

LINK_SPEC = PaginationSpec(style="link_header", page_size_param="per_page", page_size=100)


def test_link_header_first_page_adds_per_page_without_mutating_params() -> None:
    params = {"state": "all"}
    url, prepared = prep(LinkHeaderPaginator(LINK_SPEC), API, params, None)
    assert url == API
    assert prepared == {"state": "all", "per_page": "100"}
    assert params == {"state": "all"}


def test_link_header_first_page_without_page_size_param() -> None:
    spec = PaginationSpec(style="link_header")
    assert prep(LinkHeaderPaginator(spec), API, {"a": "1"}, None) == (API, {"a": "1"})


def test_link_header_next_token_is_the_rel_next_url_verbatim() -> None:
    nxt = f"{API}?state=all&per_page=100&page=2&weird=%2Fa%20b"
    resp = response(headers={"Link": f'<{nxt}>; rel="next", <{API}?page=9>; rel="last"'})
    assert LinkHeaderPaginator(LINK_SPEC).next_token(resp, [], None) == nxt


def test_link_header_token_page_is_requested_verbatim_without_extra_params() -> None:
    nxt = f"{API}?state=all&per_page=100&page=2"
    assert prep(LinkHeaderPaginator(LINK_SPEC), API, {"state": "all", "since": "x"}, nxt) == (nxt, {})


def test_link_header_last_page_has_no_next() -> None:
    resp = response(headers={"Link": f'<{API}?page=1>; rel="first", <{API}?page=2>; rel="prev"'})
    assert LinkHeaderPaginator(LINK_SPEC).next_token(resp, [], f"{API}?page=3") is None
    assert LinkHeaderPaginator(LINK_SPEC).next_token(response(), [], f"{API}?page=3") is None


@pytest.mark.parametrize(
    "token",
    [
        "https://evil.example.com/repositories/1300192/issues?page=2",
        "https://api.github.com:8443/repositories/1300192/issues?page=2",
    ],
)
def test_link_header_rejects_a_next_link_to_another_host(token: str) -> None:
    with pytest.raises(FailRun, match="another host"):
        prep(LinkHeaderPaginator(LINK_SPEC), API, {}, token)


def test_link_header_same_cursor_twice_raises() -> None:
    token = f"{API}?page=2"
    resp = response(headers={"Link": f'<{token}>; rel="next"'})
    with pytest.raises(FailRun, match="same cursor twice"):
        LinkHeaderPaginator(LINK_SPEC).next_token(resp, [], token)


# ---------------------------------------------------------------------------------------- BodyCursorPaginator

SLACK = PaginationSpec(
    style="body_cursor",
    token_path="response_metadata.next_cursor",
    token_param="cursor",
    page_size_param="limit",
    page_size=200,
)
NOTION = PaginationSpec(
    style="body_cursor", token_path="next_cursor", token_param="start_cursor", has_more_path="has_more"
)


def test_body_cursor_first_page_sets_page_size_only() -> None:
    url, params = prep(BodyCursorPaginator(SLACK), "https://slack.com/api/conversations.list", {"types": "x"}, None)
    assert url == "https://slack.com/api/conversations.list"
    assert params == {"types": "x", "limit": "200"}


def test_body_cursor_token_is_sent_as_the_token_param() -> None:
    _, params = prep(BodyCursorPaginator(SLACK), "https://slack.com/api/x", {}, "dXNlcjpVMEc5V0ZYTlo=")
    assert params == {"limit": "200", "cursor": "dXNlcjpVMEc5V0ZYTlo="}


def test_body_cursor_slack_next_cursor() -> None:
    body = {"ok": True, "channels": [], "response_metadata": {"next_cursor": "dXNlcjpVMEc5V0ZYTlo="}}
    assert BodyCursorPaginator(SLACK).next_token(response(body=body), body, None) == "dXNlcjpVMEc5V0ZYTlo="


@pytest.mark.parametrize(
    "body",
    [
        {"ok": True, "channels": [], "response_metadata": {"next_cursor": ""}},
        {"ok": True, "channels": [], "response_metadata": {}},
        {"ok": True, "channels": []},
    ],
)
def test_body_cursor_slack_empty_or_missing_cursor_ends(body: dict[str, Any]) -> None:
    assert BodyCursorPaginator(SLACK).next_token(response(body=body), body, "previous") is None


def test_body_cursor_notion_has_more_false_ends_even_with_a_cursor() -> None:
    body = {"object": "list", "results": [], "has_more": False, "next_cursor": "stale"}
    assert BodyCursorPaginator(NOTION).next_token(response(body=body), body, None) is None


def test_body_cursor_notion_has_more_true_returns_cursor() -> None:
    body = {"object": "list", "results": [], "has_more": True, "next_cursor": "fe2cc560-036c-44cd-90e8"}
    assert BodyCursorPaginator(NOTION).next_token(response(body=body), body, None) == "fe2cc560-036c-44cd-90e8"


def test_body_cursor_repeated_cursor_raises() -> None:
    body = {"response_metadata": {"next_cursor": "abc"}}
    with pytest.raises(FailRun, match="same cursor twice"):
        BodyCursorPaginator(SLACK).next_token(response(body=body), body, "abc")


def test_body_cursor_needs_token_path_and_param() -> None:
    with pytest.raises(ValueError):
        BodyCursorPaginator(PaginationSpec(style="body_cursor", token_path="next_cursor"))
    with pytest.raises(ValueError):
        BodyCursorPaginator(PaginationSpec(style="body_cursor", token_param="cursor"))


# ---------------------------------------------------------------------------------------- NextUrlPaginator

SALESFORCE = PaginationSpec(style="next_url", token_path="nextRecordsUrl", done_path="done")
SF_QUERY = "https://acme.my.salesforce.com/services/data/v59.0/query"


def test_next_url_first_page_passes_through() -> None:
    params = {"q": "SELECT Id FROM Account"}
    assert prep(NextUrlPaginator(SALESFORCE), SF_QUERY, params, None) == (SF_QUERY, params)


def test_next_url_relative_url_is_joined_to_the_instance() -> None:
    url, params = prep(
        NextUrlPaginator(SALESFORCE),
        SF_QUERY,
        {"q": "SELECT Id FROM Account"},
        "/services/data/v59.0/query/01gD0000002HU6KIAW-2000",
    )
    assert url == "https://acme.my.salesforce.com/services/data/v59.0/query/01gD0000002HU6KIAW-2000"
    assert params == {}


def test_next_url_not_done_returns_the_next_records_url() -> None:
    nxt = "/services/data/v59.0/query/01g-2000"
    body = {"totalSize": 3000, "done": False, "nextRecordsUrl": nxt, "records": []}
    assert NextUrlPaginator(SALESFORCE).next_token(response(body=body), body, None) == nxt


@pytest.mark.parametrize(
    "body",
    [
        {"totalSize": 3000, "done": True, "records": []},
        {"totalSize": 3000, "done": True, "nextRecordsUrl": "/services/data/v59.0/query/01g-4000", "records": []},
    ],
)
def test_next_url_done_true_ends(body: dict[str, Any]) -> None:
    assert NextUrlPaginator(SALESFORCE).next_token(response(body=body), body, "/x") is None


def test_next_url_repeated_url_raises() -> None:
    body = {"done": False, "nextRecordsUrl": "/services/data/v59.0/query/01g-2000"}
    with pytest.raises(FailRun, match="same cursor twice"):
        NextUrlPaginator(SALESFORCE).next_token(response(body=body), body, "/services/data/v59.0/query/01g-2000")


def test_next_url_needs_token_path() -> None:
    with pytest.raises(ValueError):
        NextUrlPaginator(PaginationSpec(style="next_url"))


def test_next_url_rejects_a_next_url_on_another_host() -> None:
    with pytest.raises(FailRun):
        prep(NextUrlPaginator(SALESFORCE), SF_QUERY, {}, "https://evil.example.com/services/data/v59.0/query/x")


# ---------------------------------------------------------------------------------------- SinglePage & registry


def test_single_page() -> None:
    paginator = SinglePage(PaginationSpec(style="none"))
    assert prep(paginator, API, {"a": "1"}, None) == (API, {"a": "1"})
    resp = response(headers={"Link": f'<{API}?page=2>; rel="next"'}, body={"next_cursor": "x", "has_more": True})
    assert paginator.next_token(resp, resp.json(), None) is None


@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        (LINK_SPEC, LinkHeaderPaginator),
        (SLACK, BodyCursorPaginator),
        (SALESFORCE, NextUrlPaginator),
        (PaginationSpec(style="none"), SinglePage),
    ],
)
def test_paginator_for_picks_the_named_strategy(spec: PaginationSpec, cls: type) -> None:
    assert isinstance(paginator_for(spec), cls)


def test_every_style_has_a_paginator() -> None:
    styles = PaginationSpec.model_fields["style"].annotation.__args__  # type: ignore[union-attr]
    assert set(styles) == set(PAGINATORS)
