"""Canonical mappings of provider streams (see ``MappingSpec``), kept beside the specs that use them.

Each provider's spec names its stream's mapping (``StreamSpec.mapping``); the bigger ones live
here so the provider modules stay small.
"""

from __future__ import annotations

from adapters.base.spec import DerivedMap, FieldMap, LinkMap, MappingSpec

_USER = MappingSpec(canonical="person", fields={"name": "login", "handle": "login", "avatar": "avatar_url"})
GITHUB_ISSUES = MappingSpec(
    canonical="task",
    fields={
        "title": "title",
        "description": "body",
        "status": FieldMap(path="state", transform="enum", values={"open": "open", "closed": "done"}),
        "number": "number",
        "labels": FieldMap(path="labels", transform="list", item="name"),
        "created_at": FieldMap(path="created_at", transform="date"),
        "updated_at": FieldMap(path="updated_at", transform="date"),
    },
    derived=(
        DerivedMap(path="user", entity_type="github_user", rel="author", mapping=_USER),
        DerivedMap(path="assignees", entity_type="github_user", rel="assignee", mapping=_USER),
    ),
    writable=("title", "description"),
)

SALESFORCE = {
    "Account": MappingSpec(
        canonical="organization",
        fields={"name": "Name", "domain": "Website", "phone": "Phone", "industry": "Industry", "city": "BillingCity"},
        writable=("name", "phone", "industry"),
    ),
    "Contact": MappingSpec(
        canonical="person",
        fields={
            "name": FieldMap(path=("FirstName", "LastName"), transform="join"),
            "first_name": "FirstName",
            "last_name": "LastName",
            "email": "Email",
            "phone": "Phone",
            "title": "Title",
            "city": "MailingCity",
        },
        links=(LinkMap(rel="organization", path="AccountId", entity_type="account"),),
        writable=("email", "phone", "title", "city", "first_name", "last_name"),
    ),
}


NOTION_WRITES = {  # a page's properties as Notion takes them in PATCH /v1/pages/{id}
    "title": {"Name": {"title": [{"text": {"content": "{value}"}}]}},
    "status": {"Status": {"status": {"name": "{value}"}}},
    "due": {"Due": {"date": {"start": "{value}"}}},
}
