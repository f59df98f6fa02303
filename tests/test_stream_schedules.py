"""Stream schedules over the admin API and the scheduler: NCRONTAB as the Functions host reads it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.conftest import TENANT


def _create(admin: httpx.Client, schedule: str, integration_id: str = "gh-s") -> httpx.Response:
    return admin.post(
        "/integrations",
        json={
            "id": integration_id,
            "provider": "github",
            "display_name": "schedules",
            "config": {"owner": "acme", "repo": "widgets"},
            "streams": [{"name": "issues", "schedule": schedule}],
        },
    )


@pytest.mark.parametrize(
    ("schedule", "fragments"),
    [
        ("0 0 0 * * 7", ["day-of-week", "7 is out of range 0-6"]),
        ("0 0 0 * * Funday", ["day-of-week", "'Funday'"]),
        ("0 0 0 30 Feb *", ["day", "never"]),
        ("0 0 0 30 Feb Mon", ["day", "never"]),  # possible under Vixie cron's OR rule, never under NCrontab's AND
        ("00:05:00", ["TimeSpan"]),
        ("0 */5 * * * * *", ["expected 6 fields"]),
    ],
)
def test_a_schedule_ncrontab_rejects_is_a_400_naming_the_field(
    schedule: str, fragments: list[str], devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    response = _create(admin, schedule)
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    for fragment in ["schedule", *fragments]:
        assert fragment in message, (fragment, message)
    assert hub.repos.integrations.get(TENANT, "gh-s") is None


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("0 45 16 1 * Mon", datetime(2003, 1, 1, 12, tzinfo=UTC), datetime(2003, 9, 1, 16, 45, tzinfo=UTC)),
        ("0 30 6 * * sunday", datetime(2003, 6, 26, 10, tzinfo=UTC), datetime(2003, 6, 29, 6, 30, tzinfo=UTC)),
        ("0 0 0 1 Augu *", datetime(2003, 1, 1, tzinfo=UTC), datetime(2003, 8, 1, tzinfo=UTC)),
        ("0 0 5-1 * * *", datetime(2003, 1, 1, 5, tzinfo=UTC), datetime(2003, 1, 2, 1, tzinfo=UTC)),
    ],
)
def test_the_scheduler_follows_ncrontab(
    schedule: str, after: datetime, expected: datetime, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    assert _create(admin, schedule).status_code == 201
    [record] = hub.repos.schedules.query(TENANT)
    record.next_run_at = after
    hub.repos.schedules.save(record)
    hub.sync.schedule_due(now=after)
    [record] = hub.repos.schedules.query(TENANT)
    assert record.next_run_at == expected
