"""A request as data, and the templates specs build requests from.

Paginators and hooks build and transform :class:`ApiRequest` values; the adapter sends the
final one through the HTTP pipeline. Templates are strings with ``{name}`` placeholders
(``{{``/``}}`` are literal braces) whose values come from the integration config, the parent
record and the incremental state, i.e. from outside: rendering never evaluates anything and
raises only :class:`~shared.errors.FailRun` naming a missing value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from shared.errors import FailRun

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)(?:\[([^\[\]{}]{1,100})\])?\}")


@dataclass(frozen=True)
class ApiRequest:
    """One HTTP request, before auth and the pipeline's policies.

    Attributes:
        method: HTTP method.
        url: Absolute URL (the adapter joins spec paths to the connection's base URL).
        params: Query parameters (merged with any query already in ``url``).
        json: JSON body; None sends no body.
        headers: Extra headers for this request (the spec's default headers are added by the client).
        bucket: The rate-limit bucket suffix (``{bucket}`` in the spec's ``bucket_key``), e.g. a
            Slack method tier.
    """

    method: str = "GET"
    url: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    bucket: str | None = None

    def replace(self, **changes: Any) -> ApiRequest:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return replace(self, **changes)

    def with_params(self, **params: str) -> ApiRequest:
        """A copy with ``params`` added to (or replacing) the query params."""
        return replace(self, params={**self.params, **params})

    def with_body(self, **fields: Any) -> ApiRequest:
        """A copy whose JSON object body has ``fields`` set (a missing body becomes ``{}``)."""
        body = self.json if isinstance(self.json, dict) else {}
        return replace(self, json={**body, **fields})


def render(template: str, values: Mapping[str, Any], *, what: str, quote_values: bool = False) -> str:
    """Fill ``{name}`` (and ``{name[KEY]}`` for mapping values) placeholders in ``template``.

    Args:
        template: The template (from a spec: trusted).
        values: Placeholder values (from outside: config, provider records, state).
        what: Names the template in error messages (``stream 'issues' path``).
        quote_values: Percent-encode each value as one URL path segment (``/`` included).

    Returns:
        The rendered string.

    Raises:
        FailRun: A placeholder has no value (the message names it and ``what``).
    """

    def fill(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "{{":
            return "{"
        if whole == "}}":
            return "}"
        name, key = match.group(1), match.group(2)
        value = values.get(name)
        if key is not None:
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is None or isinstance(value, (dict, list)):
            label = f"{name}[{key}]" if key is not None else name
            raise FailRun(f"{what} needs {label!r}, which the integration config or record does not provide")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return quote(text, safe="") if quote_values else text

    return _PLACEHOLDER.sub(fill, template)


def render_value(template: Any, values: Mapping[str, Any], *, what: str) -> Any:
    """Render every string inside a JSON-like template (dict keys are left as they are)."""
    if isinstance(template, str):
        return render(template, values, what=what)
    if isinstance(template, dict):
        return {k: render_value(v, values, what=what) for k, v in template.items()}
    if isinstance(template, (list, tuple)):
        return [render_value(v, values, what=what) for v in template]
    return template


def deep_merge(base: Any, extra: Any) -> Any:
    """``extra`` merged into ``base``: nested objects merge, anything else is replaced."""
    if isinstance(base, dict) and isinstance(extra, dict):
        merged = dict(base)
        for key, value in extra.items():
            merged[key] = deep_merge(base.get(key), value) if key in base else value
        return merged
    return extra


def join_url(base: str, path: str) -> str:
    """``base`` + ``path`` with exactly one slash between them (an absolute ``path`` wins)."""
    if path.startswith(("http://", "https://")):
        return path
    return base.rstrip("/") + "/" + path.lstrip("/") if path else base
