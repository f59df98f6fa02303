"""Calendar v3 data for the Google sandbox: one calendar's events, sync tokens and paging.

- ``events.list`` without ``syncToken`` lists events in a stable order (creation), skipping
  cancelled ones unless ``showDeleted``; ``timeMin``/``timeMax``/``updatedMin`` filter. Pages may
  be short (the Calendar API says so): a page examines at most ``maxResults`` events.
- ``nextSyncToken`` appears only on the last page. It stands for the change number at the start
  of the listing, so whatever changed while the pages were read comes back in the next delta.
- ``events.list(syncToken)`` returns every event changed since, cancelled ones included (as
  ``{"kind", "etag", "id", "status": "cancelled", "updated"}``), in change order. A token issued
  before :meth:`CalendarStore.invalidate_sync_tokens`, or unreadable, answers 410 ``fullSyncRequired``.
  ``syncToken`` cannot be combined with ``timeMin``, ``timeMax``, ``updatedMin``, ``orderBy`` or ``q``.
- ``events.patch`` merges writable fields, bumps ``updated``, ``etag`` and ``sequence``, and honours
  ``If-Match`` (412 ``conditionNotMet``). ``events.insert`` takes a client-chosen ``id`` (409
  ``duplicate`` if it exists), so a retried insert cannot make two events.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from sandbox.google_common import ChangeLog, GoogleError, bad_request, parse_time, random_id, rfc3339

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
WRITABLE = ("summary", "description", "location", "start", "end", "attendees", "status", "colorId", "transparency",
            "visibility", "reminders")
_ID_ALPHABET = "abcdefghijklmnopqrstuv0123456789"  # base32hex, as Calendar requires
_TITLES = ["Standup", "Planning", "1:1", "Customer call", "Design review", "Retro", "Lunch", "Interview", "Demo"]
_PEOPLE = ["ada", "grace", "linus", "margaret", "alan", "barbara", "ken", "radia"]
_PERSON = {"email": None, "displayName": None, "self": None, "id": None}
_TIME = {"dateTime": None, "date": None, "timeZone": None}
EVENT_SCHEMA: dict[str, Any] = {k: None for k in (
    "kind", "etag", "id", "status", "htmlLink", "created", "updated", "summary", "description", "location",
    "iCalUID", "sequence", "eventType", "colorId", "transparency", "visibility", "recurringEventId")}
EVENT_SCHEMA |= {"creator": _PERSON, "organizer": _PERSON, "start": _TIME, "end": _TIME,
                 "reminders": {"useDefault": None, "overrides": None},
                 "attendees": {k: None for k in ("email", "displayName", "responseStatus", "optional", "organizer",
                                                 "self", "id", "comment")}}
EVENTS_LIST_SCHEMA: dict[str, Any] = {k: None for k in (
    "kind", "etag", "summary", "description", "updated", "timeZone", "accessRole", "defaultReminders",
    "nextPageToken", "nextSyncToken")} | {"items": EVENT_SCHEMA}


def _encode(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def _decode(token: str, parameter: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, UnicodeError, ValueError):
        data = None
    if not isinstance(data, dict):
        if parameter == "syncToken":
            raise gone()
        raise bad_request(f"Invalid value for {parameter}: {token}", parameter)
    return data


def gone() -> GoogleError:
    """Calendar's 410: the sync token is no longer valid."""
    return GoogleError(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.", status="")


class CalendarStore:
    """The primary calendar of one user.

    Args:
        owner_email: The calendar id ``primary`` stands for.
        seed: Seed of the id and content generator.
    """

    def __init__(self, owner_email: str = "owner@acme.example", seed: int = 1) -> None:
        self.lock = threading.RLock()
        self.owner_email = owner_email
        self.touched = 0
        self.sync_generation = 0  # sync tokens of an older generation answer 410
        self._rng = random.Random(f"calendar-{seed}")
        self._ids: set[str] = set()
        self._clock = EPOCH
        self._events: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []
        self.changes = ChangeLog()

    def resolve(self, calendar_id: str) -> None:
        """Accept ``primary`` or the owner's address, percent-encoded or not (404 ``notFound`` otherwise)."""
        if unquote(calendar_id) not in ("primary", self.owner_email):
            raise GoogleError(404, "notFound", "Not Found")

    def _touch(self, event: dict[str, Any]) -> None:
        self._clock += timedelta(seconds=1)
        event["updated"] = rfc3339(self._clock)
        event["etag"] = f'"{int(self._clock.timestamp() * 1_000_000)}"'
        self.changes.record(event["id"])

    # -- mutations --------------------------------------------------------------------------------

    def create_event(self, summary: str, start: datetime | None = None, duration_minutes: int = 30, *,
                     attendees: list[str] | None = None, event_id: str | None = None,
                     fields: dict[str, Any] | None = None) -> dict[str, Any]:
        """Insert an event (``event_id`` lets the client choose the id; 409 ``duplicate`` if taken)."""
        with self.lock:
            if event_id is not None:
                if len(event_id) < 5 or any(c not in _ID_ALPHABET for c in event_id):
                    raise bad_request("Invalid resource id value.", "id", "invalidResourceId")
                if event_id in self._ids:
                    raise GoogleError(409, "duplicate", "The requested identifier already exists.")
                self._ids.add(event_id)
            new_id = event_id or random_id(self._rng, _ID_ALPHABET, 26, self._ids)
            begin = start or (EPOCH + timedelta(days=len(self._order) // 4, hours=9 + len(self._order) % 4))
            organizer = {"email": self.owner_email, "self": True}
            event: dict[str, Any] = {
                "kind": "calendar#event", "id": new_id, "status": "confirmed", "summary": summary,
                "htmlLink": f"https://www.google.com/calendar/event?eid={new_id}", "description": "", "location": "",
                "creator": dict(organizer), "organizer": dict(organizer), "iCalUID": f"{new_id}@google.com",
                "start": {"dateTime": _dt(begin), "timeZone": "UTC"},
                "end": {"dateTime": _dt(begin + timedelta(minutes=duration_minutes)), "timeZone": "UTC"},
                "attendees": [{"email": a, "responseStatus": "needsAction"} for a in attendees or []],
                "sequence": 0, "reminders": {"useDefault": True}, "eventType": "default",
            }
            event = _merge(event, fields or {})
            _check_times(event)
            self._events[new_id] = event
            self._order.append(new_id)
            self._touch(event)
            event["created"] = event["updated"]
            return _copy(event)

    def patch_event(self, event_id: str, fields: dict[str, Any], if_match: str | None = None) -> dict[str, Any]:
        """Merge writable fields into an event (``If-Match`` etag checked) and record the change."""
        with self.lock:
            event = self._get(event_id)
            if if_match is not None and if_match not in ("*", event["etag"]):
                raise GoogleError(412, "conditionNotMet", "Precondition Failed", location="If-Match",
                                  location_type="header")
            patched = _merge(event, fields)
            _check_times(patched)
            patched["sequence"] = event["sequence"] + 1
            self._events[event_id] = patched
            self._touch(patched)
            return _copy(patched)

    def delete_event(self, event_id: str) -> None:
        """Cancel an event (it stays, as ``status: cancelled``, for sync tokens); 410 ``deleted`` if already."""
        with self.lock:
            event = self._get(event_id)
            if event["status"] == "cancelled":
                raise GoogleError(410, "deleted", "Resource has been deleted")
            event["status"] = "cancelled"
            self._touch(event)

    def _get(self, event_id: str) -> dict[str, Any]:
        event = self._events.get(event_id)
        if event is None:
            raise GoogleError(404, "notFound", "Not Found")
        return event

    def get_event(self, event_id: str) -> dict[str, Any]:
        """One event (cancelled ones too, as Calendar does)."""
        with self.lock:
            self.touched += 1
            return _copy(self._get(event_id))

    def invalidate_sync_tokens(self) -> None:
        """Make every sync token issued so far answer 410 ``fullSyncRequired``."""
        with self.lock:
            self.sync_generation += 1

    def seed(self, count: int) -> list[str]:
        """Create ``count`` generated events; returns their ids."""
        with self.lock:
            made = []
            for _ in range(count):
                people = [f"{p}@acme.example" for p in self._rng.sample(_PEOPLE, self._rng.randrange(0, 4))]
                made.append(self.create_event(self._rng.choice(_TITLES), attendees=people)["id"])
            return made

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event (cancelled included), in creation order."""
        with self.lock:
            return [_copy(self._events[e]) for e in self._order]

    # -- listing ----------------------------------------------------------------------------------

    def list_events(self, q: dict[str, str], max_results: int) -> dict[str, Any]:
        """One ``events.list`` page (the body without ``kind``/``summary``…): ``items`` and a token."""
        with self.lock:
            sync_token, page_token = q.get("syncToken"), q.get("pageToken")
            if sync_token:
                clash = [p for p in ("timeMin", "timeMax", "updatedMin", "orderBy", "q", "iCalUID") if q.get(p)]
                if clash:
                    raise bad_request(f"Sync token cannot be used with {', '.join(clash)}.", clash[0])
                decoded = _decode(sync_token, "syncToken")
                since = decoded.get("s")
                if not isinstance(since, int) or decoded.get("g") != self.sync_generation or (
                        not 0 <= since <= self.changes.last):
                    raise gone()
                start = since + 1
                if page_token:
                    state = _decode(page_token, "pageToken")
                    if state.get("m") != "sync" or state.get("t") != sync_token:
                        raise bad_request("Invalid page token for this sync token.", "pageToken")
                    start = int(state["p"])
                entries, following, examined = self.changes.read(start, max_results)
                self.touched += examined
                items = [self._render(self._events[str(key)]) for _, key in entries]
                if following > self.changes.last:
                    return {"items": items, "nextSyncToken": self._sync_token(self.changes.last, self.sync_generation)}
                return {"items": items, "nextPageToken": _encode({"m": "sync", "p": following, "t": sync_token})}
            if q.get("orderBy"):
                raise bad_request("The sandbox lists events in a stable default order only; drop orderBy.", "orderBy")
            time_min = rfc3339(parse_time(q["timeMin"], "timeMin")) if q.get("timeMin") else None
            time_max = rfc3339(parse_time(q["timeMax"], "timeMax")) if q.get("timeMax") else None
            updated_min = rfc3339(parse_time(q["updatedMin"], "updatedMin")) if q.get("updatedMin") else None
            show_deleted = q.get("showDeleted", "").lower() == "true"
            position, snapshot, generation = 0, self.changes.last, self.sync_generation
            if page_token:
                state = _decode(page_token, "pageToken")
                if state.get("m") != "full" or not all(isinstance(state.get(k), int) for k in "psg"):
                    raise bad_request("Invalid page token.", "pageToken")
                position, snapshot, generation = state["p"], state["s"], state["g"]
            ids = self._order[position : position + max_results]
            self.touched += len(ids)
            items = []
            for event_id in ids:
                event = self._events[event_id]
                if event["status"] == "cancelled" and not show_deleted and not updated_min:
                    continue
                if (time_min and _instant(event["end"]) <= time_min) or (
                        time_max and _instant(event["start"]) >= time_max) or (
                        updated_min and event["updated"] < updated_min):
                    continue
                items.append(self._render(event))
            end_position = position + len(ids)
            if end_position < len(self._order):
                next_page = _encode({"m": "full", "p": end_position, "s": snapshot, "g": generation})
                return {"items": items, "nextPageToken": next_page}
            return {"items": items, "nextSyncToken": self._sync_token(snapshot, generation)}

    @staticmethod
    def _sync_token(since: int, generation: int) -> str:
        return _encode({"s": since, "g": generation})

    @staticmethod
    def _render(event: dict[str, Any]) -> dict[str, Any]:
        if event["status"] == "cancelled":
            return {k: event[k] for k in ("kind", "etag", "id", "status", "updated")}
        return _copy(event)

    def counts(self) -> dict[str, int]:
        """Events, cancelled events and the last change number."""
        with self.lock:
            cancelled = sum(1 for e in self._events.values() if e["status"] == "cancelled")
            return {"events": len(self._events) - cancelled, "cancelled": cancelled,
                    "last_change": self.changes.last}


def _dt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _instant(when: dict[str, Any]) -> str:
    """An event time as an RFC 3339 string comparable with :func:`rfc3339` output."""
    if "dateTime" in when:
        return rfc3339(parse_time(when["dateTime"], "dateTime"))
    return f"{when['date']}T00:00:00.000Z"


def _merge(event: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    merged = _copy(event)
    for name, value in fields.items():
        if name not in WRITABLE:
            continue  # read-only or unknown fields are ignored, as the Calendar API does
        if name in ("start", "end"):
            if not isinstance(value, dict) or not ("dateTime" in value or "date" in value):
                raise bad_request(f"Invalid {name} time: give dateTime or date.", name)
            if "dateTime" in value:
                parse_time(str(value["dateTime"]), f"{name}.dateTime")
        if name == "attendees" and (not isinstance(value, list) or not all(
                isinstance(a, dict) and isinstance(a.get("email"), str) for a in value)):
            raise bad_request("Invalid attendees: each needs an email.", "attendees")
        if name == "status" and value not in ("confirmed", "tentative", "cancelled"):
            raise bad_request(f"Invalid status: {value}", "status")
        merged[name] = value
    return merged


def _check_times(event: dict[str, Any]) -> None:
    if _instant(event["end"]) < _instant(event["start"]):
        raise bad_request("The specified time range is empty.", "end", "timeRangeEmpty")


def _copy(event: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(event))
