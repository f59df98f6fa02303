"""Contract of ``DocumentStore.batch`` (one partition, all or nothing) and the ``contains`` query.

Runs on SQLite always and on Cosmos DB when ``COSMOS_ENDPOINT`` is set (the fixtures of the
document store contract suite).
"""

from __future__ import annotations

import orjson
import pytest

from shared.ports.documents import BatchOp, DocumentExists, DocumentNotFound, PreconditionFailed, Where
from tests.ports.test_document_store_contract import Ctx, cosmos_target, ctx  # noqa: F401 - fixtures

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_batch_applies_every_kind_in_order(ctx: Ctx) -> None:  # noqa: F811
    s, c = ctx.store, ctx.container
    kept = s.create(c, ctx.doc("keep", n=1))
    s.create(c, ctx.doc("gone", n=2))
    s.create(c, ctx.doc("patched", n=3, other="x"))
    new = ctx.doc("new", n=4)
    etags = s.batch(
        c,
        ctx.t1,
        [
            BatchOp("create", "new", doc=new, encoded=orjson.dumps(new)),
            BatchOp("replace", "keep", doc=ctx.doc("keep", n=10), if_match=kept["_etag"]),
            BatchOp("upsert", "up", doc=ctx.doc("up", n=5)),
            BatchOp("patch", "patched", fields={"n": 30}),
            BatchOp("delete", "gone"),
        ],
    )
    assert len(etags) == 5 and etags[4] is None and all(isinstance(e, str) for e in etags[:4])
    assert s.read(c, ctx.t1, "new")["n"] == 4  # type: ignore[index]
    keep = s.read(c, ctx.t1, "keep")
    assert keep is not None and keep["n"] == 10 and keep["_etag"] == etags[1]
    assert s.read(c, ctx.t1, "up")["n"] == 5  # type: ignore[index]
    patched = s.read(c, ctx.t1, "patched")
    assert patched is not None and patched["n"] == 30 and patched["other"] == "x" and patched["_etag"] == etags[3]
    assert s.read(c, ctx.t1, "gone") is None


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ("exists", DocumentExists),
        ("stale", PreconditionFailed),
        ("missing", DocumentNotFound),
        ("delete_missing", DocumentNotFound),
    ],
)
def test_a_failing_op_leaves_nothing_of_the_batch(ctx: Ctx, bad: str, error: type[Exception]) -> None:  # noqa: F811
    s, c = ctx.store, ctx.container
    s.create(c, ctx.doc("a", n=1))
    failing = {
        "exists": BatchOp("create", "a", doc=ctx.doc("a", n=9)),
        "stale": BatchOp("replace", "a", doc=ctx.doc("a", n=9), if_match="0" * 24),
        "missing": BatchOp("replace", "nobody", doc=ctx.doc("nobody", n=9)),
        "delete_missing": BatchOp("delete", "nobody"),
    }[bad]
    with pytest.raises(error):
        s.batch(c, ctx.t1, [BatchOp("create", "b", doc=ctx.doc("b")), BatchOp("patch", "a", fields={"n": 2}), failing])
    assert s.read(c, ctx.t1, "b") is None
    assert s.read(c, ctx.t1, "a")["n"] == 1  # type: ignore[index]


def test_batch_stays_in_its_partition(ctx: Ctx) -> None:  # noqa: F811
    from shared.errors import InvalidInput

    with pytest.raises(InvalidInput):
        ctx.store.batch(ctx.container, ctx.t1, [BatchOp("create", "x", doc=ctx.doc("x", tenant=ctx.t2))])
    assert ctx.store.read(ctx.container, ctx.t2, "x") is None


def test_a_long_batch_is_applied_whole(ctx: Ctx) -> None:  # noqa: F811
    docs = [ctx.doc(f"d{i:03d}", n=i) for i in range(250)]
    ctx.store.batch(ctx.container, ctx.t1, [BatchOp("create", d["id"], doc=d) for d in docs])
    assert ctx.store.count(ctx.container, partition_key=ctx.t1, where=[ctx.mine()]) == 250


def test_contains_matches_array_members(ctx: Ctx) -> None:  # noqa: F811
    s, c = ctx.store, ctx.container
    s.create(c, ctx.doc("a", to=["x", "y"]))
    s.create(c, ctx.doc("b", to=["y", 3]))
    s.create(c, ctx.doc("c", to="y"))
    s.create(c, ctx.doc("d"))
    found = s.query(c, partition_key=ctx.t1, where=[ctx.mine(), Where("to", "contains", "y")], order_by="id")
    assert [d["id"] for d in found] == ["a", "b"]
    assert [d["id"] for d in s.query(c, partition_key=ctx.t1, where=[Where("to", "contains", 3)])] == ["b"]
    assert s.query(c, partition_key=ctx.t1, where=[Where("to", "contains", "3")]) == []


def test_creates_together_fail_together_when_one_id_is_taken(ctx: Ctx) -> None:  # noqa: F811
    s, c = ctx.store, ctx.container
    s.create(c, ctx.doc("taken", n=1))
    with pytest.raises(DocumentExists):
        s.batch(
            c,
            ctx.t1,
            [BatchOp("create", f"new{i}", doc=ctx.doc(f"new{i}")) for i in range(3)]
            + [BatchOp("create", "taken", doc=ctx.doc("taken", n=2))],
        )
    assert s.read(c, ctx.t1, "new0") is None and s.read(c, ctx.t1, "taken")["n"] == 1  # type: ignore[index]
