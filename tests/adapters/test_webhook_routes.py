"""Event routes (``WebhookSpec.routes``): what each provider's events become, and properties over any event.

Any event type and any JSON data give a :class:`WebhookWork` or a :class:`SkipRecord` for every
provider, never another exception; an event no route takes is ``ignored`` with a reason.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base.adapter import Adapter
from adapters.base.model import WebhookWork
from adapters.base.webhook_spec import EventRoute
from adapters.base.webhooks import SUBSCRIPTION_STREAM, fill
from adapters.registry import adapter_class, provider_names
from shared.errors import SkipRecord

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
KEYS = ["event", "issue", "data", "entity", "records", "fields", "sobject", "sobject_type", "channel", "ts", "id",
        "subtype", "message", "deleted_ts", "user", "action", "attributes"]
event_data = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6)
event_types = st.one_of(st.text(max_size=30), st.sampled_from(
    ["issues", "issue_comment", "ping", "message", "channel_created", "page.deleted", "page.content_updated",
     "database.schema_updated", "comment.created", "Account", "Contact", "created", "deleted", "update", "sync",
     "record.deleted", "record.updated", "google.calendar.event.updated"]))


_ADAPTERS: dict[str, Adapter] = {}


def _adapter(name: str) -> Adapter:
    """One adapter per provider for the module (building one opens an HTTP client)."""
    if name not in _ADAPTERS:
        _ADAPTERS[name] = adapter_class(name)()
    return _ADAPTERS[name]


@pytest.mark.parametrize("name", provider_names())
@settings(max_examples=120, deadline=None)
@given(event_type=event_types, data=event_data)
def test_any_event_gives_work_or_a_skip(name: str, event_type: str, data: dict[str, Any]) -> None:
    adapter = _adapter(name)
    try:
        work = adapter.webhook_work(event_type, data, subscription_stream="calendar_events")
    except SkipRecord as exc:
        assert str(exc)
        return
    assert isinstance(work, WebhookWork)
    assert work.ignored is None or work.ignored  # an ignored event always says why
    assert set(work.sync_streams) <= set(adapter.spec.streams)
    assert all(f.stream in adapter.spec.streams for f in work.fetch)


@given(template=st.text(max_size=30), data=event_data)
def test_fill_gives_text_or_none(template: str, data: dict[str, Any]) -> None:
    filled = fill(template, data)
    assert filled is None or isinstance(filled, str)


def test_what_each_providers_events_become() -> None:
    slack = _adapter("slack")
    edited = slack.webhook_work("message", {"event": {"type": "message", "subtype": "message_changed", "channel": "C1",
                                                      "message": {"ts": "1.2", "text": "new"}}})
    assert [e.external_id for e in edited.entities] == ["C1:1.2"] and edited.entities[0].data["channel"] == "C1"
    deleted = slack.webhook_work("message", {"event": {"subtype": "message_deleted", "channel": "C1",
                                                       "deleted_ts": "1.2"}})
    assert deleted.entities[0].deleted and deleted.entities[0].external_id == "C1:1.2"
    assert slack.webhook_work("reaction_added", {}).ignored == "mentions, reactions and pins are not synced"

    notion = _adapter("notion")
    fetch = notion.webhook_work("page.content_updated", {"entity": {"id": "p-1", "type": "page"}})
    assert [(f.stream, f.path) for f in fetch.fetch] == [("pages", "/v1/pages/p-1")]
    assert notion.webhook_work("database.schema_updated", {}).sync_streams == ["databases"]

    salesforce = _adapter("salesforce")
    soap = salesforce.webhook_work("Contact", {"sobject_type": "Contact", "fields": {"Id": "003A", "LastName": "X"}})
    assert soap.stream == "contacts" and soap.entities[0].external_id == "003A"
    other = salesforce.webhook_work("Lead", {"sobject_type": "Lead", "fields": {"Id": "00QA"}})
    assert other.ignored and "Lead" in other.ignored

    google = _adapter("google")
    assert google.webhook_work("update", {}, subscription_stream="drive_files").sync_streams == ["drive_files"]
    assert google.webhook_work("google.calendar.event.updated", {}).sync_streams == ["calendar_events"]


def test_route_rules_are_checked_when_the_spec_loads() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        EventRoute(events=("x",), action="ignore")
    with pytest.raises(ValueError, match="needs a fetch_path"):
        EventRoute(events=("x",), action="fetch", stream="s", id_path="id")
    assert EventRoute(events=("page.*",), stream=SUBSCRIPTION_STREAM).matches("page.created")
