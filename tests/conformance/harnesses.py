"""One harness per provider: how the behavioural conformance suite drives its sandbox.

A new provider joins the suite by adding its harness to :data:`HARNESSES` (the suite fails
for a registered provider without one). A harness starts the sandbox with N records in the
provider's primary stream, says how to connect an integration, changes and deletes records,
and injects faults with the sandbox's own fault API. A case a provider cannot show is named
in ``unsupported`` with the reason, and the suite reports it as skipped with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TOKEN = "conformance-token"


@dataclass
class Harness:
    """Common shape; subclasses fill in the provider specifics."""

    provider: str = ""
    stream: str = ""
    entity_type: str = ""
    deletes_stream: str | None = None  # the stream whose run reports deletions (None: the primary, fully listed)
    unsupported: dict[str, str] = field(default_factory=dict)
    sandbox: Any = None
    three_pages: int = 0  # records that make at least three pages of the primary stream


    def start(self, records: int) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.sandbox.stop()

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def change(self, k: int) -> None:
        raise NotImplementedError

    def delete(self, d: int) -> None:
        raise NotImplementedError

    def fault(self, kind: str) -> None:
        """``rate_limit`` (a short Retry-After), ``transient`` (one 5xx), ``malformed`` (a body that
        is not JSON), ``unauthorized`` (the token refused), ``repeat_cursor`` (a later page hands
        back a cursor already followed), ``resync`` (the delta token dies)."""
        raise NotImplementedError

    def count(self) -> int:
        """Live records of the primary stream in the sandbox."""
        raise NotImplementedError

    push_changes: dict[str, Any] = field(default_factory=dict)  # an update the provider accepts

    def pushable(self) -> None:
        """Make sure the first record can be written by the hub (Slack: only the bot's own messages)."""

    def writes(self) -> int:
        """How many writes the sandbox has applied."""
        return sum(1 for method, _, status in self.sandbox.request_log if method == "PATCH" and status < 300)


class GitHubHarness(Harness):
    def __init__(self) -> None:
        super().__init__("github", "issues", "issue", unsupported={
            "deletes": "the GitHub sandbox has no issue deletion (GitHub lets only admins delete issues)",
            "malformed": "the GitHub sandbox has no malformed-body fault",
            "resync": "GitHub's `since` watermark never expires",
        }, three_pages=203, push_changes={"title": "pushed once"})

    def start(self, records: int) -> None:
        from sandbox.github import GitHubSandbox

        self.sandbox = GitHubSandbox(token=TOKEN, issues=records).start()

    def config(self) -> dict[str, Any]:
        return {"owner": self.sandbox.owner, "repo": self.sandbox.repo, "base_url": self.sandbox.base_url}

    def change(self, k: int) -> None:
        for number in range(1, k + 1):
            self.sandbox.update_issue(number, title=f"changed {number}")

    def fault(self, kind: str) -> None:
        {"rate_limit": lambda: self.sandbox.secondary_limit(1), "transient": lambda: self.sandbox.fail_next(502),
         "unauthorized": lambda: self.sandbox.fail_next(401, times=5),
         "repeat_cursor": lambda: self.sandbox.link_cycle(2)}[kind]()

    def count(self) -> int:
        return int(self.sandbox.stats()["issues"])


class SalesforceHarness(Harness):
    def __init__(self) -> None:
        super().__init__("salesforce", "accounts", "account", deletes_stream="accounts_deleted", unsupported={
            "rate_limit": "Salesforce sends no Retry-After: a spent quota waits quota_reset_seconds (an hour), "
            "covered by test_salesforce_adapter",
            "resync": "an expired query locator resyncs; covered by test_salesforce_adapter",
        }, three_pages=13, push_changes={"Phone": "+1 555 0142"})

    def start(self, records: int) -> None:
        from sandbox.salesforce import SalesforceSandbox

        self.sandbox = SalesforceSandbox(accounts=records, token=TOKEN, batch_size=5).start()

    def config(self) -> dict[str, Any]:
        return {"instance_url": self.sandbox.base_url}

    def change(self, k: int) -> None:
        for record in self.sandbox.records("Account")[:k]:
            self.sandbox.update_record("Account", record["Id"], Phone="+1 555 0199")

    def delete(self, d: int) -> None:
        for record in self.sandbox.records("Account")[:d]:
            self.sandbox.delete_record("Account", record["Id"])

    def fault(self, kind: str) -> None:
        if kind == "repeat_cursor":
            self.sandbox.repeat_next_cursor()
            return
        options = {"transient": {"status": 503}, "unauthorized": {"status": 401}, "malformed": {}}[kind]
        self.sandbox.inject("malformed" if kind == "malformed" else "status", **options)

    def count(self) -> int:
        return len(self.sandbox.records("Account"))


class NotionHarness(Harness):
    def __init__(self) -> None:
        super().__init__("notion", "databases", "page", three_pages=203, unsupported={
            "resync": "Notion has no delta token to expire (a last_edited_time filter)"},
            push_changes={"Notes": {"rich_text": [{"type": "text", "text": {"content": "pushed once"}}]}})

    def start(self, records: int) -> None:
        from sandbox.notion import NotionSandbox

        self.sandbox = NotionSandbox(pages=records, databases=("Tasks",), token=TOKEN).start()

    def config(self) -> dict[str, Any]:
        return {"api_base_url": self.sandbox.base_url}

    def change(self, k: int) -> None:
        for page in self.sandbox.pages()[:k]:
            self.sandbox.update_page(page["id"], Notes="changed")

    def delete(self, d: int) -> None:
        for page in self.sandbox.pages()[:d]:
            self.sandbox.trash_page(page["id"])

    def fault(self, kind: str) -> None:
        if kind == "rate_limit":
            self.sandbox.inject("status", status=429, retry_after=1, path="/query")
        elif kind == "transient":
            self.sandbox.inject("status", status=529, path="/query")
        elif kind == "malformed":
            self.sandbox.inject("malformed", path="/query")
        elif kind == "repeat_cursor":
            self.sandbox.inject("repeat_cursor", path="/query")
        else:
            self.sandbox.inject("status", status=401, times=5)

    def count(self) -> int:
        return len(self.sandbox.pages())


class SlackHarness(Harness):
    def __init__(self) -> None:
        super().__init__("slack", "channels", "message", three_pages=403, unsupported={
            "resync": "Slack's `oldest` watermark never expires"}, push_changes={"text": "pushed once"})

    def start(self, records: int) -> None:
        from sandbox.slack import SlackSandbox

        self.sandbox = SlackSandbox(users=2, channels=1, messages_per_channel=records, token=TOKEN,
                                    post_interval_seconds=0).start()
        self.channel = self.sandbox.workspace.channels[0]["id"]

    def config(self) -> dict[str, Any]:
        return {"api_base_url": self.sandbox.base_url}

    def change(self, k: int) -> None:
        for index in range(k):
            self.sandbox.post_message(self.channel, f"new message {index}")

    def delete(self, d: int) -> None:
        for message in self.sandbox.workspace.messages(self.channel)[:d]:
            self.sandbox.delete_message(self.channel, message["ts"])

    def fault(self, kind: str) -> None:
        method = "conversations\\.history"
        if kind == "rate_limit":
            self.sandbox.inject("ratelimited", method=method, retry_after=1)
        elif kind == "transient":
            self.sandbox.inject("status", method=method, status=503)
        elif kind == "malformed":
            self.sandbox.inject("malformed", method=method)
        elif kind == "repeat_cursor":
            self.sandbox.inject("repeat_cursor", method=method, skip=1)
        else:
            self.sandbox.inject("revoke", method=method)

    def count(self) -> int:
        return len(self.sandbox.workspace.messages(self.channel))

    def pushable(self) -> None:
        self.sandbox.post_message(self.channel, "the bot's own message")  # the newest: listed first

    def writes(self) -> int:
        return int(self.sandbox.calls("chat.update"))


class GoogleHarness(Harness):
    def __init__(self) -> None:
        super().__init__("google", "calendar_events", "event", three_pages=503, push_changes={"summary": "pushed once"})

    def start(self, records: int) -> None:
        from sandbox.google import GoogleSandbox

        self.sandbox = GoogleSandbox(events=records, token=TOKEN).start()

    def config(self) -> dict[str, Any]:
        return {"api_base_url": self.sandbox.base_url, "calendar_id": "primary"}

    def change(self, k: int) -> None:
        for event in self.sandbox.calendar.events[:k]:
            self.sandbox.patch_event(event["id"], summary="changed")

    def delete(self, d: int) -> None:
        for event in self.sandbox.calendar.events[:d]:
            self.sandbox.delete_event(event["id"])

    def fault(self, kind: str) -> None:
        operation = "calendar\\.events\\.list"
        if kind == "rate_limit":
            self.sandbox.inject("quota", operation=operation, retry_after=1)
        elif kind == "transient":
            self.sandbox.inject("status", operation=operation, status=503)
        elif kind == "malformed":
            self.sandbox.inject("malformed", operation=operation)
        elif kind == "repeat_cursor":
            self.sandbox.inject("repeat_cursor", operation=operation, skip=1)
        elif kind == "resync":
            self.sandbox.calendar.invalidate_sync_tokens()
        else:
            self.sandbox.inject("revoke", operation=operation)

    def count(self) -> int:
        return sum(1 for e in self.sandbox.calendar.events if e.get("status") != "cancelled")

    def writes(self) -> int:
        return int(self.sandbox.calls("calendar.events.patch"))

class CustomSourceHarness(Harness):
    def __init__(self) -> None:
        super().__init__("webhook", "records", "record", unsupported={
            "resync": "a custom source's updated_since watermark never expires",
        }, three_pages=23, push_changes={"title": "pushed once"})

    def start(self, records: int) -> None:
        from sandbox.custom_source import CustomSourceSandbox

        self.sandbox = CustomSourceSandbox(records, token=TOKEN, max_limit=10).start()

    def config(self) -> dict[str, Any]:
        return {"api_base_url": self.sandbox.base_url}

    def change(self, k: int) -> None:
        for record in self.sandbox.records()[:k]:
            self.sandbox.update(record["id"], title=f"changed {record['id']}")

    def delete(self, d: int) -> None:
        for record in self.sandbox.records()[:d]:
            self.sandbox.delete(record["id"])

    def fault(self, kind: str) -> None:
        faults: dict[str, list[str | int]] = {"rate_limit": [429], "transient": [503], "unauthorized": [401] * 5,
                                              "malformed": ["malformed"], "repeat_cursor": ["repeat_cursor"]}
        self.sandbox.inject(*faults[kind])

    def count(self) -> int:
        return len(self.sandbox.records())


HARNESSES: dict[str, type[Harness]] = {
    "github": GitHubHarness,
    "salesforce": SalesforceHarness,
    "notion": NotionHarness,
    "slack": SlackHarness,
    "google": GoogleHarness,
    "webhook": CustomSourceHarness,
}
