"""HTTP route templates of the Functions host, matched with ``werkzeug.routing``.

A Functions route template (ASP.NET Core syntax) is translated into werkzeug rules; werkzeug's
state-machine matcher does the matching. Supported template syntax, per path segment:

- literals, matched case-insensitively as ASP.NET does (``items`` matches ``ITEMS``);
- parameters ``{id}``, optional ``{id?}``, with a default ``{page=1}``;
- constraints ``{id:int}``, ``{name:alpha}``, also ``long``, ``bool``, ``guid``, ``double``,
  ``float``, ``decimal``, ``datetime`` and ``regex(...)``; several may be chained
  (``{id:int:min(1)}``); constraints that are not patterns (``min``, ``length``...) are not checked;
- catch-all ``{*rest}`` / ``{**rest}`` as the last segment (may be empty);
- several parameters in one segment, ``{name}.{ext}``.

How the translation keeps ASP.NET's behaviour:

- every route parameter gets its own werkzeug converter class whose ``regex`` is the
  constraint's pattern and whose ``weight`` ranks it (constrained 50, plain 100, catch-all 200),
  so werkzeug tries literal segments first, then segments mixing literals and parameters, then
  constrained, plain and catch-all parameters, the order ASP.NET uses;
- optional trailing segments and catch-alls become extra rules without those segments
  (absent optional parameters are left out of the route values unless they have a default);
- literal segments are stored lower-case and looked up case-folded (a small subclass of
  werkzeug's ``StateMachineMatcher``); literals inside a mixed segment are case-insensitive
  pattern converters;
- matching runs on the path with every escape decoded except ``%2F``, as Kestrel gives it to
  routing, so an encoded slash stays inside one route value;
- werkzeug adds ``HEAD`` to every ``GET`` rule; the Functions host does not, so each rule's
  methods are reset to exactly what the function declares.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import unquote

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import BaseConverter, Map, Rule
from werkzeug.routing.exceptions import RequestRedirect
from werkzeug.routing.matcher import State, StateMachineMatcher

__all__ = ["Route", "RouteMatch", "RouteTable", "RouteTemplateError", "compile_route"]

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
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LITERAL_WEIGHT, _CONSTRAINED_WEIGHT, _PLAIN_WEIGHT, _CATCH_ALL_WEIGHT = 10, 50, 100, 200
_LITERAL_PREFIX = "lit_"

T = TypeVar("T")


class RouteTemplateError(ValueError):
    """A route template cannot be compiled; the message names the template and the part."""


@dataclass(frozen=True)
class _Param:
    name: str
    pattern: str
    optional: bool
    catch_all: bool
    default: str | None
    constrained: bool


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
    if not _NAME.fullmatch(name) or name.startswith(_LITERAL_PREFIX):
        raise RouteTemplateError(f"route {template!r}: bad parameter name {name!r} in {{{text}}}")
    pattern = ".+" if catch_all else "[^/]+"
    constrained = False
    for constraint in constraints:
        kind = constraint.split("(", 1)[0].lower()
        if kind in _CONSTRAINTS:
            pattern, constrained = _CONSTRAINTS[kind], True
        elif kind == "regex" and constraint.endswith(")"):
            expression = constraint[len("regex(") : -1].replace("{{", "{").replace("}}", "}")
            pattern, constrained = expression.removeprefix("^").removesuffix("$"), True
            try:
                re.compile(pattern)
            except re.error as exc:
                raise RouteTemplateError(f"route {template!r}: bad regex constraint in {{{text}}}: {exc}") from None
    return _Param(name, pattern, optional or default is not None, catch_all, default, constrained)


def _converter(pattern: str, weight: int, *, isolating: bool) -> type[BaseConverter]:
    """A werkzeug converter class for one route parameter (values stay strings)."""
    attributes = {"regex": pattern, "weight": weight, "part_isolating": isolating}
    return type("RouteParamConverter", (BaseConverter,), attributes)


@dataclass
class Route:
    """A compiled route template: the werkzeug rule strings it expands to.

    Attributes:
        template: The template as declared, e.g. ``"items/{id:int}/{name?}"``.
        rules: ``(rule string, defaults)`` pairs, most complete first.
        converters: The converter classes the rule strings name.
    """

    template: str
    rules: list[tuple[str, dict[str, str]]]
    converters: dict[str, type[BaseConverter]] = field(default_factory=dict)

    def match(self, path: str) -> dict[str, str] | None:
        """Match a request path against this template alone (route prefix already removed).

        Args:
            path: E.g. ``"items/42/widget"``, still URL-encoded.

        Returns:
            The route parameters (URL-decoded) when the path matches, else None.
        """
        table = RouteTable([(None, self, None)])
        found = table.find("GET", path)
        return found.params if isinstance(found, RouteMatch) else None


def compile_route(template: str, *, key: str = "r") -> Route:
    """Translate a Functions route template into werkzeug rules.

    Args:
        template: The ``route`` of an HTTP trigger (without the ``api/`` prefix).
        key: A prefix that keeps this route's converter names apart from other routes'.

    Returns:
        The compiled route.

    Raises:
        RouteTemplateError: The template is malformed (unbalanced braces, bad names,
            a catch-all that is not last, a parameter used twice, an empty segment).
    """
    stripped = template.strip().strip("/")
    segments = stripped.split("/") if stripped else []
    converters: dict[str, type[BaseConverter]] = {}
    rendered: list[str] = []
    droppable: list[bool] = []  # the segment may be left out (optional or catch-all)
    defaults: dict[str, str] = {}
    names: set[str] = set()
    for index, segment in enumerate(segments):
        if not segment:
            raise RouteTemplateError(f"route {template!r}: empty path segment")
        pieces = _PARAM.split(segment)  # literal, param, literal, param, ..., literal
        if any("{" in piece or "}" in piece or "<" in piece or ">" in piece for piece in pieces[0::2]):
            raise RouteTemplateError(f"route {template!r}: unbalanced braces in segment {segment!r}")
        params = [_parse_param(text, template) for text in pieces[1::2]]
        for param in params:
            if param.name.lower() in names:
                raise RouteTemplateError(f"route {template!r}: parameter {param.name!r} is used twice")
            names.add(param.name.lower())
            if param.catch_all and index != len(segments) - 1:
                raise RouteTemplateError(f"route {template!r}: catch-all {{*{param.name}}} must be the last segment")
        if not params:
            rendered.append(segment.lower())  # a static part, looked up case-folded
            droppable.append(False)
            continue
        out = ""
        for position, piece in enumerate(pieces):
            if position % 2 == 0:
                if piece:
                    name = f"{key}_l{index}_{position}"
                    converters[name] = _converter(f"(?i:{re.escape(piece)})", _LITERAL_WEIGHT, isolating=True)
                    out += f"<{name}:{_LITERAL_PREFIX}{index}_{position}>"
                continue
            param = params[position // 2]
            name = f"{key}_p{index}_{position}"
            weight = _PLAIN_WEIGHT
            if param.catch_all or param.constrained:
                weight = _CATCH_ALL_WEIGHT if param.catch_all else _CONSTRAINED_WEIGHT
            converters[name] = _converter(param.pattern, weight, isolating=not param.catch_all)
            out += f"<{name}:{param.name}>"
        rendered.append(out)
        alone = len(params) == 1 and pieces[0] == pieces[2] == ""
        droppable.append(alone and (params[0].optional or params[0].catch_all))
        if alone and params[0].default is not None:
            defaults[params[0].name] = params[0].default
    rules: list[tuple[str, dict[str, str]]] = [("/" + "/".join(rendered), {})]
    cut = len(rendered)
    while cut and droppable[cut - 1]:  # only trailing optional segments can be left out
        cut -= 1
        left_out = {
            name: value for name, value in defaults.items() if any(f":{name}>" in part for part in rendered[cut:])
        }
        rules.append(("/" + "/".join(rendered[:cut]), left_out))
    return Route(template=template, rules=rules, converters=converters)


class _FoldedStatics(dict[str, State]):
    """Static transitions looked up case-insensitively (keys are stored lower-case)."""

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def __getitem__(self, key: str) -> State:
        return super().__getitem__(key.lower())

    def setdefault(self, key: str, default: Any = None) -> State:
        return super().setdefault(key.lower(), default)


class _CaseInsensitiveMatcher(StateMachineMatcher):
    """werkzeug's matcher with literal segments matched case-insensitively, like ASP.NET routing."""

    def update(self) -> None:
        super().update()
        pending = [self._root]
        while pending:
            state = pending.pop()
            if not isinstance(state.static, _FoldedStatics):
                state.static = _FoldedStatics(state.static)
            pending.extend(state.static.values())
            pending.extend(new for _, new in state.dynamic)


@dataclass(frozen=True)
class RouteMatch(Generic[T]):
    """A matched route: what was registered with it and the route values."""

    target: T
    params: dict[str, str]


def _routing_path(raw_path: str) -> str:
    """Decode every escape but ``%2F`` (Kestrel keeps encoded slashes inside a segment)."""
    kept = re.sub("%2[fF]", "%252F", raw_path)
    return unquote(kept)


class RouteTable(Generic[T]):
    """Route templates with their targets and allowed methods, matched by werkzeug.

    Args:
        routes: ``(target, route, methods)`` triples; ``methods`` None means every method.
    """

    def __init__(self, routes: Iterable[tuple[T, Route, Sequence[str] | None]]) -> None:
        self._targets: list[tuple[T, frozenset[str] | None]] = []
        url_map = Map(strict_slashes=False, merge_slashes=False, redirect_defaults=False)
        url_map._matcher = _CaseInsensitiveMatcher(merge_slashes=False)
        for index, (target, route, methods) in enumerate(routes):
            allowed = frozenset(m.upper() for m in methods) if methods else None
            self._targets.append((target, allowed))
            url_map.converters.update(route.converters)
            for rule_text, defaults in route.rules:
                rule = Rule(rule_text, endpoint=index, methods=allowed, defaults=defaults or None)
                if allowed is not None:
                    rule.methods = set(allowed)  # werkzeug adds HEAD to GET rules; the host does not
                url_map.add(rule)
        self._adapter = url_map.bind("localhost", "/")

    def find(self, method: str, path: str) -> RouteMatch[T] | list[str] | None:
        """Find the target for a request.

        Args:
            method: The HTTP method, upper case.
            path: The path after the route prefix, still URL-encoded (``"items/42"``).

        Returns:
            The match; the allowed methods (sorted) when the path matches only for other
            methods; None when no route matches.
        """
        try:
            endpoint, values = self._adapter.match("/" + _routing_path(path).lstrip("/"), method=method)
        except MethodNotAllowed as exc:
            return sorted(exc.valid_methods or [])
        except (NotFound, RequestRedirect):
            return None
        target, _ = self._targets[int(endpoint)]
        params = {k: str(v) for k, v in values.items() if not k.startswith(_LITERAL_PREFIX)}
        return RouteMatch(target, params)
