"""Embedded document store: one SQLite file, Cosmos-like semantics.

One row per document keyed by ``(container, tenant_id, id)``; the JSON body is stored as
text and queried with ``json_extract``. Writes are single statements, so conditional
writes (``if_match``) are atomic across threads and processes. The file runs in WAL mode
with ``synchronous=NORMAL`` and a 30 s busy timeout; each thread gets its own connection.

Query semantics follow Cosmos DB: comparing values of different JSON types never matches
(so ``!=`` and the range operators skip documents whose field is missing, null or of
another type), ``= None`` matches a missing or null field, strings compare as strings.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shared.backends.sqlite_base import SqliteFile, transaction
from shared.errors import InvalidInput
from shared.ports.documents import (
    PARTITION_KEY,
    BatchOp,
    Document,
    DocumentExists,
    DocumentNotFound,
    PreconditionFailed,
    Where,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    container  TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    etag       TEXT NOT NULL,
    ts         INTEGER NOT NULL,
    expires_at REAL,
    body       TEXT NOT NULL,
    PRIMARY KEY (container, tenant_id, id)
);
CREATE INDEX IF NOT EXISTS documents_expiry ON documents (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS documents_nkey ON documents (container, tenant_id, json_extract(body, '$.nkey'))
    WHERE json_extract(body, '$.nkey') IS NOT NULL;
CREATE INDEX IF NOT EXISTS documents_fkey ON documents (container, tenant_id, json_extract(body, '$.fkey'))
    WHERE json_extract(body, '$.fkey') IS NOT NULL;
"""
# The engine's dedupe lookups (shared.engine): natural keys and fuzzy blocks. Partial indexes, so
# documents without those fields (every other container) cost nothing.

_ALIVE = "(expires_at IS NULL OR expires_at > ?)"
_KEY = "container = ? AND tenant_id = ? AND id = ?"
_UPSERT = (
    "INSERT INTO documents (container, tenant_id, id, etag, ts, expires_at, body) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (container, tenant_id, id) DO UPDATE SET etag = excluded.etag, ts = excluded.ts, "
    "expires_at = excluded.expires_at, body = excluded.body"
)
# Insert, or take over the slot of an expired (not yet purged) document; rowcount 0 means "exists".
_CREATE = _UPSERT + " WHERE documents.expires_at IS NOT NULL AND documents.expires_at <= ?"
_UPDATE = f"UPDATE documents SET etag = ?, ts = ?, expires_at = ?, body = ? WHERE {_KEY} AND {_ALIVE}"
_UPDATE_IF = _UPDATE + " AND etag = ?"
_READ = f"SELECT etag, ts, body FROM documents WHERE {_KEY} AND {_ALIVE}"
_EXISTS = f"SELECT 1 FROM documents WHERE {_KEY} AND {_ALIVE}"
_DELETE = f"DELETE FROM documents WHERE {_KEY} AND {_ALIVE}"
_DELETE_IF = _DELETE + " AND etag = ?"
_PURGE = "DELETE FROM documents WHERE expires_at IS NOT NULL AND expires_at <= ?"
_PURGE_EVERY = 60.0

# Helpers below without a leading underscore are shared with the Cosmos backend.
# Stored separately (etag/ts columns) or Cosmos-only: never part of the stored body.
SYSTEM_KEYS = frozenset({"_etag", "_ts", "_rid", "_self", "_attachments"})
FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_BAD_KEY_CHARS = re.compile(r"[/\\?#]")  # Cosmos rejects these in ids and partition keys.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_SQL_OPS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_TYPES = {"str": "('text')", "num": "('integer', 'real')", "bool": "('true', 'false')"}
# Fields that live in columns: (value expression, SQL type-name literal as json_type() spells it).
_COLUMNS = {
    "id": ("id", "'text'"),
    PARTITION_KEY: ("tenant_id", "'text'"),
    "_etag": ("etag", "'text'"),
    "_ts": ("ts", "'integer'"),
}


def require_key(value: object, name: str) -> str:
    """Validate an ``id``/``tenant_id`` value (shared by both document backends).

    Args:
        value: The value found in the document or passed by the caller.
        name: The field name, for the error message.

    Returns:
        The value, known to be a non-empty string Cosmos accepts.

    Raises:
        InvalidInput: Missing, empty, not a string, or containing ``/ \\ ? #``.
    """
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"document field '{name}' is required and must be a non-empty string")
    if _BAD_KEY_CHARS.search(value):
        raise InvalidInput(f"document field '{name}' must not contain '/', '\\', '?' or '#'")
    return value


def expiry(doc: Document, now: float) -> float | None:
    """Epoch second at which ``doc`` expires (Cosmos per-item ``ttl``), or None if it never does.

    Raises:
        InvalidInput: ``ttl`` is present but not a positive integer, -1 or None.
    """
    ttl = doc.get("ttl")
    if ttl is None:
        return None
    if type(ttl) is not int or ttl == 0 or ttl < -1:
        raise InvalidInput("document field 'ttl' must be a positive integer (seconds) or -1")
    return None if ttl == -1 else now + ttl


def value_kind(value: object) -> str:
    """Classify a query value as ``str``, ``num``, ``bool`` or ``null``.

    Raises:
        InvalidInput: The value is not a JSON scalar.
    """
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "num"
    if isinstance(value, str):
        return "str"
    if value is None:
        return "null"
    raise InvalidInput(f"query values must be str, int, float, bool or None, not {type(value).__name__}")


def _field(field: str) -> tuple[str, str]:
    """SQL (value, json type) expressions for a validated field name."""
    column = _COLUMNS.get(field)
    if column is not None:
        return column
    if not isinstance(field, str) or not FIELD_RE.fullmatch(field):
        raise InvalidInput(f"invalid field name {field!r}: use dotted identifiers like 'state.watermark'")
    path = "'$." + field + "'"  # safe: the regex admits only [A-Za-z0-9_.]
    return f"json_extract(body, {path})", f"json_type(body, {path})"


def _condition(cond: Where, params: list[Any]) -> str:
    if cond.op == "contains":
        if cond.field in _COLUMNS:
            raise InvalidInput(f"'contains' needs an array field, not {cond.field!r}")
        _field(cond.field)  # validates the name
        kind = value_kind(cond.value)
        if kind == "null":
            raise InvalidInput(f"'contains' on {cond.field!r} takes a str, number or bool")
        params.append(cond.value)
        path = "'$." + cond.field + "'"
        each = f"EXISTS (SELECT 1 FROM json_each(body, {path}) WHERE type IN {_TYPES[kind]} AND value = ?)"
        return f"(json_type(body, {path}) = 'array' AND {each})"
    value_sql, type_sql = _field(cond.field)
    null_sql = f"COALESCE({type_sql}, 'null') = 'null'"
    if cond.op == "in":
        if isinstance(cond.value, str | bytes | dict) or not isinstance(cond.value, list | tuple | set | frozenset):
            raise InvalidInput(f"'in' on {cond.field!r} takes a list of values")
        if cond.value and all(type(item) is str for item in cond.value):  # the common case, one group
            params.extend(cond.value)
            return f"({type_sql} IN {_TYPES['str']} AND {value_sql} IN ({', '.join('?' * len(cond.value))}))"
        groups: dict[str, list[Any]] = {}
        for item in cond.value:
            groups.setdefault(value_kind(item), []).append(item)
        parts = [null_sql] if groups.pop("null", None) else []
        for kind, items in groups.items():
            marks = ", ".join("?" * len(items))
            parts.append(f"({type_sql} IN {_TYPES[kind]} AND {value_sql} IN ({marks}))")
            params.extend(items)
        return "(" + " OR ".join(parts) + ")" if parts else "0"
    sql_op = _SQL_OPS.get(cond.op)
    if sql_op is None:
        raise InvalidInput(f"unsupported query operator {cond.op!r}")
    kind = value_kind(cond.value)
    if kind == "null":
        if cond.op == "=":
            return null_sql
        if cond.op == "!=":
            return f"NOT {null_sql}"
        raise InvalidInput(f"operator {cond.op!r} cannot compare {cond.field!r} with None")
    params.append(cond.value)
    return f"({type_sql} IN {_TYPES[kind]} AND {value_sql} {sql_op} ?)"


def _loaded(text: str, etag: str, ts: int) -> Document:
    """A fresh document from its stored JSON (the caller's input is never aliased)."""
    doc: Document = json.loads(text)
    doc["_etag"], doc["_ts"] = etag, ts
    return doc


def _filter_sql(container: str, partition_key: str | None, where: Sequence[Where], now: float) -> tuple[str, list[Any]]:
    params: list[Any] = [container, now]
    sql = f"WHERE container = ? AND {_ALIVE}"
    if partition_key is not None:
        sql += " AND tenant_id = ?"
        params.append(require_key(partition_key, PARTITION_KEY))
    for cond in where:
        sql += " AND " + _condition(cond, params)
    return sql, params


class SqliteDocumentStore:
    """Document store in one SQLite file (the embedded default backend).

    Safe to share between threads (one connection per thread) and between processes
    using the same file (WAL mode, busy timeout, single-statement conditional writes).

    Args:
        path: The database file; its parent directory is created if missing.
        clock: Returns the current epoch time in seconds; injectable for TTL tests.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._db = SqliteFile(path, owner="SqliteDocumentStore", reopen_after_close=True)
        self._path = self._db.path
        self._clock = clock
        self._next_purge = 0.0
        self._conn = self._db.conn
        self._conn().executescript(_SCHEMA)

    @staticmethod
    def _prepare(doc: Document, now: float) -> tuple[str, str, str, float | None]:
        if not isinstance(doc, dict):
            raise InvalidInput("a document must be a JSON object (dict)")
        doc_id = require_key(doc.get("id"), "id")
        tenant = require_key(doc.get(PARTITION_KEY), PARTITION_KEY)
        expires = expiry(doc, now)
        body = {k: v for k, v in doc.items() if k not in SYSTEM_KEYS}
        try:
            text = _ENCODER.encode(body)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"document {doc_id!r} is not JSON-serialisable: {exc}") from exc
        return text, tenant, doc_id, expires

    def _maybe_purge(self, conn: sqlite3.Connection, now: float) -> None:
        if now >= self._next_purge:
            self._next_purge = now + _PURGE_EVERY
            conn.execute(_PURGE, (now,))

    def create(self, container: str, doc: Document) -> Document:
        """Insert ``doc`` (needs ``id`` and ``tenant_id``) and return it with ``_etag`` and ``_ts``.

        Raises:
            DocumentExists: A live document with that id exists in the partition.
            InvalidInput: ``id``/``tenant_id``/``ttl`` invalid, or the document is not JSON.
        """
        now = self._clock()
        text, tenant, doc_id, expires = self._prepare(doc, now)
        conn = self._conn()
        self._maybe_purge(conn, now)
        etag, ts = os.urandom(12).hex(), int(now)
        if conn.execute(_CREATE, (container, tenant, doc_id, etag, ts, expires, text, now)).rowcount == 0:
            raise DocumentExists(f"document {doc_id!r} already exists in {container}/{tenant}")
        return _loaded(text, etag, ts)

    def create_on(self, conn: sqlite3.Connection, container: str, doc: Document, now: float) -> bool:
        """Insert ``doc`` on a connection the caller holds in a write transaction (same file): False when it exists.

        For writes that must commit together with another table of the same file (the intake
        ledger's event and its queue message).
        """
        text, tenant, doc_id, expires = self._prepare(doc, now)
        etag, ts = os.urandom(12).hex(), int(now)
        return bool(conn.execute(_CREATE, (container, tenant, doc_id, etag, ts, expires, text, now)).rowcount)

    def upsert(self, container: str, doc: Document, *, if_match: str | None = None) -> Document:
        """Insert or replace ``doc``; returns it with ``_etag`` and ``_ts``.

        Args:
            container: Container name.
            doc: The document; needs ``id`` and ``tenant_id``.
            if_match: When given, the document must exist with this ETag.

        Raises:
            PreconditionFailed: ``if_match`` given and the document is absent or has another ETag.
        """
        if if_match is not None:
            return self._update(container, doc, if_match, strict=True)
        now = self._clock()
        text, tenant, doc_id, expires = self._prepare(doc, now)
        conn = self._conn()
        self._maybe_purge(conn, now)
        etag, ts = os.urandom(12).hex(), int(now)
        conn.execute(_UPSERT, (container, tenant, doc_id, etag, ts, expires, text))
        return _loaded(text, etag, ts)

    def replace(self, container: str, doc: Document, *, if_match: str | None = None) -> Document:
        """Replace an existing document; returns it with ``_etag`` and ``_ts``.

        Args:
            container: Container name.
            doc: The new document; needs ``id`` and ``tenant_id``.
            if_match: When given, the current ETag must equal it.

        Raises:
            DocumentNotFound: No live document with that id.
            PreconditionFailed: The ETag no longer matches.
        """
        return self._update(container, doc, if_match, strict=False)

    def _update(self, container: str, doc: Document, if_match: str | None, *, strict: bool) -> Document:
        """Conditional/plain update; ``strict`` makes a missing document a PreconditionFailed (upsert)."""
        now = self._clock()
        text, tenant, doc_id, expires = self._prepare(doc, now)
        conn = self._conn()
        etag, ts = os.urandom(12).hex(), int(now)
        if if_match is None:
            changed = conn.execute(_UPDATE, (etag, ts, expires, text, container, tenant, doc_id, now)).rowcount
        else:
            args = (etag, ts, expires, text, container, tenant, doc_id, now, if_match)
            changed = conn.execute(_UPDATE_IF, args).rowcount
        if not changed:
            where = f"{container}/{tenant}/{doc_id}"
            if if_match is not None and (strict or conn.execute(_EXISTS, (container, tenant, doc_id, now)).fetchone()):
                raise PreconditionFailed(f"document {where} changed since ETag {if_match!r} (or is gone)")
            raise DocumentNotFound(f"document {where} does not exist")
        return _loaded(text, etag, ts)

    def read(self, container: str, partition_key: str, doc_id: str) -> Document | None:
        """Point read of ``doc_id`` in partition ``partition_key`` (the ``tenant_id``).

        Returns:
            The document with ``_etag`` and ``_ts``, or ``None`` when absent or expired.
        """
        row = self._conn().execute(_READ, (container, partition_key, doc_id, self._clock())).fetchone()
        if row is None:
            if not partition_key or not doc_id:
                require_key(partition_key, PARTITION_KEY)
                require_key(doc_id, "id")
            return None
        return _loaded(row[2], row[0], row[1])

    def delete(self, container: str, partition_key: str, doc_id: str, *, if_match: str | None = None) -> bool:
        """Delete ``doc_id`` from partition ``partition_key``; with ``if_match`` only at that ETag.

        Returns:
            True when a live document was deleted, False when it was absent.

        Raises:
            PreconditionFailed: The document exists with another ETag.
        """
        require_key(partition_key, PARTITION_KEY)
        require_key(doc_id, "id")
        now = self._clock()
        conn = self._conn()
        key = (container, partition_key, doc_id, now)
        if if_match is None:
            return conn.execute(_DELETE, key).rowcount > 0
        if conn.execute(_DELETE_IF, (*key, if_match)).rowcount:
            return True
        if conn.execute(_EXISTS, key).fetchone():
            raise PreconditionFailed(f"document {container}/{partition_key}/{doc_id} changed since ETag {if_match!r}")
        return False

    def patch(
        self, container: str, partition_key: str, doc_id: str, fields: Mapping[str, Any], *, if_match: str | None = None
    ) -> bool:
        """Set top-level ``fields`` of a live document in one statement (``json_set``); see the port.

        Returns:
            True when the document was patched, False when it is absent.

        Raises:
            PreconditionFailed: ``if_match`` given and the document has another ETag.
            InvalidInput: A field name is not a plain identifier, or a value is not JSON.
        """
        require_key(partition_key, PARTITION_KEY)
        require_key(doc_id, "id")
        if not fields:
            return self.read(container, partition_key, doc_id) is not None
        paths: list[str] = []
        args: list[Any] = []
        for name, value in fields.items():
            if name in _COLUMNS or name in SYSTEM_KEYS or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
                raise InvalidInput(f"cannot patch field {name!r}: only plain top-level fields")
            try:
                args.append(_ENCODER.encode(value))
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"patch value of {name!r} is not JSON-serialisable: {exc}") from exc
            paths.append(f"'$.{name}', json(?)")  # safe: the name matched the identifier regex
        now = self._clock()
        setters = ", ".join(paths)
        sql = f"UPDATE documents SET etag = ?, ts = ?, body = json_set(body, {setters}) WHERE {_KEY} AND {_ALIVE}"
        params: list[Any] = [os.urandom(12).hex(), int(now), *args, container, partition_key, doc_id, now]
        if if_match is not None:
            sql += " AND etag = ?"
            params.append(if_match)
        conn = self._conn()
        if conn.execute(sql, params).rowcount:
            return True
        if if_match is not None and conn.execute(_EXISTS, (container, partition_key, doc_id, now)).fetchone():
            raise PreconditionFailed(f"document {container}/{partition_key}/{doc_id} changed since ETag {if_match!r}")
        return False

    def query(
        self,
        container: str,
        *,
        partition_key: str | None = None,
        where: Sequence[Where] = (),
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[Document]:
        """Documents matching all conditions.

        Args:
            container: Container name.
            partition_key: One tenant, or ``None`` for a cross-partition query.
            where: Conditions, ANDed.
            order_by: Field (dotted path allowed) to sort by.
            descending: Sort descending.
            limit: Maximum number of documents.

        Returns:
            The matching documents, each with ``_etag`` and ``_ts``.

        Raises:
            InvalidInput: Bad field name, operator, value or limit.
        """
        sql, params = _filter_sql(container, partition_key, where, self._clock())
        if order_by is not None:
            direction = "DESC" if descending else "ASC"
            sql += f" ORDER BY {_field(order_by)[0]} {direction}, tenant_id {direction}, id {direction}"
        if limit is not None:
            if type(limit) is not int or limit < 0:
                raise InvalidInput("limit must be a non-negative integer")
            sql += " LIMIT ?"
            params.append(limit)
        rows = self._conn().execute("SELECT body, etag, ts FROM documents " + sql, params)
        return [_loaded(text, etag, ts) for text, etag, ts in rows]

    def count(self, container: str, *, partition_key: str | None = None, where: Sequence[Where] = ()) -> int:
        """Number of live documents matching all ``where`` conditions (see :meth:`query`)."""
        sql, params = _filter_sql(container, partition_key, where, self._clock())
        row = self._conn().execute("SELECT COUNT(*) FROM documents " + sql, params).fetchone()
        return int(row[0])

    def batch(self, container: str, partition_key: str, ops: Sequence[BatchOp]) -> list[str | None]:
        """Apply ``ops`` in one write transaction (see the port); rolled back whole on any error."""
        from shared.backends.sqlite_batch import apply_op, create_many  # beside this module (its size)

        require_key(partition_key, PARTITION_KEY)
        if not ops:
            return []
        now = self._clock()
        ts = int(now)
        conn = self._conn()
        self._maybe_purge(conn, now)
        etags: list[str | None] = []
        with transaction(conn):
            start = 0
            while start < len(ops):
                end = start
                while end < len(ops) and ops[end].kind == "create":
                    end += 1
                if end - start > 1:  # a run of creates (a first sync's page): one executemany
                    etags += create_many(conn, container, partition_key, ops[start:end], now, ts)
                    start = end
                    continue
                etags.append(apply_op(conn, container, partition_key, ops[start], now, ts))
                start += 1
        return etags

    def close(self) -> None:
        """Close every connection this store opened; later calls open new ones."""
        self._db.close()
