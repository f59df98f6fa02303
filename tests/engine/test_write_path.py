"""The lean write path: one read per page, nothing for unchanged records, one transaction for the rest."""

from __future__ import annotations

from adapters.base.model import Entity
from bench.pipeline_in_process import github_pages, salesforce_pages
from shared.domain import content_hash
from shared.engine.pipeline import WriteResult, encode_data
from tests.engine.conftest import Env, integration


def _issues(count: int, version: int = 0) -> list[Entity]:
    return [
        Entity("issue", str(raw["id"]), raw, raw["updated_at"]) for page in github_pages(count, version) for raw in page
    ]


def test_a_page_costs_one_read_and_one_transaction_per_container(env: Env) -> None:
    gh = integration("github", "gh", "issues")
    outcome = env.writer.write_page(gh, _issues(100), stream="issues")
    assert outcome.results == [WriteResult.CREATED] * 100
    reads, writes, transactions = env.store.snapshot()
    derived = len(env.docs("derived_records"))
    assert 0 < derived <= 40
    assert writes == 100 + derived  # each record (and each new derived person) written once
    assert transactions == 2  # the page's records, the derived records
    assert reads <= 4  # existing records, existing derived, dedupe of derived persons (2 containers)


def test_an_unchanged_page_writes_nothing(env: Env) -> None:
    gh = integration("github", "gh", "issues")
    env.writer.write_page(gh, _issues(100), stream="issues")
    before = env.store.snapshot()
    outcome = env.writer.write_page(gh, _issues(100), stream="issues")
    after = env.store.snapshot()
    assert outcome.results == [WriteResult.UNCHANGED] * 100
    assert after[1] == before[1] and after[2] == before[2]
    assert after[0] - before[0] == 1  # one query for the page's existing records


def test_a_changed_record_is_rewritten_and_hashed_from_its_own_bytes(env: Env) -> None:
    gh = integration("github", "gh", "issues")
    env.writer.write_page(gh, _issues(10), stream="issues")
    outcome = env.writer.write_page(gh, _issues(10, version=2), stream="issues")
    assert set(outcome.results) == {WriteResult.UPDATED}
    [doc] = [d for d in env.docs("records") if d["external_id"] == "100001"]
    assert doc["data"]["title"].endswith("v2") and doc["fields"]["title"].endswith("v2")
    assert doc["content_hash"] == encode_data(doc["data"])[1] == content_hash(doc["data"])


def test_a_page_that_loses_a_race_is_decided_again(env: Env) -> None:
    gh = integration("github", "gh", "issues")
    [entity] = _issues(1)
    env.writer.write_page(gh, [entity], stream="issues")
    real = env.writer.pages.existing
    calls = {"n": 0}

    def stale(tenant: str, ids: list[str], container: str | None = None) -> dict[str, dict[str, object]]:
        found = real(tenant, ids, container)
        calls["n"] += 1
        if calls["n"] == 1:  # another writer changes the record between our read and our write
            env.writer.write_page(gh, _issues(1, version=5), stream="issues")
        return found

    env.writer.pages.existing = stale  # type: ignore[method-assign]
    outcome = env.writer.write_page(gh, _issues(1, version=6), stream="issues")
    assert outcome.results == [WriteResult.UPDATED]
    [doc] = env.docs("records")
    assert doc["data"]["title"].endswith("v6")


def test_salesforce_contacts_become_people_linked_to_their_account(env: Env) -> None:
    sf = integration("salesforce", "sf", "contacts")
    raws = next(salesforce_pages(3))
    entities = [Entity("contact", r["Id"], r, r["SystemModstamp"]) for r in raws]
    env.writer.write_page(sf, entities, stream="contacts")
    docs = env.docs("records")
    assert {d["kind"] for d in docs} == {"person"}
    first = next(d for d in docs if d["external_id"] == raws[0]["Id"])
    assert first["fields"]["email"] == raws[0]["Email"] and first["nkey"] == f"email:{raws[0]['Email'].lower()}"
    assert first["links"][0]["rel"] == "organization" and first["links"][0]["type"] == "account"
