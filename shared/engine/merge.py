"""The three-way field merge and the six conflict strategies (pure functions, hypothesis-tested).

``base`` is the last version both sides agreed on (per linked object), ``local`` the hub's
canonical entity, ``remote`` the provider's new version. A field changed on one side only
takes that side's value; a field both sides changed to the same value is no conflict; a
field both changed to different values is a conflict, decided by the strategy of its
stream (or the field's override): ``remote_wins``, ``local_wins``, ``last_write_wins`` (each
side's modification time of the field or record; a tie goes to the remote), ``field_merge``
(non-conflicting fields merge, a conflict falls back to ``field_merge_fallback``),
``source_priority`` (a ranked list of sources per field) or ``manual`` (stored; the entity
waits for an operator).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

STRATEGY_NAMES = ("remote_wins", "local_wins", "last_write_wins", "field_merge", "source_priority", "manual")
ALIASES = {"last_writer_wins": "last_write_wins"}
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()
"""A field absent on a side (a removed field is a change too)."""


@dataclass(frozen=True)
class FieldConflict:
    """A field both sides changed to different values since the base."""

    field: str
    base: Any
    local: Any
    remote: Any


@dataclass
class Merge:
    """The outcome of :func:`merge3` (conflicting fields hold the local value until resolved)."""

    merged: dict[str, Any]
    conflicts: list[FieldConflict] = field(default_factory=list)
    local_changed: set[str] = field(default_factory=set)
    remote_changed: set[str] = field(default_factory=set)


def merge3(base: Mapping[str, Any], local: Mapping[str, Any], remote: Mapping[str, Any]) -> Merge:
    """Merge field by field against ``base``; conflicts exactly where both sides changed differently."""
    out = Merge({})
    for name in base.keys() | local.keys() | remote.keys():
        b, loc, rem = base.get(name, MISSING), local.get(name, MISSING), remote.get(name, MISSING)
        local_changed, remote_changed = loc != b, rem != b
        if local_changed:
            out.local_changed.add(name)
        if remote_changed:
            out.remote_changed.add(name)
        if local_changed and remote_changed and loc != rem:
            out.conflicts.append(FieldConflict(name, b, loc, rem))
            value = loc
        elif remote_changed:
            value = rem
        else:
            value = loc
        if value is not MISSING:
            out.merged[name] = value
    return out


@dataclass(frozen=True)
class Policy:
    """How a stream resolves conflicts.

    Attributes:
        strategy: The stream's strategy (one of :data:`STRATEGY_NAMES`).
        fields: Per-field overrides.
        field_merge_fallback: What ``field_merge`` does with a conflict (a per-field rule).
        priority: Ranked sources per field (``"*"``: every field), best first, for ``source_priority``.
    """

    strategy: str = "field_merge"
    fields: Mapping[str, str] = field(default_factory=dict)
    field_merge_fallback: str = "last_write_wins"
    priority: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def configured(self, name: str) -> str:
        """The strategy set for field ``name`` (its override, else the stream's), as named."""
        chosen = self.fields.get(name, self.strategy)
        return ALIASES.get(chosen, chosen)

    def for_field(self, name: str) -> str:
        """The strategy that decides a conflict on field ``name`` (its override, else the stream's)."""
        chosen = self.fields.get(name, self.strategy)
        chosen = ALIASES.get(chosen, chosen)
        if chosen == "field_merge":
            chosen = ALIASES.get(self.field_merge_fallback, self.field_merge_fallback)
        if chosen not in STRATEGY_NAMES:
            raise ValueError(f"unknown conflict strategy {chosen!r}")
        return chosen


@dataclass(frozen=True)
class Sides:
    """What a strategy may look at: each side's modification time per field and its source."""

    local_times: Mapping[str, str] = field(default_factory=dict)
    remote_time: str | None = None
    local_sources: Mapping[str, str] = field(default_factory=dict)
    remote_source: str = "remote"


PENDING: Any = type("Pending", (), {"__repr__": lambda self: "PENDING"})()
"""A conflict left for an operator (``manual``)."""


def decide(conflict: FieldConflict, policy: Policy, sides: Sides) -> tuple[Any, str]:
    """The winning value of one conflict (or :data:`PENDING`) and the strategy that decided it."""
    strategy = policy.for_field(conflict.field)
    if strategy == "remote_wins":
        return conflict.remote, strategy
    if strategy == "local_wins":
        return conflict.local, strategy
    if strategy == "last_write_wins":
        local_time = sides.local_times.get(conflict.field) or ""
        return (conflict.local if local_time > (sides.remote_time or "") else conflict.remote), strategy
    if strategy == "source_priority":
        ranked = list(policy.priority.get(conflict.field) or policy.priority.get("*") or ())
        local_source = sides.local_sources.get(conflict.field, "local")
        local_rank = ranked.index(local_source) if local_source in ranked else len(ranked)
        remote_rank = ranked.index(sides.remote_source) if sides.remote_source in ranked else len(ranked)
        return (conflict.local if local_rank < remote_rank else conflict.remote), strategy
    return PENDING, strategy


def resolve(merge: Merge, policy: Policy, sides: Sides) -> tuple[dict[str, Any], list[tuple[FieldConflict, str]]]:
    """Apply ``policy`` to the merge's conflicts: the resolved fields and the conflicts left pending."""
    result = dict(merge.merged)
    pending: list[tuple[FieldConflict, str]] = []
    for conflict in merge.conflicts:
        value, strategy = decide(conflict, policy, sides)
        if value is PENDING:
            pending.append((conflict, strategy))
            continue
        if value is MISSING:
            result.pop(conflict.field, None)
        else:
            result[conflict.field] = value
    return result, pending
