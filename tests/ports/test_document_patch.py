"""``DocumentStore.patch``: set top-level fields without rewriting the document (every backend).

The sync services mark unchanged records as seen by a full listing with it (issue 7), so it
must keep the rest of the body, change the ETag, honour ``if_match`` and keep JSON types.
"""

from __future__ import annotations

import pytest

from shared.errors import InvalidInput
from shared.ports.documents import PreconditionFailed, Where
from tests.ports.test_document_store_contract import Ctx, cosmos_target, ctx

__all__ = ["cosmos_target", "ctx"]


def test_patch_sets_fields_and_keeps_the_rest(ctx: Ctx) -> None:
    created = ctx.store.create(ctx.container, ctx.doc("a", data={"big": "x" * 1000}, mark="", n=1))
    assert ctx.store.patch(ctx.container, ctx.t1, "a", {"mark": "run-1", "flag": True, "none": None, "obj": {"k": [1]}})
    read = ctx.store.read(ctx.container, ctx.t1, "a")
    assert read is not None and read["_etag"] != created["_etag"]
    assert read["data"] == {"big": "x" * 1000} and read["n"] == 1
    assert (read["mark"], read["flag"], read["none"], read["obj"]) == ("run-1", True, None, {"k": [1]})
    found = ctx.store.query(ctx.container, partition_key=ctx.t1, where=[Where("mark", "=", "run-1"), ctx.mine()])
    assert [d["id"] for d in found] == ["a"]


def test_patch_honours_if_match(ctx: Ctx) -> None:
    created = ctx.store.create(ctx.container, ctx.doc("a", mark=""))
    assert ctx.store.patch(ctx.container, ctx.t1, "a", {"mark": "r1"}, if_match=created["_etag"])
    with pytest.raises(PreconditionFailed):
        ctx.store.patch(ctx.container, ctx.t1, "a", {"mark": "r2"}, if_match=created["_etag"])
    read = ctx.store.read(ctx.container, ctx.t1, "a")
    assert read is not None and read["mark"] == "r1"


def test_patch_of_an_absent_document_is_false(ctx: Ctx) -> None:
    assert ctx.store.patch(ctx.container, ctx.t1, "ghost", {"mark": "r1"}) is False
    assert ctx.store.patch(ctx.container, ctx.t1, "ghost", {"mark": "r1"}, if_match="whatever") is False
    assert ctx.store.read(ctx.container, ctx.t1, "ghost") is None


@pytest.mark.parametrize("bad", ["id", "tenant_id", "_etag", "a.b", "x'y", "", "1a"])
def test_patch_refuses_key_system_and_nested_fields(ctx: Ctx, bad: str) -> None:
    ctx.store.create(ctx.container, ctx.doc("a"))
    with pytest.raises(InvalidInput):
        ctx.store.patch(ctx.container, ctx.t1, "a", {bad: "v"})
