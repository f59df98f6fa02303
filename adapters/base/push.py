"""Writes: a local change as a provider request, and the provider's answer as a PushResult.

The stream's :class:`~adapters.base.spec.PushSpec` names one operation per kind of write
(create, update, delete). Path placeholders come from the integration config and the stored
record (values are percent-encoded as path segments); the changes are the JSON body, wrapped
under ``body_field`` when the API wants that. The idempotency key travels in
``idempotency_header`` when the provider has one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Literal

from adapters.base.model import Connection, Entity, PushResult
from adapters.base.paths import get_path
from adapters.base.request import ApiRequest, deep_merge, join_url, render, render_value
from adapters.base.spec import PushOp, PushSpec, StreamSpec
from shared.errors import FailRun

PushOperation = Literal["create", "update", "delete"]
OPERATIONS: tuple[PushOperation, ...] = ("create", "update", "delete")


def push_op(provider: str, stream: str, spec: StreamSpec, operation: str) -> tuple[PushSpec, PushOp]:
    """The stream's push spec and the operation's :class:`PushOp`; FailRun when not allowed."""
    push = spec.push_spec()
    if push is None:
        raise FailRun(f"{provider} stream {stream!r} does not accept changes", code="push_unsupported")
    op = getattr(push, operation) if operation in OPERATIONS else None
    if op is None:
        allowed = [name for name in OPERATIONS if getattr(push, name) is not None]
        raise FailRun(
            f"{provider} stream {stream!r} does not accept {operation!r} (it accepts {', '.join(allowed)})",
            code="push_unsupported",
        )
    return push, op


def push_request(
    conn: Connection,
    stream: str,
    spec: StreamSpec,
    push: PushSpec,
    op: PushOp,
    record: Mapping[str, Any],
    changes: Mapping[str, Any],
    idempotency_key: str,
    base_url: str,
) -> ApiRequest:
    """The default request of one write (see the module docstring)."""
    values = {**conn.config, **record}
    path = render(op.path, values, what=f"stream {stream!r} push path", quote_values=True)
    body: Any = dict(changes)
    if op.body_field:
        body = {op.body_field: body}
    if op.body is not None:
        body = deep_merge(render_value(op.body, values, what=f"stream {stream!r} push body"), body)
    elif op.method == "DELETE" and not changes:
        body = None
    headers = {push.idempotency_header: idempotency_key} if push.idempotency_header else {}
    return ApiRequest(op.method, join_url(base_url, path), json=body, headers=headers, bucket=spec.rate_bucket)


def push_result(
    stream: str,
    spec: StreamSpec,
    push: PushSpec,
    op: PushOp,
    operation: str,
    record: Mapping[str, Any],
    body: Any,
    map_record: Callable[[str, dict[str, Any]], list[Entity]],
) -> PushResult:
    """The provider's answer as a PushResult: the written record mapped, its id and version."""
    raw = get_path(body, op.record_path) if body is not None else None
    known_id = get_path(dict(record), spec.id_field)
    if operation == "delete":
        external_id = str(known_id) if known_id is not None else ""
        entities = [Entity(spec.entity_type, external_id, dict(record), None, deleted=True)] if external_id else []
    else:
        entities = map_record(stream, raw) if isinstance(raw, dict) else []
        if entities:
            external_id = entities[0].external_id
        elif known_id is not None:
            external_id = str(known_id)
        else:
            raise FailRun(f"stream {stream!r}: the answer to a {operation} carries no {spec.id_field!r}")
    version = get_path(body, push.version_path) if push.version_path and body is not None else None
    if version is None and entities:
        version = entities[0].updated_at
    if isinstance(version, (dict, list)):
        version = None
    if operation != "delete" and version is not None:
        entities = [replace(e, updated_at=e.updated_at or str(version)) for e in entities]
    return PushResult(external_id, None if version is None else str(version), entities)
