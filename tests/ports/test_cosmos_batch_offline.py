"""``CosmosDocumentStore.batch`` without an account: the operations it hands the SDK, the 100-op
chunks, and how a failed transactional batch maps to the port's errors (the live contract runs
in test_document_batch when COSMOS_ENDPOINT is set)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.ports.documents import BatchOp, DocumentExists, DocumentNotFound, PreconditionFailed

cosmos = pytest.importorskip("shared.backends.cosmos_documents")
errors = pytest.importorskip("azure.cosmos.exceptions")


class FakeContainer:
    def __init__(self, fail: tuple[int, int] | None = None) -> None:
        self.calls: list[tuple[list[tuple[Any, ...]], str]] = []
        self.fail = fail

    def execute_item_batch(
        self, *, batch_operations: list[tuple[Any, ...]], partition_key: str
    ) -> list[dict[str, Any]]:
        self.calls.append((batch_operations, partition_key))
        if self.fail is not None:
            index, status = self.fail
            responses = [{"statusCode": 424}] * len(batch_operations)
            responses[index] = {"statusCode": status}
            raise errors.CosmosBatchOperationError(
                error_index=index, headers={}, status_code=status, message="batch failed", operation_responses=responses
            )
        return [{"statusCode": 200, "eTag": f'"e{i}"'} for i in range(len(batch_operations))]


def _store(container: FakeContainer) -> Any:
    store = cosmos.CosmosDocumentStore("https://example.invalid:443/", "db", "key")
    store._containers["things"] = container  # no client is ever built
    return store


def doc(doc_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": doc_id, "tenant_id": "t1", **fields}


def test_operations_are_handed_to_the_sdk_in_chunks_of_100() -> None:
    container = FakeContainer()
    ops = [BatchOp("create", f"d{i}", doc=doc(f"d{i}", n=i)) for i in range(150)]
    ops += [
        BatchOp("replace", "r", doc=doc("r", ttl=None), if_match='"old"'),
        BatchOp("upsert", "u", doc=doc("u")),
        BatchOp("patch", "p", fields={"n": 1}, if_match='"p"'),
        BatchOp("delete", "x"),
    ]
    etags = _store(container).batch("things", "t1", ops)
    assert [len(ops) for ops, _ in container.calls] == [100, 54]
    assert all(pk == "t1" for _, pk in container.calls)
    tail = container.calls[1][0][-4:]
    assert tail[0] == ("replace", ("r", {"id": "r", "tenant_id": "t1"}), {"if_match_etag": '"old"'})  # null ttl dropped
    assert tail[1] == ("upsert", ({"id": "u", "tenant_id": "t1"},), {})
    assert tail[2] == ("patch", ("p", [{"op": "set", "path": "/n", "value": 1}]), {"if_match_etag": '"p"'})
    assert tail[3] == ("delete", ("x",), {})
    assert len(etags) == 154 and etags[-1] is None and etags[0] == '"e0"'


@pytest.mark.parametrize(
    ("status", "error"), [(409, DocumentExists), (412, PreconditionFailed), (404, DocumentNotFound)]
)
def test_a_failed_operation_names_the_port_error(status: int, error: type[Exception]) -> None:
    store = _store(FakeContainer(fail=(1, status)))
    with pytest.raises(error, match="d1"):
        store.batch("things", "t1", [BatchOp("create", f"d{i}", doc=doc(f"d{i}")) for i in range(3)])


def test_a_document_of_another_partition_is_refused_before_anything_is_sent() -> None:
    from shared.errors import InvalidInput

    container = FakeContainer()
    with pytest.raises(InvalidInput):
        _store(container).batch("things", "t1", [BatchOp("create", "a", doc={"id": "a", "tenant_id": "t2"})])
    assert container.calls == []
