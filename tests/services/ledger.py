"""A test-only provider ("ledger") and its loopback sandbox, to drive the sync services' issue-7 paths.

The sandbox speaks a small, real HTTP protocol with every shape the services must handle:

- ``/items`` and ``/notes``: collections listed with an offset ``cursor`` and a ``sync_token``
  delta (a generation number); the last page carries the next ``sync_token`` (as Google
  Calendar's ``nextSyncToken``). A token older than :meth:`LedgerSandbox.expire_tokens`
  answers ``410 Gone``. ``/notes``' delta carries removals as tombstones; ``/items``' does
  not (its stream learns of deletes by full listing).
- ``/channels`` (parent) and ``/channels/{id}/messages`` (child, ``since`` watermark).
- ``POST/PATCH/DELETE /items[/{id}]``: pushes, counted per record in ``pushes``.

The adapter overrides ``fetch_page`` and ``push`` (its protocol is the test's), so the tests
exercise the services through the adapter boundary of issue 7, over real HTTP, the real
queue and the real worker glue.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from adapters.base.adapter import Adapter, ChildScope, Connection, Entity, Page, PushResult
from adapters.base.spec import ProviderSpec, StreamSpec
from sandbox.server import Request, Response, SandboxServer, json_response
from shared.api import inbound_worker, outbound_worker
from shared.domain import IncrementalState, utcnow
from shared.errors import FailRun, ResyncRequired, RetryLater
from tests.conftest import TENANT, hub_environment

PAGE_SIZE = 3


class LedgerSandbox(SandboxServer):
    """The ledger provider's API on loopback; control it with the Python methods."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.gen = 0
        self.collections: dict[str, dict[str, dict[str, Any]]] = {"items": {}, "notes": {}}
        self.channels: dict[str, dict[str, dict[str, Any]]] = {}
        self.expired_below = 0
        self.always_gone = False
        self.faults: list[tuple[str, int]] = []
        self.pushes: dict[str, int] = {}
        self.list_requests = 0
        self.route("GET", r"/(?P<coll>items|notes)", self._list)
        self.route("GET", r"/channels", self._channels)
        self.route("GET", r"/channels/(?P<cid>[^/]+)/messages", self._messages)
        self.route("POST", r"/items", self._create)
        self.route("PATCH", r"/items/(?P<id>[^/]+)", self._update)
        self.route("DELETE", r"/items/(?P<id>[^/]+)", self._delete)

    # -- control -----------------------------------------------------------------------

    def put(self, coll: str, item_id: str, name: str) -> None:
        with self.lock:
            self.gen += 1
            self.collections[coll][item_id] = {"id": item_id, "name": name, "gen": self.gen, "deleted": False}

    def seed(self, coll: str, n: int) -> list[str]:
        ids = [f"{coll[0]}{i:03d}" for i in range(n)]
        for item_id in ids:
            self.put(coll, item_id, f"{coll} {item_id}")
        return ids

    def remove(self, coll: str, item_id: str) -> None:
        with self.lock:
            self.gen += 1
            self.collections[coll][item_id].update(deleted=True, gen=self.gen)

    def expire_tokens(self) -> None:
        """Every sync token issued so far now answers 410 Gone."""
        with self.lock:
            self.expired_below = self.gen + 1

    def fail(self, path_prefix: str, status: int) -> None:
        """Answer the next list request under ``path_prefix`` with ``status``."""
        self.faults.append((path_prefix, status))

    def post(self, cid: str, mid: str, ts: str) -> None:
        self.channels.setdefault(cid, {})[mid] = {"id": mid, "text": f"message {mid}", "ts": ts}

    # -- API ---------------------------------------------------------------------------

    def _fault(self, request: Request) -> Response | None:
        for i, (prefix, status) in enumerate(self.faults):
            if request.path.startswith(prefix):
                del self.faults[i]
                return json_response(status, {"error": f"injected {status}"})
        return None

    def _list(self, request: Request) -> Response:
        self.list_requests += 1
        if (fault := self._fault(request)) is not None:
            return fault
        if self.always_gone:
            return json_response(410, {"error": "listing position gone, whatever you send"})
        coll = request.params["coll"]
        offset = int(request.query.get("cursor") or 0)
        with self.lock:
            token = request.query.get("sync_token")
            if token is not None:
                since = int(token.removeprefix("tok-"))
                if since < self.expired_below:
                    return json_response(410, {"error": "sync token expired; list everything again"})
                rows = self.collections[coll].values()  # only /notes' delta carries removals
                chosen = [r for r in rows if r["gen"] > since and (coll == "notes" or not r["deleted"])]
            else:
                chosen = [r for r in self.collections[coll].values() if not r["deleted"]]
            chosen.sort(key=lambda r: (r["gen"], r["id"]))
            page = [self._render(r) for r in chosen[offset : offset + PAGE_SIZE]]
            more = offset + PAGE_SIZE < len(chosen)
            body: dict[str, Any] = {"items": page, "next": str(offset + PAGE_SIZE) if more else None}
            if not more:
                body["sync_token"] = f"tok-{self.gen}"
        return json_response(200, body)

    @staticmethod
    def _render(record: dict[str, Any]) -> dict[str, Any]:
        """A record as listed; one named ``unmappable`` comes without its id (the adapter skips it)."""
        shown = dict(record)
        if shown["name"] == "unmappable":
            del shown["id"]
        return shown

    def _channels(self, request: Request) -> Response:
        if (fault := self._fault(request)) is not None:
            return fault
        return json_response(200, {"items": [{"id": cid} for cid in sorted(self.channels)], "next": None})

    def _messages(self, request: Request) -> Response:
        since = request.query.get("since") or ""
        found = sorted(
            (m for m in self.channels.get(request.params["cid"], {}).values() if m["ts"] > since),
            key=lambda m: m["ts"],
        )
        return json_response(200, {"items": found, "next": None})

    def _applied(self, item_id: str, record: dict[str, Any]) -> Response:
        self.pushes[item_id] = self.pushes.get(item_id, 0) + 1
        return json_response(200, {**record, "version": f"v{record['gen']}"})

    def _create(self, request: Request) -> Response:
        body = request.json_object()
        item_id = f"new{len(self.collections['items']):03d}"
        self.put("items", item_id, str(body.get("name", "")))
        return self._applied(item_id, self.collections["items"][item_id])

    def _update(self, request: Request) -> Response:
        item_id = request.params["id"]
        if item_id not in self.collections["items"]:
            return json_response(404, {"error": "no such item"})
        self.put("items", item_id, str(request.json_object().get("name", "")))
        return self._applied(item_id, self.collections["items"][item_id])

    def _delete(self, request: Request) -> Response:
        item_id = request.params["id"]
        self.remove("items", item_id)
        return self._applied(item_id, self.collections["items"][item_id])


class LedgerAdapter(Adapter):
    """The ledger provider: a spec plus a ``fetch_page``/``push`` for its test protocol."""

    spec = ProviderSpec(
        name="ledger",
        display_name="Ledger (tests)",
        base_url="http://127.0.0.1:9",
        streams={
            "items": StreamSpec(path="/items", entity_type="item", deletes="full_listing"),
            "notes": StreamSpec(path="/notes", entity_type="note", deletes="tombstone"),
            "channels": StreamSpec(path="/channels", entity_type="channel", deletes="none"),
            "messages": StreamSpec(
                path="/channels/{parent_id}/messages", entity_type="message", parent="channels", deletes="none"
            ),
        },
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._http = httpx.Client(timeout=10)

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self._http.request(method, url, **kwargs)
        if response.status_code == 410:
            raise ResyncRequired(f"ledger: {response.json()['error']}")
        if response.status_code >= 500:
            raise RetryLater(f"ledger answered {response.status_code}")
        if response.status_code != 200:
            raise FailRun(f"ledger answered {response.status_code}: {response.text[:200]}")
        return response.json()

    def fetch_page(
        self, conn: Connection, stream: str, state: IncrementalState, token: str | None, *, parent_id: str | None = None
    ) -> Page:
        spec = self.stream_spec(stream)
        params: dict[str, str] = {"cursor": token} if token else {}
        if not state.lists_everything:
            if state.sync_token and stream in ("items", "notes"):
                params["sync_token"] = state.sync_token
            if state.watermark and stream == "messages":
                params["since"] = state.watermark
        url = conn.base_url + spec.path.format(parent_id=parent_id)
        body = self._call("GET", url, params=params)
        entities: list[Entity] = []
        skipped: list[str] = []
        high = None
        for raw in body["items"]:
            if "id" not in raw:
                skipped.append(f"{stream} record without an id")
                continue
            if raw.get("deleted"):
                entities.append(Entity(spec.entity_type, raw["id"], {"id": raw["id"]}, deleted=True))
                continue
            entities.append(Entity(spec.entity_type, raw["id"], raw, raw.get("ts")))
            if raw.get("ts") and (high is None or raw["ts"] > high):
                high = raw["ts"]
        children = [ChildScope("messages", raw["id"]) for raw in body["items"]] if stream == "channels" else []
        state = state.advanced(high, sync_token=body.get("sync_token"))
        return Page(entities, body.get("next"), state, skipped, children)

    def push(
        self,
        conn: Connection,
        stream: str,
        operation: Literal["create", "update", "delete"],
        record: Mapping[str, Any],
        changes: Mapping[str, Any],
        idempotency_key: str,
    ) -> PushResult:
        url = conn.base_url + "/items"
        if operation == "create":
            body = self._call("POST", url, json=dict(changes))
        elif operation == "update":
            body = self._call("PATCH", f"{url}/{record['id']}", json=dict(changes))
        else:
            body = self._call("DELETE", f"{url}/{record['id']}")
        entity = Entity("item", body["id"], {k: v for k, v in body.items() if k != "version"})
        return PushResult(body["id"], body["version"], [] if operation == "delete" else [entity])


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
def ledger() -> Iterator[LedgerSandbox]:
    sandbox = LedgerSandbox().start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def lhub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger: LedgerSandbox) -> Iterator[Any]:
    """The process-wide hub on embedded backends, with the ledger provider registered and pointed at its sandbox."""
    from adapters import registry
    from shared.runtime import get_hub, reset_hub

    monkeypatch.setitem(registry._PROVIDERS, "ledger", "tests.services.ledger:LedgerAdapter")
    env = hub_environment(tmp_path / "data", IHUB_PROVIDER_BASE_URLS=json.dumps({"ledger": ledger.base_url}))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_hub()
    try:
        yield get_hub()
    finally:
        reset_hub()


def connect(hub: Any, integration_id: str = "led-1") -> Any:
    """A connected ledger integration whose schedules are not due (only what the test does happens)."""
    from datetime import timedelta

    hub.admin.create_integration(TENANT, {"id": integration_id, "provider": "ledger", "display_name": "ledger"})
    integration = hub.admin.set_credential(TENANT, integration_id, {"access_token": "ledger-token"})
    for schedule in hub.repos.schedules.query(TENANT):
        schedule.next_run_at = utcnow() + timedelta(days=1)
        hub.repos.schedules.save(schedule)
    return integration


def pump(hub: Any, limit: int = 1000) -> list[str]:
    """Deliver inbound and outbound messages to their workers as the host does, until none is visible."""
    handled: list[str] = []
    queues = ((hub.settings.sync_inbound_queue, inbound_worker), (hub.settings.sync_outbound_queue, outbound_worker))
    progress = True
    while progress and len(handled) < limit:
        progress = False
        for queue, worker in queues:
            for message in hub.ports.queue.receive(queue) or []:
                worker(message.body, message.message_id, message.delivery_count, message.session_id)
                hub.ports.queue.complete(queue, message.lock_token)
                handled.append(message.message_id)
                progress = True
    return handled


def sync(hub: Any, stream: str, integration_id: str = "led-1") -> Any:
    """Run ``stream`` to its end through the queue and worker; the run as stored."""
    integration = hub.admin.get_integration(TENANT, integration_id)
    run_id = hub.sync.start_run(integration, stream, "manual")
    pump(hub)
    return hub.repos.runs.get(TENANT, run_id)


def records(hub: Any, entity_type: str, *, deleted: bool | None = None) -> dict[str, Any]:
    """Stored records of ``entity_type`` by external id (only live or only deleted ones when asked)."""
    from shared.ports.documents import Where

    found = hub.repos.records.query(TENANT, [Where("entity_type", "=", entity_type)])
    return {r.external_id: r for r in found if deleted is None or r.deleted is deleted}
