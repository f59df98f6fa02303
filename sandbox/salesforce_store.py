"""The data behind the Salesforce sandbox: one org's Accounts and Contacts, a SOQL subset, a delete log.

Records are dicts keyed by their 18-character Id (a real key prefix, ``001`` Account and ``003``
Contact, plus the case-insensitive checksum suffix), generated from a seed. Each sObject type
keeps a :class:`~sandbox.common.SortedIndex` of ``(SystemModstamp, Id)``, so the query adapters
send for delta sync (``WHERE SystemModstamp > <datetime> ORDER BY SystemModstamp, Id``) is a
``bisect`` plus a slice; other shapes fall back to a scan of the type (counted in ``touched``).

The SOQL subset: ``SELECT f[, f...] FROM Account|Contact [WHERE cond [AND cond ...]]
[ORDER BY f [ASC|DESC] [, ...]] [LIMIT n] [OFFSET n]`` where ``cond`` is ``field op literal``
(``= != <> < <= > >=``) or ``field IN ('a', 'b')``; literals are unquoted datetimes
(``2024-01-01T00:00:00Z``, ``...000+0000``), quoted strings, numbers, ``true``/``false``/``null``.
Errors use Salesforce's codes: ``MALFORMED_QUERY``, ``INVALID_FIELD``, ``INVALID_TYPE``.
"""

from __future__ import annotations

import bisect
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.common import SandboxClock, SortedIndex

API_VERSION = "60.0"
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Wonka", "Tyrell", "Cyberdyne", "Hooli"]
_SUFFIXES = ["Corp", "Inc", "Ltd", "GmbH", "Group", "Labs"]
_INDUSTRIES = ["Technology", "Manufacturing", "Finance", "Healthcare", "Retail", "Energy"]
_CITIES = [("San Francisco", "USA"), ("London", "UK"), ("Berlin", "Germany"), ("Paris", "France"), ("Tokyo", "Japan")]
_FIRST = ["Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Ken", "Radia", "Dennis", "Frances"]
_LAST = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Thompson", "Perlman", "Ritchie", "Allen"]
_TITLES = ["CEO", "CTO", "VP Sales", "Engineer", "Buyer", "Office Manager"]

# field -> (type, writable); "Id" and the audit fields are read-only, as in Salesforce.
_AUDIT = {"Id": ("id", False), "IsDeleted": ("boolean", False), "OwnerId": ("reference", True),
          "CreatedDate": ("datetime", False), "LastModifiedDate": ("datetime", False),
          "SystemModstamp": ("datetime", False)}
SCHEMAS: dict[str, dict[str, tuple[str, bool]]] = {
    "Account": _AUDIT | {"Name": ("string", True), "Type": ("string", True), "Industry": ("string", True),
                         "Website": ("string", True), "Phone": ("string", True), "BillingCity": ("string", True),
                         "BillingCountry": ("string", True), "NumberOfEmployees": ("int", True)},
    "Contact": _AUDIT | {"AccountId": ("reference", True), "FirstName": ("string", True),
                         "LastName": ("string", True), "Name": ("string", False), "Email": ("string", True),
                         "Phone": ("string", True), "Title": ("string", True), "MailingCity": ("string", True)},
}
KEY_PREFIXES = {"Account": "001", "Contact": "003"}
REQUIRED = {"Account": ("Name",), "Contact": ("LastName",)}


class SalesforceError(Exception):
    """A REST API failure answered as ``[{"message": ..., "errorCode": ...}]`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields

    def body(self) -> list[dict[str, Any]]:
        """The Salesforce error list."""
        entry: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            entry["fields"] = self.fields
        return [entry]


def with_checksum(id15: str) -> str:
    """The 18-character form of a 15-character Salesforce id (adds the case-encoding suffix)."""
    suffix = ""
    for chunk in range(3):
        bits = sum(1 << i for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]) if "A" <= ch <= "Z")
        suffix += _CHECKSUM[bits]
    return id15 + suffix


def sf_datetime(moment: datetime) -> str:
    """Salesforce's JSON datetime format: ``2024-01-01T00:00:00.000+0000``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> datetime:
    """Parse an ISO 8601 / SOQL datetime (``Z``, ``+hh:mm`` or ``+hhmm``); ``ValueError`` otherwise."""
    value = text.strip()
    if re.search(r"[+-]\d{4}$", value):
        value = value[:-2] + ":" + value[-2:]
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"datetime {text!r} needs a time zone (Z or an offset)")
    return moment.astimezone(UTC)


# -- SOQL ---------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<dt>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))|(?P<str>'(?:[^'\\]|\\.)*')"
    r"|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>!=|<>|<=|>=|=|<|>)|(?P<punct>[(),])|(?P<word>[A-Za-z_][\w.]*))"
)


@dataclass
class Condition:
    """``field op value`` (``op`` is ``IN`` with a list value)."""

    field: str
    op: str
    value: Any


@dataclass
class Query:
    """A parsed SOQL query."""

    sobject: str
    fields: list[str]
    where: list[Condition] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    limit: int | None = None
    offset: int = 0


def _malformed(message: str) -> SalesforceError:
    return SalesforceError(400, "MALFORMED_QUERY", message)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _malformed(f"unexpected token: '{text[position:].strip()[:20]}'")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _field_name(sobject: str, name: str) -> str:
    """The canonical spelling of a field (SOQL names are case-insensitive)."""
    for known in SCHEMAS[sobject]:
        if known.lower() == name.lower():
            return known
    raise SalesforceError(
        400, "INVALID_FIELD",
        f"No such column '{name}' on entity '{sobject}'. If you are attempting to use a custom field, be sure to "
        "append the '__c' after the custom field name. Please reference your WSDL or the describe call for the "
        "appropriate names.",
    )


def _literal(sobject: str, name: str, kind: str, text: str) -> Any:
    ftype = SCHEMAS[sobject][name][0]
    if kind == "word" and text.lower() == "null":
        return None
    if ftype == "datetime":
        if kind != "dt":
            raise SalesforceError(400, "INVALID_FIELD", f"value of filter criterion for field '{name}' must be of "
                                  "type dateTime and should not be enclosed in quotes")
        return sf_datetime(parse_datetime(text))
    if ftype == "boolean":
        if kind != "word" or text.lower() not in ("true", "false"):
            raise SalesforceError(400, "INVALID_FIELD", f"value of filter criterion for field '{name}' must be "
                                  "of type boolean and should not be enclosed in quotes")
        return text.lower() == "true"
    if ftype == "int":
        if kind != "num":
            raise SalesforceError(400, "INVALID_FIELD", f"value of filter criterion for field '{name}' must be "
                                  "of type integer and should not be enclosed in quotes")
        return int(float(text))
    if kind != "str":
        raise _malformed(f"value of filter criterion for field '{name}' must be a quoted string, not {text}")
    return text[1:-1].replace("\\'", "'")


def parse_soql(text: str) -> Query:
    """Parse the supported SOQL subset; ``SalesforceError`` (400) with Salesforce's code otherwise."""
    tokens = _tokens(text)
    position = 0

    def peek(offset: int = 0) -> tuple[str, str]:
        return tokens[position + offset] if position + offset < len(tokens) else ("end", "")

    def take(expected: str | None = None) -> tuple[str, str]:
        nonlocal position
        token = peek()
        if token[0] == "end" or (expected is not None and token[1].upper() != expected):
            raise _malformed(f"expecting {expected or 'a token'}, found '{token[1] or 'end of query'}'")
        position += 1
        return token

    def keyword(word: str) -> bool:
        return peek()[0] == "word" and peek()[1].upper() == word

    take("SELECT")
    raw_fields = [take()[1]]
    while peek()[1] == ",":
        take(",")
        raw_fields.append(take()[1])
    take("FROM")
    name = take()[1]
    sobject = next((s for s in SCHEMAS if s.lower() == name.lower()), None)
    if sobject is None:
        raise SalesforceError(400, "INVALID_TYPE", f"sObject type '{name}' is not supported. If you are attempting "
                              "to use a custom object, be sure to append the '__c' after the entity name.")
    query = Query(sobject, [_field_name(sobject, f) for f in raw_fields])
    if keyword("WHERE"):
        take()
        while True:
            name = _field_name(sobject, take()[1])
            if keyword("IN"):
                take()
                take("(")
                values = [_literal(sobject, name, *take())]
                while peek()[1] == ",":
                    take(",")
                    values.append(_literal(sobject, name, *take()))
                take(")")
                query.where.append(Condition(name, "IN", values))
            else:
                op = take()
                if op[0] != "op":
                    raise _malformed(f"expecting a comparison operator after {name}, found '{op[1]}'")
                query.where.append(Condition(name, "!=" if op[1] == "<>" else op[1], _literal(sobject, name, *take())))
            if keyword("OR"):
                raise _malformed("the sandbox supports WHERE conditions joined by AND only")
            if not keyword("AND"):
                break
            take()
    if keyword("ORDER"):
        take()
        take("BY")
        while True:
            name = _field_name(sobject, take()[1])
            descending = keyword("DESC")
            if keyword("ASC") or keyword("DESC"):
                take()
            query.order.append((name, descending))
            if peek()[1] != ",":
                break
            take(",")
    for word in ("LIMIT", "OFFSET"):
        if keyword(word):
            take()
            kind, value = take()
            if kind != "num" or int(float(value)) < 0:
                raise _malformed(f"{word} must be a non-negative integer")
            if word == "LIMIT":
                query.limit = int(value)
            else:
                query.offset = int(value)
    if peek()[0] != "end":
        raise _malformed(f"unexpected token: '{peek()[1]}'")
    return query


def _matches(record: dict[str, Any], cond: Condition) -> bool:
    value = record.get(cond.field)
    if cond.op == "IN":
        return value in cond.value
    if cond.op in ("=", "!="):
        return (value == cond.value) == (cond.op == "=")
    if value is None or cond.value is None:
        return False
    return {"<": value < cond.value, "<=": value <= cond.value, ">": value > cond.value,
            ">=": value >= cond.value}[cond.op]


# -- the org ----------------------------------------------------------------------------------------


class SalesforceOrg:
    """One org's records, indexes and delete log (not thread-safe: the sandbox holds its lock).

    Args:
        seed: Seed of ids and generated content.
        clock: Timestamps of every mutation (one tick each).
        metrics: Counter the reads add ``touched`` to.
        deleted_retention: How long the delete log keeps entries.
    """

    def __init__(self, seed: int, clock: SandboxClock, metrics: Counter[str],
                 deleted_retention: timedelta = timedelta(days=15)) -> None:
        self._rng = random.Random(seed)
        self.clock, self.metrics, self.deleted_retention = clock, metrics, deleted_retention
        self._records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in SCHEMAS}
        self._index: dict[str, SortedIndex] = {name: SortedIndex() for name in SCHEMAS}
        self._deleted: dict[str, list[tuple[str, str]]] = {name: [] for name in SCHEMAS}  # (deletedDate, id)
        self._ids: set[str] = set()
        self._purged_until = datetime(1970, 1, 1, tzinfo=UTC)
        self.org_id = self.new_id("00D")
        self.user_id = self.new_id("005")

    def new_id(self, prefix: str) -> str:
        """A fresh 18-character id with a 3-character key prefix."""
        while True:
            body = "".join(self._rng.choice(_BASE62) for _ in range(6))
            candidate = with_checksum(f"{prefix}5g0000{body}"[:15])
            if candidate not in self._ids:
                self._ids.add(candidate)
                return candidate

    # -- reads ----------------------------------------------------------------------------------

    def get(self, sobject: str, record_id: str) -> dict[str, Any]:
        """A copy of one live record; ``SalesforceError`` 404 (``NOT_FOUND`` or ``ENTITY_IS_DELETED``)."""
        record = self._records[self.sobject(sobject)].get(record_id)
        if record is None:
            if any(rid == record_id for _, rid in self._deleted[sobject]):
                raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted")
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        self.metrics["touched"] += 1
        return dict(record)

    def peek(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """The live record (not a copy) or ``None``; for rendering snapshots."""
        return self._records[sobject].get(record_id)

    def records(self, sobject: str) -> list[dict[str, Any]]:
        """Copies of every live record of a type, in ``(SystemModstamp, Id)`` order."""
        return [dict(self._records[sobject][rid]) for _, rid in self._index[sobject]]

    def count(self, sobject: str) -> int:
        """How many live records of a type exist."""
        return len(self._records[sobject])

    @staticmethod
    def sobject(name: str) -> str:
        """The canonical sObject name; ``SalesforceError`` 404 ``NOT_FOUND`` if unsupported."""
        for known in SCHEMAS:
            if known.lower() == name.lower():
                return known
        raise SalesforceError(404, "NOT_FOUND", f"The requested resource does not exist: sObject type '{name}'")

    def run(self, query: Query) -> list[str]:
        """The ids a query selects, in its order (a snapshot the caller pages through).

        ``SystemModstamp`` range conditions ordered by ``SystemModstamp[, Id]`` (or unordered) use
        the index: two bisects and a slice of keys, no record is read. Anything else scans the type.
        """
        index, order = self._index[query.sobject], query.order
        ranged = all(c.field == "SystemModstamp" and c.op in ("<", "<=", ">", ">=", "=") and c.value is not None
                     for c in query.where)
        if ranged and order in ([], [("SystemModstamp", False)], [("SystemModstamp", False), ("Id", False)],
                                [("SystemModstamp", True)], [("SystemModstamp", True), ("Id", True)]):
            lo, hi = 0, len(index)
            for cond in query.where:
                if cond.op in (">", ">=", "="):
                    lo = max(lo, index.upper((cond.value, "~")) if cond.op == ">" else index.lower((cond.value,)))
                if cond.op in ("<", "<=", "="):
                    hi = min(hi, index.lower((cond.value,)) if cond.op == "<" else index.upper((cond.value, "~")))
            keys = index.slice(lo, hi)
            return self._window([rid for _, rid in (reversed(keys) if order and order[0][1] else keys)], query)
        records = self._records[query.sobject]
        self.metrics["touched"] += len(records)
        chosen = [r for r in records.values() if all(_matches(r, c) for c in query.where)]
        for name, descending in reversed(order or [("SystemModstamp", False), ("Id", False)]):
            chosen.sort(key=lambda r: (r.get(name) is None, r.get(name) or ""), reverse=descending)
        return self._window([r["Id"] for r in chosen], query)

    @staticmethod
    def _window(ids: list[str], query: Query) -> list[str]:
        end = None if query.limit is None else query.offset + query.limit
        return ids[query.offset : end] if query.offset or end is not None else ids

    def deleted(self, sobject: str, start: datetime, end: datetime, now: datetime) -> dict[str, Any]:
        """The ``sobjects/{type}/deleted`` answer for deletions in ``[start, latestDateCovered]``.

        ``latestDateCovered`` is ``min(end, now)`` rounded down to the minute. A ``start`` before
        ``earliestDateAvailable`` (``now`` minus the retention, or the last purge) is refused with
        ``INVALID_REPLICATION_DATE``: the caller must resync.
        """
        sobject = self.sobject(sobject)
        if start >= end:
            raise SalesforceError(400, "INVALID_REPLICATION_DATE", "start date must be before end date")
        earliest = max(now - self.deleted_retention, self._purged_until).replace(second=0, microsecond=0)
        if start < earliest:
            raise SalesforceError(400, "INVALID_REPLICATION_DATE",
                                  f"start date is before earliestDateAvailable ({sf_datetime(earliest)})")
        log = self._deleted[sobject]
        lo, hi = sf_datetime(start), sf_datetime(min(end, now).replace(second=0, microsecond=0))
        first, last = bisect.bisect_left(log, (lo,)), bisect.bisect_right(log, (hi, "~"))
        chosen = [{"id": rid, "deletedDate": stamp} for stamp, rid in log[first:last]]
        self.metrics["touched"] += len(chosen)
        return {"deletedRecords": chosen, "earliestDateAvailable": sf_datetime(earliest), "latestDateCovered": hi}

    def purge_deleted(self, now: datetime) -> None:
        """Empty the delete log, as Salesforce's purge does: earlier starts now get ``INVALID_REPLICATION_DATE``."""
        self._purged_until = now
        for log in self._deleted.values():
            log.clear()

    # -- writes ---------------------------------------------------------------------------------

    def _validate(self, sobject: str, fields: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        schema, clean = SCHEMAS[sobject], {}
        for raw, value in fields.items():
            name = next((f for f in schema if f.lower() == raw.lower()), None)
            if name is None:
                raise SalesforceError(400, "INVALID_FIELD", f"No such column '{raw}' on sobject of type {sobject}")
            ftype, writable = schema[name]
            if not writable:
                raise SalesforceError(400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                                      f"Unable to create/update fields: {name}. Please check the security settings "
                                      "of this field and verify that it is read/write for your profile or "
                                      "permission set.", [name])
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool)
                                          if ftype == "int" else isinstance(value, str)):
                raise SalesforceError(400, "JSON_PARSER_ERROR",
                                      f"Cannot deserialize instance of {ftype} from {type(value).__name__} "
                                      f"value for field {name}")
            if name == "AccountId" and value is not None and value not in self._records["Account"]:
                raise SalesforceError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [name])
            clean[name] = value
        for name in REQUIRED[sobject]:
            if (creating and not clean.get(name)) or (name in clean and not clean[name]):
                raise SalesforceError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{name}]",
                                      [name])
        return clean

    def create(self, sobject: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Insert a record (validated like the REST API) and return a copy."""
        sobject = self.sobject(sobject)
        clean = self._validate(sobject, fields, creating=True)
        stamp = sf_datetime(self.clock.tick())
        record: dict[str, Any] = {name: None for name in SCHEMAS[sobject]}
        record.update(clean, Id=self.new_id(KEY_PREFIXES[sobject]), IsDeleted=False, CreatedDate=stamp,
                      LastModifiedDate=stamp, SystemModstamp=stamp)
        record["OwnerId"] = record["OwnerId"] or self.user_id
        self._finish(sobject, record)
        self._records[sobject][record["Id"]] = record
        self._index[sobject].add((stamp, record["Id"]))
        return dict(record)

    def update(self, sobject: str, record_id: str, fields: dict[str, Any], *, system_only: bool = False,
               unmodified_since: datetime | None = None) -> dict[str, Any]:
        """Change fields (``system_only``: bump only ``SystemModstamp``, like a system process) and return a copy."""
        sobject = self.sobject(sobject)
        self.get(sobject, record_id)
        record = self._records[sobject][record_id]
        if unmodified_since is not None and parse_datetime(record["LastModifiedDate"]) > unmodified_since:
            raise SalesforceError(412, "PRECONDITION_FAILED",
                                  "The requested resource has been modified since the If-Unmodified-Since time")
        clean = self._validate(sobject, fields, creating=False)
        old_key = (record["SystemModstamp"], record_id)
        stamp = sf_datetime(self.clock.tick())
        record.update(clean)
        record["SystemModstamp"] = stamp
        if not system_only:
            record["LastModifiedDate"] = stamp
        self._finish(sobject, record)
        self._index[sobject].move(old_key, (stamp, record_id))
        return dict(record)

    def delete(self, sobject: str, record_id: str) -> list[tuple[str, str]]:
        """Delete a record (an Account takes its Contacts with it); returns ``(type, id)`` of everything deleted."""
        sobject = self.sobject(sobject)
        self.get(sobject, record_id)
        removed = [(sobject, record_id)]
        if sobject == "Account":
            removed += [("Contact", c["Id"]) for c in self._records["Contact"].values() if c["AccountId"] == record_id]
        for kind, rid in removed:
            record = self._records[kind].pop(rid)
            self._index[kind].remove((record["SystemModstamp"], rid))
            self._deleted[kind].append((sf_datetime(self.clock.tick()), rid))
        return removed

    @staticmethod
    def _finish(sobject: str, record: dict[str, Any]) -> None:
        if sobject == "Contact":
            record["Name"] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p)

    def seed(self, accounts: int, contacts: int) -> None:
        """Generate ``accounts`` Accounts, then ``contacts`` Contacts spread over the Accounts."""
        rng = self._rng
        for _ in range(accounts):
            company = f"{rng.choice(_COMPANIES)} {rng.choice(_SUFFIXES)}"
            city, country = rng.choice(_CITIES)
            domain = company.split()[0].lower()
            self.create("Account", {
                "Name": company, "Type": rng.choice(["Customer - Direct", "Prospect", "Partner"]),
                "Industry": rng.choice(_INDUSTRIES), "Website": f"https://www.{domain}.example.com",
                "Phone": f"+1 415 555 {rng.randrange(10000):04d}", "BillingCity": city, "BillingCountry": country,
                "NumberOfEmployees": rng.randrange(5, 50000)})
        account_ids = list(self._records["Account"])
        for _ in range(contacts):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            account = rng.choice(account_ids) if account_ids else None
            domain = self._records["Account"][account]["Name"].split()[0].lower() if account else "example"
            self.create("Contact", {
                "FirstName": first, "LastName": last, "AccountId": account, "Title": rng.choice(_TITLES),
                "Email": f"{first.lower()}.{last.lower()}{rng.randrange(1000)}@{domain}.example.com",
                "Phone": f"+1 650 555 {rng.randrange(10000):04d}", "MailingCity": rng.choice(_CITIES)[0]})
