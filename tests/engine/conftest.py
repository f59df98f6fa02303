"""A record writer over a fresh SQLite store, with a proxy that counts store calls."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.pipeline_in_process import CountingStore
from shared.backends.sqlite_documents import SqliteDocumentStore
from shared.config import Settings
from shared.domain import Direction, Integration, StreamConfig
from shared.services.records import RecordWriter
from shared.services.repositories import Repositories

TENANT = "t-engine"


@dataclass
class Env:
    store: CountingStore
    repos: Repositories
    writer: RecordWriter
    pushes: list[dict[str, Any]]
    containers: dict[str, str]

    def docs(self, container: str, tenant: str = TENANT) -> list[dict[str, Any]]:
        return self.store.inner.query(self.containers[container], partition_key=tenant, order_by="id")


def integration(
    provider: str, iid: str, stream: str, *, tenant: str = TENANT, two_way: bool = False, **cfg: Any
) -> Integration:
    direction = Direction.BIDIRECTIONAL if two_way else Direction.INBOUND
    return Integration(
        id=iid,
        tenant_id=tenant,
        provider=provider,
        display_name=iid,
        streams=[StreamConfig(name=stream, direction=direction, **cfg)],
    )


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    store = CountingStore(SqliteDocumentStore(tmp_path / "docs.sqlite"))
    containers = Settings().containers
    repos = Repositories(store, containers)  # type: ignore[arg-type]
    pushes: list[dict[str, Any]] = []
    writer = RecordWriter(repos.records, containers=containers, outbox=lambda _i, p: pushes.extend(p))
    yield Env(store, repos, writer, pushes, containers)
    store.inner.close()
