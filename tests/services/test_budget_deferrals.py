"""A budget deferral (our own rate budget said "not yet") reschedules without spending an attempt.

Eight attempts end a message that keeps failing; a message whose budget keeps deferring it is
not failing, so it is rescheduled - each copy under a new message id - until it goes through.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from shared.backends.sqlite_documents import SqliteDocumentStore
from shared.backends.sqlite_queue import SqliteWorkQueue
from shared.domain import DeadLetter, utcnow
from shared.errors import BudgetDeferred, HubError, RateLimited
from shared.messages import PageMessage, encode, parse_inbound
from shared.ports.queue import OutgoingMessage
from shared.services.repositories import Repository
from shared.services.work import WorkRunner

Q = "deferrals"


def _drive(tmp_path: Path, error: type[RateLimited], failures: int) -> tuple[list[str], list[Any], list[str]]:
    queue = SqliteWorkQueue(tmp_path / "queue.sqlite")
    dead = Repository(SqliteDocumentStore(tmp_path / "docs.sqlite"), "dead_letters", DeadLetter)
    runner = WorkRunner(queue, Q, dead, max_attempts=8)
    first = PageMessage(tenant_id="t", integration_id="i", run_id="run-1", stream="issues", page=1)
    queue.send(Q, OutgoingMessage(encode(first), "page-1"))
    calls: list[Any] = []
    outcomes: list[str] = []
    ids: list[str] = []

    def process(msg: Any) -> None:
        calls.append((msg.attempt, msg.deferrals))
        if len(calls) <= failures:
            at = utcnow() - timedelta(seconds=1)  # due at once: the test need not wait
            if error is BudgetDeferred:
                raise BudgetDeferred("not yet", retry_at=at, bucket="github:token:t:i")
            raise error("the provider says wait", retry_at=at)

    def on_failure(msg: Any, exc: HubError) -> None:
        pass

    for _ in range(failures + 2):
        got = queue.receive(Q)
        if not got:
            break
        [received] = got
        ids.append(received.message_id)
        outcomes.append(runner.run(received.body, received.message_id, parse_inbound, process, on_failure))
        queue.complete(Q, received.lock_token)
    return outcomes, calls, ids


def test_budget_deferrals_spend_no_attempt_and_the_work_goes_through(tmp_path: Path) -> None:
    outcomes, calls, ids = _drive(tmp_path, BudgetDeferred, failures=12)
    assert outcomes == ["rescheduled"] * 12 + ["completed"]
    assert [attempt for attempt, _ in calls] == [0] * 13  # no attempt spent
    assert [deferrals for _, deferrals in calls] == list(range(13))
    assert len(set(ids)) == 13  # every copy is a new message: duplicate detection drops none


def test_a_provider_rate_limit_still_spends_attempts_and_ends_after_eight(tmp_path: Path) -> None:
    outcomes, calls, _ = _drive(tmp_path, RateLimited, failures=12)
    assert outcomes == ["rescheduled"] * 7 + ["dead_lettered"]
    assert [attempt for attempt, _ in calls] == list(range(8))
