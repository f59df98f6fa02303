"""Tests of the Salesforce sandbox over real loopback HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.oauth_server import pkce_challenge
from sandbox.salesforce import SalesforceSandbox
from sandbox.salesforce_outbound import ACK_BODY, MAX_NOTIFICATIONS, parse_notifications
from sandbox.salesforce_store import SalesforceError, parse_soql, with_checksum
from sandbox.server import Request, Response, SandboxServer, json_response

TOKEN = "sf-sandbox-token"
DATA = "/services/data/v60.0"
ROOT = Path(__file__).resolve().parents[2]
CONTACT_SOQL = "SELECT Id, FirstName, LastName, Email, SystemModstamp FROM Contact ORDER BY SystemModstamp, Id"


@pytest.fixture
def sf() -> Iterator[SalesforceSandbox]:
    with SalesforceSandbox(accounts=4, contacts=53, batch_size=7) as sandbox:
        yield sandbox


@pytest.fixture
def client(sf: SalesforceSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sf.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as c:
        yield c


def query(client: httpx.Client, soql: str) -> tuple[list[dict], list[dict]]:
    """Run SOQL and follow nextRecordsUrl until done; returns (records, page bodies)."""
    pages = [client.get(f"{DATA}/query", params={"q": soql})]
    while True:
        assert pages[-1].status_code == 200, pages[-1].text
        body = pages[-1].json()
        if body["done"]:
            assert "nextRecordsUrl" not in body
            break
        pages.append(client.get(body["nextRecordsUrl"]))
        assert len(pages) < 100, "pagination does not end"
    bodies = [p.json() for p in pages]
    return [r for b in bodies for r in b["records"]], bodies


class Receiver(SandboxServer):
    """A webhook receiver that records requests and answers a configurable body."""

    def __init__(self, status: int = 200, body: bytes = ACK_BODY) -> None:
        super().__init__()
        self.status, self.body, self.received = status, body, []
        self.route("POST", r"/hook/(?P<token>\w+)", self._hook)

    def _hook(self, request: Request) -> Response:
        self.received.append(request)
        return Response(self.status, {"Content-Type": "text/xml"}, self.body)


# -- OAuth ------------------------------------------------------------------------------------------


def authorize(sf: SalesforceSandbox, verifier: str, state: str = "st-1") -> str:
    response = httpx.get(f"{sf.base_url}/services/oauth2/authorize", params={
        "response_type": "code", "client_id": "sf-client-id", "redirect_uri": "http://127.0.0.1:7071/api/oauth/callback",
        "state": state, "code_challenge": pkce_challenge(verifier), "code_challenge_method": "S256"})
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "http://127.0.0.1:7071/api/oauth/callback"
    params = parse_qs(location.query)
    assert params["state"] == [state]
    return params["code"][0]


def token_call(sf: SalesforceSandbox, **form: str) -> httpx.Response:
    return httpx.post(f"{sf.base_url}/services/oauth2/token", data={"client_id": "sf-client-id",
                                                                     "client_secret": "sf-client-secret", **form})


def test_oauth_code_flow_with_pkce(sf: SalesforceSandbox) -> None:
    verifier = secrets.token_urlsafe(48)
    code = authorize(sf, verifier)
    redirect = "http://127.0.0.1:7071/api/oauth/callback"
    wrong = token_call(sf, grant_type="authorization_code", code=code, redirect_uri=redirect,
                       code_verifier=secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json() == {"error": "invalid_grant",
                                                         "error_description": "invalid code verifier"}
    code = authorize(sf, verifier)
    answer = token_call(sf, grant_type="authorization_code", code=code, redirect_uri=redirect, code_verifier=verifier)
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert tokens["instance_url"] == sf.base_url
    assert tokens["token_type"] == "Bearer" and "expires_in" not in tokens
    assert tokens["access_token"].startswith(sf.org_id[:15] + "!")
    assert tokens["id"] == f"{sf.base_url}/id/{sf.org_id}/{sf.org.user_id}"
    expected = hmac.new(b"sf-client-secret", (tokens["id"] + tokens["issued_at"]).encode(), hashlib.sha256).digest()
    assert base64.b64decode(tokens["signature"]) == expected
    api = httpx.get(f"{tokens['instance_url']}{DATA}/limits",
                    headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert api.status_code == 200
    reused = token_call(sf, grant_type="authorization_code", code=code, redirect_uri=redirect, code_verifier=verifier)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"


def test_authorize_denied_and_bad_client(sf: SalesforceSandbox) -> None:
    sf.deny_authorizations = True
    denied = httpx.get(f"{sf.base_url}/services/oauth2/authorize", params={
        "response_type": "code", "client_id": "sf-client-id", "redirect_uri": "http://cb.test/x", "state": "s"})
    assert parse_qs(urlsplit(denied.headers["location"]).query) == {
        "error": ["access_denied"], "error_description": ["end-user denied authorization"], "state": ["s"]}
    unknown = httpx.get(f"{sf.base_url}/services/oauth2/authorize", params={"client_id": "nope", "redirect_uri": "x"})
    assert unknown.status_code == 400
    bad_secret = httpx.post(f"{sf.base_url}/services/oauth2/token", data={
        "grant_type": "refresh_token", "client_id": "sf-client-id", "client_secret": "wrong", "refresh_token": "x"})
    assert bad_secret.status_code == 400 and bad_secret.json()["error"] == "invalid_client"
    unsupported = token_call(sf, grant_type="password")
    assert unsupported.json()["error"] == "unsupported_grant_type"


def test_refresh_without_rotation_keeps_the_refresh_token(sf: SalesforceSandbox) -> None:
    grant = sf.oauth.issue("sf-client-id", "api refresh_token")
    first = token_call(sf, grant_type="refresh_token", refresh_token=grant.refresh_token)
    second = token_call(sf, grant_type="refresh_token", refresh_token=grant.refresh_token)
    assert first.status_code == second.status_code == 200
    assert "refresh_token" not in first.json()
    assert first.json()["access_token"] != second.json()["access_token"]
    assert sf.oauth.refresh_calls == 2


def test_refresh_rotation_and_invalid_grant() -> None:
    with SalesforceSandbox(rotate_refresh_tokens=True) as sf:
        grant = sf.oauth.issue("sf-client-id")
        rotated = token_call(sf, grant_type="refresh_token", refresh_token=grant.refresh_token).json()
        assert rotated["refresh_token"] != grant.refresh_token
        old = token_call(sf, grant_type="refresh_token", refresh_token=grant.refresh_token)
        assert old.status_code == 400
        assert old.json() == {"error": "invalid_grant", "error_description": "expired access/refresh token"}
        headers = {"Authorization": f"Bearer {rotated['access_token']}"}
        assert httpx.get(f"{sf.base_url}{DATA}/limits", headers=headers).status_code == 200
        revoked = httpx.post(f"{sf.base_url}/services/oauth2/revoke", data={"token": rotated["refresh_token"]})
        assert revoked.status_code == 200 and revoked.content == b""
        after = httpx.get(f"{sf.base_url}{DATA}/limits", headers=headers)
        assert after.status_code == 401
        assert after.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
        assert token_call(sf, grant_type="refresh_token", refresh_token=rotated["refresh_token"]).status_code == 400
        assert httpx.post(f"{sf.base_url}/services/oauth2/revoke", data={"token": "zzz"}).status_code == 400
        assert sf.oauth.counters["refresh"] == 3 and sf.oauth.counters["refresh_ok"] == 1


def test_expired_session_then_refresh(sf: SalesforceSandbox) -> None:
    grant = sf.oauth.issue("sf-client-id")
    sf.expire_sessions()
    headers = {"Authorization": f"Bearer {grant.access_token}"}
    assert httpx.get(f"{sf.base_url}{DATA}/limits", headers=headers).status_code == 401
    fresh = token_call(sf, grant_type="refresh_token", refresh_token=grant.refresh_token).json()
    ok = httpx.get(f"{sf.base_url}{DATA}/limits", headers={"Authorization": f"Bearer {fresh['access_token']}"})
    assert ok.status_code == 200


def test_revoke_all_tokens(sf: SalesforceSandbox) -> None:
    grant = sf.oauth.issue("sf-client-id")
    sf.revoke_all_tokens()
    assert httpx.get(f"{sf.base_url}{DATA}/limits", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
    refused = token_call(sf, grant_type="refresh_token", refresh_token=grant.refresh_token)
    assert refused.json()["error"] == "invalid_grant"


# -- query, delta, deletes ----------------------------------------------------------------------------


def test_query_pages_cover_every_record_once(sf: SalesforceSandbox, client: httpx.Client) -> None:
    records, bodies = query(client, CONTACT_SOQL)
    ids = [r["Id"] for r in records]
    assert len(ids) == len(set(ids)) == 53
    assert set(ids) == {r["Id"] for r in sf.records("Contact")}
    assert len(bodies) == 8 and all(b["totalSize"] == 53 for b in bodies)
    assert [len(b["records"]) for b in bodies] == [7] * 7 + [4]
    assert bodies[0]["nextRecordsUrl"].startswith(f"{DATA}/query/01g") and bodies[0]["nextRecordsUrl"].endswith("-7")
    stamps = [(r["SystemModstamp"], r["Id"]) for r in records]
    assert stamps == sorted(stamps)
    first = records[0]
    assert first["attributes"] == {"type": "Contact", "url": f"{DATA}/sobjects/Contact/{first['Id']}"}
    assert list(first) == ["attributes", "Id", "FirstName", "LastName", "Email", "SystemModstamp"]
    assert len(first["Id"]) == 18 and with_checksum(first["Id"][:15]) == first["Id"] and first["Id"][:3] == "003"
    assert first["SystemModstamp"].endswith(".000+0000")
    accounts, _ = query(client, "SELECT Id, Name, Website FROM Account")
    assert len(accounts) == 4 and all(a["Id"].startswith("001") for a in accounts)


def test_batch_size_header_and_single_page(sf: SalesforceSandbox, client: httpx.Client) -> None:
    big = client.get(f"{DATA}/query", params={"q": CONTACT_SOQL}, headers={"Sforce-Query-Options": "batchSize=200"})
    assert big.json()["done"] is True and len(big.json()["records"]) == 53
    limited = client.get(f"{DATA}/query", params={"q": CONTACT_SOQL + " LIMIT 5"}).json()
    assert limited["totalSize"] == 5 and limited["done"] and len(limited["records"]) == 5


def test_delta_by_systemmodstamp(sf: SalesforceSandbox, client: httpx.Client) -> None:
    records, _ = query(client, CONTACT_SOQL)
    watermark = records[-1]["SystemModstamp"]
    changed = [records[3]["Id"], records[10]["Id"], records[40]["Id"]]
    for rid in changed:
        sf.update_record("Contact", rid, Title="Changed")
    created = sf.create_record("Contact", LastName="New", FirstName="Nina")
    delta, _ = query(client, f"SELECT Id, Title FROM Contact WHERE SystemModstamp > {watermark} "
                             "ORDER BY SystemModstamp, Id")
    assert [r["Id"] for r in delta] == [*changed, created["Id"]]
    assert query(client, f"SELECT Id FROM Contact WHERE SystemModstamp > {watermark} "
                          f"AND SystemModstamp <= {watermark}")[0] == []
    same = query(client, f"SELECT Id FROM Contact WHERE SystemModstamp >= {created['SystemModstamp']}")[0]
    assert [r["Id"] for r in same] == [created["Id"]]
    system = sf.update_record("Contact", changed[0], system_only=True)
    assert system["SystemModstamp"] > system["LastModifiedDate"]
    by_last_modified = query(client, f"SELECT Id FROM Contact WHERE LastModifiedDate > {created['SystemModstamp']}")
    assert by_last_modified[0] == []  # a system change moves SystemModstamp only


def test_deleted_records(sf: SalesforceSandbox, client: httpx.Client) -> None:
    start = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    end = datetime.now(UTC).isoformat()
    contacts = sf.records("Contact")
    sf.delete_record("Contact", contacts[0]["Id"])
    sf.delete_record("Contact", contacts[1]["Id"])
    answer = client.get(f"{DATA}/sobjects/Contact/deleted/", params={"start": start, "end": end})
    assert answer.status_code == 200
    body = answer.json()
    assert [d["id"] for d in body["deletedRecords"]] == [contacts[0]["Id"], contacts[1]["Id"]]
    assert all(d["deletedDate"].endswith("+0000") for d in body["deletedRecords"])
    covered = datetime.strptime(body["latestDateCovered"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert covered.second == 0 and covered <= datetime.fromisoformat(end)
    assert set(body) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}
    assert contacts[0]["Id"] not in {r["Id"] for r in query(client, CONTACT_SOQL)[0]}
    gone = client.get(f"{DATA}/sobjects/Contact/{contacts[0]['Id']}")
    assert gone.status_code == 404 and gone.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    too_old = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    refused = client.get(f"{DATA}/sobjects/Contact/deleted/", params={"start": too_old, "end": end})
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    assert client.get(f"{DATA}/sobjects/Contact/deleted/", params={"start": end, "end": start}).status_code == 400
    assert client.get(f"{DATA}/sobjects/Contact/deleted/").json()[0]["errorCode"] == "MISSING_ARGUMENT"
    sf.purge_deleted()
    purged = client.get(f"{DATA}/sobjects/Contact/deleted/", params={"start": start, "end": end})
    assert purged.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_deleting_an_account_deletes_its_contacts(sf: SalesforceSandbox) -> None:
    account = sf.records("Account")[0]["Id"]
    owned = {c["Id"] for c in sf.records("Contact") if c["AccountId"] == account}
    removed = sf.delete_record("Account", account)
    assert {rid for kind, rid in removed if kind == "Contact"} == owned
    assert not any(c["AccountId"] == account for c in sf.records("Contact"))


# -- writes -------------------------------------------------------------------------------------------


def test_patch_create_delete(sf: SalesforceSandbox, client: httpx.Client) -> None:
    contact = sf.records("Contact")[2]
    patched = client.patch(f"{DATA}/sobjects/Contact/{contact['Id']}", json={"Email": "new@example.com"})
    assert patched.status_code == 204 and patched.content == b""
    assert "sforce-limit-info" in patched.headers
    after = client.get(f"{DATA}/sobjects/Contact/{contact['Id']}").json()
    assert after["Email"] == "new@example.com" and after["attributes"]["type"] == "Contact"
    assert after["SystemModstamp"] == after["LastModifiedDate"] > contact["SystemModstamp"]
    missing = client.patch(f"{DATA}/sobjects/Contact/003000000000000AAA", json={"Email": "x"})
    assert missing.status_code == 404
    assert missing.json() == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
    unknown = client.patch(f"{DATA}/sobjects/Contact/{contact['Id']}", json={"Foo": 1})
    assert unknown.status_code == 400 and unknown.json()[0]["errorCode"] == "INVALID_FIELD"
    readonly = client.patch(f"{DATA}/sobjects/Contact/{contact['Id']}", json={"SystemModstamp": "x"})
    assert readonly.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    bad = client.patch(f"{DATA}/sobjects/Contact/{contact['Id']}", content=b"{nope")
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    bad_ref = client.patch(f"{DATA}/sobjects/Contact/{contact['Id']}", json={"AccountId": "001000000000000AAA"})
    assert bad_ref.json()[0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"
    stale = format_datetime(datetime.now(UTC) - timedelta(days=30), usegmt=True)
    conflict = client.patch(f"{DATA}/sobjects/Contact/{contact['Id']}", json={"Title": "x"},
                            headers={"If-Unmodified-Since": stale})
    assert conflict.status_code == 412 and conflict.json()[0]["errorCode"] == "PRECONDITION_FAILED"
    created = client.post(f"{DATA}/sobjects/Account", json={"Name": "Brand New Co"})
    assert created.status_code == 201
    assert created.json()["success"] is True and created.json()["id"].startswith("001")
    assert client.post(f"{DATA}/sobjects/Account", json={"Website": "x"}).json()[0]["errorCode"] == (
        "REQUIRED_FIELD_MISSING")
    assert client.delete(f"{DATA}/sobjects/Account/{created.json()['id']}").status_code == 204
    assert client.get(f"{DATA}/sobjects/Widget/001000000000000AAA").status_code == 404


# -- limits and faults ----------------------------------------------------------------------------------


def test_sforce_limit_info_and_daily_quota() -> None:
    with SalesforceSandbox(contacts=3, daily_limit=2) as sf, httpx.Client(
            base_url=sf.base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        first = c.get(f"{DATA}/limits")
        assert first.headers["sforce-limit-info"] == "api-usage=1/2"
        assert first.json()["DailyApiRequests"] == {"Max": 2, "Remaining": 1}
        assert c.get(f"{DATA}/query", params={"q": "SELECT Id FROM Contact"}).headers["sforce-limit-info"] == (
            "api-usage=2/2")
        blocked = c.get(f"{DATA}/query", params={"q": "SELECT Id FROM Contact"})
        assert blocked.status_code == 403
        assert blocked.json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
        assert "retry-after" not in blocked.headers
        sf.reset_daily_limit()
        assert c.get(f"{DATA}/limits").status_code == 200


def test_injected_status_faults(sf: SalesforceSandbox, client: httpx.Client) -> None:
    sf.fail_next(503)
    sf.fail_next(429, retry_after=3)
    sf.fail_next(500, code="UNABLE_TO_LOCK_ROW")
    unavailable = client.get(f"{DATA}/limits")
    assert unavailable.status_code == 503 and unavailable.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    limited = client.get(f"{DATA}/limits")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert client.get(f"{DATA}/limits").json()[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"
    assert client.get(f"{DATA}/limits").status_code == 200
    sf.fail_next(500)
    assert token_call(sf, grant_type="password").status_code == 400  # OAuth endpoints are out of default scope
    assert client.get(f"{DATA}/limits").status_code == 500
    sf.fail_next(500, path="/services/oauth2/token")
    assert token_call(sf, grant_type="password").status_code == 500


def test_timeout_truncated_and_malformed(sf: SalesforceSandbox, client: httpx.Client) -> None:
    sf.inject("timeout", seconds=0.5)
    with pytest.raises(httpx.ReadTimeout):
        client.get(f"{DATA}/limits", timeout=0.1)
    sf.inject("truncate")
    sf.inject("malformed")
    for _ in range(2):
        broken = client.get(f"{DATA}/query", params={"q": CONTACT_SOQL})
        assert broken.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(broken.content)
    assert client.get(f"{DATA}/limits").status_code == 200
    assert sf.stats()["faults_injected"] == {"timeout": 1, "truncate": 1, "malformed": 1}


def test_repeated_cursor_and_expired_locator(sf: SalesforceSandbox, client: httpx.Client) -> None:
    first = client.get(f"{DATA}/query", params={"q": CONTACT_SOQL}).json()
    sf.repeat_next_cursor()
    second = client.get(first["nextRecordsUrl"]).json()
    assert second["nextRecordsUrl"] == first["nextRecordsUrl"]  # the cursor comes back: a loop
    third = client.get(second["nextRecordsUrl"]).json()
    assert third["nextRecordsUrl"] != second["nextRecordsUrl"]
    sf.expire_query_locators()
    expired = client.get(third["nextRecordsUrl"])
    assert expired.status_code == 400
    assert expired.json() == [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]


def test_bad_queries_get_salesforce_errors(client: httpx.Client) -> None:
    cases = {"SELECT Foo FROM Contact": "INVALID_FIELD", "SELECT Id FROM Widget": "INVALID_TYPE",
             "SELECT Id FROM Contact WHERE SystemModstamp > '2024-01-01T00:00:00Z'": "INVALID_FIELD",
             "SELECT Id FROM Contact WHERE": "MALFORMED_QUERY", "": "MALFORMED_QUERY",
             "SELECT Id FROM Contact WHERE Id = 'a' OR Id = 'b'": "MALFORMED_QUERY"}
    for soql, code in cases.items():
        answer = client.get(f"{DATA}/query", params={"q": soql})
        assert answer.status_code == 400 and answer.json()[0]["errorCode"] == code, soql
    assert client.get(f"{DATA}/query", params={"q": "select id from contact where IsDeleted = false limit 2"}).json()[
        "totalSize"] == 2


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="SELECTFROMWHEREANDORDERBYLIMIT IdNameContactAccount,=<>'()0123456789-:TZ.", max_size=80))
def test_soql_parser_never_fails_unexpectedly(text: str) -> None:
    try:
        parse_soql(text)
    except SalesforceError as exc:
        assert exc.status == 400 and exc.code in {"MALFORMED_QUERY", "INVALID_FIELD", "INVALID_TYPE"}


def test_page_cost_does_not_grow_with_the_dataset() -> None:
    costs = []
    for contacts in (60, 3000):
        with SalesforceSandbox(contacts=contacts, batch_size=20) as sf, httpx.Client(
                base_url=sf.base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
            watermark = sf.records("Contact")[contacts // 2]["SystemModstamp"]
            before = sf.touched
            first = c.get(f"{DATA}/query", params={"q": CONTACT_SOQL}).json()
            after_first = sf.touched
            c.get(first["nextRecordsUrl"])
            after_second = sf.touched
            c.get(f"{DATA}/query", params={"q": f"SELECT Id FROM Contact WHERE SystemModstamp > {watermark} "
                                                "ORDER BY SystemModstamp, Id"})
            costs.append((after_first - before, after_second - after_first, sf.touched - after_second))
    assert costs[0] == costs[1] == (20, 20, 20)


# -- pushes ---------------------------------------------------------------------------------------------


def test_outbound_message_envelope_and_ack(sf: SalesforceSandbox) -> None:
    contacts = sf.records("Contact")[:3]
    with Receiver() as receiver:
        delivery = sf.send_outbound_message(f"{receiver.base_url}/hook/s3cr3t", "Contact",
                                            [c["Id"] for c in contacts], ["Email", "LastName"])
        request = receiver.received[0]
    assert delivery.acked and delivery.status == 200 and len(delivery.notification_ids) == 3
    assert request.headers["content-type"] == "text/xml; charset=utf-8" and request.headers["soapaction"] == '""'
    message = parse_notifications(request.body)
    assert message["OrganizationId"] == sf.org_id and message["SessionId"] is None
    assert message["ActionId"].startswith("04k")
    assert message["EnterpriseUrl"] == f"{sf.base_url}/services/Soap/c/60.0/{sf.org_id[:15]}"
    assert message["PartnerUrl"] == f"{sf.base_url}/services/Soap/u/60.0/{sf.org_id[:15]}"
    assert [n["Id"] for n in message["notifications"]] == delivery.notification_ids
    assert all(n["Id"].startswith("04l") for n in message["notifications"])
    first = contacts[0]
    expected = {"type": "Contact", "Id": first["Id"], "Email": first["Email"], "LastName": first["LastName"]}
    assert message["notifications"][0]["sObject"] == expected
    with pytest.raises(ValueError, match="1 to 100"):
        sf.outbound_message("Contact", [c["Id"] for c in sf.records("Contact")] * 2)


def test_outbound_rule_queues_and_retries_until_acked(sf: SalesforceSandbox) -> None:
    with Receiver(status=500, body=b"<oops/>") as receiver:
        sf.add_outbound_rule("Contact", f"{receiver.base_url}/hook/tok", ["Email"])
        contacts = sf.records("Contact")
        for contact in contacts[:3]:
            sf.update_record("Contact", contact["Id"], Email=f"{contact['Id']}@changed.example.com")
        sf.update_record("Account", sf.records("Account")[0]["Id"], Name="Not watched")
        assert sf.pending_outbound() == 3
        failed = sf.deliver_outbound()
        assert [d.acked for d in failed] == [False] and sf.pending_outbound() == 3
        receiver.status, receiver.body = 200, b"<ack>not the soap one</ack>"
        assert sf.deliver_outbound()[0].acked is False
        receiver.status, receiver.body = 200, ACK_BODY
        retried = sf.deliver_outbound()
        assert retried[0].acked and retried[0].notification_ids == failed[0].notification_ids  # same ids on retry
        assert sf.pending_outbound() == 0 and sf.deliver_outbound() == []
        bodies = [parse_notifications(r.body) for r in receiver.received]
    assert bodies[0]["notifications"][0]["sObject"]["Email"].endswith("@changed.example.com")


def test_outbound_batches_at_most_100_notifications() -> None:
    with SalesforceSandbox(contacts=150) as sf, Receiver() as receiver:
        sf.add_outbound_rule("Contact", f"{receiver.base_url}/hook/t")
        for contact in sf.records("Contact"):
            sf.update_record("Contact", contact["Id"], Title="VP")
        deliveries = sf.deliver_outbound()
        sizes = [len(parse_notifications(r.body)["notifications"]) for r in receiver.received]
    assert sizes == [MAX_NOTIFICATIONS, 50] and all(d.acked for d in deliveries)


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_apex_signed_callout(sf: SalesforceSandbox, encoding: str) -> None:
    contact = sf.records("Contact")[0]
    payload = sf.callout_payload("Contact", [contact["Id"]])
    with Receiver(body=b"ok") as receiver:
        sent = sf.send_signed_callout(f"{receiver.base_url}/hook/x", "apex-secret", payload,
                                      header="X-Acme-Signature", encoding=encoding)  # type: ignore[arg-type]
        request = receiver.received[0]
    assert sent.status_code == 200
    digest = hmac.new(b"apex-secret", request.body, hashlib.sha256).digest()
    expected = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    assert hmac.compare_digest(request.headers["x-acme-signature"], expected)
    body = json.loads(request.body)
    assert body["organizationId"] == sf.org_id and body["records"][0]["Id"] == contact["Id"]


# -- control API, determinism, CLI ------------------------------------------------------------------------


def test_control_api(sf: SalesforceSandbox, client: httpx.Client) -> None:
    with httpx.Client(base_url=f"{sf.base_url}/_sandbox") as ctl:
        assert ctl.post("/seed", json={"contacts": 5}).json() == {"accounts": 4, "contacts": 58}
        made = ctl.post("/records/Contact", json={"LastName": "Ctl"})
        assert made.status_code == 201
        rid = made.json()["Id"]
        assert ctl.post(f"/records/Contact/{rid}", json={"Title": "Boss"}).json()["Title"] == "Boss"
        assert ctl.post(f"/records/Contact/{rid}", json={"Nope": 1}).status_code == 400
        assert ctl.post("/records/Contact/003000000000000AAA", json={"Title": "x"}).status_code == 404
        assert ctl.request("DELETE", f"/records/Contact/{rid}").json() == {"deleted": [["Contact", rid]]}
        ctl.post("/faults", json={"kind": "status", "status": 502, "times": 2})
        assert ctl.post("/faults", json={"kind": "explode"}).status_code == 400
        assert [client.get(f"{DATA}/limits").status_code for _ in range(3)] == [502, 502, 200]
        ctl.post("/config", json={"daily_limit": 4})
        assert client.get(f"{DATA}/limits").headers["sforce-limit-info"].endswith("/4")
        ctl.post("/config", json={"exhaust_daily_limit": True})
        assert client.get(f"{DATA}/limits").status_code == 403
        stats = ctl.get("/stats").json()
        assert stats["contacts"] == 58 and stats["request_count"] == 5
        assert ctl.get("/requests").json()[-1] == ["GET", f"{DATA}/limits", 403]
        ctl.post("/config", json={"reset_daily_limit": True, "revoke_all_tokens": True})
        assert client.get(f"{DATA}/limits").status_code == 401


def test_ids_are_deterministic_per_seed() -> None:
    one, two, other = SalesforceSandbox(3, 10, seed=7), SalesforceSandbox(3, 10, seed=7), SalesforceSandbox(3, 10)
    assert [r["Id"] for r in one.records("Contact")] == [r["Id"] for r in two.records("Contact")]
    assert one.org_id == two.org_id != other.org_id


def test_cli_runs_until_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.salesforce", "--contacts", "4"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        answer = httpx.get(f"{base_url}{DATA}/query", params={"q": "SELECT Id FROM Contact"},
                           headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.json()["totalSize"] == 4
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_versions_endpoint_is_public(sf: SalesforceSandbox) -> None:
    assert httpx.get(f"{sf.base_url}/services/data").json()[0]["version"] == "60.0"
    assert json_response(200, {}).status == 200


def test_outbound_redelivery_and_forged_org(sf: SalesforceSandbox) -> None:
    ids = [c["Id"] for c in sf.records("Contact")[:2]]
    with Receiver() as receiver:
        first = sf.send_outbound_message(f"{receiver.base_url}/hook/t", "Contact", ids)
        again = sf.send_outbound_message(f"{receiver.base_url}/hook/t", "Contact", ids,
                                         notification_ids=first.notification_ids)
        forged = sf.send_outbound_message(f"{receiver.base_url}/hook/t", "Contact", ids,
                                          organization_id="00D000000000001AAA")
        bodies = [parse_notifications(r.body) for r in receiver.received]
    assert again.notification_ids == first.notification_ids
    assert [n["Id"] for n in bodies[1]["notifications"]] == first.notification_ids
    assert bodies[2]["OrganizationId"] == "00D000000000001AAA" != sf.org_id
    assert forged.notification_ids != first.notification_ids


FIELDS = st.sampled_from(["Email", "LastName", "FirstName", "AccountId", "NumberOfEmployees", "Name", "Id",
                          "SystemModstamp", "Nope", "url", "record_ids", "sobject", "fields", "kind", "status",
                          "times", "daily_limit", "batch_size", "contacts", "_system_only"])
VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(FIELDS, inner, max_size=3),
                      max_leaves=8)


@pytest.fixture(scope="module")
def fuzz_org() -> Iterator[tuple[SalesforceSandbox, httpx.Client]]:
    with SalesforceSandbox(accounts=2, contacts=5, daily_limit=10**9) as sandbox, httpx.Client(
            base_url=sandbox.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as http:
        yield sandbox, http


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(VALUES, st.dictionaries(FIELDS, VALUES, max_size=3)),
       route=st.sampled_from(["patch", "create", "ctl_create", "ctl_update", "outbound", "faults", "token"]))
def test_bad_input_gets_4xx_never_5xx(fuzz_org: tuple[SalesforceSandbox, httpx.Client], body: object,
                                      route: str) -> None:
    sf, http = fuzz_org
    contact = sf.records("Contact")[0]["Id"]
    path = {"patch": f"{DATA}/sobjects/Contact/{contact}", "create": f"{DATA}/sobjects/Contact",
            "ctl_create": "/_sandbox/records/Contact", "ctl_update": f"/_sandbox/records/Contact/{contact}",
            "outbound": "/_sandbox/outbound", "faults": "/_sandbox/faults", "token": "/services/oauth2/token"}[route]
    if route == "token":
        form = body if isinstance(body, dict) else {}
        answer = http.post(path, data={str(k): json.dumps(v) for k, v in form.items()})
    else:
        answer = http.request("PATCH" if route == "patch" else "POST", path, content=json.dumps(body))
    assert answer.status_code < 500, answer.text
    sf.clear_faults()


def test_settings_that_would_break_paging_are_refused(sf: SalesforceSandbox) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        SalesforceSandbox(batch_size=0)
    answer = httpx.post(f"{sf.base_url}/_sandbox/config", json={"batch_size": 0})
    assert answer.status_code == 400 and "batch_size" in answer.json()["error"]
    assert sf.batch_size == 7


def test_token_control_endpoints(sf: SalesforceSandbox) -> None:
    with httpx.Client(base_url=f"{sf.base_url}/_sandbox") as ctl:
        many = ctl.post("/tokens", json={"count": 25})
        assert many.status_code == 201 and len({t["refresh_token"] for t in many.json()}) == 25
        one = ctl.post("/tokens", json={}).json()
        assert one["expires_in"] == 7200
        headers = {"Authorization": f"Bearer {one['access_token']}"}
        assert httpx.get(f"{sf.base_url}{DATA}/limits", headers=headers).status_code == 200
        refreshed = token_call(sf, grant_type="refresh_token", refresh_token=many.json()[3]["refresh_token"])
        assert refreshed.status_code == 200
        assert ctl.post("/tokens", json={"count": 0}).status_code == 400
        ctl.post("/tokens/expire")
        assert httpx.get(f"{sf.base_url}{DATA}/limits", headers=headers).status_code == 401
        assert ctl.post("/tokens/revoke", json={"token": one["refresh_token"]}).json() == {"revoked": True}
        assert token_call(sf, grant_type="refresh_token", refresh_token=one["refresh_token"]).status_code == 400
        ctl.post("/tokens/revoke", json={"all": True})
        assert token_call(sf, grant_type="refresh_token", refresh_token=many.json()[0]["refresh_token"]).json()[
            "error"] == "invalid_grant"
