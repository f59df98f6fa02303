"""Pagination strategies. Each turns a response into the next page token and a token into a
request. Tokens are opaque strings, stored in the run document between queue messages.

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
    if urlsplit(url).netloc != urlsplit(base).netloc:
        raise FailRun(f"next-page link points to another host: {url[:120]!r}")
    return url


class Paginator(Protocol):
    """Strategy interface."""

    def prepare(self, url: str, params: dict[str, str], token: str | None) -> tuple[str, dict[str, str]]:
        """URL and query params of the page named by ``token`` (None = first page)."""

    def next_token(self, response: httpx.Response, body: Any, token: str | None) -> str | None:
        """Token of the page after this one, or None on the last page."""


def _guard(next_token: str | None, token: str | None) -> str | None:
    if next_token is not None and next_token == token:
        raise FailRun(f"paginator returned the same cursor twice ({next_token[:80]!r}); stopping instead of looping")
    return next_token


class LinkHeaderPaginator:
    """Follow ``Link: <url>; rel="next"``; never build page URLs."""

    def __init__(self, spec: PaginationSpec) -> None:
        self._spec = spec

    def prepare(self, url: str, params: dict[str, str], token: str | None) -> tuple[str, dict[str, str]]:
        if token is None:
            if self._spec.page_size_param:
                params = {**params, self._spec.page_size_param: str(self._spec.page_size)}
            return url, params
        return _same_host(token, url), {}

    def next_token(self, response: httpx.Response, body: Any, token: str | None) -> str | None:
        nxt = parse_link_header(response.headers.get("link", "")).get("next")
        return _guard(nxt, token)


class BodyCursorPaginator:
    """Cursor in the body (Slack ``response_metadata.next_cursor``, Notion ``next_cursor``,
    Google ``nextPageToken``), sent back as a query parameter."""

    def __init__(self, spec: PaginationSpec) -> None:
        if not spec.token_path or not spec.token_param:
            raise ValueError("body_cursor pagination needs token_path and token_param")
        self._spec = spec

    def prepare(self, url: str, params: dict[str, str], token: str | None) -> tuple[str, dict[str, str]]:
        params = dict(params)
        if self._spec.page_size_param:
            params[self._spec.page_size_param] = str(self._spec.page_size)
        if token is not None:
            params[str(self._spec.token_param)] = token
        return url, params

    def next_token(self, response: httpx.Response, body: Any, token: str | None) -> str | None:
        if self._spec.has_more_path and not get_path(body, self._spec.has_more_path):
            return None
        value = get_path(body, self._spec.token_path)
        return _guard(str(value), token) if value else None


class NextUrlPaginator:
    """A (possibly relative) next URL in the body, e.g. Salesforce ``nextRecordsUrl``."""

    def __init__(self, spec: PaginationSpec) -> None:
        if not spec.token_path:
            raise ValueError("next_url pagination needs token_path")
        self._spec = spec

    def prepare(self, url: str, params: dict[str, str], token: str | None) -> tuple[str, dict[str, str]]:
        if token is None:
            return url, params
        return _same_host(urljoin(url, token), url), {}

    def next_token(self, response: httpx.Response, body: Any, token: str | None) -> str | None:
        if self._spec.done_path and get_path(body, self._spec.done_path):
            return None
        value = get_path(body, self._spec.token_path)
        return _guard(str(value), token) if value else None


class SinglePage:
    """No pagination."""

    def __init__(self, spec: PaginationSpec) -> None:
        self._spec = spec

    def prepare(self, url: str, params: dict[str, str], token: str | None) -> tuple[str, dict[str, str]]:
        return url, params

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
