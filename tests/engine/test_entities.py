"""Canonical entities: dedupe across providers, links both ways, conflicts, split, re-mapping."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base.model import Entity
from shared.engine.admin import EntityService
from shared.engine.pipeline import WriteResult
from tests.engine.conftest import TENANT, Env, integration


def slack_user(uid: str, name: str, email: str | None, updated: int = 1) -> Entity:
    profile: dict[str, Any] = {"real_name": name, "title": "Engineer"}
    if email:
        profile["email"] = email
    raw = {"id": uid, "name": name.lower().replace(" ", "."), "real_name": name, "profile": profile, "updated": updated}
    return Entity("user", uid, raw, f"{updated:012d}")


def sf_contact(
    cid: str, first: str, last: str, email: str, stamp: str = "2024-01-01T00:00:00.000+0000", **more: Any
) -> Entity:
    raw = {
        "Id": cid,
        "FirstName": first,
        "LastName": last,
        "Email": email,
        "Phone": "+1 650 555 0100",
        "Title": "CTO",
        "AccountId": "001A",
        "SystemModstamp": stamp,
        **more,
    }
    return Entity("contact", cid, raw, stamp)


def service(env: Env, *integrations: Any) -> EntityService:
    known = {i.id: i for i in integrations}
    return EntityService(
        env.store,
        env.containers,
        integrations=lambda _t, iid: known.get(iid),
        outbox=lambda _i, p: env.pushes.extend(p),
    )


def test_the_same_person_from_slack_and_salesforce_is_one_person(env: Env) -> None:
    slack, sf = integration("slack", "sl", "users"), integration("salesforce", "sf", "contacts")
    env.writer.write_page(
        slack,
        [slack_user("U1", "Ada Lovelace", "Ada@Example.com"), slack_user("U2", "Alan Turing", "alan@example.com")],
        stream="users",
    )
    env.writer.write_page(sf, [sf_contact("003A", "Ada", "Lovelace", "ada@example.COM ")], stream="contacts")
    entities = service(env, slack, sf).list_entities(TENANT, {"type": "person"})["entities"]
    assert len(entities) == 2
    ada = next(e for e in entities if e["fields"]["name"] == "Ada Lovelace")
    assert {s["provider"] for s in ada["sources"]} == {"slack", "salesforce"}
    assert ada["fields"]["phone"] == "+1 650 555 0100" and ada["fields"]["title"] == "Engineer"  # first source kept its
    assert ada["merged"][0]["how"] == "natural_key"
    [found] = service(env, slack, sf).list_entities(TENANT, {"type": "person", "q": "ada@example.com"})["entities"]
    assert found["id"] == ada["id"]
    [by_name] = service(env, slack, sf).list_entities(TENANT, {"q": "alan"})["entities"]
    assert by_name["fields"]["email"] == "alan@example.com"


def test_natural_keys_never_cross_tenants(env: Env) -> None:
    a = integration("slack", "sl-a", "users", tenant=TENANT)
    b = integration("salesforce", "sf-b", "contacts", tenant="t-other")
    env.writer.write_page(a, [slack_user("U1", "Ada Lovelace", "ada@example.com")], stream="users")
    env.writer.write_page(b, [sf_contact("003A", "Ada", "Lovelace", "ada@example.com")], stream="contacts")
    assert len(service(env).list_entities(TENANT, {"type": "person"})["entities"]) == 1
    [other] = service(env).list_entities("t-other", {"type": "person"})["entities"]
    assert [s["provider"] for s in other["sources"]] == ["salesforce"]


def test_fuzzy_names_merge_above_the_threshold_and_are_proposed_below_it(env: Env) -> None:
    slack = integration("slack", "sl", "users")
    env.writer.write_page(slack, [slack_user("U1", "Grace Hopper", None)], stream="users")
    env.writer.write_page(
        slack, [slack_user("U2", "grace  hopper", None), slack_user("U3", "Grace Hopperson", None)], stream="users"
    )
    svc = service(env, slack)
    people = svc.list_entities(TENANT, {"type": "person"})["entities"]
    merged = next(e for e in people if len(e["sources"]) == 2)
    assert merged["merged"][0]["how"] == "fuzzy"
    [proposal] = svc.proposals(TENANT, {})
    assert 85 <= proposal["score"] < 95 and proposal["candidate_entity_id"] == merged["id"]
    assert len(people) == 2  # the proposed one waits for review as its own entity


def test_a_split_is_reversible_and_the_map_follows(env: Env) -> None:
    slack, sf = integration("slack", "sl", "users"), integration("salesforce", "sf", "contacts")
    env.writer.write_page(slack, [slack_user("U1", "Ada Lovelace", "ada@example.com")], stream="users")
    env.writer.write_page(sf, [sf_contact("003A", "Ada", "Lovelace", "ada@example.com")], stream="contacts")
    svc = service(env, slack, sf)
    [ada] = svc.list_entities(TENANT, {"type": "person"})["entities"]
    sf_source = next(s for s in ada["sources"] if s["provider"] == "salesforce")
    result = svc.split(TENANT, ada["id"], {"record_id": sf_source["record_id"]})
    assert [s["provider"] for s in result["entity"]["sources"]] == ["slack"]
    assert [s["provider"] for s in result["split_off"]["sources"]] == ["salesforce"]
    assert len(svc.list_entities(TENANT, {"type": "person"})["entities"]) == 2
    # the next sync of the split-off contact does not merge it back
    env.writer.write_page(
        sf, [sf_contact("003A", "Ada", "Lovelace", "ada@example.com", Title="CEO")], stream="contacts"
    )
    assert len(svc.list_entities(TENANT, {"type": "person"})["entities"]) == 2


def test_links_are_pending_until_the_target_arrives_and_read_both_ways(env: Env) -> None:
    sf_contacts, sf_accounts = integration("salesforce", "sf", "contacts"), integration("salesforce", "sf", "accounts")
    env.writer.write_page(sf_contacts, [sf_contact("003A", "Ada", "Lovelace", "ada@example.com")], stream="contacts")
    svc = service(env, sf_contacts)
    [ada] = svc.list_entities(TENANT, {"type": "person"})["entities"]
    [link] = ada["links"]
    assert (link["rel"], link["status"], link["entity_id"]) == ("organization", "pending", None)
    account = Entity("account", "001A", {"Id": "001A", "Name": "Acme Inc", "Website": "https://www.acme.com"}, "2024")
    env.writer.write_page(sf_accounts, [account], stream="accounts")
    [ada] = svc.list_entities(TENANT, {"type": "person"})["entities"]
    [org] = svc.list_entities(TENANT, {"type": "organization"})["entities"]
    assert ada["links"][0]["status"] == "resolved" and ada["links"][0]["entity_id"] == org["id"]
    assert org["links"] == []  # a page of entities leaves incoming links to the entity itself
    incoming = svc.get(TENANT, org["id"])["links"]
    assert [(x["direction"], x["rel"], x["entity_id"]) for x in incoming] == [("in", "organization", ada["id"])]


def test_github_issues_derive_their_author_and_assignee(env: Env) -> None:
    gh = integration("github", "gh", "issues")
    raw = {
        "id": 1,
        "number": 1,
        "title": "Crash",
        "state": "open",
        "user": {"login": "octocat", "id": 583231},
        "assignees": [{"login": "hubot", "id": 480938}],
        "labels": [],
        "updated_at": "2024-01-01T00:00:00Z",
    }
    env.writer.write_page(gh, [Entity("issue", "1", raw, raw["updated_at"])], stream="issues")
    svc = service(env, gh)
    [task] = svc.list_entities(TENANT, {"type": "task"})["entities"]
    assert task["fields"] == {
        "title": "Crash",
        "status": "open",
        "number": 1,
        "labels": [],
        "updated_at": "2024-01-01T00:00:00Z",
    }
    rels = sorted((x["rel"], x["status"]) for x in task["links"])
    assert rels == [("assignee", "resolved"), ("author", "resolved")]
    people = {e["fields"]["name"] for e in svc.list_entities(TENANT, {"type": "person"})["entities"]}
    assert people == {"octocat", "hubot"}


def test_a_new_mapping_version_remaps_stored_raw_data_without_fetching(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack = integration("slack", "sl", "users")
    env.writer.write_page(slack, [slack_user("U1", "Ada Lovelace", "ada@example.com")], stream="users")
    mapper = env.writer.pages.catalog.mapper("slack", "user")
    assert mapper is not None
    original = mapper.fields
    monkeypatch.setattr(mapper, "version", mapper.version + 1)
    monkeypatch.setattr(mapper, "fields", lambda raw: {**original(raw), "display": raw["name"]})
    assert env.writer.pages.remap(slack) == 1
    [doc] = env.docs("records")
    assert doc["fields"]["display"] == "ada.lovelace" and doc["mv"] == mapper.version
    assert env.writer.pages.remap(slack) == 0


def test_conflicts_on_a_shared_entity_follow_the_stream_strategy(env: Env) -> None:
    slack = integration("slack", "sl", "users", conflict_strategy="manual")
    sf = integration("salesforce", "sf", "contacts", two_way=True)
    env.writer.write_page(sf, [sf_contact("003A", "Ada", "Lovelace", "ada@example.com")], stream="contacts")
    env.writer.write_page(slack, [slack_user("U1", "Ada Lovelace", "ada@example.com")], stream="users")
    svc = service(env, slack, sf)
    [ada] = svc.list_entities(TENANT, {"type": "person"})["entities"]
    svc.change(TENANT, ada["id"], {"fields": {"title": "Countess"}})  # a local edit
    assert env.pushes[-1]["changes"] == {"Title": "Countess"}  # the two-way Salesforce source gets it
    # Slack changes the title too (and its name): a conflict under manual; the name merges
    user = slack_user("U1", "Ada King", "ada@example.com", updated=2)
    user.data["profile"]["title"] = "Mathematician"
    assert env.writer.write_page(slack, [user], stream="users").results == [WriteResult.UPDATED]
    [open_] = svc.conflicts(TENANT, {"status": "open"})
    assert (open_["field"], open_["local"], open_["remote"], open_["base"]) == (
        "title",
        "Countess",
        "Mathematician",
        "Engineer",
    )
    view = svc.get(TENANT, ada["id"])
    assert (
        view["status"] == "waiting" and view["fields"]["name"] == "Ada King" and view["fields"]["title"] == "Countess"
    )
    resolved = svc.resolve(TENANT, open_["id"], {"pick": "remote"})
    assert resolved["status"] == "resolved" and resolved["resolution"] == "Mathematician"
    view = svc.get(TENANT, ada["id"])
    assert view["status"] == "ok" and view["fields"]["title"] == "Mathematician"
    assert env.pushes[-1]["changes"] == {"Title": "Mathematician"}


def test_a_merge_pushes_nothing_and_a_change_from_one_feed_reaches_the_other(env: Env) -> None:
    slack = integration("slack", "sl", "users")
    sf = integration("salesforce", "sf", "contacts", two_way=True)
    env.writer.write_page(sf, [sf_contact("003A", "Ada", "Lovelace", "ada@example.com")], stream="contacts")
    env.writer.write_page(slack, [slack_user("U1", "Ada Lovelace", "ada@example.com")], stream="users")
    assert env.pushes == []  # two sources joined: nothing changed, each keeps its own values
    # another feed changes a field both agreed on: it moves, and reaches the two-way source
    env.writer.write_page(slack, [slack_user("U1", "Ada Lovelace", "ada@new.example", updated=2)], stream="users")
    [push] = env.pushes
    assert (push["integration_id"], push["external_id"], push["changes"]) == (
        "sf",
        "003A",
        {"Email": "ada@new.example"},
    )
    # a field they disagreed on since the merge (title: CTO here, Engineer in Slack) is a conflict, not a silent flip
    user = slack_user("U1", "Ada Lovelace", "ada@new.example", updated=3)
    user.data["profile"]["title"] = "Countess"
    env.writer.write_page(slack, [user], stream="users")
    [conflict] = env.docs("conflicts")
    assert (conflict["field"], conflict["base"], conflict["local"], conflict["remote"]) == (
        "title",
        "Engineer",
        "CTO",
        "Countess",
    )


def test_a_manual_conflict_holds_its_field_until_an_operator_resolves_it(env: Env) -> None:
    gh = integration("github", "gh", "issues", two_way=True, conflict_strategy="manual")
    raw = {
        "id": 1,
        "number": 1,
        "title": "Crash",
        "body": "b",
        "state": "open",
        "labels": [],
        "assignees": [],
        "user": {"login": "octocat", "id": 1},
        "updated_at": "2024-01-01T00:00:00Z",
    }
    env.writer.write_page(gh, [Entity("issue", "1", raw, raw["updated_at"])], stream="issues")
    svc = service(env, gh)
    [task] = svc.list_entities(TENANT, {"type": "task"})["entities"]
    svc.change(TENANT, task["id"], {"fields": {"title": "Local"}})
    env.pushes.clear()  # that push is not delivered: GitHub changes the title meanwhile, and the body
    remote = {**raw, "title": "Remote", "body": "remote body", "updated_at": "2024-01-02T00:00:00Z"}
    env.writer.write_page(gh, [Entity("issue", "1", remote, remote["updated_at"])], stream="issues")
    assert env.pushes == []  # the body came from GitHub itself; the title waits for an operator
    [open_] = svc.conflicts(TENANT, {"status": "open"})
    assert svc.get(TENANT, task["id"])["fields"]["description"] == "remote body"
    svc.resolve(TENANT, open_["id"], {"value": "Chosen"})
    [push] = env.pushes
    assert push["changes"] == {"title": "Chosen"}


def test_a_page_cut_short_between_its_batches_is_redone_without_a_trace(env: Env) -> None:
    slack = integration("slack", "sl", "users", conflict_strategy="remote_wins")
    sf = integration("salesforce", "sf", "contacts")
    env.writer.write_page(sf, [sf_contact("003A", "Ada", "Lovelace", "ada@example.com")], stream="contacts")
    env.writer.write_page(slack, [slack_user("U1", "Ada Lovelace", "ada@example.com")], stream="users")
    svc = service(env, slack, sf)
    [ada] = svc.list_entities(TENANT, {"type": "person"})["entities"]
    svc.change(TENANT, ada["id"], {"fields": {"title": "Countess"}})
    user = slack_user("U1", "Ada King", "ada@example.com", updated=2)
    user.data["profile"]["title"] = "Mathematician"
    real = env.store.inner.batch
    crashed = {"done": False}

    def crash_on_records(container: str, pk: str, ops: list[Any]) -> list[str | None]:
        if container == env.containers["records"] and not crashed["done"]:
            crashed["done"] = True
            raise RuntimeError("the worker died here")  # the entity and conflict batches are already written
        return real(container, pk, ops)

    env.store.inner.batch = crash_on_records  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        env.writer.write_page(slack, [user], stream="users")
    assert env.writer.write_page(slack, [user], stream="users").results == [WriteResult.UPDATED]  # redelivered
    assert env.writer.write_page(slack, [user], stream="users").results == [WriteResult.UNCHANGED]
    [conflict] = env.docs("conflicts")  # one conflict, not two
    assert (conflict["field"], conflict["resolution"]) == ("title", "Mathematician")
    assert svc.get(TENANT, ada["id"])["fields"]["name"] == "Ada King"


def test_a_slack_message_yields_its_author_who_is_the_same_member_the_users_stream_lists(env: Env) -> None:
    slack = integration("slack", "sl", "users")
    msgs = integration("slack", "sl", "messages")
    message = Entity("message", "C1:1.0", {"ts": "1.0", "user": "U1", "text": "hi", "channel": "C1"}, "1.0")
    env.writer.write_page(msgs, [message], stream="messages:C1")  # the author is known by id only, for now
    svc = service(env, slack)
    [stub] = svc.list_entities(TENANT, {"type": "person"})["entities"]
    [msg] = svc.list_entities(TENANT, {"type": "message"})["entities"]
    author = next(link for link in msg["links"] if link["rel"] == "author")
    assert author["status"] == "resolved" and author["entity_id"] == stub["id"]
    env.writer.write_page(slack, [slack_user("U1", "Ada Lovelace", "ada@example.com")], stream="users")
    [person] = svc.list_entities(TENANT, {"type": "person"})["entities"]  # the same object: one person
    assert person["id"] == stub["id"] and person["fields"]["name"] == "Ada Lovelace"
    assert [s["provider"] for s in person["sources"]] == ["slack"]
    assert svc.list_entities(TENANT, {"q": "ada"})["entities"][0]["id"] == person["id"]
    later = Entity("message", "C1:2.0", {"ts": "2.0", "user": "U1", "text": "again", "channel": "C1"}, "2.0")
    env.writer.write_page(msgs, [later], stream="messages:C1")  # the member is stored: no derived copy
    assert len(env.docs("derived_records")) == 1
    assert len(svc.list_entities(TENANT, {"type": "person"})["entities"]) == 1


def test_an_entity_lives_while_any_source_does(env: Env) -> None:
    slack, sf = integration("slack", "sl", "users"), integration("salesforce", "sf", "contacts")
    env.writer.write_page(slack, [slack_user("U1", "Ada Lovelace", "ada@example.com")], stream="users")
    env.writer.write_page(sf, [sf_contact("003A", "Ada", "Lovelace", "ada@example.com")], stream="contacts")
    svc = service(env, slack, sf)
    gone = slack_user("U1", "Ada Lovelace", "ada@example.com", updated=2)
    env.writer.write_page(slack, [Entity("user", "U1", gone.data, gone.updated_at, deleted=True)], stream="users")
    [ada] = svc.list_entities(TENANT, {"type": "person"})["entities"]  # Salesforce still knows her
    assert {(s["provider"], s["deleted"]) for s in ada["sources"]} == {("slack", True), ("salesforce", False)}
    env.writer.write_page(sf, [Entity("contact", "003A", {}, "2025-01-01T00:00:00Z", deleted=True)], stream="contacts")
    assert svc.list_entities(TENANT, {"type": "person"})["entities"] == []
    assert svc.get(TENANT, ada["id"])["status"] == "deleted"


def test_a_changed_mapping_version_remaps_stored_records_before_the_next_run(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.engine.versions import remap_if_needed

    slack = integration("slack", "sl", "users")
    env.writer.write_page(slack, [slack_user("U1", "Ada Lovelace", "ada@example.com")], stream="users")
    assert remap_if_needed(env.writer.pages, slack) == 0  # the marker is written
    reads = env.store.snapshot()[0]
    assert remap_if_needed(env.writer.pages, slack) == 0
    assert env.store.snapshot()[0] == reads + 1  # one point read when nothing changed
    mapper = env.writer.pages.catalog.mapper("slack", "user")
    assert mapper is not None
    monkeypatch.setattr(mapper, "version", mapper.version + 1)
    assert remap_if_needed(env.writer.pages, slack) == 1
    assert remap_if_needed(env.writer.pages, slack) == 0
