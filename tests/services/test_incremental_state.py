"""The whole incremental state flows through a run (issue 7, section 1).

Every page is fetched with the run's committed start state; the candidate each page returns
is merged into the run, and the checkpoint takes it only when the run's last page is stored.
A sync token that arrives on the last page (Google Calendar's ``nextSyncToken``) is what the
next run starts from; a failed run commits nothing. Real queue, worker glue and HTTP sandbox.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shared.domain import Checkpoint, IncrementalState, RunStatus
from tests.conftest import TENANT
from tests.services.ledger import LedgerSandbox, connect, ledger, lhub, pump, records, sync

__all__ = ["ledger", "lhub"]


def _checkpoint(hub: Any, key: str) -> Checkpoint:
    return hub.repos.checkpoints.get(TENANT, Checkpoint.key(TENANT, "led-1", key))


def test_a_sync_token_from_the_last_page_is_committed_when_the_run_ends_and_used_next(
    lhub: Any, ledger: LedgerSandbox
) -> None:
    ledger.seed("items", 7)  # three pages
    integration = connect(lhub)
    run_id = lhub.sync.start_run(integration, "items", "manual")
    assert pump(lhub, limit=1) == [f"{run_id}:0"]
    assert _checkpoint(lhub, "items").state.sync_token is None  # not before the run ends
    pump(lhub)

    first = lhub.repos.runs.get(TENANT, run_id)
    assert first.status is RunStatus.SUCCEEDED and first.records_created == 7 and first.pages == 3
    assert first.pending_state.sync_token == "tok-7"
    assert _checkpoint(lhub, "items").state.sync_token == "tok-7"

    ledger.put("items", "i002", "renamed")
    second = sync(lhub, "items")
    assert second.start_state.sync_token == "tok-7" and not second.full_listing
    assert (second.records_seen, second.records_updated, second.records_created) == (1, 1, 0)  # only the delta
    assert _checkpoint(lhub, "items").state.sync_token == "tok-8"
    assert records(lhub, "item")["i002"].data["name"] == "renamed"


def test_a_failed_run_commits_none_of_its_state(lhub: Any, ledger: LedgerSandbox) -> None:
    ledger.seed("items", 7)
    connect(lhub)
    sync(lhub, "items")
    for i in range(4):
        ledger.put("items", f"x{i}", "new")
    integration = lhub.admin.get_integration(TENANT, "led-1")
    run_id = lhub.sync.start_run(integration, "items", "manual")
    pump(lhub, limit=1)  # the first page of the delta is stored...
    ledger.fail("/items", 404)  # ...the second is refused
    pump(lhub)

    run = lhub.repos.runs.get(TENANT, run_id)
    assert run.status is RunStatus.FAILED and run.pages == 1
    assert _checkpoint(lhub, "items").state.sync_token == "tok-7"  # the next run repeats the delta
    again = sync(lhub, "items")
    assert again.start_state.sync_token == "tok-7" and again.status is RunStatus.SUCCEEDED
    assert len(records(lhub, "item")) == 11


_tokens = st.one_of(st.none(), st.text(min_size=1, max_size=8))
_states = st.builds(
    IncrementalState,
    watermark=_tokens,
    sync_token=_tokens,
    start_page_token=_tokens,
    full_resync=st.booleans(),
)


@given(start=_states, pages=st.lists(_states, max_size=6))
def test_merging_page_states_keeps_the_latest_watermark_and_the_last_tokens(
    start: IncrementalState, pages: list[IncrementalState]
) -> None:
    merged = start
    for page in pages:
        merged = merged.merged(page)
    marks = [s.watermark for s in [start, *pages] if s.watermark is not None]
    assert merged.watermark == (max(marks) if marks else None)
    for name in ("sync_token", "start_page_token"):
        carried = [getattr(s, name) for s in [start, *pages] if getattr(s, name) is not None]
        assert getattr(merged, name) == (carried[-1] if carried else None)
    assert merged.full_resync is (start.full_resync and not pages)
    assert IncrementalState().lists_everything and IncrementalState(full_resync=True, watermark="w").lists_everything
    assert not IncrementalState(sync_token="t").lists_everything
