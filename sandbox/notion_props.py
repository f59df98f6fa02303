"""Wire shapes of the Notion sandbox: error objects, timestamps, rich text, filters, property values.

- :class:`NotionError` renders ``{"object": "error", "status", "code", "message", "request_id"}``.
- Timestamps are ``2024-01-01T12:34:00.000Z``; a date-only filter value means its whole day.
- :func:`timestamp_bounds` turns a ``{"timestamp": "last_edited_time", "last_edited_time":
  {"after"|"on_or_after"|"before"|"on_or_before"|"equals": ISO}}`` filter (or an ``and`` of them
  on one field) into index bounds; :func:`compile_filter` turns any supported filter (timestamp,
  ``title``/``rich_text``/``select``/``status``/``people``/``date`` property conditions, nested
  ``and``/``or``) into a predicate for the scanning path.
- :func:`parse_properties` reads a PATCH/POST ``properties`` object into plain values.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

TIMESTAMP_CONDITIONS = ("after", "before", "on_or_after", "on_or_before", "equals")
_DATE_ONLY = re.compile(r"^\d{4}-\d\d-\d\d$")
Predicate = Callable[[dict[str, Any]], bool]


class NotionError(Exception):
    """An API failure answered as ``{"object": "error", "status", "code", "message"}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        """Notion's error object (with a fresh ``request_id``)."""
        return {"object": "error", "status": self.status, "code": self.code, "message": self.message,
                "request_id": str(uuid.uuid4())}


def invalid(message: str) -> NotionError:
    """A 400 ``validation_error``."""
    return NotionError(400, "validation_error", message)


def notion_time(moment: datetime) -> str:
    """Notion's timestamp format: ``2024-01-01T12:34:00.000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _bound(value: Any, condition: str) -> tuple[str, str]:
    """``(operator, normalized time)`` of a timestamp condition; a date means its whole day."""
    if not isinstance(value, str):
        raise invalid(f"body failed validation: filter.{condition} should be an ISO 8601 date string")
    try:
        if _DATE_ONLY.match(value):
            day = datetime.fromisoformat(value).replace(tzinfo=UTC)
            start, end = notion_time(day), notion_time(day + timedelta(days=1))
            return {"after": (">=", end), "before": ("<", start), "on_or_after": (">=", start),
                    "on_or_before": ("<", end), "equals": ("day", start)}[condition]
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"body failed validation: filter.{condition} should be an ISO 8601 date, "
                      f"instead was `{value}`.") from None
    stamp = notion_time(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return {"after": (">", stamp), "before": ("<", stamp), "on_or_after": (">=", stamp),
            "on_or_before": ("<=", stamp), "equals": ("=", stamp)}[condition]


def _compare(value: str, op: str, bound: str) -> bool:
    if op == "day":
        return bound <= value < notion_time(datetime.fromisoformat(bound.replace("Z", "+00:00")) + timedelta(days=1))
    return {">": value > bound, ">=": value >= bound, "<": value < bound, "<=": value <= bound,
            "=": value == bound}[op]


def timestamp_bounds(flt: Any) -> tuple[str, list[tuple[str, str]]] | None:
    """``(field, [(op, time)...])`` when a filter is only timestamp conditions on one field (ANDed)."""
    if not isinstance(flt, dict):
        return None
    if set(flt) == {"and"} and isinstance(flt["and"], list) and flt["and"]:
        parts = [timestamp_bounds(item) for item in flt["and"]]
        fields = {p[0] for p in parts if p is not None}
        if any(p is None for p in parts) or len(fields) != 1:
            return None
        return fields.pop(), [b for p in parts if p is not None for b in p[1]]
    field = flt.get("timestamp")
    if field not in ("last_edited_time", "created_time") or not isinstance(flt.get(field), dict):
        return None
    conditions = flt[field]
    if len(conditions) != 1 or next(iter(conditions)) not in TIMESTAMP_CONDITIONS:
        raise invalid(f"body failed validation: filter.{field} should have exactly one of "
                      f"{', '.join(TIMESTAMP_CONDITIONS)}")
    condition, value = next(iter(conditions.items()))
    return field, [_bound(value, condition)]


def rich_text(content: str) -> list[dict[str, Any]]:
    """A rich-text array holding one plain text run (empty for an empty string)."""
    if not content:
        return []
    annotations = {"bold": False, "italic": False, "strikethrough": False, "underline": False, "code": False,
                   "color": "default"}
    return [{"type": "text", "text": {"content": content, "link": None}, "annotations": annotations,
             "plain_text": content, "href": None}]


def _plain(name: str, value: Any) -> str:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise invalid(f"body failed validation: body.properties.{name} should be an array of rich text objects")
    return "".join(str((item.get("text") or {}).get("content") or item.get("plain_text") or "") for item in value)


def _text_test(op: str, arg: Any) -> Callable[[str], bool]:
    tests: dict[str, Callable[[str], bool]] = {
        "equals": lambda v: v == arg, "does_not_equal": lambda v: v != arg, "contains": lambda v: str(arg) in v,
        "does_not_contain": lambda v: str(arg) not in v, "starts_with": lambda v: v.startswith(str(arg)),
        "ends_with": lambda v: v.endswith(str(arg)), "is_empty": lambda v: not v, "is_not_empty": lambda v: bool(v)}
    if op not in tests:
        raise invalid(f"body failed validation: unsupported text filter condition `{op}`")
    return tests[op]


def compile_filter(flt: Any, schema: dict[str, dict[str, Any]], public_time: Callable[[datetime], str]) -> Predicate:
    """A predicate over internal pages for a database query ``filter`` (``validation_error`` if unsupported)."""
    if not isinstance(flt, dict):
        raise invalid("body failed validation: body.filter should be an object")
    for compound in ("and", "or"):
        if compound in flt:
            if set(flt) != {compound} or not isinstance(flt[compound], list):
                raise invalid(f"body failed validation: body.filter.{compound} should be an array of filters")
            parts = [compile_filter(item, schema, public_time) for item in flt[compound]]
            if compound == "and":
                return lambda p: all(test(p) for test in parts)
            return lambda p: any(test(p) for test in parts)
    if "timestamp" in flt:
        bounds = timestamp_bounds(flt)
        if bounds is None:
            raise invalid("body failed validation: body.filter.timestamp should be last_edited_time or created_time")
        attr = "edited" if bounds[0] == "last_edited_time" else "created"
        return lambda p: all(_compare(public_time(p[attr]), op, stamp) for op, stamp in bounds[1])
    name = flt.get("property")
    prop = next((q for n, q in schema.items() if name in (n, q["id"])), None)
    if prop is None:
        raise invalid(f"Could not find property with name or id: {name}")
    kind, prop_name = prop["type"], prop["name"]
    conditions = flt.get(kind)
    if not isinstance(conditions, dict) or len(conditions) != 1:
        raise invalid(f"body failed validation: body.filter.{kind} should be an object with one condition "
                      f"(property {prop_name} is {kind})")
    op, arg = next(iter(conditions.items()))
    if kind in ("title", "rich_text"):
        text_test = _text_test(op, arg)
        return lambda p: text_test(p["values"].get(prop_name) or "")
    if kind in ("select", "status"):
        option_test = _text_test(op, arg)
        return lambda p: option_test(p["values"].get(prop_name) or "")
    if kind == "people":
        if op not in ("contains", "does_not_contain", "is_empty", "is_not_empty"):
            raise invalid(f"body failed validation: unsupported people filter condition `{op}`")
        return lambda p: {"contains": arg in (p["values"].get(prop_name) or []),
                          "does_not_contain": arg not in (p["values"].get(prop_name) or []),
                          "is_empty": not p["values"].get(prop_name),
                          "is_not_empty": bool(p["values"].get(prop_name))}[op]
    if op in ("is_empty", "is_not_empty"):
        return lambda p: (p["values"].get(prop_name) is None) == (op == "is_empty")
    if op not in TIMESTAMP_CONDITIONS:
        raise invalid(f"body failed validation: unsupported date filter condition `{op}`")
    date_op, stamp = _bound(arg, op)
    return lambda p: p["values"].get(prop_name) is not None and _compare(
        notion_time(_as_datetime(p["values"][prop_name])), date_op, stamp)


def _as_datetime(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_properties(body: Any, schema: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Plain values from a request's ``properties`` object (keys are property names or ids)."""
    if not isinstance(body, dict):
        raise invalid("body failed validation: body.properties should be an object")
    values: dict[str, Any] = {}
    for key, value in body.items():
        prop = next((q for n, q in schema.items() if key in (n, q["id"])), None)
        if prop is None:
            raise invalid(f"{key} is not a property that exists.")
        kind, name = prop["type"], prop["name"]
        if not isinstance(value, dict) or kind not in value:
            raise invalid(f"{name} is expected to be {kind}.")
        raw = value[kind]
        if kind in ("title", "rich_text"):
            values[name] = _plain(name, raw)
        elif kind == "people":
            if not isinstance(raw, list) or not all(isinstance(u, dict) and isinstance(u.get("id"), str) for u in raw):
                raise invalid(f"body failed validation: body.properties.{name}.people should be an array of users")
            values[name] = [u["id"] for u in raw]
        elif kind == "date":
            if raw is not None and not (isinstance(raw, dict) and isinstance(raw.get("start"), str)):
                raise invalid(f"body failed validation: body.properties.{name}.date.start should be a string")
            values[name] = None if raw is None else raw["start"]
        elif raw is None:
            values[name] = None
        elif isinstance(raw, dict) and isinstance(raw.get("name"), str):
            values[name] = raw["name"]
        elif isinstance(raw, dict) and isinstance(raw.get("id"), str):
            option = next((o for o in prop["options"] if o["id"] == raw["id"]), None)
            if option is None:
                raise invalid(f"{name}: no {kind} option with id {raw['id']}")
            values[name] = option["name"]
        else:
            raise invalid(f"body failed validation: body.properties.{name}.{kind} should be an object with a name")
    return values
