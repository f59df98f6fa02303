"""Each provider's budgets are data in its spec, rendered per request at the right level and key."""

from __future__ import annotations

import time

import httpx
import pytest
from pydantic import SecretStr

from adapters.base.model import Connection
from adapters.registry import adapter_class


def budgets(provider: str, method: str, url: str, *, bucket: str | None = None, body: object = None,
            config: dict[str, object] | None = None) -> dict[str, tuple[str, float, float, float]]:
    adapter = adapter_class(provider)()
    try:
        conn = Connection("acme", "int-1", "https://api.example", SecretStr("t"), config or {})
        found = adapter.budgets_for(conn, method, url, bucket, None, body)
        app = [b for b in found if b.name == "app"]
        assert len(app) == 1 and app[0].level == "app" and app[0].fair and not app[0].enabled  # off by default
        return {b.name: (b.key, b.limit, b.window, b.reserve) for b in found if b.enabled}
    finally:
        adapter.close()


def test_github_token_secondary_and_writes_per_token() -> None:
    read = budgets("github", "GET", "https://api.github.com/repos/a/b/issues")
    assert read == {"token": ("github:token:acme:int-1", 5000, 3600, 0.0),
                    "secondary": ("github:secondary:acme:int-1", 900, 60, 0.0)}
    write = budgets("github", "PATCH", "https://api.github.com/repos/a/b/issues/1")
    assert write["writes"] == ("github:writes:acme:int-1", 80, 60, 0.0)


def test_slack_per_method_tier_per_workspace_and_post_message_per_channel() -> None:
    listing = budgets("slack", "GET", "https://slack.com/api/users.list", bucket="tier2")
    assert listing == {"tier2": ("slack:tier2:acme:int-1:users.list", 20, 60, 0.0)}
    post = budgets("slack", "POST", "https://slack.com/api/chat.postMessage", bucket="tier3",
                   body={"channel": "C1", "text": "hi"})
    assert post["post_message"] == ("slack:post_message:acme:int-1:C1", 1, 1, 0.0)
    assert post["tier3"] == ("slack:tier3:acme:int-1:chat.postMessage", 50, 60, 0.0)


def test_notion_per_connection_salesforce_per_org_with_a_reserve_google_per_user() -> None:
    assert budgets("notion", "POST", "https://api.notion.com/v1/search") == {
        "connection": ("notion:connection:acme:int-1", 3, 1, 0.0)}
    org = budgets("salesforce", "GET", "https://x.my.salesforce.com/services/data/v60.0/query",
                  config={"instance_url": "https://x.my.salesforce.com"})
    assert org == {"org_daily": ("salesforce:org_daily:https://x.my.salesforce.com", 100_000, 86_400, 0.2)}
    assert budgets("google", "GET", "https://www.googleapis.com/calendar/v3/calendars/primary/events") == {
        "user": ("google:user:acme:int-1", 600, 60, 0.0)}


RESET = int(time.time()) + 600


@pytest.mark.parametrize(("provider", "headers", "expected"), [
    ("github", {"x-ratelimit-remaining": "42", "x-ratelimit-limit": "5000", "x-ratelimit-reset": str(RESET)},
     (42.0, float(RESET), 5000.0)),
    ("salesforce", {"Sforce-Limit-Info": "api-usage=10018/15000"}, (4982.0, None, 15000.0)),
    ("github", {"x-ratelimit-remaining": "lots"}, None),
    ("salesforce", {"Sforce-Limit-Info": "api-usage=x/y"}, None),
])
def test_the_remaining_allowance_is_read_from_the_providers_headers(
    provider: str, headers: dict[str, str], expected: tuple[float, float | None, float] | None
) -> None:
    adapter = adapter_class(provider)()
    try:
        usage = adapter._budgets.usage(httpx.Response(200, headers=headers))
    finally:
        adapter.close()
    if expected is None or usage is None:
        assert usage == expected
    else:
        assert usage[0] == expected[0] and usage[2] == expected[2]
        assert (usage[1] is None) == (expected[1] is None)
        if expected[1] is not None:
            assert usage[1] == pytest.approx(expected[1], abs=2)
