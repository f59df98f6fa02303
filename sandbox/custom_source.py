"""Loopback simulator of a custom source: a small records API plus Standard Webhooks deliveries.

This is the shape the hub's generic ``webhook`` provider expects of any system that is not
one of the named providers (``adapters/providers/webhook.py``):

- ``GET /records?limit=&cursor=&updated_since=`` -> ``{"data": [...], "next_cursor": "..."}``
  (absent or empty on the last page), oldest change first; a record is ``{"id", "updated_at",
  ...}``. ``limit`` is capped at ``max_limit``.
- ``PATCH /records/{id}`` merges the JSON body into the record and returns it.
- ``Authorization: Bearer <token>``; 401 otherwise. 429 carries ``Retry-After``.
- Webhooks are signed with Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature: v1,<base64>``) and carry ``{"type": "record.created|updated|deleted",
  "timestamp", "data": record}``.

Faults for tests: :meth:`inject` the next answers (a status, a body that is not JSON, a
repeated cursor).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from adapters.base.verify.model import WebhookKey
from adapters.base.verify.profiles import STANDARD_WEBHOOKS
from adapters.base.verify.registry import build_strategy
from sandbox.server import Request, Response, SandboxServer, json_response, post_webhook

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class CustomSourceSandbox(SandboxServer):
    """A records API and its webhook sender."""

    def __init__(self, records: int = 0, *, token: str = "source-token", max_limit: int = 10, port: int = 0) -> None:
        super().__init__(port=port)
        self._token = token
        self._max_limit = max_limit
        self._lock = threading.RLock()
        self._records: dict[str, dict[str, Any]] = {}
        self._clock = EPOCH
        self._faults: list[str | int] = []
        self.request_log: list[tuple[str, str, int]] = []
        self.route("GET", "/records", self._list)
        self.route("PATCH", r"/records/(?P<id>[\w.-]+)", self._patch)
        for _ in range(records):
            self.create(title=f"record {len(self._records) + 1}")

    # -- data control ----------------------------------------------------------------------

    def _tick(self) -> str:
        self._clock += timedelta(seconds=1)
        return self._clock.strftime("%Y-%m-%dT%H:%M:%SZ")

    def create(self, **fields: Any) -> dict[str, Any]:
        """Add a record (a fresh id, ``updated_at`` the next clock step) and return it."""
        with self._lock:
            record = {"id": f"rec_{len(self._records) + 1:06d}", **fields, "updated_at": self._tick()}
            self._records[record["id"]] = record
            return dict(record)

    def update(self, record_id: str, **fields: Any) -> dict[str, Any]:
        """Change a record (KeyError if unknown)."""
        with self._lock:
            record = self._records[record_id]
            record.update(fields, updated_at=self._tick())
            return dict(record)

    def delete(self, record_id: str) -> None:
        """Remove a record (the next full listing no longer shows it)."""
        with self._lock:
            del self._records[record_id]

    def records(self) -> list[dict[str, Any]]:
        """Live records, oldest change first."""
        with self._lock:
            return [dict(r) for r in sorted(self._records.values(), key=lambda r: (r["updated_at"], r["id"]))]

    def inject(self, *faults: str | int) -> None:
        """The next answers: an HTTP status (429 carries ``Retry-After: 1``), ``"malformed"`` or ``"repeat_cursor"``."""
        with self._lock:
            self._faults.extend(faults)

    # -- HTTP ------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self._token}":
            response = json_response(401, {"error": "unauthorized"})
        else:
            with self._lock:
                fault = self._faults.pop(0) if self._faults and self._faults[0] != "repeat_cursor" else None
            if isinstance(fault, int):
                headers = {"Retry-After": "1"} if fault == 429 else {}
                response = json_response(fault, {"error": "injected"}, headers)
            elif fault == "malformed":
                response = Response(200, {"Content-Type": "application/json"}, b'{"data": [')
            else:
                response = self.dispatch(request)
        with self._lock:
            self.request_log.append((request.method, request.path, response.status))
        return response

    def _list(self, request: Request) -> Response:
        raw_limit = request.query.get("limit", str(self._max_limit))
        limit = min(int(raw_limit), self._max_limit) if raw_limit.isascii() and raw_limit.isdigit() else self._max_limit
        since = request.query.get("updated_since")
        rows = [r for r in self.records() if since is None or r["updated_at"] > since]
        cursor = request.query.get("cursor", "")
        start = int(cursor) if cursor.isascii() and cursor.isdigit() else 0
        page = rows[start : start + max(1, limit)]
        body: dict[str, Any] = {"data": page}
        if start + len(page) < len(rows):
            body["next_cursor"] = str(start + len(page))
            with self._lock:
                if self._faults and self._faults[0] == "repeat_cursor" and start > 0:
                    self._faults.pop(0)
                    body["next_cursor"] = "0"
        return json_response(200, body)

    def _patch(self, request: Request) -> Response:
        try:
            changes = request.json_object()
            return json_response(200, self.update(request.params["id"], **changes))
        except KeyError:
            return json_response(404, {"error": "not_found"})
        except ValueError as exc:
            return json_response(400, {"error": "invalid_json", "message": str(exc)})

    # -- webhooks --------------------------------------------------------------------------

    def send_webhook(
        self, url: str, secret: str, event: str, record: dict[str, Any], *, webhook_id: str | None = None,
        timestamp: float | None = None, client: httpx.Client | None = None,
    ) -> httpx.Response:
        """POST a Standard Webhooks delivery of ``event`` about ``record``."""
        now = time.time() if timestamp is None else timestamp
        body = json.dumps({"type": event, "timestamp": datetime.fromtimestamp(now, UTC).isoformat(),
                           "data": record}, separators=(",", ":")).encode()
        signed = build_strategy(STANDARD_WEBHOOKS).sign(
            body, WebhookKey(secret=SecretStr(secret)), now=now, delivery_id=webhook_id or f"msg_{uuid.uuid4().hex}"
        )
        return post_webhook(url, signed.body, {**signed.headers, "Content-Type": "application/json"}, client)
