"""Contract suite for the DocumentStore port, run against every backend.

``sqlite`` always runs (a fresh file per test, injected clock). ``cosmos`` runs only when
``COSMOS_ENDPOINT`` is set (``COSMOS_KEY`` or DefaultAzureCredential; database
``COSMOS_DATABASE``, default ``ihub-test``): one unique container per test run, deleted at
the end; tests isolate themselves with unique tenant ids and a per-test ``tag`` field.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shared.backends.sqlite_documents import SqliteDocumentStore
from shared.errors import InvalidInput
from shared.ports.documents import (
    PARTITION_KEY,
    DocumentExists,
    DocumentNotFound,
    DocumentStore,
    PreconditionFailed,
    Where,
)

ROOT = Path(__file__).resolve().parents[2]
COSMOS = pytest.param(
    "cosmos",
    marks=[
        pytest.mark.azure,
        pytest.mark.skipif(not os.environ.get("COSMOS_ENDPOINT"), reason="COSMOS_ENDPOINT not set"),
    ],
)


class FakeClock:
    """Injectable clock: epoch seconds that only move when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Ctx:
    """What a contract test needs: a store, a container, two fresh tenants and a tag."""

    backend: str
    store: DocumentStore
    container: str
    clock: FakeClock | None
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def t1(self) -> str:
        return f"tenant-a-{self.tag}"

    @property
    def t2(self) -> str:
        return f"tenant-b-{self.tag}"

    def doc(self, doc_id: str, tenant: str | None = None, **fields: Any) -> dict[str, Any]:
        return {"id": doc_id, PARTITION_KEY: tenant or self.t1, "tag": self.tag, **fields}

    def mine(self) -> Where:
        """Restricts cross-partition queries to this test's documents (shared Cosmos container)."""
        return Where("tag", "=", self.tag)

    def expire(self, ttl_seconds: int) -> None:
        """Let ``ttl_seconds`` pass: advance the fake clock, or really wait on Cosmos."""
        if self.clock is not None:
            self.clock.advance(ttl_seconds + 0.001)
        else:
            time.sleep(ttl_seconds + 2.5)


@pytest.fixture(scope="session")
def cosmos_target() -> Iterator[tuple[DocumentStore, str]]:
    from shared.backends.cosmos_documents import CosmosDocumentStore

    endpoint = os.environ["COSMOS_ENDPOINT"]
    database = os.environ.get("COSMOS_DATABASE", "ihub-test")
    credential: Any = os.environ.get("COSMOS_KEY")
    if not credential:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    container = f"contract-{uuid.uuid4().hex[:10]}"
    store = CosmosDocumentStore(endpoint, database, credential)
    try:
        yield store, container
    finally:
        store.close()
        from azure.cosmos import CosmosClient

        with CosmosClient(endpoint, credential=credential) as client:
            client.get_database_client(database).delete_container(container)


@pytest.fixture(params=["sqlite", COSMOS])
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ctx]:
    if request.param == "sqlite":
        clock = FakeClock()
        store = SqliteDocumentStore(tmp_path / "docs.sqlite", clock=clock)
        yield Ctx("sqlite", store, "things", clock)
        store.close()
    else:
        cosmos_store, container = request.getfixturevalue("cosmos_target")
        yield Ctx("cosmos", cosmos_store, container, None)


def ids(docs: list[dict[str, Any]]) -> list[str]:
    return [d["id"] for d in docs]


# --- point operations --------------------------------------------------------------------


def test_create_read_round_trip(ctx: Ctx) -> None:
    doc = ctx.doc("a", name="Ada", state={"watermark": "2024-01-01T00:00:00Z"}, _etag="stale", _ts=1)
    created = ctx.store.create(ctx.container, doc)
    assert isinstance(created["_etag"], str) and created["_etag"] not in ("", "stale")
    assert isinstance(created["_ts"], int) and created["_ts"] > 1
    assert doc["_etag"] == "stale"  # the caller's dict is not mutated
    read = ctx.store.read(ctx.container, ctx.t1, "a")
    assert read is not None
    assert read == created
    assert read["name"] == "Ada" and read["state"] == {"watermark": "2024-01-01T00:00:00Z"}
    assert not {"_rid", "_self", "_attachments"} & read.keys()


def test_read_missing_is_none(ctx: Ctx) -> None:
    assert ctx.store.read(ctx.container, ctx.t1, "nope") is None


def test_create_duplicate_raises(ctx: Ctx) -> None:
    ctx.store.create(ctx.container, ctx.doc("a", v=1))
    with pytest.raises(DocumentExists):
        ctx.store.create(ctx.container, ctx.doc("a", v=2))
    read = ctx.store.read(ctx.container, ctx.t1, "a")
    assert read is not None and read["v"] == 1


def test_upsert_inserts_then_replaces(ctx: Ctx) -> None:
    first = ctx.store.upsert(ctx.container, ctx.doc("a", v=1))
    second = ctx.store.upsert(ctx.container, ctx.doc("a", v=2))
    assert second["_etag"] != first["_etag"]
    read = ctx.store.read(ctx.container, ctx.t1, "a")
    assert read is not None and read["v"] == 2 and read["_etag"] == second["_etag"]


def test_replace_if_match(ctx: Ctx) -> None:
    created = ctx.store.create(ctx.container, ctx.doc("a", v=1))
    updated = ctx.store.replace(ctx.container, {**created, "v": 2}, if_match=created["_etag"])
    assert updated["v"] == 2 and updated["_etag"] != created["_etag"]
    with pytest.raises(PreconditionFailed):
        ctx.store.replace(ctx.container, {**created, "v": 3}, if_match=created["_etag"])
    unconditional = ctx.store.replace(ctx.container, {**created, "v": 4})
    read = ctx.store.read(ctx.container, ctx.t1, "a")
    assert read is not None and read["v"] == 4 and read["_etag"] == unconditional["_etag"]


def test_replace_missing_raises_not_found(ctx: Ctx) -> None:
    with pytest.raises(DocumentNotFound):
        ctx.store.replace(ctx.container, ctx.doc("ghost"))
    with pytest.raises(DocumentNotFound):
        ctx.store.replace(ctx.container, ctx.doc("ghost"), if_match="whatever")


def test_upsert_if_match(ctx: Ctx) -> None:
    created = ctx.store.create(ctx.container, ctx.doc("a", v=1))
    updated = ctx.store.upsert(ctx.container, ctx.doc("a", v=2), if_match=created["_etag"])
    assert updated["v"] == 2
    with pytest.raises(PreconditionFailed):
        ctx.store.upsert(ctx.container, ctx.doc("a", v=3), if_match=created["_etag"])
    with pytest.raises(PreconditionFailed):  # conditional upsert never creates
        ctx.store.upsert(ctx.container, ctx.doc("ghost"), if_match=created["_etag"])
    assert ctx.store.read(ctx.container, ctx.t1, "ghost") is None


def test_delete(ctx: Ctx) -> None:
    created = ctx.store.create(ctx.container, ctx.doc("a"))
    ctx.store.upsert(ctx.container, ctx.doc("a", v=2))
    with pytest.raises(PreconditionFailed):
        ctx.store.delete(ctx.container, ctx.t1, "a", if_match=created["_etag"])
    current = ctx.store.read(ctx.container, ctx.t1, "a")
    assert current is not None
    assert ctx.store.delete(ctx.container, ctx.t1, "a", if_match=current["_etag"]) is True
    assert ctx.store.read(ctx.container, ctx.t1, "a") is None
    assert ctx.store.delete(ctx.container, ctx.t1, "a") is False
    assert ctx.store.delete(ctx.container, ctx.t1, "a", if_match=current["_etag"]) is False
    ctx.store.create(ctx.container, ctx.doc("b"))
    assert ctx.store.delete(ctx.container, ctx.t1, "b") is True


def test_partition_isolation(ctx: Ctx) -> None:
    ctx.store.create(ctx.container, ctx.doc("same", ctx.t1, owner="one"))
    ctx.store.create(ctx.container, ctx.doc("same", ctx.t2, owner="two"))
    one = ctx.store.read(ctx.container, ctx.t1, "same")
    two = ctx.store.read(ctx.container, ctx.t2, "same")
    assert one is not None and one["owner"] == "one"
    assert two is not None and two["owner"] == "two"
    assert ctx.store.read(ctx.container, f"other-{ctx.tag}", "same") is None
    assert ctx.store.delete(ctx.container, ctx.t1, "same") is True
    assert ctx.store.read(ctx.container, ctx.t2, "same") is not None
    assert ids(ctx.store.query(ctx.container, partition_key=ctx.t2)) == ["same"]


# --- TTL ---------------------------------------------------------------------------------


def test_ttl_expiry(ctx: Ctx) -> None:
    ttl = 10 if ctx.clock else 1
    ctx.store.create(ctx.container, ctx.doc("short", ttl=ttl))
    ctx.store.create(ctx.container, ctx.doc("forever", ttl=-1))
    ctx.store.create(ctx.container, ctx.doc("plain"))
    if ctx.clock:
        ctx.clock.advance(ttl - 1)
        assert ctx.store.read(ctx.container, ctx.t1, "short") is not None
        ctx.clock.advance(1)  # exactly ttl seconds after the write
    else:
        ctx.expire(ttl)
    assert ctx.store.read(ctx.container, ctx.t1, "short") is None
    assert sorted(ids(ctx.store.query(ctx.container, partition_key=ctx.t1))) == ["forever", "plain"]
    assert ctx.store.count(ctx.container, partition_key=ctx.t1) == 2
    assert ctx.store.delete(ctx.container, ctx.t1, "short") is False
    with pytest.raises(DocumentNotFound):
        ctx.store.replace(ctx.container, ctx.doc("short"))
    recreated = ctx.store.create(ctx.container, ctx.doc("short", v=2))  # expired id is free again
    assert recreated["v"] == 2


def test_ttl_counts_from_last_write(ctx: Ctx) -> None:
    if ctx.clock is None:
        pytest.skip("needs an injectable clock")
    ctx.store.create(ctx.container, ctx.doc("a", ttl=10))
    ctx.clock.advance(8)
    ctx.store.upsert(ctx.container, ctx.doc("a", ttl=10))
    ctx.clock.advance(8)
    assert ctx.store.read(ctx.container, ctx.t1, "a") is not None
    ctx.clock.advance(2)
    assert ctx.store.read(ctx.container, ctx.t1, "a") is None


@pytest.mark.parametrize("bad", [0, -5, "10", 1.5, True])
def test_invalid_ttl_rejected(ctx: Ctx, bad: object) -> None:
    with pytest.raises(InvalidInput, match="ttl"):
        ctx.store.create(ctx.container, ctx.doc("a", ttl=bad))


# --- queries -----------------------------------------------------------------------------

SEED: list[dict[str, Any]] = [
    {"id": "a", "status": "active", "n": 1, "flag": True, "opt": "x", "state": {"watermark": "2024-01-01T00:00:00Z"}},
    {"id": "b", "status": "paused", "n": 2, "flag": False, "opt": None, "state": {"watermark": "2024-02-01T00:00:00Z"}},
    {"id": "c", "status": "active", "n": 3, "state": {"watermark": "2024-03-01T00:00:00Z"}},
    {"id": "d", "status": "error", "n": 2.5, "flag": True, "opt": "y", "state": {}},
]


@pytest.fixture
def seeded(ctx: Ctx) -> Ctx:
    for doc in SEED:
        ctx.store.create(ctx.container, {**ctx.doc(doc["id"]), **doc})
    ctx.store.create(ctx.container, ctx.doc("a", ctx.t2, status="active", n=1))  # other tenant
    return ctx


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ([Where("status", "=", "active")], "ac"),
        ([Where("status", "!=", "active")], "bd"),
        ([Where("n", "<", 2)], "a"),
        ([Where("n", "<=", 2)], "ab"),
        ([Where("n", ">", 2)], "cd"),
        ([Where("n", ">=", 2.5)], "cd"),
        ([Where("n", "=", 2.5)], "d"),
        ([Where("flag", "=", True)], "ad"),
        ([Where("flag", "=", False)], "b"),
        ([Where("flag", "!=", True)], "b"),
        ([Where("state.watermark", ">=", "2024-02-01T00:00:00Z")], "bc"),
        ([Where("state.watermark", "<", "2024-02-15T00:00:00Z")], "ab"),
        ([Where("opt", "=", None)], "bc"),
        ([Where("opt", "!=", None)], "ad"),
        ([Where("state.watermark", "=", None)], "d"),
        ([Where("status", "in", ["active", "error"])], "acd"),
        ([Where("n", "in", (1, 3))], "ac"),
        ([Where("opt", "in", [None, "y"])], "bcd"),
        ([Where("status", "in", [])], ""),
        ([Where("status", "=", "active"), Where("n", ">", 1)], "c"),
        ([Where("id", "=", "b")], "b"),
        ([Where("id", "in", ["a", "c", "zz"])], "ac"),
        ([Where("n", ">", "1")], ""),  # mixed types never match (Cosmos semantics)
        ([Where("status", "=", 1)], ""),
        ([Where("n", "=", True)], ""),  # a boolean is not the number 1
        ([Where("status", "=", "x' OR 1=1 --")], ""),  # values are bound, never spliced
        ([], "abcd"),
    ],
)
def test_query_where(seeded: Ctx, where: list[Where], expected: str) -> None:
    found = seeded.store.query(seeded.container, partition_key=seeded.t1, where=where)
    assert sorted(ids(found)) == list(expected)
    assert all("_etag" in d and "_ts" in d for d in found)
    assert seeded.store.count(seeded.container, partition_key=seeded.t1, where=where) == len(expected)


def test_query_order_and_limit(seeded: Ctx) -> None:
    q = seeded.store.query
    c, t1 = seeded.container, seeded.t1
    assert ids(q(c, partition_key=t1, order_by="n")) == ["a", "b", "d", "c"]
    assert ids(q(c, partition_key=t1, order_by="n", descending=True)) == ["c", "d", "b", "a"]
    assert ids(q(c, partition_key=t1, order_by="n", descending=True, limit=2)) == ["c", "d"]
    assert ids(q(c, partition_key=t1, order_by="n", limit=1)) == ["a"]
    assert q(c, partition_key=t1, limit=0) == []
    assert len(q(c, partition_key=t1, limit=3)) == 3
    watermark = [Where("state.watermark", "!=", None)]
    assert ids(q(c, partition_key=t1, where=watermark, order_by="state.watermark", descending=True)) == ["c", "b", "a"]


def test_query_cross_partition(seeded: Ctx) -> None:
    mine = seeded.mine()
    everywhere = seeded.store.query(seeded.container, where=[mine, Where("id", "=", "a")])
    assert sorted(d[PARTITION_KEY] for d in everywhere) == sorted([seeded.t1, seeded.t2])
    assert seeded.store.count(seeded.container, where=[mine]) == 5
    assert seeded.store.count(seeded.container, where=[mine, Where("status", "=", "active")]) == 3
    assert seeded.store.count(seeded.container, partition_key=seeded.t2, where=[mine]) == 1


def test_query_by_system_timestamp(ctx: Ctx) -> None:
    created = ctx.store.create(ctx.container, ctx.doc("a"))
    found = ctx.store.query(ctx.container, partition_key=ctx.t1, where=[Where("_ts", ">=", created["_ts"])])
    assert ids(found) == ["a"]


@pytest.mark.parametrize("bad", ["a-b", "1a", "a..b", "", ".a", "a.", "$.a", "a b", "a;DROP TABLE documents", "c['x']"])
def test_invalid_field_name_rejected(ctx: Ctx, bad: str) -> None:
    with pytest.raises(InvalidInput, match="field"):
        ctx.store.query(ctx.container, where=[Where(bad, "=", 1)])
    with pytest.raises(InvalidInput, match="field"):
        ctx.store.query(ctx.container, order_by=bad)
    with pytest.raises(InvalidInput, match="field"):
        ctx.store.count(ctx.container, where=[Where(bad, "=", 1)])


@pytest.mark.parametrize(
    "cond",
    [
        Where("n", "~", 1),  # type: ignore[arg-type]
        Where("n", "<", None),
        Where("n", "=", {"a": 1}),
        Where("n", "in", "abc"),
        Where("n", "in", [[1]]),
    ],
)
def test_invalid_condition_rejected(ctx: Ctx, cond: Where) -> None:
    with pytest.raises(InvalidInput):
        ctx.store.query(ctx.container, where=[cond])


def test_invalid_limit_rejected(ctx: Ctx) -> None:
    with pytest.raises(InvalidInput, match="limit"):
        ctx.store.query(ctx.container, limit=-1)


# --- input validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "field_name"),
    [
        ({PARTITION_KEY: "t"}, "id"),
        ({"id": "", PARTITION_KEY: "t"}, "id"),
        ({"id": 5, PARTITION_KEY: "t"}, "id"),
        ({"id": "a/b", PARTITION_KEY: "t"}, "id"),
        ({"id": "a"}, PARTITION_KEY),
        ({"id": "a", PARTITION_KEY: ""}, PARTITION_KEY),
        ({"id": "a", PARTITION_KEY: None}, PARTITION_KEY),
    ],
)
def test_missing_keys_rejected(ctx: Ctx, doc: dict[str, Any], field_name: str) -> None:
    for write in (ctx.store.create, ctx.store.upsert, ctx.store.replace):
        with pytest.raises(InvalidInput, match=field_name):
            write(ctx.container, doc)


def test_empty_keys_rejected_on_point_calls(ctx: Ctx) -> None:
    with pytest.raises(InvalidInput, match=PARTITION_KEY):
        ctx.store.read(ctx.container, "", "a")
    with pytest.raises(InvalidInput, match="id"):
        ctx.store.delete(ctx.container, ctx.t1, "")


# --- sqlite only: concurrency and sharing ------------------------------------------------


def test_sqlite_threads_one_winner_per_round(tmp_path: Path) -> None:
    store = SqliteDocumentStore(tmp_path / "docs.sqlite")
    store.create("c", {"id": "counter", PARTITION_KEY: "t", "n": 0})
    rounds, barrier = 50, threading.Barrier(2)
    wins: list[list[bool]] = [[], []]
    errors: list[BaseException] = []

    def worker(me: int) -> None:
        try:
            for _ in range(rounds):
                barrier.wait()
                current = store.read("c", "t", "counter")
                assert current is not None
                barrier.wait()  # both hold the same ETag now
                try:
                    store.replace("c", {**current, "n": current["n"] + 1, "by": me}, if_match=current["_etag"])
                    wins[me].append(True)
                except PreconditionFailed:
                    wins[me].append(False)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(a != b for a, b in zip(wins[0], wins[1], strict=True))
    final = store.read("c", "t", "counter")
    assert final is not None and final["n"] == rounds
    store.close()


def test_sqlite_second_instance_sees_writes(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "docs.sqlite"  # parent directories are created
    one, two = SqliteDocumentStore(path), SqliteDocumentStore(path)
    created = one.create("c", {"id": "a", PARTITION_KEY: "t", "v": 1})
    assert two.read("c", "t", "a") == created
    updated = two.replace("c", {**created, "v": 2}, if_match=created["_etag"])
    with pytest.raises(PreconditionFailed):
        one.replace("c", {**created, "v": 3}, if_match=created["_etag"])
    assert one.read("c", "t", "a") == updated
    assert one.delete("c", "t", "a") is True
    assert two.read("c", "t", "a") is None
    one.close()
    two.close()


def test_sqlite_processes_never_lose_an_update(tmp_path: Path) -> None:
    path = tmp_path / "docs.sqlite"
    store = SqliteDocumentStore(path)
    store.create("c", {"id": "counter", PARTITION_KEY: "t", "n": 0})
    per_process = 40
    code = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from shared.backends.sqlite_documents import SqliteDocumentStore
        from shared.ports.documents import PreconditionFailed
        store = SqliteDocumentStore(Path(sys.argv[1]))
        done = 0
        while done < int(sys.argv[2]):
            cur = store.read("c", "t", "counter")
            try:
                store.replace("c", {**cur, "n": cur["n"] + 1}, if_match=cur["_etag"])
                done += 1
            except PreconditionFailed:
                pass
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path), str(per_process)], cwd=ROOT, env=env) for _ in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    final = store.read("c", "t", "counter")
    assert final is not None and final["n"] == 2 * per_process
    store.close()


def test_sqlite_expired_rows_are_purged(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "docs.sqlite"
    store = SqliteDocumentStore(path, clock=clock)
    store.create("c", {"id": "old", PARTITION_KEY: "t", "ttl": 5})
    clock.advance(3600)
    store.create("c", {"id": "new", PARTITION_KEY: "t"})
    with sqlite3.connect(path) as raw:
        assert [r[0] for r in raw.execute("SELECT id FROM documents")] == ["new"]
    store.close()


def test_sqlite_close_then_reuse(tmp_path: Path) -> None:
    store = SqliteDocumentStore(tmp_path / "docs.sqlite")
    store.create("c", {"id": "a", PARTITION_KEY: "t"})
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(store.read("c", "t", "a")))
    thread.start()
    thread.join()
    store.close()
    assert seen and seen[0] is not None
    assert store.read("c", "t", "a") is not None  # reopens lazily
    store.close()
