"""Pagination strategies. Each turns a response into the next page token and a token into a
request (:class:`~adapters.base.request.ApiRequest`: the token and the page size go in the
query or in the JSON body, as the spec says). Tokens are opaque strings, stored in the run
document between queue messages.

A strategy that returns the token it was given raises instead of looping; longer cycles
(page 3 linking back to page 1) are caught per run by the sync service's cursor trail
(``shared.domain.CursorTrail``) and the spec's ``max_pages_per_run`` ceiling.
"""

from __future__ import annotations

import re
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import httpx

from adapters.base.paths import get_path
from adapters.base.request import ApiRequest
from adapters.base.spec import PaginationSpec
from shared.errors import FailRun

_LINK_RE = re.compile(r'<([^>]*)>((?:\s*;\s*[^;,=\s]+\s*(?:=\s*(?:"[^"]*"|[^;,\s]*))?)*)')
_PARAM_RE = re.compile(r';\s*([^;,=\s]+)\s*(?:=\s*("[^"]*"|[^;,\s]*))?')


def parse_link_header(value: str) -> dict[str, str]:
    """``Link`` header -> {rel: url} (RFC 8288: quoted params, case-insensitive names)."""
    links: dict[str, str] = {}
    for url, params in _LINK_RE.findall(value or ""):
        for name, raw in _PARAM_RE.findall(params):
            if name.lower() == "rel":
                for rel in raw.strip('"').lower().split():
                    links.setdefault(rel, url)
    return links


def _same_host(url: str, base: str) -> str:
    try:
        there, here = urlsplit(url), urlsplit(base)
    except ValueError:
        raise FailRun(f"next-page link is not a URL: {url[:120]!r}") from None
    if (there.scheme.lower(), there.netloc.lower()) != (here.scheme.lower(), here.netloc.lower()):
        raise FailRun(f"next-page link points to another host: {url[:120]!r}")
    return url


class Paginator(Protocol):
    """Strategy interface: requests in, requests out."""

    def prepare(self, request: ApiRequest, token: str | None) -> ApiRequest:
        """The request of the page named by ``token`` (None = ``request`` is the first page)."""

    def next_token(self, response: httpx.Response, body: Any, token: str | None) -> str | None:
        """Token of the page after this one, or None on the last page."""


def _guard(next_token: str | None, token: str | None) -> str | None:
    if next_token is not None and next_token == token:
        raise FailRun(f"paginator returned the same cursor twice ({next_token[:80]!r}); stopping instead of looping")
    return next_token


def _with_page_size(request: ApiRequest, spec: PaginationSpec) -> ApiRequest:
    if not spec.page_size_param:
        return request
    if spec.page_size_in == "body":
        return request.with_body(**{spec.page_size_param: spec.page_size})
    return request.with_params(**{spec.page_size_param: str(spec.page_size)})


class LinkHeaderPaginator:
    """Follow ``Link: <url>; rel="next"``; never build page URLs."""

    def __init__(self, spec: PaginationSpec) -> None:
        self._spec = spec

    def prepare(self, request: ApiRequest, token: str | None) -> ApiRequest:
        if token is None:
            return _with_page_size(request, self._spec)
        return request.replace(url=_same_host(token, request.url), params={})

    def next_token(self, response: httpx.Response, body: Any, token: str | None) -> str | None:
        nxt = parse_link_header(response.headers.get("link", "")).get("next")
        return _guard(nxt, token)


class BodyCursorPaginator:
    """Cursor in the body (Slack ``response_metadata.next_cursor``, Notion ``next_cursor``,
    Google ``nextPageToken``), sent back as ``token_param`` in the query or the JSON body."""

    def __init__(self, spec: PaginationSpec) -> None:
        if not spec.token_path or not spec.token_param:
            raise ValueError("body_cursor pagination needs token_path and token_param")
        self._spec = spec

    def prepare(self, request: ApiRequest, token: str | None) -> ApiRequest:
        request = _with_page_size(request, self._spec)
        if token is None:
            return request
        name = str(self._spec.token_param)
        if self._spec.token_in == "body":  # noqa: S105 - where the cursor goes, not a secret
            return request.with_body(**{name: token})
        return request.with_params(**{name: token})

    def next_token(self, response: httpx.Response, body: Any, token: str | None) -> str | None:
        if self._spec.has_more_path and not get_path(body, self._spec.has_more_path):
            return None
        value = get_path(body, self._spec.token_path)
        if isinstance(value, (dict, list)):
            raise FailRun(f"the next-page cursor at {self._spec.token_path!r} is not a string")
        return _guard(str(value), token) if value else None


class NextUrlPaginator:
    """A (possibly relative) next URL in the body, e.g. Salesforce ``nextRecordsUrl``."""

    def __init__(self, spec: PaginationSpec) -> None:
        if not spec.token_path:
            raise ValueError("next_url pagination needs token_path")
        self._spec = spec

    def prepare(self, request: ApiRequest, token: str | None) -> ApiRequest:
        if token is None:
            return _with_page_size(request, self._spec)
        try:
            url = urljoin(request.url, token)
        except ValueError:
            raise FailRun(f"next-page URL is not a URL: {token[:120]!r}") from None
        return request.replace(url=_same_host(url, request.url), params={})

    def next_token(self, response: httpx.Response, body: Any, token: str | None) -> str | None:
        if self._spec.done_path and get_path(body, self._spec.done_path):
            return None
        value = get_path(body, self._spec.token_path)
        if isinstance(value, (dict, list)):
            raise FailRun(f"the next-page URL at {self._spec.token_path!r} is not a string")
        return _guard(str(value), token) if value else None


class SinglePage:
    """No pagination."""

    def __init__(self, spec: PaginationSpec) -> None:
        self._spec = spec

    def prepare(self, request: ApiRequest, token: str | None) -> ApiRequest:
        return request

    def next_token(self, response: httpx.Response, body: Any, token: str | None) -> str | None:
        return None


PAGINATORS: dict[str, type[LinkHeaderPaginator | BodyCursorPaginator | NextUrlPaginator | SinglePage]] = {
    "link_header": LinkHeaderPaginator,
    "body_cursor": BodyCursorPaginator,
    "next_url": NextUrlPaginator,
    "none": SinglePage,
}


def paginator_for(spec: PaginationSpec) -> Paginator:
    """The strategy named by ``spec.style``."""
    return PAGINATORS[spec.style](spec)
