"""Azure Cosmos DB (NoSQL API) document store.

Imported lazily by ``shared.backends.factory`` only when ``IHUB_DOCUMENT_BACKEND=cosmos``;
it is the only module that imports ``azure.cosmos``. Containers are partitioned on
``/tenant_id`` with TTL enabled and no default (``default_ttl=-1``), so a document's own
``ttl`` field decides when it expires. Where-conditions become parameterised Cosmos SQL;
field names are validated and never carry user-controlled SQL.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.cosmos import ContainerProxy, CosmosClient, DatabaseProxy, PartitionKey
from azure.cosmos import exceptions as cosmos_errors

from shared.backends.sqlite_documents import FIELD_RE, SYSTEM_KEYS, expiry, require_key, value_kind
from shared.errors import ConfigurationError, HubError, InvalidInput, RetryLater
from shared.ports.documents import (
    MAX_BATCH,
    PARTITION_KEY,
    BatchOp,
    Document,
    DocumentExists,
    DocumentNotFound,
    PreconditionFailed,
    Where,
)

_STRIP = frozenset({"_rid", "_self", "_attachments"})
_RETRYABLE = frozenset({408, 429, 449, 500, 503})
# Property names that are Cosmos SQL keywords must use bracket notation (c["value"]).
_RESERVED = frozenset(
    "AND ARRAY AS ASC BETWEEN BY CASE CAST CONVERT CROSS DESC DISTINCT ELSE END ESCAPE EXISTS FALSE FOR FROM "
    "GROUP HAVING IN INNER INSERT INTO IS JOIN LEFT LIKE LIMIT NOT NULL OFFSET ON OR ORDER OUTER OVER RANK "
    "RIGHT SELECT SET THEN TOP TRUE UDF UNDEFINED UPDATE VALUE WHEN WHERE WITH".split()
)


def _path(field: str) -> str:
    if not isinstance(field, str) or not FIELD_RE.fullmatch(field):
        raise InvalidInput(f"invalid field name {field!r}: use dotted identifiers like 'state.watermark'")
    # Safe to embed: the regex admits only [A-Za-z0-9_.].
    return "c" + "".join(f'["{part}"]' if part.upper() in _RESERVED else f".{part}" for part in field.split("."))


def _null(path: str) -> str:
    return f"(NOT IS_DEFINED({path}) OR IS_NULL({path}))"


def _condition(cond: Where, params: list[dict[str, object]]) -> str:
    path = _path(cond.field)
    name = f"@p{len(params)}"
    if cond.op == "contains":
        if value_kind(cond.value) == "null":
            raise InvalidInput(f"'contains' on {cond.field!r} takes a str, number or bool")
        params.append({"name": name, "value": cond.value})
        return f"ARRAY_CONTAINS({path}, {name})"
    if cond.op == "in":
        if isinstance(cond.value, str | bytes | dict) or not isinstance(cond.value, list | tuple | set | frozenset):
            raise InvalidInput(f"'in' on {cond.field!r} takes a list of values")
        values = [v for v in cond.value if value_kind(v) != "null"]
        parts = [_null(path)] if len(values) < len(cond.value) else []
        if values:
            params.append({"name": name, "value": values})
            parts.insert(0, f"ARRAY_CONTAINS({name}, {path})")
        return "(" + " OR ".join(parts) + ")" if parts else "false"
    if cond.op not in ("=", "!=", "<", "<=", ">", ">="):
        raise InvalidInput(f"unsupported query operator {cond.op!r}")
    if value_kind(cond.value) == "null":
        if cond.op == "=":
            return _null(path)
        if cond.op == "!=":
            return f"NOT {_null(path)}"
        raise InvalidInput(f"operator {cond.op!r} cannot compare {cond.field!r} with None")
    params.append({"name": name, "value": cond.value})
    return f"{path} {cond.op} {name}"


def _where_sql(where: Sequence[Where], params: list[dict[str, object]]) -> str:
    if not where:
        return ""
    return " WHERE " + " AND ".join(_condition(cond, params) for cond in where)


def _clean(item: dict[str, Any]) -> Document:
    return {k: v for k, v in item.items() if k not in _STRIP}


def _translate(exc: AzureError, what: str) -> HubError:
    """Map an Azure SDK error to the hub's error classes."""
    if isinstance(exc, cosmos_errors.CosmosResourceExistsError):
        return DocumentExists(f"{what} already exists")
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return ConfigurationError(f"Cosmos DB refused the credential for {what} (key or RBAC role): {exc.message}")
    if status == 412:
        return PreconditionFailed(f"{what} changed since the given ETag")
    if status == 404:
        return DocumentNotFound(f"{what} does not exist")
    if status == 400:
        return InvalidInput(f"Cosmos DB rejected {what}: {exc.message}")
    if status is None or status in _RETRYABLE:
        return RetryLater(f"Cosmos DB unavailable for {what}: {exc.message}")
    return HubError(f"Cosmos DB error {status} for {what}: {exc.message}", code="cosmos_error")


class CosmosDocumentStore:
    """Document store on Azure Cosmos DB (NoSQL API).

    The client is created on first use, so constructing the store does no I/O.

    Args:
        endpoint: Account endpoint, ``https://<account>.documents.azure.com:443/``.
        database: Database name.
        credential: Account key, or a token credential (managed identity / developer login).
        ensure: Create the database and containers if they do not exist (on first use).
    """

    def __init__(self, endpoint: str, database: str, credential: str | TokenCredential, *, ensure: bool = True) -> None:
        self._endpoint = endpoint
        self._database_name = database
        self._credential = credential
        self._ensure = ensure
        self._lock = threading.Lock()
        self._client: CosmosClient | None = None
        self._database: DatabaseProxy | None = None
        self._containers: dict[str, ContainerProxy] = {}

    def _container(self, name: str) -> ContainerProxy:
        container = self._containers.get(name)
        if container is not None:
            return container
        if not isinstance(name, str) or not name:
            raise InvalidInput("container name must be a non-empty string")
        with self._lock:
            container = self._containers.get(name)
            if container is not None:
                return container
            try:
                if self._database is None:
                    self._client = CosmosClient(self._endpoint, credential=self._credential)
                    self._database = (
                        self._client.create_database_if_not_exists(id=self._database_name)
                        if self._ensure
                        else self._client.get_database_client(self._database_name)
                    )
                if self._ensure:
                    container = self._database.create_container_if_not_exists(
                        id=name, partition_key=PartitionKey(path=f"/{PARTITION_KEY}"), default_ttl=-1
                    )
                else:
                    container = self._database.get_container_client(name)
            except AzureError as exc:
                raise _translate(exc, f"container {name!r}") from exc
            self._containers[name] = container
            return container

    @staticmethod
    def _prepare(doc: Document) -> tuple[Document, str, str]:
        if not isinstance(doc, dict):
            raise InvalidInput("a document must be a JSON object (dict)")
        doc_id = require_key(doc.get("id"), "id")
        tenant = require_key(doc.get(PARTITION_KEY), PARTITION_KEY)
        expiry(doc, 0.0)  # validates ttl
        body = {k: v for k, v in doc.items() if k not in SYSTEM_KEYS}
        if "ttl" in body and body["ttl"] is None:
            del body["ttl"]  # Cosmos rejects a null ttl; absent means the same
        return body, tenant, doc_id

    @staticmethod
    def _result(item: dict[str, Any], doc: Document) -> Document:
        result = _clean(item)
        if "ttl" in doc and doc["ttl"] is None:
            result["ttl"] = None
        return result

    def create(self, container: str, doc: Document) -> Document:
        """Insert a new document.

        Args:
            container: Container name.
            doc: The document; needs ``id`` and ``tenant_id``.

        Returns:
            The stored document with ``_etag`` and ``_ts``.

        Raises:
            DocumentExists: A document with that id exists in the partition.
        """
        body, tenant, doc_id = self._prepare(doc)
        proxy = self._container(container)
        try:
            return self._result(proxy.create_item(body=body), doc)
        except AzureError as exc:
            raise _translate(exc, f"document {container}/{tenant}/{doc_id}") from exc

    def upsert(self, container: str, doc: Document, *, if_match: str | None = None) -> Document:
        """Insert or replace a document.

        Cosmos itself *creates* the item when an upsert carries If-Match and the item is
        absent; the port promises PreconditionFailed, so a conditional upsert is a
        conditional replace here.

        Args:
            container: Container name.
            doc: The document; needs ``id`` and ``tenant_id``.
            if_match: When given, the document must exist with this ETag.

        Returns:
            The stored document with ``_etag`` and ``_ts``.

        Raises:
            PreconditionFailed: ``if_match`` given and the document is absent or has another ETag.
        """
        if if_match is not None:
            try:
                return self.replace(container, doc, if_match=if_match)
            except DocumentNotFound as exc:
                raise PreconditionFailed(f"{exc.message} (conditional upsert)") from exc
        body, tenant, doc_id = self._prepare(doc)
        proxy = self._container(container)
        try:
            return self._result(proxy.upsert_item(body=body), doc)
        except AzureError as exc:
            raise _translate(exc, f"document {container}/{tenant}/{doc_id}") from exc

    def replace(self, container: str, doc: Document, *, if_match: str | None = None) -> Document:
        """Replace an existing document.

        Args:
            container: Container name.
            doc: The new document; needs ``id`` and ``tenant_id``.
            if_match: When given, the current ETag must equal it.

        Returns:
            The stored document with ``_etag`` and ``_ts``.

        Raises:
            DocumentNotFound: No document with that id.
            PreconditionFailed: The ETag no longer matches.
        """
        body, tenant, doc_id = self._prepare(doc)
        proxy = self._container(container)
        kwargs: dict[str, Any] = {}
        if if_match is not None:
            kwargs = {"etag": if_match, "match_condition": MatchConditions.IfNotModified}
        try:
            return self._result(proxy.replace_item(item=doc_id, body=body, **kwargs), doc)
        except AzureError as exc:
            raise _translate(exc, f"document {container}/{tenant}/{doc_id}") from exc

    def read(self, container: str, partition_key: str, doc_id: str) -> Document | None:
        """Point read.

        Args:
            container: Container name.
            partition_key: The document's ``tenant_id``.
            doc_id: The document's ``id``.

        Returns:
            The document with ``_etag`` and ``_ts``, or ``None`` when absent or expired.
        """
        require_key(partition_key, PARTITION_KEY)
        require_key(doc_id, "id")
        proxy = self._container(container)
        try:
            return _clean(proxy.read_item(item=doc_id, partition_key=partition_key))
        except cosmos_errors.CosmosResourceNotFoundError:
            return None
        except AzureError as exc:
            raise _translate(exc, f"document {container}/{partition_key}/{doc_id}") from exc

    def delete(self, container: str, partition_key: str, doc_id: str, *, if_match: str | None = None) -> bool:
        """Delete a document.

        Args:
            container: Container name.
            partition_key: The document's ``tenant_id``.
            doc_id: The document's ``id``.
            if_match: When given, the current ETag must equal it.

        Returns:
            True when the document was deleted, False when it was absent.

        Raises:
            PreconditionFailed: The document exists with another ETag.
        """
        require_key(partition_key, PARTITION_KEY)
        require_key(doc_id, "id")
        proxy = self._container(container)
        kwargs: dict[str, Any] = {}
        if if_match is not None:
            kwargs = {"etag": if_match, "match_condition": MatchConditions.IfNotModified}
        try:
            proxy.delete_item(item=doc_id, partition_key=partition_key, **kwargs)
        except cosmos_errors.CosmosResourceNotFoundError:
            return False
        except AzureError as exc:
            raise _translate(exc, f"document {container}/{partition_key}/{doc_id}") from exc
        return True

    def patch(
        self, container: str, partition_key: str, doc_id: str, fields: Mapping[str, Any], *, if_match: str | None = None
    ) -> bool:
        """Set top-level ``fields`` with ``patch_item`` ``set`` operations (the body does not travel).

        Returns:
            True when the document was patched, False when it is absent.

        Raises:
            PreconditionFailed: ``if_match`` given and the document has another ETag.
        """
        require_key(partition_key, PARTITION_KEY)
        require_key(doc_id, "id")
        operations: list[dict[str, Any]] = []
        for name, value in fields.items():
            if name in SYSTEM_KEYS or name in ("id", PARTITION_KEY) or not FIELD_RE.fullmatch(name) or "." in name:
                raise InvalidInput(f"cannot patch field {name!r}: only plain top-level fields")
            operations.append({"op": "set", "path": f"/{name}", "value": value})
        if not operations:
            return self.read(container, partition_key, doc_id) is not None
        proxy = self._container(container)
        kwargs: dict[str, Any] = {}
        if if_match is not None:
            kwargs = {"etag": if_match, "match_condition": MatchConditions.IfNotModified}
        try:
            proxy.patch_item(item=doc_id, partition_key=partition_key, patch_operations=operations, **kwargs)
        except cosmos_errors.CosmosResourceNotFoundError:
            return False
        except AzureError as exc:
            raise _translate(exc, f"document {container}/{partition_key}/{doc_id}") from exc
        return True

    def batch(self, container: str, partition_key: str, ops: Sequence[BatchOp]) -> list[str | None]:
        """Transactional batches (``execute_item_batch``) of up to :data:`MAX_BATCH` ops, in order.

        Each chunk is atomic; a failed op fails its chunk (and stops later chunks) with the
        hub error its status names (409 DocumentExists, 412 PreconditionFailed, 404 DocumentNotFound).
        """
        require_key(partition_key, PARTITION_KEY)
        proxy = self._container(container) if ops else None
        etags: list[str | None] = []
        for start in range(0, len(ops), MAX_BATCH):
            chunk = ops[start : start + MAX_BATCH]
            operations = [self._batch_operation(op, partition_key) for op in chunk]
            assert proxy is not None
            try:
                results = proxy.execute_item_batch(batch_operations=operations, partition_key=partition_key)
            except cosmos_errors.CosmosBatchOperationError as exc:
                index = exc.error_index or 0
                failed = chunk[index] if index < len(chunk) else chunk[0]
                where = f"document {container}/{partition_key}/{failed.doc_id} ({failed.kind} in a batch)"
                status = (exc.operation_responses or [{}])[index].get("statusCode") if exc.operation_responses else None
                if status == 409:
                    raise DocumentExists(f"{where} already exists") from exc
                if status == 412:
                    raise PreconditionFailed(f"{where} changed since the given ETag") from exc
                if status == 404:
                    raise DocumentNotFound(f"{where} does not exist") from exc
                raise _translate(exc, where) from exc
            except AzureError as exc:
                raise _translate(exc, f"a batch on {container}/{partition_key}") from exc
            for op, result in zip(chunk, results, strict=False):
                etags.append(None if op.kind == "delete" else result.get("eTag"))
        return etags

    def _batch_operation(self, op: BatchOp, tenant: str) -> tuple[Any, ...]:
        options: dict[str, Any] = {"if_match_etag": op.if_match} if op.if_match is not None else {}
        if op.kind == "delete":
            return ("delete", (op.doc_id,), options)
        if op.kind == "patch":
            fields = op.fields or {}
            operations = [{"op": "set", "path": f"/{name}", "value": value} for name, value in fields.items()]
            for name in op.fields or {}:
                if name in SYSTEM_KEYS or name in ("id", PARTITION_KEY) or not FIELD_RE.fullmatch(name) or "." in name:
                    raise InvalidInput(f"cannot patch field {name!r}: only plain top-level fields")
            return ("patch", (op.doc_id, operations), options)
        if op.doc is None:
            raise InvalidInput(f"batch {op.kind} of {op.doc_id!r} needs the document")
        body, doc_tenant, doc_id = self._prepare(op.doc)
        if doc_id != op.doc_id or doc_tenant != tenant:
            raise InvalidInput(f"batch {op.kind}: document {doc_id!r} is not {op.doc_id!r} in partition {tenant!r}")
        if op.kind == "replace":
            return ("replace", (op.doc_id, body), options)
        if op.kind == "upsert" and op.if_match is not None:
            return ("replace", (op.doc_id, body), options)
        return (op.kind, (body,), options)

    def _run(self, container: str, sql: str, params: list[dict[str, object]], partition_key: str | None) -> list[Any]:
        proxy = self._container(container)
        options: dict[str, Any] = {"enable_cross_partition_query": True}
        if partition_key is not None:
            options = {"partition_key": require_key(partition_key, PARTITION_KEY)}
        try:
            return list(proxy.query_items(query=sql, parameters=params, **options))
        except cosmos_errors.CosmosResourceNotFoundError:
            return []  # container missing (ensure=False): nothing matches
        except AzureError as exc:
            raise _translate(exc, f"query on {container!r}") from exc

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
        params: list[dict[str, object]] = []
        top = ""
        if limit is not None:
            if type(limit) is not int or limit < 0:
                raise InvalidInput("limit must be a non-negative integer")
            top = f" TOP {limit}"
        sql = f"SELECT{top} * FROM c" + _where_sql(where, params)
        if order_by is not None:
            sql += f" ORDER BY {_path(order_by)} {'DESC' if descending else 'ASC'}"
        if limit == 0:
            return []
        return [_clean(item) for item in self._run(container, sql, params, partition_key)]

    def count(self, container: str, *, partition_key: str | None = None, where: Sequence[Where] = ()) -> int:
        """Number of documents matching all conditions.

        Args:
            container: Container name.
            partition_key: One tenant, or ``None`` to count across partitions.
            where: Conditions, ANDed.

        Returns:
            The number of matching documents.
        """
        params: list[dict[str, object]] = []
        sql = "SELECT VALUE COUNT(1) FROM c" + _where_sql(where, params)
        return sum(int(n) for n in self._run(container, sql, params, partition_key))

    def close(self) -> None:
        """Close the Cosmos client (a later call creates a new one)."""
        with self._lock:
            client, self._client, self._database = self._client, None, None
            self._containers.clear()
        if client is not None:
            client.close()
