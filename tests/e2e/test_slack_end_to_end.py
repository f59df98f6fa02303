"""Slack end to end over the admin API, the queue and SyncInboundWorker against the sandbox:
channels start one messages run per channel, and a stream with no delta (channels) lists
everything every run, so a deleted channel is tombstoned by the next run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.slack import SlackSandbox
from tests.services.test_failure_visibility import wait_for

TOKEN = "xoxb-e2e"


@pytest.fixture
def slack() -> Iterator[SlackSandbox]:
    sandbox = SlackSandbox(users=5, channels=3, messages_per_channel=7, token=TOKEN, post_interval_seconds=0).start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def _runs(admin: httpx.Client) -> list[dict[str, Any]]:
    return list(admin.get("/integrations/slack-1/runs").json())


def _sync(admin: httpx.Client, devhost: Any, stream: str, expected_runs: int) -> list[dict[str, Any]]:
    before = {r["id"] for r in _runs(admin)}
    started = admin.post("/integrations/slack-1/sync", json={"stream": stream})
    assert started.status_code == 202, started.text

    def done() -> bool:
        runs = _runs(admin)
        return len(runs) >= len(before) + expected_runs and all(r["status"] != "running" for r in runs)

    assert wait_for(done, devhost)
    return [r for r in _runs(admin) if r["id"] not in before]


def test_channels_fan_out_to_histories_and_a_deleted_channel_is_tombstoned(
    slack: SlackSandbox, devhost: Any, admin: httpx.Client
) -> None:
    created = admin.post("/integrations", json={
        "id": "slack-1", "provider": "slack", "display_name": "Workspace", "config": {"api_base_url": slack.base_url}})
    assert created.status_code == 201, created.text
    assert admin.put("/integrations/slack-1/credential", json={"access_token": TOKEN}).status_code == 200

    runs = _sync(admin, devhost, "channels", 4)
    assert {r["status"] for r in runs} == {"succeeded"}
    histories = [r for r in runs if r["stream"] == "messages"]
    assert len(histories) == 3 and sum(r["records_created"] for r in histories) == 21

    channel = slack.workspace.channels[0]["id"]
    slack.post_message(channel, "one more")
    slack.delete_channel(slack.workspace.channels[1]["id"])
    again = _sync(admin, devhost, "channels", 3)
    [listing] = [r for r in again if r["stream"] == "channels"]
    assert listing["records_deleted"] == 1 and listing["records_created"] == 0
    assert sum(r["records_created"] for r in again if r["stream"] == "messages") == 1
    assert admin.get("/dead-letters").json() == []
