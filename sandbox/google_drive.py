"""Drive v3 data for the Google sandbox: files, the change log, and the list/changes endpoints' logic.

- ``changes.getStartPageToken`` → ``{"kind": "drive#startPageToken", "startPageToken": "N"}``.
- ``changes.list(pageToken, pageSize ≤ 1000, includeRemoved)`` → ``changes[]`` of ``{"kind":
  "drive#change", "changeType": "file", "time", "removed", "fileId", "file"}`` in change order,
  the latest change per file only; ``nextPageToken`` while more remain, ``newStartPageToken`` on
  the last page. A permanently deleted file is a change with ``removed: true`` and no ``file``;
  a trashed file is a change with ``file.trashed: true``.
- ``files.list(pageSize, pageToken, q)`` and ``files.get``. Pages may be short (Drive allows it):
  a page examines at most ``pageSize`` entries, so its cost never depends on the drive's size.
- Without ``fields``, files carry only ``kind``, ``id``, ``name`` and ``mimeType``, as in Drive v3;
  ask for more with ``fields`` (``*`` for everything).

Time stamps come from a deterministic clock (2024-01-01T00:00:00Z plus one second per change).
"""

from __future__ import annotations

import base64
import binascii
import random
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.google_common import ChangeLog, GoogleError, bad_request, parse_time, random_id, rfc3339

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
FOLDER = "application/vnd.google-apps.folder"
_MIME = ["application/vnd.google-apps.document", "application/vnd.google-apps.spreadsheet",
         "application/vnd.google-apps.presentation", "application/pdf", "image/png", "text/plain"]
_EDITORS = {"document": "document", "spreadsheet": "spreadsheets", "presentation": "presentation"}
_NOUNS = ["Roadmap", "Budget", "Minutes", "Proposal", "Invoice", "Design", "Contract", "Report", "Plan", "Notes"]
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
FILE_SCHEMA: dict[str, Any] = {name: None for name in (
    "kind", "id", "name", "mimeType", "description", "starred", "trashed", "explicitlyTrashed", "parents",
    "version", "webViewLink", "iconLink", "createdTime", "modifiedTime", "modifiedByMeTime", "shared", "ownedByMe",
    "size", "md5Checksum", "headRevisionId", "spaces", "driveId", "resourceKey")}
FILE_SCHEMA |= {"owners": {k: None for k in ("kind", "displayName", "emailAddress", "permissionId", "me",
                                              "photoLink")},
                "lastModifyingUser": {k: None for k in ("kind", "displayName", "emailAddress", "permissionId", "me",
                                                        "photoLink")}}
CHANGE_SCHEMA: dict[str, Any] = {k: None for k in ("kind", "changeType", "time", "removed", "fileId", "type",
                                                   "driveId")} | {"file": FILE_SCHEMA}
CHANGES_LIST_SCHEMA: dict[str, Any] = {"kind": None, "nextPageToken": None, "newStartPageToken": None,
                                       "changes": CHANGE_SCHEMA}
FILES_LIST_SCHEMA: dict[str, Any] = {"kind": None, "nextPageToken": None, "incompleteSearch": None,
                                     "files": FILE_SCHEMA}
DEFAULT_FILE_FIELDS = ("kind", "id", "name", "mimeType")
_CLAUSE = re.compile(
    r"\s*(?:(?P<trashed>trashed\s*=\s*(?P<tv>true|false))"
    r"|(?:mimeType\s*(?P<mop>!=|=)\s*'(?P<mime>[^']*)')"
    r"|(?:modifiedTime\s*(?P<top>>=|<=|>|<|=)\s*'(?P<time>[^']*)')"
    r"|(?:name\s+contains\s+'(?P<name>[^']*)')"
    r"|(?:'(?P<parent>[^']+)'\s+in\s+parents))\s*$")


class DriveStore:
    """One user's Drive: files by id, creation order, and a change log.

    Args:
        owner_email: The signed-in user's address (owner of every file).
        seed: Seed of the id and content generator.
    """

    def __init__(self, owner_email: str = "owner@acme.example", seed: int = 1) -> None:
        self.lock = threading.RLock()
        self.owner_email = owner_email
        self.touched = 0
        self._rng = random.Random(f"drive-{seed}")
        self._ids: set[str] = set()
        self._clock = EPOCH
        self._files: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []  # creation order, deleted ids stay (skipped) so positions are stable
        self._pos: dict[str, int] = {}
        self._change_time: dict[str, str] = {}
        self._removed: set[str] = set()
        self.changes = ChangeLog()
        self.root_id = random_id(self._rng, _ID_ALPHABET, 19, self._ids, "0A")
        self._owner = {"kind": "drive#user", "displayName": owner_email.split("@")[0].title(),
                       "emailAddress": owner_email, "permissionId": str(self._rng.randrange(10**19, 10**20)),
                       "me": True}

    def _tick(self) -> str:
        self._clock += timedelta(seconds=1)
        return rfc3339(self._clock)

    def _record(self, file_id: str) -> None:
        self.changes.record(file_id)
        self._change_time[file_id] = rfc3339(self._clock)

    # -- mutations --------------------------------------------------------------------------------

    def create_file(self, name: str, mime_type: str = "application/vnd.google-apps.document", *,
                    parent: str | None = None, description: str = "") -> dict[str, Any]:
        """Create a file (in the root folder by default) and record the change."""
        if not name:
            raise bad_request("A file name is required.", "name", "required")
        with self.lock:
            file_id = random_id(self._rng, _ID_ALPHABET, 32, self._ids, "1")
            stamp = self._tick()
            kind = mime_type.rsplit(".", 1)[-1]
            view = (f"https://docs.google.com/{_EDITORS[kind]}/d/{file_id}/edit" if kind in _EDITORS
                    else f"https://drive.google.com/file/d/{file_id}/view")
            record: dict[str, Any] = {
                "kind": "drive#file", "id": file_id, "name": name, "mimeType": mime_type, "description": description,
                "starred": False, "trashed": False, "explicitlyTrashed": False, "parents": [parent or self.root_id],
                "spaces": ["drive"], "version": "1", "webViewLink": view,
                "iconLink": f"https://drive-thirdparty.googleusercontent.com/16/type/{mime_type}",
                "createdTime": stamp, "modifiedTime": stamp, "modifiedByMeTime": stamp, "shared": False,
                "ownedByMe": True, "owners": [dict(self._owner)], "lastModifyingUser": dict(self._owner),
            }
            if not mime_type.startswith("application/vnd.google-apps."):
                record |= {"size": str(1024 + self._rng.randrange(10**6)),
                           "md5Checksum": f"{self._rng.getrandbits(128):032x}",
                           "headRevisionId": f"0B{self._rng.getrandbits(64):016x}"}
            self._files[file_id] = record
            self._pos[file_id] = len(self._order)
            self._order.append(file_id)
            self._record(file_id)
            return _copy(record)

    def update_file(self, file_id: str, *, name: str | None = None, description: str | None = None,
                    trashed: bool | None = None, starred: bool | None = None) -> dict[str, Any]:
        """Change a file's metadata (``trashed=True`` moves it to the trash) and record the change."""
        with self.lock:
            record = self._live(file_id)
            for key, value in (("name", name), ("description", description), ("starred", starred)):
                if value is not None:
                    record[key] = value
            if trashed is not None:
                record["trashed"] = record["explicitlyTrashed"] = bool(trashed)
            stamp = self._tick()
            record["modifiedTime"] = record["modifiedByMeTime"] = stamp
            record["version"] = str(int(record["version"]) + 1)
            self._record(file_id)
            return _copy(record)

    def delete_file(self, file_id: str) -> None:
        """Delete a file permanently: later reads 404 and the change log shows ``removed: true``."""
        with self.lock:
            self._live(file_id)
            del self._files[file_id]
            self._removed.add(file_id)
            self._tick()
            self._record(file_id)

    def _live(self, file_id: str) -> dict[str, Any]:
        record = self._files.get(file_id)
        if record is None:
            raise GoogleError(404, "notFound", f"File not found: {file_id}.", location="fileId")
        return record

    def seed(self, count: int) -> list[str]:
        """Create ``count`` generated files; returns their ids."""
        with self.lock:
            made = []
            for n in range(count):
                mime = self._rng.choice(_MIME)
                made.append(self.create_file(f"{self._rng.choice(_NOUNS)} {len(self._order) + 1}", mime,
                                             description=f"Generated file {n + 1}")["id"])
            return made

    # -- reads ------------------------------------------------------------------------------------

    def get_file(self, file_id: str) -> dict[str, Any]:
        """One file (404 ``notFound`` if absent or deleted)."""
        with self.lock:
            self.touched += 1
            return _copy(self._live(file_id))

    @property
    def files(self) -> list[dict[str, Any]]:
        """Every existing file (trashed ones included), in creation order."""
        with self.lock:
            return [_copy(self._files[f]) for f in self._order if f in self._files]

    def start_page_token(self) -> str:
        """The token that lists only changes made from now on."""
        with self.lock:
            return str(self.changes.last + 1)

    def list_changes(self, page_token: str, page_size: int,
                     include_removed: bool = True) -> tuple[list[dict[str, Any]], str | None, str | None]:
        """One ``changes.list`` page: ``(changes, nextPageToken, newStartPageToken)``."""
        with self.lock:
            if not (page_token.isascii() and page_token.isdigit()) or not 1 <= int(page_token) <= self.changes.last + 1:
                raise bad_request(f"Invalid Value: pageToken {page_token}", "pageToken")
            entries, following, examined = self.changes.read(int(page_token), page_size)
            self.touched += examined
            changes = []
            for _, file_id in entries:
                assert isinstance(file_id, str)
                change: dict[str, Any] = {"kind": "drive#change", "changeType": "file", "type": "file",
                                          "time": self._change_time[file_id], "fileId": file_id}
                if file_id in self._files:
                    changes.append(change | {"removed": False, "file": _copy(self._files[file_id])})
                elif include_removed:
                    changes.append(change | {"removed": True})
            done = following > self.changes.last
            return changes, None if done else str(following), str(following) if done else None

    def list_files(self, page_token: str | None, page_size: int,
                   query: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """One ``files.list`` page (creation order): ``(files, nextPageToken)``; ``q`` supports a subset."""
        match = _compile_query(query)
        with self.lock:
            start = _decode_position(page_token) if page_token else 0
            ids = self._order[start : start + page_size]
            self.touched += len(ids)
            page = [_copy(self._files[f]) for f in ids if f in self._files and match(self._files[f])]
            end = start + len(ids)
            following = base64.urlsafe_b64encode(f"files:{end}".encode()).decode() if end < len(self._order) else None
            return page, following

    def counts(self) -> dict[str, int]:
        """Existing, trashed and permanently deleted files, and the last change number."""
        with self.lock:
            trashed = sum(1 for f in self._files.values() if f["trashed"])
            return {"files": len(self._files), "trashed": trashed, "deleted": len(self._removed),
                    "last_change": self.changes.last}


def _decode_position(token: str) -> int:
    try:
        kind, _, number = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
    except (binascii.Error, UnicodeError, ValueError):
        kind, number = "", ""
    if kind != "files" or not (number.isascii() and number.isdigit()):
        raise bad_request(f"Invalid Value: pageToken {token}", "pageToken")
    return int(number)


def _compile_query(query: str | None) -> Callable[[dict[str, Any]], bool]:
    """A predicate for a ``q`` made of ``and``-joined clauses the sandbox understands (400 otherwise)."""
    tests = [_clause(c) for c in re.split(r"\s+and\s+", query.strip())] if query and query.strip() else []
    return lambda record: all(test(record) for test in tests)


def _clause(clause: str) -> Callable[[dict[str, Any]], bool]:
    m = _CLAUSE.match(clause)
    if m is None:
        raise bad_request(f"Invalid Value: q (the sandbox understands trashed, mimeType, modifiedTime, name "
                          f"contains and 'id' in parents, joined with and): {clause}", "q")
    if m["trashed"]:
        wanted = m["tv"] == "true"
        return lambda f: f["trashed"] is wanted
    if m["mop"]:
        mime, equal = m["mime"], m["mop"] == "="
        return lambda f: (f["mimeType"] == mime) is equal
    if m["top"]:
        bound, op = rfc3339(parse_time(m["time"], "q")), m["top"]
        return lambda f: _compare(f["modifiedTime"], op, bound)
    if m["name"] is not None:
        needle = m["name"].lower()
        return lambda f: needle in f["name"].lower()
    parent = m["parent"]
    return lambda f: parent in f["parents"]


def _compare(left: str, op: str, right: str) -> bool:
    return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right, "=": left == right}[op]


def _copy(record: dict[str, Any]) -> dict[str, Any]:
    copied = dict(record)
    copied["owners"] = [dict(o) for o in record["owners"]]
    copied["lastModifyingUser"] = dict(record["lastModifyingUser"])
    copied["parents"] = list(record["parents"])
    return copied
