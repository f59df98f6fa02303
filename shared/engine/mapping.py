"""A stream's declarative mapping compiled into a mapper: fields, transforms, links, derived records.

The mapper reads the raw provider record (what the records container keeps as ``data``) and
returns the canonical fields, the typed links it declares and the records derived from it.
Mapping is a pure function of the raw data and the mapping, so a new mapping ``version``
re-maps stored raw data without fetching anything (:func:`shared.engine.entities.remap`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from adapters.base.paths import get_path
from adapters.base.spec import FieldMap, MappingSpec

Hook = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
_MISSING = object()


class Link(NamedTuple):
    """One typed link of a record: ``rel`` to the record ``(entity_type, external_id)``."""

    rel: str
    entity_type: str
    external_id: str


class Derived(NamedTuple):
    """A record derived from a source record (its own type and id, its raw part, its mapper)."""

    entity_type: str
    external_id: str
    data: dict[str, Any]
    rel: str
    mapper: Mapper


def reader(path: str) -> Callable[[Any], Any]:
    """A compiled dotted-path reader (``get_path`` semantics; one- and two-step paths without a loop)."""
    parts = path.split(".")
    if len(parts) == 1 and not path.isdigit():

        def one(raw: Any) -> Any:
            return raw.get(path) if isinstance(raw, dict) else None

        return one
    if len(parts) == 2 and not any(p.isdigit() for p in parts):
        a, b = parts

        def two(raw: Any) -> Any:
            inner = raw.get(a) if isinstance(raw, dict) else None
            return inner.get(b) if isinstance(inner, dict) else None

        return two
    return lambda raw: get_path(raw, path)


def parse_date(value: Any) -> str | None:
    """ISO 8601 (any offset) or epoch seconds -> ``YYYY-MM-DDTHH:MM:SSZ`` in UTC; None when unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value[10] == "T":
        if len(value) == 20 and value[19] == "Z":
            return value  # already the canonical form
        if value.endswith(("+0000", "+00:00")) and value[19] in ".+":
            return value[:19] + "Z"  # UTC with milliseconds or an explicit zero offset (Salesforce)
    try:
        if isinstance(value, int | float) or (isinstance(value, str) and value.replace(".", "", 1).isdigit()):
            moment = datetime.fromtimestamp(float(value), UTC)
        elif isinstance(value, str):
            text = value.strip().replace("Z", "+00:00")
            if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
                text = text[:-2] + ":" + text[-2:]
            moment = datetime.fromisoformat(text)
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _compile_field(spec: str | FieldMap) -> Callable[[dict[str, Any]], Any]:
    if isinstance(spec, str):
        return reader(spec)
    paths = (spec.path,) if isinstance(spec.path, str) else spec.path
    first, default = paths[0], spec.default
    read = reader(first)
    kind = spec.transform
    if kind == "copy":
        return lambda raw: _or(read(raw), default)
    if kind == "join":
        readers = [reader(p) for p in paths]
        return lambda raw: spec.sep.join(str(v) for v in (r(raw) for r in readers) if v not in (None, "")) or default
    if kind == "split":

        def split(raw: dict[str, Any]) -> Any:
            value = read(raw)
            if not isinstance(value, str):
                return default
            parts = value.split(spec.sep)
            return parts[spec.index] if -len(parts) <= spec.index < len(parts) else default

        return split
    if kind == "date":
        return lambda raw: _or(parse_date(read(raw)), default)
    if kind == "enum":
        return lambda raw: spec.values.get(str(read(raw)), default)
    if kind == "lower":
        return lambda raw: v.lower() if isinstance(v := read(raw), str) else default
    item = spec.item

    def listed(raw: dict[str, Any]) -> Any:
        value = read(raw)
        if not isinstance(value, list):
            return default if default is not None else []
        return [get_path(v, item) if item else v for v in value]

    return listed


def _generated(fields: dict[str, str | FieldMap]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """One function reading every field (plain top-level and two-step paths inline, the rest by closure).

    Equivalent to calling each field's reader and dropping None values; generated once per
    mapping because a page maps thousands of records through the same few fields.
    """
    lines = ["def read_all(raw):", "    out = {}", "    get = raw.get"]
    env: dict[str, Any] = {"isinstance": isinstance, "dict": dict, "str": str, "parse_date": parse_date}
    for index, (name, spec) in enumerate(fields.items()):
        simple = spec if isinstance(spec, str) else None
        if isinstance(spec, FieldMap) and spec.transform in ("date", "enum") and isinstance(spec.path, str):
            simple = spec.path  # read inline, then transformed inline
        parts = simple.split(".") if simple is not None else []
        if simple is not None and len(parts) == 1 and not simple.isdigit():
            lines.append(f"    v = get({simple!r})")
        elif simple is not None and len(parts) == 2 and not any(p.isdigit() for p in parts):
            lines.append(f"    v = get({parts[0]!r})")
            lines.append(f"    v = v.get({parts[1]!r}) if isinstance(v, dict) else None")
        else:
            env[f"f{index}"] = _compile_field(spec)
            lines.append(f"    v = f{index}(raw)")
            simple = None
        if simple is not None and isinstance(spec, FieldMap):
            env[f"d{index}"] = spec.default
            if spec.transform == "date":
                lines.append("    v = parse_date(v) if v is not None else None")
                lines.append(f"    if v is None: v = d{index}")
            else:
                env[f"e{index}"] = spec.values
                lines.append(f"    v = e{index}.get(str(v), d{index})")
        lines.append(f"    if v is not None: out[{name!r}] = v")
    lines.append("    return out")
    exec("\n".join(lines), env)  # noqa: S102 - the source is built from field names and paths, repr-quoted
    read_all: Callable[[dict[str, Any]], dict[str, Any]] = env["read_all"]
    return read_all


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


class Mapper:
    """One compiled :class:`MappingSpec`."""

    def __init__(self, spec: MappingSpec, hook: Hook | None = None) -> None:
        self.spec = spec
        self.kind = spec.canonical
        self.version = spec.version
        self._fields = [(name, _compile_field(f)) for name, f in spec.fields.items()]
        self._read_all = _generated(spec.fields)
        self._hook = hook
        self.derived = [(d, Mapper(d.mapping)) for d in spec.derived]
        self._derive_readers = [(d, m, reader(d.path)) for d, m in self.derived]
        self._link_readers = [(link, reader(link.path)) for link in spec.links]
        self.writable = {name: _write_path(spec.fields.get(name)) for name in spec.writable}
        self._writes = spec.writes

    def fields(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The canonical fields of ``raw`` (None values dropped, so absent and null are alike)."""
        out = self._read_all(raw)
        if self._hook is not None:
            out = self._hook(raw, out)
        return out

    def links(self, raw: dict[str, Any], derived: list[Derived] | None = None) -> list[Link]:
        """The links ``raw`` declares (derived records' links included; ``derived``: already derived)."""
        found: list[Link] = []
        for link, read in self._link_readers:
            for target in _ids(read(raw), link.item):
                found.append(Link(link.rel, link.entity_type, target))
        for d in self.derive(raw) if derived is None else derived:
            found.append(Link(d.rel, d.entity_type, d.external_id))
        return found

    def derive(self, raw: dict[str, Any]) -> list[Derived]:
        """The records derived from ``raw`` (each object at a derived path with an id, or a bare id)."""
        out: list[Derived] = []
        for spec, mapper, read in self._derive_readers:
            value = read(raw)
            for obj in value if isinstance(value, list) else [value]:
                if isinstance(obj, str | int) and not isinstance(obj, bool):
                    obj = {spec.id_field: obj}  # only the id is known (a Slack message's author)
                if isinstance(obj, dict):
                    ext = obj.get(spec.id_field)
                    if ext is not None and not isinstance(ext, dict | list):
                        out.append(Derived(spec.entity_type, str(ext), obj, spec.rel, mapper))
        return out

    def to_provider(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Canonical field changes as the provider's field changes (writable ``copy`` fields only)."""
        out: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in self.writable:
                continue
            template = self._writes.get(name)
            if template is not None:
                out.update(_fill(template, value))
            elif (path := self.writable[name]) is not None:
                out[path] = value
        return out


def _fill(template: Any, value: Any) -> Any:
    """``template`` with every ``"{value}"`` string replaced by ``value`` (its type kept)."""
    if template == "{value}":
        return value
    if isinstance(template, dict):
        return {k: _fill(v, value) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, value) for v in template]
    return template


def _write_path(spec: str | FieldMap | None) -> str | None:
    """The provider field a canonical field writes back to (a plain top-level copy)."""
    if isinstance(spec, str):
        return spec if "." not in spec else None
    if spec is not None and spec.transform == "copy" and isinstance(spec.path, str) and "." not in spec.path:
        return spec.path
    return None


def _ids(value: Any, item: str | None) -> list[str]:
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        found = get_path(v, item) if item and isinstance(v, dict) else v
        if found is not None and not isinstance(found, dict | list | bool):
            out.append(str(found))
    return out
