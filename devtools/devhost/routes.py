"""HTTP route templates, matched the way the Functions host (ASP.NET routing) matches them.

Supported template syntax, per path segment:

- literals (matched case-insensitively), ``items``;
- parameters ``{id}``, optional ``{id?}``, with a default ``{page=1}``;
- constraints ``{id:int}``, ``{name:alpha}``, also ``long``, ``bool``, ``guid``, ``double``,
  ``float``, ``decimal``, ``datetime`` and ``regex(...)``; several may be chained
  (``{id:int:min(1)}``); unknown constraints (``min``, ``length``...) are not checked;
- catch-all ``{*rest}`` / ``{**rest}`` as the last segment (may be empty);
- several parameters in one segment, ``{name}.{ext}``.

When several templates match, the most specific wins (literal segments before constrained
parameters before plain parameters before optional ones before catch-alls), as in ASP.NET.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

__all__ = ["Route", "RouteTemplateError", "compile_route"]

_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "alpha": r"[A-Za-z]+",
    "bool": r"(?i:true|false)",
    "guid": r"\{?[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}\}?",
    "double": r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?",
    "float": r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?",
    "decimal": r"-?\d+(?:\.\d+)?",
    "datetime": r"[0-9][0-9:T.+\-]*",
}
_PARAM = re.compile(r"\{([^{}]+(?:\([^)]*\))?[^{}]*)\}")

# Per-segment specificity ranks (lower is more specific).
_END, _LITERAL, _CONSTRAINED, _PLAIN, _OPTIONAL, _CATCH_ALL = range(-1, 5)


class RouteTemplateError(ValueError):
    """A route template cannot be compiled; the message names the template and the part."""


@dataclass(frozen=True)
class _Param:
    name: str
    pattern: str
    optional: bool
    catch_all: bool
    default: str | None


def _split_constraints(spec: str) -> list[str]:
    parts: list[str] = []
    depth, current = 0, ""
    for char in spec:
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += char == "("
        depth -= char == ")"
        current += char
    parts.append(current)
    return parts


def _parse_param(text: str, template: str) -> _Param:
    catch_all = text.startswith("*")
    body = text.lstrip("*")
    default: str | None = None
    optional = False
    if "=" in body and "(" not in body.split("=", 1)[0]:
        body, default = body.split("=", 1)
    if body.endswith("?"):
        optional, body = True, body[:-1]
    name, *constraints = _split_constraints(body)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise RouteTemplateError(f"route {template!r}: bad parameter name {name!r} in {{{text}}}")
    pattern = ".*" if catch_all else "[^/]+"
    for constraint in constraints:
        kind = constraint.split("(", 1)[0].lower()
        if kind in _CONSTRAINTS:
            pattern = _CONSTRAINTS[kind]
        elif kind == "regex" and constraint.endswith(")"):
            expression = constraint[len("regex(") : -1].replace("{{", "{").replace("}}", "}")
            pattern = expression.removeprefix("^").removesuffix("$")
    return _Param(name, pattern, optional or default is not None, catch_all, default)


@dataclass
class Route:
    """A compiled route template.

    Attributes:
        template: The template as declared, e.g. ``"items/{id:int}/{name?}"``.
        regex: The compiled pattern for the path after the route prefix.
        rank: Specificity key; smaller sorts first.
        defaults: Values of parameters declared with ``=default``.
    """

    template: str
    regex: re.Pattern[str]
    rank: tuple[int, ...]
    defaults: dict[str, str] = field(default_factory=dict)

    def match(self, path: str) -> dict[str, str] | None:
        """Match a request path (route prefix already removed, still URL-encoded).

        Args:
            path: E.g. ``"items/42/widget"``.

        Returns:
            The route parameters (URL-decoded) when the path matches, else None. Optional
            parameters that are absent are left out unless they have a default.
        """
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        params = dict(self.defaults)
        for name, value in found.groupdict().items():
            if value:
                params[name] = unquote(value)
        return params


def compile_route(template: str) -> Route:
    """Compile a Functions route template.

    Args:
        template: The ``route`` of an HTTP trigger (without the ``api/`` prefix).

    Returns:
        The compiled route.

    Raises:
        RouteTemplateError: The template is malformed (unbalanced braces, bad names,
            a catch-all that is not last, a parameter used twice).
    """
    stripped = template.strip().strip("/")
    segments = stripped.split("/") if stripped else []
    pattern = ""
    rank: list[int] = []
    defaults: dict[str, str] = {}
    names: set[str] = set()
    for index, segment in enumerate(segments):
        if not segment:
            raise RouteTemplateError(f"route {template!r}: empty path segment")
        pieces = _PARAM.split(segment)  # literal, param, literal, param, ..., literal
        if any("{" in piece or "}" in piece for piece in pieces[0::2]):
            raise RouteTemplateError(f"route {template!r}: unbalanced braces in segment {segment!r}")
        params = [_parse_param(text, template) for text in pieces[1::2]]
        for param in params:
            if param.name.lower() in names:
                raise RouteTemplateError(f"route {template!r}: parameter {param.name!r} is used twice")
            names.add(param.name.lower())
            if param.catch_all and index != len(segments) - 1:
                raise RouteTemplateError(f"route {template!r}: catch-all {{*{param.name}}} must be the last segment")
            if param.default is not None:
                defaults[param.name] = param.default
        body = ""
        for position, piece in enumerate(pieces):
            if position % 2 == 0:
                body += re.escape(piece)
            else:
                param = params[position // 2]
                body += f"(?P<{param.name}>{param.pattern})"
        whole_optional = (
            len(params) == 1 and pieces[0] == pieces[2] == "" and (params[0].optional or params[0].catch_all)
        )
        prefix = "/" if index else ""
        if whole_optional:
            pattern += f"(?:{prefix}{body})?"
        else:
            pattern += prefix + body
        if not params:
            rank.append(_LITERAL)
        elif any(p.catch_all for p in params):
            rank.append(_CATCH_ALL)
        elif any(p.optional for p in params):
            rank.append(_OPTIONAL)
        elif all(p.pattern != "[^/]+" for p in params) or any(pieces[0::2]):
            rank.append(_CONSTRAINED)
        else:
            rank.append(_PLAIN)
    regex = re.compile(pattern + "/?", re.IGNORECASE)
    # The end of a template sorts before any segment: "a" is tried before "a/{*rest}".
    return Route(template=template, regex=regex, rank=(*rank, _END), defaults=defaults)
