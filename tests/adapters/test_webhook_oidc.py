"""Push JWT verification (RS256 via PyJWT) and the key cache: minted tokens with the documented claims.

Keys are generated here; the key documents are served from memory or from a real loopback
HTTP server, in both formats the platform publishes (JWKS and the v1 kid -> PEM certificate map).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from adapters.base.verify import CertCache, Delivery, Verdict, WebhookKey, static_fetcher
from adapters.base.verify.certs import FetchedDocument, httpx_fetcher, max_age, parse_keys
from adapters.base.verify.oidc import OidcPushStrategy
from adapters.base.verify.profiles import GOOGLE_PUBSUB

NOW = 1_700_000_000
AUDIENCE = "https://hub.example/api/webhooks/google/int-1"
EMAIL = "push@acme-project.iam.gserviceaccount.com"


def pem(private: rsa.RSAPrivateKey) -> str:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def certificate(private: rsa.RSAPrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-signer")])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
        .serial_number(1).not_valid_before(start).not_valid_after(start + dt.timedelta(days=36500))
        .sign(private, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def jwks(keys: dict[str, rsa.RSAPrivateKey]) -> bytes:
    entries = []
    for kid, private in keys.items():
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
        entries.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
    return json.dumps({"keys": entries}).encode()


def v1_map(keys: dict[str, rsa.RSAPrivateKey]) -> bytes:
    return json.dumps({kid: certificate(private) for kid, private in keys.items()}).encode()


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {kid: rsa.generate_private_key(public_exponent=65537, key_size=2048) for kid in ("k1", "k2", "k3")}


def signing_key(keys: dict[str, rsa.RSAPrivateKey], kid: str = "k1") -> WebhookKey:
    return WebhookKey(audience=AUDIENCE, service_account=EMAIL, private_key=SecretStr(pem(keys[kid])), key_id=kid)


def envelope(data: bytes = b'{"kind":"drive#change"}', **message: Any) -> bytes:
    fields = {"data": base64.b64encode(data).decode(), "messageId": "m-1", "publishTime": "2023-11-14T22:13:20Z",
              "attributes": {"eventType": "OBJECT_FINALIZE"}, **message}
    body = {"message": fields, "subscription": "projects/p/subscriptions/s"}
    return json.dumps(body).encode()


def strategy_with(document: bytes) -> OidcPushStrategy:
    return OidcPushStrategy(GOOGLE_PUBSUB, CertCache("mem://certs", static_fetcher(document)))


def check(strategy: OidcPushStrategy, token: str, body: bytes | None = None, now: float = NOW,
          key: WebhookKey | None = None) -> Verdict:
    headers = {"Authorization": f"Bearer {token}"}
    return strategy.verify(Delivery(headers, envelope() if body is None else body, now),
                           key or WebhookKey(audience=AUDIENCE, service_account=EMAIL))


@pytest.mark.parametrize("fmt", ["jwks", "v1"])
def test_minted_token_with_documented_claims_is_valid_in_both_key_formats(keys: dict[str, Any], fmt: str) -> None:
    document = jwks(keys) if fmt == "jwks" else v1_map(keys)
    strategy = strategy_with(document)
    token = strategy.mint(signing_key(keys), now=NOW)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(claims) == {"aud", "azp", "email", "email_verified", "exp", "iat", "iss", "sub"}
    verdict = check(strategy, token)
    assert verdict.valid, verdict.reason
    assert verdict.dedupe_ids == ("m-1",) and verdict.event_type == "OBJECT_FINALIZE"
    data = verdict.events[0].data
    assert data["data"] == {"kind": "drive#change"} and data["data_encoding"] == "json"
    assert data["subscription"] == "projects/p/subscriptions/s"


def claims_token(keys: dict[str, Any], kid: str = "k1", **changes: Any) -> str:
    claims = {"aud": AUDIENCE, "azp": "1", "email": EMAIL, "email_verified": True, "exp": NOW + 3600, "iat": NOW,
              "iss": "https://accounts.google.com", "sub": "1"}
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, pem(keys[kid]), algorithm="RS256", headers={"kid": kid})


@pytest.mark.parametrize(
    ("changes", "code", "words"),
    [
        ({"aud": "https://other.example/"}, "wrong_sender", "aud"),
        ({"iss": "https://evil.example"}, "wrong_sender", "iss"),
        ({"email": "someone@else.iam.gserviceaccount.com"}, "wrong_sender", "service account"),
        ({"email_verified": False}, "wrong_sender", "email_verified"),
        ({"email_verified": None}, "wrong_sender", "email_verified"),
        ({"exp": NOW - 61}, "stale", "expired"),
        ({"iat": NOW + 61, "exp": NOW + 3661}, "stale", "future"),
        ({"iat": NOW - 7200, "exp": NOW + 3600}, "bad_signature", "lifetime"),
        ({"exp": None}, "bad_signature", "exp or iat"),
        ({"nbf": NOW + 120}, "stale", "nbf"),
    ],
)
def test_each_claim_is_checked(keys: dict[str, Any], changes: dict[str, Any], code: str, words: str) -> None:
    verdict = check(strategy_with(jwks(keys)), claims_token(keys, **changes))
    assert not verdict.valid and verdict.code == code and verdict.status == 401 and words in verdict.reason


def test_both_issuer_spellings_and_small_skew_are_accepted(keys: dict[str, Any]) -> None:
    strategy = strategy_with(jwks(keys))
    assert check(strategy, claims_token(keys, iss="accounts.google.com")).valid
    assert check(strategy, claims_token(keys, exp=NOW - 30)).valid
    assert check(strategy, claims_token(keys, iat=NOW + 30, exp=NOW + 3630)).valid


@pytest.mark.parametrize("authorization", ["", "Bearer", "Basic abc", "Bearer not.a.jwt", "Bearer a.b"])
def test_malformed_authorization_is_refused(keys: dict[str, Any], authorization: str) -> None:
    strategy = strategy_with(jwks(keys))
    verdict = strategy.verify(Delivery({"Authorization": authorization}, envelope(), NOW),
                              WebhookKey(audience=AUDIENCE, service_account=EMAIL))
    assert not verdict.valid and verdict.status == 401


def test_tampered_token_and_foreign_key_are_refused(keys: dict[str, Any]) -> None:
    strategy = strategy_with(jwks({"k1": keys["k1"]}))
    token = claims_token(keys)
    head, _, signature = token.split(".")
    forged_payload = base64.urlsafe_b64encode(json.dumps({"aud": AUDIENCE, "email": EMAIL}).encode()).rstrip(b"=")
    assert check(strategy, f"{head}.{forged_payload.decode()}.{signature}").code == "bad_signature"
    other_key_same_kid = jwt.encode({"aud": AUDIENCE}, pem(keys["k2"]), algorithm="RS256", headers={"kid": "k1"})
    assert check(strategy, other_key_same_kid).code == "bad_signature"


def test_none_and_hmac_algorithms_are_refused(keys: dict[str, Any]) -> None:
    strategy = strategy_with(jwks(keys))
    unsigned = jwt.encode({"aud": AUDIENCE}, None, algorithm="none", headers={"kid": "k1"})
    assert "not allowed" in check(strategy, unsigned).reason
    public_pem = keys["k1"].public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"k1","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps({"aud": AUDIENCE}).encode()).rstrip(b"=")
    import hashlib
    import hmac

    mac = hmac.new(public_pem, header + b"." + body, hashlib.sha256).digest()
    confused = b".".join([header, body, base64.urlsafe_b64encode(mac).rstrip(b"=")]).decode()
    assert "not allowed" in check(strategy, confused).reason


def test_audience_and_service_account_must_be_configured(keys: dict[str, Any]) -> None:
    verdict = check(strategy_with(jwks(keys)), claims_token(keys), key=WebhookKey(audience=AUDIENCE))
    assert verdict.code == "no_key" and "service account" in verdict.reason


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{}", "no 'message' object"),
        (b"[]", "no 'message' object"),
        (b"not json", "not valid JSON"),
        (json.dumps({"message": {"data": "QQ=="}}).encode(), "no 'messageId'"),
        (json.dumps({"message": {"messageId": "1", "data": "***"}}).encode(), "not base64"),
        (json.dumps({"message": {"messageId": "1", "attributes": []}}).encode(), "not an object"),
    ],
)
def test_authentic_but_unusable_envelope_is_a_400(keys: dict[str, Any], body: bytes, words: str) -> None:
    verdict = check(strategy_with(jwks(keys)), claims_token(keys), body)
    assert verdict.authentic and not verdict.valid and verdict.status == 400 and words in verdict.reason


def test_message_data_decodes_to_text_or_stays_base64(keys: dict[str, Any]) -> None:
    strategy = strategy_with(jwks(keys))
    text = check(strategy, claims_token(keys), envelope(b"plain text"))
    assert text.events[0].data["data"] == "plain text" and text.events[0].data["data_encoding"] == "text"
    binary = check(strategy, claims_token(keys), envelope(b"\xff\xfe\x00"))
    assert binary.events[0].data["data_encoding"] == "base64"
    no_data = check(strategy, claims_token(keys), json.dumps({"message": {"messageId": "9"}}).encode())
    assert no_data.valid and no_data.event_type == "message" and no_data.events[0].data["data"] is None


# ---------------------------------------------------------------------- the key cache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Source:
    """An in-memory key endpoint that counts fetches and can change its keys or fail."""

    def __init__(self, document: bytes, cache_control: str | None = "public, max-age=600") -> None:
        self.document = document
        self.cache_control = cache_control
        self.fail = False
        self.calls = 0

    def __call__(self, url: str) -> FetchedDocument:
        self.calls += 1
        if self.fail:
            raise OSError("connection refused")
        headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
        return FetchedDocument(200, self.document, headers)


def test_keys_are_cached_for_max_age_then_refetched(keys: dict[str, Any]) -> None:
    source, clock = Source(jwks({"k1": keys["k1"]})), FakeClock()
    cache = CertCache("mem://", source, clock=clock)
    assert cache.key("k1") is not None and cache.key("k1") is not None and source.calls == 1
    clock.now += 599
    cache.key("k1")
    assert source.calls == 1
    clock.now += 2
    cache.key("k1")
    assert source.calls == 2


def test_max_age_is_bounded(keys: dict[str, Any]) -> None:
    source, clock = Source(jwks({"k1": keys["k1"]}), "max-age=99999999"), FakeClock()
    cache = CertCache("mem://", source, clock=clock, max_ttl_seconds=3600)
    cache.key("k1")
    clock.now += 3601
    cache.key("k1")
    assert source.calls == 2
    assert max_age({"cache-control": "no-store"}) == 0 and max_age({}) is None
    assert max_age({"Cache-Control": "public, max-age=19204, must-revalidate, no-transform"}) == 19204


def test_unknown_kid_refetches_once_and_picks_up_a_rotated_key(keys: dict[str, Any]) -> None:
    source, clock = Source(jwks({"k1": keys["k1"]})), FakeClock()
    strategy = OidcPushStrategy(GOOGLE_PUBSUB, CertCache("mem://", source, clock=clock, min_refetch_seconds=30))
    assert check(strategy, claims_token(keys, "k1")).valid and source.calls == 1
    clock.now += 31
    source.document = jwks({"k1": keys["k1"], "k2": keys["k2"]})
    assert check(strategy, claims_token(keys, "k2")).valid and source.calls == 2


def test_forged_kids_cannot_make_the_hub_hammer_the_key_server(keys: dict[str, Any]) -> None:
    source, clock = Source(jwks({"k1": keys["k1"]})), FakeClock()
    strategy = OidcPushStrategy(GOOGLE_PUBSUB, CertCache("mem://", source, clock=clock, min_refetch_seconds=30))
    for _ in range(20):
        verdict = check(strategy, claims_token(keys, "k3"))
        assert verdict.code == "bad_signature" and "kid" in verdict.reason
    assert source.calls == 1
    clock.now += 30
    check(strategy, claims_token(keys, "k3"))
    assert source.calls == 2


def test_a_failed_fetch_keeps_the_cached_keys_and_no_keys_at_all_is_a_503(keys: dict[str, Any]) -> None:
    source, clock = Source(jwks({"k1": keys["k1"]}), "max-age=60"), FakeClock()
    strategy = OidcPushStrategy(GOOGLE_PUBSUB, CertCache("mem://", source, clock=clock))
    assert check(strategy, claims_token(keys)).valid
    source.fail = True
    clock.now += 61
    assert check(strategy, claims_token(keys)).valid
    down = Source(b"", None)
    down.fail = True
    verdict = check(OidcPushStrategy(GOOGLE_PUBSUB, CertCache("mem://", down, clock=clock)), claims_token(keys))
    assert verdict.code == "keys_unavailable" and verdict.status == 503 and not verdict.authentic


@pytest.mark.parametrize(
    "document", [b"", b"[]", b'{"keys": []}', b'{"k1": "not a pem"}', b'{"keys": [{"kty": "EC"}]}']
)
def test_unusable_key_documents_are_named(document: bytes) -> None:
    with pytest.raises(ValueError, match=r"JSON|usable RSA key"):
        parse_keys(document)


@pytest.fixture
def loopback_certs(keys: dict[str, Any]) -> Iterator[dict[str, Any]]:
    state: dict[str, Any] = {"document": v1_map({"k1": keys["k1"]}), "hits": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["hits"] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Cache-Control", "public, max-age=21600, must-revalidate, no-transform")
            self.send_header("Content-Length", str(len(state["document"])))
            self.end_headers()
            self.wfile.write(state["document"])

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/oauth2/v1/certs"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def test_keys_fetched_over_real_http_from_a_configurable_url(
    keys: dict[str, Any], loopback_certs: dict[str, Any]
) -> None:
    config = GOOGLE_PUBSUB.model_copy(update={"certs_url": loopback_certs["url"]})
    strategy = OidcPushStrategy(config, CertCache(config.certs_url, httpx_fetcher(timeout=5)))
    for _ in range(3):
        assert check(strategy, claims_token(keys)).valid
    assert loopback_certs["hits"] == 1
