"""Property test of the engine's glue: a local edit and a remote edit of random fields meet in one
page, and the entity ends with every one-side change kept and each conflict decided by the strategy."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base.model import Entity
from shared.backends.sqlite_documents import SqliteDocumentStore
from shared.config import Settings
from shared.engine.admin import EntityService
from shared.services.records import RecordWriter
from shared.services.repositories import Repositories
from tests.engine.conftest import TENANT, integration

RAW = {"title": "Title", "phone": "Phone", "city": "MailingCity"}
VALUES = st.sampled_from(["a", "b", "c"])
EDITS = st.dictionaries(st.sampled_from(sorted(RAW)), VALUES, max_size=3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EDITS, EDITS, st.sampled_from(["remote_wins", "local_wins"]))
def test_one_side_changes_are_kept_and_conflicts_follow_the_strategy(
    local: dict[str, str], remote: dict[str, str], strategy: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteDocumentStore(Path(tmp) / "docs.sqlite")
        containers = Settings().containers
        writer = RecordWriter(Repositories(store, containers).records, containers=containers)
        sf = integration("salesforce", "sf", "contacts", conflict_strategy=strategy)
        base = {
            "Id": "003A",
            "FirstName": "Ada",
            "LastName": "Lovelace",
            "Email": "ada@example.com",
            "Title": "base",
            "Phone": "base",
            "MailingCity": "base",
            "SystemModstamp": "2024-01-01T00:00:00Z",
        }
        writer.write_page(sf, [Entity("contact", "003A", base, base["SystemModstamp"])], stream="contacts")
        svc = EntityService(store, containers)
        [person] = svc.list_entities(TENANT, {"type": "person"})["entities"]
        if local:
            svc.change(TENANT, person["id"], {"fields": local})
        changed: dict[str, Any] = {
            **base,
            **{RAW[f]: v for f, v in remote.items()},
            "SystemModstamp": "2024-02-01T00:00:00Z",
        }
        writer.write_page(sf, [Entity("contact", "003A", changed, changed["SystemModstamp"])], stream="contacts")
        fields = svc.get(TENANT, person["id"])["fields"]
        for name in RAW:
            lo, re_ = local.get(name, "base"), remote.get(name, "base")
            if lo != "base" and re_ != "base" and lo != re_:
                expected = re_ if strategy == "remote_wins" else lo
            else:
                expected = lo if lo != "base" else re_
            assert fields[name] == expected, (name, local, remote, strategy)
        conflicts = {c["field"] for c in svc.conflicts(TENANT, {})}
        assert conflicts == {
            n for n in RAW if local.get(n, "base") not in ("base", remote.get(n, "base")) and n in remote
        }
        store.close()
