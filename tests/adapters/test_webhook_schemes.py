"""The shared-secret and token verification schemes, against published vectors and their edge cases.

Vectors: GitHub "validating-webhook-deliveries"; Slack "Verifying requests from Slack"
(api.slack.com); Standard Webhooks' reference libraries (standard-webhooks python tests, svix).
The JWT scheme is in ``test_webhook_oidc.py``; random inputs in ``test_webhook_fuzz.py``.
"""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr, TypeAdapter

from adapters.base.spec import WebhookSpec
from adapters.base.verify import Delivery, SchemeConfig, Verdict, WebhookKey, build_strategy
from adapters.base.verify.config import HmacSha256Config
from adapters.base.verify.profiles import GITHUB, NOTION, SALESFORCE_APEX, SLACK, STANDARD_WEBHOOKS
from adapters.base.verify.registry import SCHEMES
from adapters.base.webhooks import scheme_config, verify, verify_delivery

GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TS = 1531420618
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TS = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SW_TAMPERED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="  # the reference tests' invalid signature


def key(secret: str) -> WebhookKey:
    return WebhookKey(secret=SecretStr(secret))


def check(config: SchemeConfig, headers: dict[str, str], body: bytes, secret: str, now: float = 0.0) -> Verdict:
    return build_strategy(config).verify(Delivery(headers, body, now), key(secret))


# ---------------------------------------------------------------------- hex HMAC of the body


def test_github_documented_vector_is_authentic() -> None:
    verdict = check(GITHUB, {"X-Hub-Signature-256": GITHUB_SIGNATURE}, b"Hello, World!", GITHUB_SECRET)
    assert verdict.authentic
    assert not verdict.valid and verdict.status == 400 and verdict.code == "invalid_json"  # not JSON, no delivery id
    assert "signature matches" in verdict.reason


def test_github_delivery_yields_one_event_deduped_on_the_delivery_header() -> None:
    body = b'{"action":"opened","issue":{"id":1}}'
    strategy = build_strategy(GITHUB)
    headers = strategy.sign(body, key("s3"), now=0, delivery_id="d-1", event_type="issues").headers
    assert headers["X-GitHub-Delivery"] == "d-1" and headers["X-GitHub-Event"] == "issues"
    verdict = strategy.verify(Delivery(headers, body, 0), key("s3"))
    assert verdict.valid and verdict.code == "ok" and verdict.status == 200
    assert verdict.dedupe_ids == ("d-1",) and verdict.event_type == "issues"
    assert verdict.payload == {"action": "opened", "issue": {"id": 1}} and verdict.events[0].data == verdict.payload
    assert verdict.answer is None and not verdict.handshake


def test_uppercase_hex_and_any_header_case_are_accepted() -> None:
    upper = "sha256=" + GITHUB_SIGNATURE.removeprefix("sha256=").upper()
    assert check(GITHUB, {"x-hub-signature-256": upper}, b"Hello, World!", GITHUB_SECRET).authentic


@pytest.mark.parametrize(
    ("headers", "code", "words"),
    [
        ({}, "missing_header", "missing X-Hub-Signature-256"),
        ({"X-Hub-Signature": "sha1=" + "0" * 40}, "missing_header", "missing X-Hub-Signature-256"),
        ({"X-Hub-Signature-256": GITHUB_SIGNATURE.removeprefix("sha256=")}, "malformed_signature", "does not start"),
        ({"X-Hub-Signature-256": "SHA256=" + GITHUB_SIGNATURE[7:]}, "malformed_signature", "does not start"),
        ({"X-Hub-Signature-256": "sha1=" + "0" * 40}, "malformed_signature", "does not start"),
        ({"X-Hub-Signature-256": GITHUB_SIGNATURE[:-2]}, "malformed_signature", "not a hex SHA-256"),
        ({"X-Hub-Signature-256": GITHUB_SIGNATURE[:-1] + "g"}, "malformed_signature", "not a hex SHA-256"),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "bad_signature", "does not match"),
    ],
)
def test_hex_hmac_refusals_say_why(headers: dict[str, str], code: str, words: str) -> None:
    verdict = check(GITHUB, headers, b"Hello, World!", GITHUB_SECRET)
    assert not verdict.valid and not verdict.authentic
    assert verdict.code == code and verdict.status == 401 and words in verdict.reason
    assert GITHUB_SECRET not in verdict.reason


def test_one_byte_change_or_other_secret_is_refused() -> None:
    headers = {"X-Hub-Signature-256": GITHUB_SIGNATURE}
    assert check(GITHUB, headers, b"Hello, World?", GITHUB_SECRET).code == "bad_signature"
    assert check(GITHUB, headers, b"Hello, World!", GITHUB_SECRET + " ").code == "bad_signature"


def test_no_secret_configured_is_refused_not_crashed() -> None:
    verdict = build_strategy(GITHUB).verify(Delivery({"X-Hub-Signature-256": GITHUB_SIGNATURE}, b"x", 0), WebhookKey())
    assert verdict.code == "no_key" and verdict.status == 401


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_apex_callout_header_name_and_encoding_are_configurable(encoding: str) -> None:
    config = SALESFORCE_APEX.model_copy(update={"signature_header": "X-My-Sig", "encoding": encoding})
    strategy = build_strategy(config)
    body = b'{"id":"e1","event":"updated","records":[]}'
    headers = strategy.sign(body, key("apex-secret"), now=0).headers
    assert set(headers) == {"Content-Type", "X-My-Sig"}
    verdict = strategy.verify(Delivery(headers, body, 0), key("apex-secret"))
    assert verdict.valid and verdict.dedupe_ids == ("e1",) and verdict.event_type == "updated"
    other = "hex" if encoding == "base64" else "base64"
    crossed = build_strategy(config.model_copy(update={"encoding": other}))
    assert crossed.verify(Delivery(headers, body, 0), key("apex-secret")).code == "malformed_signature"


def test_base64_accepts_the_url_safe_alphabet_and_missing_padding() -> None:
    config = SALESFORCE_APEX.model_copy(update={"encoding": "base64"})
    strategy = build_strategy(config)
    body = b'{"id":"e1","event":"x"}'
    standard = strategy.sign(body, key("k"), now=0).headers["X-Salesforce-Signature"]
    url_safe = standard.replace("+", "-").replace("/", "_").rstrip("=")
    assert strategy.verify(Delivery({"X-Salesforce-Signature": url_safe}, body, 0), key("k")).valid


# ---------------------------------------------------------------------- token-capture handshake


def test_notion_verification_post_is_accepted_unsigned_and_hands_over_the_token() -> None:
    body = json.dumps({"verification_token": "secret_abc"}).encode()
    verdict = build_strategy(NOTION).verify(Delivery({}, body, 0), WebhookKey())
    assert verdict.valid and verdict.handshake and verdict.code == "handshake"
    assert verdict.captured is not None and verdict.captured.get_secret_value() == "secret_abc"
    assert verdict.answer is not None and verdict.answer.status == 200 and not verdict.events
    assert "secret_abc" not in verdict.reason and "unsigned" in verdict.reason


def test_notion_verification_post_is_accepted_signed_either_way() -> None:
    body = json.dumps({"verification_token": "secret_new"}).encode()
    strategy = build_strategy(NOTION)
    by_token = strategy.sign(body, key("secret_new"), now=0).headers
    verdict = strategy.verify(Delivery(by_token, body, 0), key("secret_old"))
    assert verdict.handshake and "signed with the token it carries" in verdict.reason
    forged = {"X-Notion-Signature": "sha256=" + "1" * 64}
    assert strategy.verify(Delivery(forged, body, 0), key("secret_old")).handshake


def test_notion_event_needs_a_signature_and_dedupes_on_its_id() -> None:
    body = json.dumps({"id": "evt-1", "type": "page.content_updated", "entity": {"id": "p1"}}).encode()
    strategy = build_strategy(NOTION)
    assert strategy.verify(Delivery({}, body, 0), key("tok")).code == "missing_header"
    headers = strategy.sign(body, key("tok"), now=0).headers
    verdict = strategy.verify(Delivery(headers, body, 0), key("tok"))
    assert verdict.valid and verdict.dedupe_ids == ("evt-1",) and verdict.event_type == "page.content_updated"


def test_an_event_carrying_a_verification_token_field_is_not_a_handshake() -> None:
    body = json.dumps({"id": "e", "type": "page.created", "verification_token": "x"}).encode()
    assert build_strategy(NOTION).verify(Delivery({}, body, 0), key("tok")).code == "missing_header"


# ---------------------------------------------------------------------- Slack v0


def slack_headers(signature: str = SLACK_SIGNATURE, ts: int | str = SLACK_TS) -> dict[str, str]:
    return {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": str(ts)}


def test_slack_documented_vector_is_authentic() -> None:
    verdict = check(SLACK, slack_headers(), SLACK_BODY, SLACK_SECRET, now=SLACK_TS)
    assert verdict.authentic and verdict.code == "invalid_json"  # a slash-command form body, not an Events API JSON


@pytest.mark.parametrize(("offset", "fresh"), [(0, True), (300, True), (-300, True), (301, False), (-301, False)])
def test_slack_window_is_300_seconds_inclusive_both_ways(offset: int, fresh: bool) -> None:
    verdict = check(SLACK, slack_headers(), SLACK_BODY, SLACK_SECRET, now=SLACK_TS + offset)
    assert verdict.authentic is fresh
    if not fresh:
        assert verdict.code == "stale" and verdict.status == 401


@pytest.mark.parametrize("ts", ["abc", "1531420618.0", "-1531420618", "", " ", "\uff11\uff15\uff13"])
def test_slack_non_numeric_timestamp_is_invalid(ts: str) -> None:
    verdict = check(SLACK, slack_headers(ts=ts), SLACK_BODY, SLACK_SECRET, now=SLACK_TS)
    assert not verdict.authentic and verdict.code == "bad_timestamp"


def test_slack_tampered_body_timestamp_or_version_is_refused() -> None:
    assert check(SLACK, slack_headers(), SLACK_BODY + b"x", SLACK_SECRET, now=SLACK_TS).code == "bad_signature"
    moved = check(SLACK, slack_headers(ts=SLACK_TS + 1), SLACK_BODY, SLACK_SECRET, now=SLACK_TS)
    assert moved.code == "bad_signature"
    v1 = check(SLACK, slack_headers("v1=" + SLACK_SIGNATURE[3:]), SLACK_BODY, SLACK_SECRET, now=SLACK_TS)
    assert v1.code == "malformed_signature"


def test_slack_event_dedupes_on_event_id_and_types_by_inner_event() -> None:
    body = json.dumps({"type": "event_callback", "event_id": "Ev01", "event": {"type": "message"}}).encode()
    strategy = build_strategy(SLACK)
    signed = strategy.sign(body, key(SLACK_SECRET), now=1000)
    verdict = strategy.verify(Delivery(signed.headers, body, 1000), key(SLACK_SECRET))
    assert verdict.valid and verdict.dedupe_ids == ("Ev01",) and verdict.event_type == "message"


def test_slack_url_verification_is_answered_only_after_verifying() -> None:
    body = json.dumps({"token": "t", "challenge": "c-123", "type": "url_verification"}).encode()
    strategy = build_strategy(SLACK)
    signed = strategy.sign(body, key(SLACK_SECRET), now=1000)
    verdict = strategy.verify(Delivery(signed.headers, body, 1000), key(SLACK_SECRET))
    assert verdict.valid and verdict.handshake and verdict.answer is not None
    assert (verdict.answer.status, verdict.answer.body, verdict.answer.content_type) == (200, b"c-123", "text/plain")
    forged = strategy.verify(Delivery(signed.headers, body, 1000), key("other"))
    assert not forged.valid and not forged.handshake and forged.answer is None
    no_challenge = json.dumps({"type": "url_verification"}).encode()
    signed = strategy.sign(no_challenge, key(SLACK_SECRET), now=1000)
    assert strategy.verify(Delivery(signed.headers, no_challenge, 1000), key(SLACK_SECRET)).status == 400


# ---------------------------------------------------------------------- Standard Webhooks


def sw_headers(signature: str = SW_SIGNATURE, ts: int | str = SW_TS, msg_id: str = SW_ID) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def test_standard_webhooks_reference_vector_signs_and_verifies() -> None:
    strategy = build_strategy(STANDARD_WEBHOOKS)
    assert strategy.sign(SW_BODY, key(SW_SECRET), now=SW_TS, delivery_id=SW_ID).headers["webhook-signature"] == (
        SW_SIGNATURE
    )
    verdict = check(STANDARD_WEBHOOKS, sw_headers(), SW_BODY, SW_SECRET, now=SW_TS)
    assert verdict.valid and verdict.dedupe_ids == (SW_ID,) and verdict.payload == {"test": 2432232314}


def test_standard_webhooks_secret_without_prefix_also_works() -> None:
    assert check(STANDARD_WEBHOOKS, sw_headers(), SW_BODY, SW_SECRET.removeprefix("whsec_"), now=SW_TS).valid


def test_standard_webhooks_tampered_vector_and_body_are_refused() -> None:
    assert check(STANDARD_WEBHOOKS, sw_headers(SW_TAMPERED), SW_BODY, SW_SECRET, now=SW_TS).code == "bad_signature"
    assert check(STANDARD_WEBHOOKS, sw_headers(), SW_BODY + b" ", SW_SECRET, now=SW_TS).code == "bad_signature"
    other_id = check(STANDARD_WEBHOOKS, sw_headers(msg_id="msg_other"), SW_BODY, SW_SECRET, now=SW_TS)
    assert other_id.code == "bad_signature"


def test_standard_webhooks_any_v1_entry_may_match_and_other_versions_are_ignored() -> None:
    rotated = " ".join(["v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", "v2," + SW_SIGNATURE[3:], SW_SIGNATURE])
    assert check(STANDARD_WEBHOOKS, sw_headers(rotated), SW_BODY, SW_SECRET, now=SW_TS).valid
    only_v2 = check(STANDARD_WEBHOOKS, sw_headers("v2," + SW_SIGNATURE[3:]), SW_BODY, SW_SECRET, now=SW_TS)
    assert only_v2.code == "malformed_signature" and "no v1 entry" in only_v2.reason
    junk = check(STANDARD_WEBHOOKS, sw_headers("v1,!!! v1 ,x " + SW_SIGNATURE), SW_BODY, SW_SECRET, now=SW_TS)
    assert junk.valid


@pytest.mark.parametrize(("offset", "fresh"), [(300, True), (-300, True), (301, False), (-301, False)])
def test_standard_webhooks_five_minute_window_both_ways(offset: int, fresh: bool) -> None:
    verdict = check(STANDARD_WEBHOOKS, sw_headers(), SW_BODY, SW_SECRET, now=SW_TS + offset)
    assert verdict.valid is fresh and (fresh or verdict.code == "stale")


@pytest.mark.parametrize("ts", ["hello", "1614265330.0", "161426533e1", ""])
def test_standard_webhooks_non_numeric_timestamp_is_invalid(ts: str) -> None:
    verdict = check(STANDARD_WEBHOOKS, sw_headers(ts=ts), SW_BODY, SW_SECRET, now=SW_TS)
    assert not verdict.valid and verdict.code in ("bad_timestamp", "missing_header")


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_standard_webhooks_missing_header(missing: str) -> None:
    headers = {k: v for k, v in sw_headers().items() if k != missing}
    verdict = check(STANDARD_WEBHOOKS, headers, SW_BODY, SW_SECRET, now=SW_TS)
    assert verdict.code == "missing_header" and missing in verdict.reason


def test_standard_webhooks_unusable_secret_is_named() -> None:
    verdict = check(STANDARD_WEBHOOKS, sw_headers(), SW_BODY, "whsec_not base64!", now=SW_TS)
    assert verdict.code == "no_key" and "base64" in verdict.reason


# ---------------------------------------------------------------------- registry and spec


def test_every_scheme_name_builds_its_strategy_from_plain_data() -> None:
    data = {
        "hmac_sha256": {"signature_header": "X-Sig"},
        "timestamped_hmac": {"signature_header": "X-Sig", "timestamp_header": "X-Ts"},
        "standard_webhooks": {},
        "soap_outbound": {"namespace": "urn:x"},
        "oidc_push": {"certs_url": "http://127.0.0.1:1/certs", "issuers": ["issuer"]},
        "channel_token": {"channel_id_header": "A", "token_header": "B", "resource_id_header": "C",
                          "state_header": "D", "message_number_header": "E"},
    }
    assert set(data) == set(SCHEMES)
    adapter = TypeAdapter(SchemeConfig)
    for name, fields in data.items():
        strategy = build_strategy(adapter.validate_python({"scheme": name, **fields}))
        assert strategy.name == name


def test_webhook_spec_chooses_the_strategy_and_legacy_fields_still_work() -> None:
    chosen = WebhookSpec(verification=STANDARD_WEBHOOKS)
    assert scheme_config(chosen) is STANDARD_WEBHOOKS
    assert verify_delivery(chosen, Delivery(sw_headers(), SW_BODY, SW_TS), key(SW_SECRET)).valid
    legacy = WebhookSpec(scheme="hmac_sha256_hex", signature_header="X-Hub-Signature-256", signature_prefix="sha256=")
    assert isinstance(scheme_config(legacy), HmacSha256Config)
    # the signature-only API says "valid" for an authentic delivery whose body the caller will judge
    assert verify(legacy, {"X-Hub-Signature-256": GITHUB_SIGNATURE}, b"Hello, World!", GITHUB_SECRET, 0).valid
    with pytest.raises(ValueError, match="verification scheme or a signature_header"):
        WebhookSpec()
