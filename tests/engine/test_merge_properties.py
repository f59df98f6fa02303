"""Property tests of the three-way merge and the conflict strategies (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shared.engine.merge import MISSING, PENDING, STRATEGY_NAMES, FieldConflict, Policy, Sides, decide, merge3, resolve

FIELDS = st.sampled_from(["a", "b", "c", "d", "e"])
VALUES = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from(["x", "y", "z"]), st.booleans())
RECORDS = st.dictionaries(FIELDS, VALUES, max_size=5)
DETERMINISTIC = [s for s in STRATEGY_NAMES if s != "manual"]


def _get(d: dict[str, Any], k: str) -> Any:
    return d.get(k, MISSING)


@given(RECORDS, RECORDS, RECORDS)
def test_no_field_changed_on_one_side_only_is_lost(
    base: dict[str, Any], local: dict[str, Any], remote: dict[str, Any]
) -> None:
    merged = merge3(base, local, remote).merged
    for name in base.keys() | local.keys() | remote.keys():
        b, lo, re_ = _get(base, name), _get(local, name), _get(remote, name)
        if lo != b and re_ == b:
            assert _get(merged, name) == lo
        if re_ != b and lo == b:
            assert _get(merged, name) == re_
        if lo == b and re_ == b:
            assert _get(merged, name) == b


@given(RECORDS, RECORDS, RECORDS)
def test_a_conflict_exactly_when_both_sides_changed_a_field_differently(
    base: dict[str, Any], local: dict[str, Any], remote: dict[str, Any]
) -> None:
    result = merge3(base, local, remote)
    expected = {
        name
        for name in base.keys() | local.keys() | remote.keys()
        if _get(local, name) != _get(base, name)
        and _get(remote, name) != _get(base, name)
        and _get(local, name) != _get(remote, name)
    }
    assert {c.field for c in result.conflicts} == expected
    for conflict in result.conflicts:
        assert (conflict.base, conflict.local, conflict.remote) == (
            _get(base, conflict.field),
            _get(local, conflict.field),
            _get(remote, conflict.field),
        )


@given(RECORDS, RECORDS, RECORDS, st.sampled_from(DETERMINISTIC))
def test_applying_the_same_change_twice_is_a_no_op(
    base: dict[str, Any], local: dict[str, Any], remote: dict[str, Any], strategy: str
) -> None:
    policy, sides = Policy(strategy=strategy, priority={"*": ["remote", "local"]}), Sides(remote_time="2024")
    once, _ = resolve(merge3(base, local, remote), policy, sides)
    twice, _ = resolve(merge3(base, once, remote), policy, sides)
    assert twice == once
    # and, as the engine does, with the remote as the new base: nothing changes at all
    again = merge3(remote, once, remote)
    assert again.merged == once and not again.conflicts and not again.remote_changed


@given(RECORDS, RECORDS, RECORDS, st.sampled_from(STRATEGY_NAMES))
def test_every_strategy_keeps_non_conflicting_fields_and_picks_a_side(
    base: dict[str, Any], local: dict[str, Any], remote: dict[str, Any], strategy: str
) -> None:
    merge = merge3(base, local, remote)
    resolved, pending = resolve(merge, Policy(strategy=strategy), Sides(remote_time="2024"))
    conflicted = {c.field for c in merge.conflicts}
    for name, value in merge.merged.items():
        if name not in conflicted:
            assert resolved[name] == value
    for conflict in merge.conflicts:
        if strategy == "manual":
            assert conflict.field in {c.field for c, _ in pending}
        else:
            assert _get(resolved, conflict.field) in (conflict.local, conflict.remote)


def test_each_strategy_decides_as_named() -> None:
    conflict = FieldConflict("title", "old", "mine", "theirs")
    older, newer = "2024-01-01T00:00:00Z", "2024-06-01T00:00:00Z"
    sides = Sides(
        local_times={"title": newer}, remote_time=older, local_sources={"title": "slack"}, remote_source="salesforce"
    )
    assert decide(conflict, Policy("remote_wins"), sides) == ("theirs", "remote_wins")
    assert decide(conflict, Policy("local_wins"), sides) == ("mine", "local_wins")
    assert decide(conflict, Policy("last_write_wins"), sides)[0] == "mine"
    assert (
        decide(conflict, Policy("last_write_wins"), Sides(local_times={"title": older}, remote_time=newer))[0]
        == "theirs"
    )
    assert decide(conflict, Policy("field_merge", field_merge_fallback="remote_wins"), sides)[0] == "theirs"
    ranked = Policy("source_priority", priority={"title": ["salesforce", "slack"]})
    assert decide(conflict, ranked, sides)[0] == "theirs"
    assert decide(conflict, Policy("source_priority", priority={"*": ["slack"]}), sides)[0] == "mine"
    assert decide(conflict, Policy("manual"), sides)[0] is PENDING
    assert decide(conflict, Policy("manual", fields={"title": "local_wins"}), sides)[0] == "mine"  # per-field override
