"""The declarative mapping: transforms, links, derived records, the generated reader, normalizers."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from adapters.base.spec import DerivedMap, FieldMap, LinkMap, MappingSpec
from shared.engine import canonical
from shared.engine.mapping import Mapper, _compile_field, parse_date

SPEC = MappingSpec(
    canonical="task",
    fields={
        "title": "title",
        "nested": "a.b",
        "deep": "a.b.c",
        "first": "items.0",
        "name": FieldMap(path=("first", "last"), transform="join"),
        "domain": FieldMap(path="email", transform="split", sep="@", index=1),
        "when": FieldMap(path="at", transform="date"),
        "state": FieldMap(path="s", transform="enum", values={"open": "open", "closed": "done"}, default="other"),
        "lower": FieldMap(path="title", transform="lower"),
        "labels": FieldMap(path="labels", transform="list", item="name"),
        "fallback": FieldMap(path="missing", default="none"),
    },
    links=(
        LinkMap(rel="owner", path="owner_id", entity_type="user"),
        LinkMap(rel="watcher", path="watchers", item="id", entity_type="user"),
    ),
    derived=(
        DerivedMap(
            path="author",
            entity_type="user",
            rel="author",
            mapping=MappingSpec(canonical="person", fields={"name": "login"}),
        ),
    ),
    writable=("title", "nested", "name"),
)


def test_every_transform() -> None:
    raw = {
        "title": "Crash ON start",
        "a": {"b": {"c": 3}},
        "items": ["x", "y"],
        "first": "Ada",
        "last": "Lovelace",
        "email": "ada@example.com",
        "at": "2024-03-01T10:00:00+02:00",
        "s": "closed",
        "labels": [{"name": "bug"}, {"name": "p1"}],
    }
    fields = Mapper(SPEC).fields(raw)
    assert fields == {
        "title": "Crash ON start",
        "nested": {"c": 3},
        "deep": 3,
        "first": "x",
        "name": "Ada Lovelace",
        "domain": "example.com",
        "when": "2024-03-01T08:00:00Z",
        "state": "done",
        "lower": "crash on start",
        "labels": ["bug", "p1"],
        "fallback": "none",
    }
    assert Mapper(SPEC).fields({"s": "weird"}) == {"state": "other", "labels": [], "fallback": "none"}


def test_links_and_derived_records() -> None:
    mapper = Mapper(SPEC)
    raw = {"owner_id": 7, "watchers": [{"id": "u1"}, {"id": "u2"}, {"no": 1}], "author": {"id": 9, "login": "octo"}}
    derived = mapper.derive(raw)
    assert [(d.entity_type, d.external_id, d.rel) for d in derived] == [("user", "9", "author")]
    assert derived[0].mapper.fields(derived[0].data) == {"name": "octo"}
    assert [(link.rel, link.external_id) for link in mapper.links(raw)] == [
        ("owner", "7"),
        ("watcher", "u1"),
        ("watcher", "u2"),
        ("author", "9"),
    ]
    assert mapper.to_provider({"title": "t", "nested": 1, "name": "n", "other": 2}) == {"title": "t"}


JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 5),
        st.sampled_from(["", "open", "closed", "x@y.z", "2024-01-01T00:00:00Z"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["b", "c", "0", "name"]), inner, max_size=3)
    ),
    max_leaves=8,
)
RAW = st.dictionaries(
    st.sampled_from(["title", "a", "items", "first", "last", "email", "at", "s", "labels", "missing"]), JSON, max_size=8
)


@given(RAW)
def test_the_generated_reader_equals_reading_each_field(raw: dict[str, Any]) -> None:
    expected = {}
    for name, spec in SPEC.fields.items():
        value = _compile_field(spec)(raw)
        if value is not None:
            expected[name] = value
    assert Mapper(SPEC).fields(raw) == expected


def test_dates_and_keys_normalize() -> None:
    assert parse_date("2024-02-01T00:00:00.000+0000") == "2024-02-01T00:00:00Z"
    assert parse_date("2024-02-01T01:00:00-01:00") == "2024-02-01T02:00:00Z"
    assert parse_date(1700000000) == parse_date("1700000000.000100") == "2023-11-14T22:13:20Z"
    assert parse_date("yesterday") is None and parse_date(True) is None
    assert canonical.norm_email(" Ada@Example.COM ") == "ada@example.com" and canonical.norm_email("no") is None
    assert canonical.norm_domain("https://www.Acme.com/about") == "acme.com" == canonical.norm_domain("bob@acme.com")
    assert canonical.norm_phone("+1 (555) 010-2000") == "15550102000" and canonical.norm_phone("12") is None
    assert (
        canonical.norm_name("Acme, Inc.", "organization") == "acme" and canonical.norm_name("Zoë  Smith") == "zoe smith"
    )
    assert canonical.natural_key("person", {"phone": "+1 555 010 2000"}) == "phone:15550102000"
    assert canonical.natural_key("organization", {"website": "http://acme.io"}) == "domain:acme.io"
    assert canonical.natural_key("task", {"email": "a@b.c"}) is None
