"""The ops of ``SqliteDocumentStore.batch``: each applied inside the batch's one transaction.

A failing op raises the port's error (DocumentExists, PreconditionFailed, DocumentNotFound)
and the caller's transaction rolls the whole batch back.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from shared.backends.sqlite_documents import (
    _ALIVE,
    _COLUMNS,
    _CREATE,
    _DELETE,
    _DELETE_IF,
    _ENCODER,
    _KEY,
    _UPDATE,
    _UPDATE_IF,
    _UPSERT,
    SYSTEM_KEYS,
    expiry,
    require_key,
)
from shared.errors import InvalidInput
from shared.ports.documents import PARTITION_KEY, BatchOp, DocumentExists, DocumentNotFound, PreconditionFailed


def create_many(
    conn: sqlite3.Connection, container: str, tenant: str, ops: Sequence[BatchOp], now: float, ts: int
) -> list[str | None]:
    """Several creates as one ``executemany``; DocumentExists when any id is taken (the batch rolls back)."""
    rows = []
    etags: list[str | None] = []
    for op in ops:
        text, expires = _batch_body(op, tenant, now)
        etag = os.urandom(12).hex()
        etags.append(etag)
        rows.append((container, tenant, op.doc_id, etag, ts, expires, text, now))
    cursor = conn.executemany(_CREATE, rows)
    if cursor.rowcount != len(rows):
        raise DocumentExists(f"one of {len(rows)} documents created together already exists in {container}/{tenant}")
    return etags


def apply_op(conn: sqlite3.Connection, container: str, tenant: str, op: BatchOp, now: float, ts: int) -> str | None:
    """Apply one batch op on ``conn`` (inside the caller's transaction); its new ETag (None: deleted)."""
    where = f"{container}/{tenant}/{op.doc_id}"
    if op.kind == "delete":
        key = (container, tenant, op.doc_id, now)
        if op.if_match is None:
            if not conn.execute(_DELETE, key).rowcount:
                raise DocumentNotFound(f"document {where} does not exist")  # as a Cosmos batch says it (404)
        elif not conn.execute(_DELETE_IF, (*key, op.if_match)).rowcount:
            raise PreconditionFailed(f"document {where} changed since ETag {op.if_match!r} (or is gone)")
        return None
    if op.kind == "patch":
        patched = _patch_in(conn, container, tenant, op, now, ts)
        if patched is None:
            raise PreconditionFailed(f"document {where} changed since ETag {op.if_match!r} (or is gone)")
        return patched
    text, expires = _batch_body(op, tenant, now)
    etag = os.urandom(12).hex()
    if op.kind == "create":
        if conn.execute(_CREATE, (container, tenant, op.doc_id, etag, ts, expires, text, now)).rowcount == 0:
            raise DocumentExists(f"document {op.doc_id!r} already exists in {container}/{tenant}")
    elif op.kind == "upsert" and op.if_match is None:
        conn.execute(_UPSERT, (container, tenant, op.doc_id, etag, ts, expires, text))
    else:
        args: tuple[Any, ...] = (etag, ts, expires, text, container, tenant, op.doc_id, now)
        if op.if_match is None:
            changed = conn.execute(_UPDATE, args).rowcount
        else:
            changed = conn.execute(_UPDATE_IF, (*args, op.if_match)).rowcount
        if not changed:
            if op.if_match is not None:
                raise PreconditionFailed(f"document {where} changed since ETag {op.if_match!r} (or is gone)")
            raise DocumentNotFound(f"document {where} does not exist")
    return etag

def _batch_body(op: BatchOp, tenant: str, now: float) -> tuple[str, float | None]:
    doc = op.doc
    if not isinstance(doc, dict):
        raise InvalidInput(f"batch {op.kind} of {op.doc_id!r} needs the document")
    if doc.get("id") != op.doc_id or doc.get(PARTITION_KEY) != tenant:
        raise InvalidInput(f"batch {op.kind}: document {doc.get('id')!r} is not {op.doc_id!r} in partition {tenant!r}")
    require_key(op.doc_id, "id")
    expires = expiry(doc, now)
    if op.encoded is not None:
        return op.encoded.decode(), expires
    body = {k: v for k, v in doc.items() if k not in SYSTEM_KEYS}
    try:
        return orjson.dumps(body).decode(), expires
    except TypeError as exc:
        raise InvalidInput(f"document {op.doc_id!r} is not JSON-serialisable: {exc}") from exc

def _patch_in(
    conn: sqlite3.Connection, container: str, tenant: str, op: BatchOp, now: float, ts: int
) -> str | None:
    fields = op.fields or {}
    paths: list[str] = []
    args: list[Any] = []
    for name, value in fields.items():
        if name in _COLUMNS or name in SYSTEM_KEYS or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            raise InvalidInput(f"cannot patch field {name!r}: only plain top-level fields")
        args.append(_ENCODER.encode(value))
        paths.append(f"'$.{name}', json(?)")  # safe: the name matched the identifier regex
    setters = f"body = json_set(body, {', '.join(paths)})" if paths else "body = body"
    sql = f"UPDATE documents SET etag = ?, ts = ?, {setters} WHERE {_KEY} AND {_ALIVE}"
    etag = os.urandom(12).hex()
    params: list[Any] = [etag, ts, *args, container, tenant, op.doc_id, now]
    if op.if_match is not None:
        sql += " AND etag = ?"
        params.append(op.if_match)
    return etag if conn.execute(sql, params).rowcount else None
