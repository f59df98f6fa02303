"""The data behind the Notion sandbox: one workspace's users, databases and database pages.

Pages carry the property types ``title``, ``rich_text``, ``people``, ``date``, ``select`` and
``status`` and render as the API's page objects. ``created_time`` and ``last_edited_time`` are
rounded down to the minute as Notion does (configurable), so a delta filter needs
``on_or_after`` plus de-duplication, exactly as against the real API.

Each database keeps :class:`~sandbox.common.SortedIndex` es of its live pages by
``(last_edited_time, id)`` and ``(created_time, id)``: a query filtered and/or sorted on one
timestamp is a ``bisect`` plus a slice, and ``next_cursor`` (the id of the next page, as in
Notion) resumes at that page's position. Other filters and property sorts scan the database
(counted in ``touched``). Every mutation outside seeding records the webhook event it causes.
"""

from __future__ import annotations

import random
import re
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.common import SandboxClock, SortedIndex
from sandbox.notion_props import NotionError, invalid, notion_time, rich_text, timestamp_bounds

_WORDS = ["Plan", "Review", "Ship", "Draft", "Fix", "Design", "Launch", "Audit", "Write", "Test"]
_THINGS = ["roadmap", "pricing page", "onboarding", "release notes", "billing", "search", "API docs", "dashboard"]
_PEOPLE = [("Ada Lovelace", "ada"), ("Grace Hopper", "grace"), ("Alan Turing", "alan")]
PRIORITIES = [("High", "red"), ("Medium", "yellow"), ("Low", "gray")]
STATUSES = [("Not started", "default"), ("In progress", "blue"), ("Done", "green")]
PROPERTY_TYPES = {"Name": "title", "Notes": "rich_text", "Assignee": "people", "Due": "date", "Priority": "select",
                  "Status": "status"}


class NotionWorkspace:
    """One workspace's content (not thread-safe: the sandbox holds its lock).

    Args:
        seed: Seed of ids and generated content.
        clock: Exact mutation times (one tick each).
        metrics: Counter the reads add ``touched`` to.
        granularity_seconds: Public timestamps are rounded down to this (60, like Notion).
    """

    def __init__(self, seed: int, clock: SandboxClock, metrics: Counter[str], granularity_seconds: int = 60) -> None:
        self._rng = random.Random(seed)
        self.clock, self.metrics, self.granularity = clock, metrics, granularity_seconds
        self.workspace_id, self.bot_id, self.integration_id = self.new_id(), self.new_id(), self.new_id()
        self.workspace_name = "Acme Workspace"
        self.users = [{"object": "user", "id": self.new_id(), "name": name, "avatar_url": None, "type": "person",
                       "person": {"email": f"{handle}@acme.example.com"}} for name, handle in _PEOPLE]
        self.databases: dict[str, dict[str, Any]] = {}
        self.pages: dict[str, dict[str, Any]] = {}
        self._edited: dict[str, SortedIndex] = {}
        self._created: dict[str, SortedIndex] = {}
        self.cursors: dict[str, dict[str, tuple[str, str]]] = {}  # cursor -> {timestamp field: index key}
        self.events: list[dict[str, Any]] = []  # changes not yet delivered as webhooks
        self.recording = True

    def new_id(self) -> str:
        """A UUID (version 4 layout) from the seeded generator."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def public_time(self, moment: datetime) -> str:
        """A timestamp as the API shows it (rounded down to the granularity)."""
        seconds = int(moment.timestamp())
        return notion_time(datetime.fromtimestamp(seconds - seconds % self.granularity, UTC))

    def _record(self, event_type: str, entity_id: str, entity_type: str, data: dict[str, Any]) -> None:
        if self.recording:
            self.events.append({"type": event_type, "entity": {"id": entity_id, "type": entity_type}, "data": data,
                                "timestamp": notion_time(datetime.now(UTC)),
                                "authors": [{"id": self.users[0]["id"], "type": "person"}]})

    # -- databases ------------------------------------------------------------------------------

    def create_database(self, title: str) -> dict[str, Any]:
        """A database with the six sandbox properties; returns its API object."""
        db_id, now = self.new_id(), self.clock.tick()
        schema: dict[str, dict[str, Any]] = {
            name: {"id": "title" if kind == "title" else self._prop_id(), "name": name, "type": kind}
            for name, kind in PROPERTY_TYPES.items()}
        schema["Priority"]["options"] = [{"id": self._prop_id(), "name": n, "color": c} for n, c in PRIORITIES]
        schema["Status"]["options"] = [{"id": self._prop_id(), "name": n, "color": c} for n, c in STATUSES]
        self.databases[db_id] = {"id": db_id, "title": title, "schema": schema, "created": now, "edited": now,
                                 "in_trash": False}
        self._edited[db_id], self._created[db_id] = SortedIndex(), SortedIndex()
        self._record("database.created", db_id, "database", {"parent": {"id": self.workspace_id, "type": "space"}})
        return self.render_database(db_id)

    def _prop_id(self) -> str:
        return "".join(self._rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in
                       range(4))

    def database(self, db_id: str) -> dict[str, Any]:
        """The internal database (``object_not_found`` if unknown or trashed)."""
        db = self.databases.get(db_id)
        if db is None or db["in_trash"]:
            raise NotionError(404, "object_not_found", f"Could not find database with ID: {db_id}. Make sure the "
                              "relevant pages and databases are shared with your integration.")
        return db

    def trash_database(self, db_id: str) -> None:
        """Move a database to the trash (queries then answer 404)."""
        self.database(db_id)["in_trash"] = True
        self._record("database.deleted", db_id, "database", {"parent": {"id": self.workspace_id, "type": "space"}})

    def render_database(self, db_id: str) -> dict[str, Any]:
        """The database object."""
        db = self.databases[db_id]
        properties = {}
        for name, prop in db["schema"].items():
            config: dict[str, Any] = {}
            if prop["type"] in ("select", "status"):
                config = {"options": [dict(o) for o in prop["options"]]}
            properties[name] = {"id": prop["id"], "name": name, "type": prop["type"], prop["type"]: config}
        user = {"object": "user", "id": self.users[0]["id"]}
        return {"object": "database", "id": db_id, "cover": None, "icon": None,
                "created_time": self.public_time(db["created"]), "created_by": user, "last_edited_by": user,
                "last_edited_time": self.public_time(db["edited"]), "title": rich_text(db["title"]),
                "description": [], "is_inline": False, "properties": properties,
                "parent": {"type": "workspace", "workspace": True},
                "url": f"https://www.notion.so/{db_id.replace('-', '')}", "public_url": None,
                "archived": db["in_trash"], "in_trash": db["in_trash"]}

    # -- pages ------------------------------------------------------------------------------------

    def page(self, page_id: str) -> dict[str, Any]:
        """The internal page (``object_not_found`` if unknown)."""
        page = self.pages.get(page_id)
        if page is None:
            raise NotionError(404, "object_not_found", f"Could not find page with ID: {page_id}. Make sure the "
                              "relevant pages and databases are shared with your integration.")
        return page

    def _keys(self, page: dict[str, Any]) -> tuple[tuple[str, str], tuple[str, str]]:
        return (self.public_time(page["edited"]), page["id"]), (self.public_time(page["created"]), page["id"])

    def _index(self, page: dict[str, Any], *, add: bool) -> None:
        edited, created = self._keys(page)
        if add:
            self._edited[page["database_id"]].add(edited)
            self._created[page["database_id"]].add(created)
        else:
            self._edited[page["database_id"]].remove(edited)
            self._created[page["database_id"]].remove(created)

    def create_page(self, db_id: str, values: dict[str, Any], author: str | None = None) -> dict[str, Any]:
        """A new page in a database from plain values (see :meth:`apply`); returns its API object."""
        db, now = self.database(db_id), self.clock.tick()
        page: dict[str, Any] = {
                "id": self.new_id(), "database_id": db_id, "created": now, "edited": now, "in_trash": False,
                "author": author or self.users[0]["id"], "editor": author or self.users[0]["id"],
                "values": {"Name": "", "Notes": "", "Assignee": [], "Due": None, "Priority": None,
                           "Status": STATUSES[0][0]}}
        self.apply(db, page, values)
        self.pages[page["id"]] = page
        self._index(page, add=True)
        self._record("page.created", page["id"], "page", {"parent": {"id": db_id, "type": "database"}})
        return self.render_page(page["id"])

    def apply(self, db: dict[str, Any], page: dict[str, Any], values: dict[str, Any]) -> list[str]:
        """Set plain values (``Name``/``Notes``: str, ``Assignee``: user ids, ``Due``: ISO date or ``None``,
        ``Priority``/``Status``: option name); all are checked before any is set. Returns the changed
        property ids."""
        known_users = {u["id"] for u in self.users}
        for name, value in values.items():
            prop = db["schema"].get(name)
            if prop is None:
                raise invalid(f"{name} is not a property that exists.")
            kind = prop["type"]
            if kind in ("title", "rich_text") and not isinstance(value, str):
                raise invalid(f"{name} is expected to be {kind}.")
            people = isinstance(value, list) and all(isinstance(v, str) and v in known_users for v in value)
            if kind == "people" and not people:
                raise invalid(f"{name} is expected to be people: a list of user ids of this workspace.")
            if kind == "date" and value is not None:
                try:
                    datetime.fromisoformat(str(value).replace("Z", "+00:00"))
                except ValueError:
                    raise invalid(f"{name}.start should be an ISO 8601 date, instead was `{value}`.") from None
            if kind == "status" and not any(o["name"] == value for o in prop["options"]):
                raise invalid(f'Invalid status option. Status option "{value}" does not exist.')
            if kind == "select" and value is not None and not isinstance(value, str):
                raise invalid(f"{name} is expected to be select: an option name.")
        changed = []
        for name, value in values.items():
            prop = db["schema"][name]
            if prop["type"] == "select" and value is not None and not any(o["name"] == value for o in prop["options"]):
                prop["options"].append({"id": self._prop_id(), "name": value, "color": "default"})  # as Notion does
            if page["values"].get(name) != value:
                page["values"][name] = value
                changed.append(prop["id"])
        return changed

    def update_page(self, page_id: str, values: dict[str, Any], *, in_trash: bool | None = None,
                    author: str | None = None) -> dict[str, Any]:
        """Change plain values and/or trash or restore a page; bumps ``last_edited_time``."""
        page = self.page(page_id)
        if in_trash is not None and not isinstance(in_trash, bool):
            raise invalid("body failed validation: body.in_trash should be a boolean")
        db = self.databases[page["database_id"]]
        was_trashed = page["in_trash"]
        if was_trashed and values and in_trash is not False:
            raise invalid("Can't edit block that is archived. You must unarchive the block before editing.")
        if not was_trashed:
            self._index(page, add=False)
        try:
            changed = self.apply(db, page, values)
        except BaseException:  # any failure (not only a NotionError) leaves the page indexed as it was
            if not was_trashed:
                self._index(page, add=True)
            raise
        page["edited"], page["editor"] = self.clock.tick(), author or self.users[0]["id"]
        if in_trash is not None:
            page["in_trash"] = in_trash
        if not page["in_trash"]:
            self._index(page, add=True)
        parent = {"parent": {"id": db["id"], "type": "database"}}
        if page["in_trash"] and not was_trashed:
            self._record("page.deleted", page_id, "page", parent)
        elif was_trashed and not page["in_trash"]:
            self._record("page.undeleted", page_id, "page", parent)
        if changed:
            self._record("page.properties_updated", page_id, "page", parent | {"updated_properties": changed})
        return self.render_page(page_id)

    def edit_content(self, page_id: str) -> dict[str, Any]:
        """A user edits the page body (blocks): ``last_edited_time`` moves, ``page.content_updated`` is recorded."""
        page = self.page(page_id)
        if page["in_trash"]:
            raise invalid("Can't edit block that is archived. You must unarchive the block before editing.")
        self._index(page, add=False)
        page["edited"] = self.clock.tick()
        self._index(page, add=True)
        self._record("page.content_updated", page_id, "page", {
            "parent": {"id": page["database_id"], "type": "database"},
            "updated_blocks": [{"id": self.new_id(), "type": "block"}]})
        return self.render_page(page_id)

    def render_page(self, page_id: str) -> dict[str, Any]:
        """The page object (counts one ``touched``)."""
        page = self.pages[page_id]
        self.metrics["touched"] += 1
        schema = self.databases[page["database_id"]]["schema"]
        properties = {}
        for name, prop in schema.items():
            value, kind = page["values"].get(name), prop["type"]
            rendered: Any
            if kind in ("title", "rich_text"):
                rendered = rich_text(value or "")
            elif kind == "people":
                rendered = [dict(u) for u in self.users if u["id"] in (value or [])]
            elif kind == "date":
                rendered = None if value is None else {"start": value, "end": None, "time_zone": None}
            else:
                rendered = next((dict(o) for o in prop["options"] if o["name"] == value), None)
            properties[name] = {"id": prop["id"], "type": kind, kind: rendered}
        slug = re.sub(r"[^A-Za-z0-9]+", "-", page["values"].get("Name") or "Untitled").strip("-")
        return {"object": "page", "id": page_id, "created_time": self.public_time(page["created"]),
                "last_edited_time": self.public_time(page["edited"]),
                "created_by": {"object": "user", "id": page["author"]},
                "last_edited_by": {"object": "user", "id": page["editor"]}, "cover": None, "icon": None,
                "parent": {"type": "database_id", "database_id": page["database_id"]},
                "archived": page["in_trash"], "in_trash": page["in_trash"], "is_locked": False,
                "properties": properties, "url": f"https://www.notion.so/{slug}-{page_id.replace('-', '')}",
                "public_url": None}

    def seed(self, db_id: str, count: int) -> None:
        """Generate ``count`` pages in a database (no webhook events)."""
        self.recording, rng = False, self._rng
        try:
            for _ in range(count):
                due = (datetime(2024, 1, 1) + timedelta(days=rng.randrange(365))).date().isoformat()
                self.create_page(db_id, {
                    "Name": f"{rng.choice(_WORDS)} {rng.choice(_THINGS)}", "Notes": f"Notes {rng.randrange(10**6)}",
                    "Assignee": [rng.choice(self.users)["id"]], "Due": due if rng.random() < 0.7 else None,
                    "Priority": rng.choice(PRIORITIES)[0], "Status": rng.choice(STATUSES)[0]})
        finally:
            self.recording = True

    # -- queries ------------------------------------------------------------------------------------

    def query(self, db_id: str, flt: Any, sorts: list[dict[str, Any]], start_cursor: str | None,
              page_size: int, predicate: Callable[[dict[str, Any]], bool] | None) -> tuple[list[str], str | None]:
        """Page ids of one query page and the next cursor (``None`` at the end).

        ``predicate`` is the compiled filter for the scanning path; the indexed path uses
        :func:`timestamp_bounds` of ``flt`` instead.
        """
        self.database(db_id)
        bounds = timestamp_bounds(flt) if flt is not None else None
        default = {"timestamp": bounds[0] if bounds else "created_time", "direction": "ascending"}
        first = sorts[0] if sorts else default
        field = first.get("timestamp")
        if len(sorts) <= 1 and field in ("last_edited_time", "created_time") and (
                flt is None or (bounds is not None and bounds[0] == field)):
            return self._indexed(db_id, field, first.get("direction") == "descending", bounds, start_cursor, page_size)
        return self._scan(db_id, sorts, start_cursor, page_size, predicate)

    def _cursor_key(self, cursor: str, field: str) -> tuple[str, str]:
        entry = self.cursors.get(cursor)
        if entry is None:
            raise invalid(f"The start_cursor provided is invalid: {cursor}")
        return entry[field]

    def _issue_cursor(self, page_id: str) -> str:
        edited, created = self._keys(self.pages[page_id])
        self.cursors[page_id] = {"last_edited_time": edited, "created_time": created}
        return page_id

    def _indexed(self, db_id: str, field: str, descending: bool, bounds: tuple[str, list[tuple[str, str]]] | None,
                 start_cursor: str | None, page_size: int) -> tuple[list[str], str | None]:
        index = self._edited[db_id] if field == "last_edited_time" else self._created[db_id]
        lo, hi = 0, len(index)
        for op, stamp in bounds[1] if bounds else []:
            if op in (">", ">=", "=", "day"):
                lo = max(lo, index.upper((stamp, "~")) if op == ">" else index.lower((stamp,)))
            if op in ("<", "<=", "="):
                hi = min(hi, index.lower((stamp,)) if op == "<" else index.upper((stamp, "~")))
            if op == "day":
                hi = min(hi, index.lower((notion_time(datetime.fromisoformat(stamp.replace("Z", "+00:00"))
                                                      + timedelta(days=1)),)))
        if start_cursor:
            key = self._cursor_key(start_cursor, field)
            if descending:
                hi = min(hi, index.upper(key))
            else:
                lo = max(lo, index.lower(key))
        if descending:
            keys = index.slice(max(hi - page_size - 1, lo), hi)[::-1]
        else:
            keys = index.slice(lo, min(lo + page_size + 1, hi))
        chosen = [k[1] for k in keys[:page_size]]
        following = keys[page_size][1] if len(keys) > page_size else None
        return chosen, self._issue_cursor(following) if following else None

    def _scan(self, db_id: str, sorts: list[dict[str, Any]], start_cursor: str | None, page_size: int,
              predicate: Callable[[dict[str, Any]], bool] | None) -> tuple[list[str], str | None]:
        live = [self.pages[key[1]] for key in self._created[db_id]]
        self.metrics["touched"] += len(live)
        chosen = [p for p in live if predicate is None or predicate(p)]
        for spec in reversed(sorts):
            descending = spec.get("direction") == "descending"
            if "timestamp" in spec:
                attr = "edited" if spec["timestamp"] == "last_edited_time" else "created"
                chosen.sort(key=lambda p: self.public_time(p[attr]), reverse=descending)
            else:
                name = str(spec.get("property"))
                chosen.sort(key=lambda p: (p["values"].get(name) is None, str(p["values"].get(name) or "")),
                            reverse=descending)
        ids = [p["id"] for p in chosen]
        start = 0
        if start_cursor:
            self._cursor_key(start_cursor, "created_time")
            if start_cursor not in ids:
                raise invalid(f"The start_cursor provided is invalid: {start_cursor}")
            start = ids.index(start_cursor)
        window = ids[start : start + page_size + 1]
        following = window[page_size] if len(window) > page_size else None
        return window[:page_size], self._issue_cursor(following) if following else None
