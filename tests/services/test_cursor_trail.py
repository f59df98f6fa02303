"""The run's cursor trail finds pagination cycles of any length in bounded space."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain import RECENT_CURSORS, CursorTrail, SyncRun


def _walk(tail: int, cycle: int, steps: int) -> tuple[int | None, int | None, CursorTrail]:
    """Follow ``tail`` distinct cursors then a loop of ``cycle``; (page detected, page repeated, trail)."""
    trail = CursorTrail()
    for page in range(1, steps + 1):
        index = page if page <= tail + cycle else tail + (page - tail - 1) % cycle + 1
        repeated = trail.follow(f"https://api.example/items?cursor={index}", page)
        if repeated is not None:
            return page, repeated, trail
    return None, None, trail


def test_a_two_page_cycle_is_found_at_its_first_repeat() -> None:
    found, repeated, _ = _walk(tail=0, cycle=2, steps=10)
    assert (found, repeated) == (3, 1)


@settings(max_examples=150, deadline=None)
@given(tail=st.integers(0, 300), cycle=st.integers(1, 1500))
def test_any_cycle_is_found_within_a_few_times_its_length(tail: int, cycle: int) -> None:
    found, repeated, trail = _walk(tail, cycle, steps=4 * (tail + cycle) + 4)
    assert found is not None, "cycle not detected"
    assert found > tail + cycle  # never before the first real repeat
    assert repeated is not None and (found - repeated) % cycle == 0  # it names a page with the same cursor
    assert len(trail.recent) <= RECENT_CURSORS


@settings(max_examples=30, deadline=None)
@given(pages=st.integers(1, 3000))
def test_distinct_cursors_never_look_like_a_cycle(pages: int) -> None:
    found, _, trail = _walk(tail=pages, cycle=1, steps=pages)
    assert found is None
    assert len(trail.recent) <= RECENT_CURSORS


def test_the_trail_survives_the_run_document_round_trip() -> None:
    run = SyncRun(id="r", tenant_id="t", integration_id="i", stream="s")
    for page in range(1, 5):
        assert run.cursors.follow(f"c{page}", page) is None
        run = SyncRun.from_doc(run.to_doc())  # one page per message: the trail is stored between pages
    assert run.cursors.follow("c2", 5) == 2
