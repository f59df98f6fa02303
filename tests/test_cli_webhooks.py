"""``ihub webhooks verify`` against published vectors per scheme, and ``ihub webhooks send`` over real HTTP.

Vectors: GitHub "validating-webhook-deliveries", Slack "Verifying requests from Slack",
Standard Webhooks reference tests; Google push tokens are minted here with the documented
claims. ``send`` posts to a loopback receiver that verifies with the same strategies.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from adapters.base.verify import CertCache, Delivery, Verdict, WebhookKey, build_strategy, static_fetcher
from adapters.base.verify.profiles import profile
from adapters.base.verify.samples import build_message
from devtools.cli import main
from tests.adapters.test_webhook_oidc import jwks, pem, v1_map
from tests.adapters.test_webhook_schemes import (
    GITHUB_SECRET,
    GITHUB_SIGNATURE,
    SLACK_BODY,
    SLACK_SECRET,
    SLACK_SIGNATURE,
    SLACK_TS,
    SW_BODY,
    SW_ID,
    SW_SECRET,
    SW_SIGNATURE,
    SW_TAMPERED,
    SW_TS,
)

AUDIENCE = "https://hub.example/api/webhooks/google/int-1"
EMAIL = "push@acme-project.iam.gserviceaccount.com"
ORG = "00D5g000004bCDeEAM"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def verify(capsys: pytest.CaptureFixture[str], tmp_path: Path, provider: str, body: bytes, *headers: str,
           extra: tuple[str, ...] = ()) -> tuple[int, str, str]:
    body_file = tmp_path / "body"
    body_file.write_bytes(body)
    argv = ["webhooks", "verify", "--provider", provider, "--body-file", str(body_file), *extra]
    for h in headers:
        argv += ["--header", h]
    return run(capsys, *argv)


# ---------------------------------------------------------------------- verify: published vectors


def test_github_vector_and_tampered(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sig = f"X-Hub-Signature-256: {GITHUB_SIGNATURE}"
    code, out, _ = verify(capsys, tmp_path, "github", b"Hello, World!", sig, extra=("--secret", GITHUB_SECRET))
    assert code == 0 and out.startswith("valid: signature matches")
    code, out, _ = verify(capsys, tmp_path, "github", b"Hello, World?", sig, extra=("--secret", GITHUB_SECRET))
    assert code == 1 and "does not match" in out and GITHUB_SECRET not in out
    legacy = "X-Hub-Signature: sha1=0123"
    code, out, _ = verify(capsys, tmp_path, "github", b"Hello, World!", legacy, extra=("--secret", GITHUB_SECRET))
    assert code == 1 and "missing X-Hub-Signature-256" in out


@pytest.mark.parametrize(("now", "expected"), [(SLACK_TS, 0), (SLACK_TS + 300, 0), (SLACK_TS + 301, 1),
                                               (SLACK_TS - 301, 1)])
def test_slack_vector_fresh_and_stale(capsys: pytest.CaptureFixture[str], tmp_path: Path, now: int,
                                      expected: int) -> None:
    code, out, _ = verify(capsys, tmp_path, "slack", SLACK_BODY, f"X-Slack-Signature: {SLACK_SIGNATURE}",
                          f"X-Slack-Request-Timestamp: {SLACK_TS}", extra=("--secret", SLACK_SECRET, "--now", str(now)))
    assert code == expected, out
    if expected:
        assert "stale" in out


def test_slack_tampered_body_is_invalid(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = verify(capsys, tmp_path, "slack", SLACK_BODY.replace(b"foobar", b"foobaz"),
                          f"X-Slack-Signature: {SLACK_SIGNATURE}", f"X-Slack-Request-Timestamp: {SLACK_TS}",
                          extra=("--secret", SLACK_SECRET, "--now", str(SLACK_TS)))
    assert code == 1 and "does not match" in out


def sw_args(signature: str = SW_SIGNATURE, ts: str = str(SW_TS)) -> tuple[str, ...]:
    return (f"webhook-id: {SW_ID}", f"webhook-timestamp: {ts}", f"webhook-signature: {signature}")


@pytest.mark.parametrize(
    ("signature", "ts", "now", "expected", "words"),
    [
        (SW_SIGNATURE, str(SW_TS), SW_TS, 0, "matches"),
        (f"v2,abc {SW_SIGNATURE}", str(SW_TS), SW_TS, 0, "matches"),
        (SW_TAMPERED, str(SW_TS), SW_TS, 1, "no v1 entry"),
        (SW_SIGNATURE, str(SW_TS), SW_TS + 301, 1, "stale"),
        (SW_SIGNATURE, str(SW_TS), SW_TS - 301, 1, "future"),
        (SW_SIGNATURE, "yesterday", SW_TS, 1, "not epoch seconds"),
    ],
)
def test_standard_webhooks_vector(capsys: pytest.CaptureFixture[str], tmp_path: Path, signature: str, ts: str,
                                  now: int, expected: int, words: str) -> None:
    code, out, _ = verify(capsys, tmp_path, "standard-webhooks", SW_BODY, *sw_args(signature, ts),
                          extra=("--secret", SW_SECRET, "--now", str(now)))
    assert code == expected and words in out, out


def test_notion_uppercase_hex_and_missing_prefix(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    body = json.dumps({"id": "e-1", "type": "page.created"}).encode()
    signature = build_strategy(profile("notion").config).sign(body, WebhookKey(secret=SecretStr("tok")), now=0)
    value = signature.headers["X-Notion-Signature"]
    upper = "sha256=" + value.removeprefix("sha256=").upper()
    code, out, _ = verify(capsys, tmp_path, "notion", body, f"X-Notion-Signature: {upper}", extra=("--secret", "tok"))
    assert code == 0 and "dedupe ids: e-1" in out
    bare = value.removeprefix("sha256=")
    code, out, _ = verify(capsys, tmp_path, "notion", body, f"X-Notion-Signature: {bare}", extra=("--secret", "tok"))
    assert code == 1 and "does not start with 'sha256='" in out


def test_salesforce_outbound_checks_the_org_id(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    body = build_message(organization_id=ORG, notifications=[("04l000000000001AAA", "Account", {"Name": "A"}),
                                                             ("04l000000000002AAA", "Account", {"Name": "B"})])
    code, out, _ = verify(capsys, tmp_path, "salesforce", body, extra=("--secret", ORG))
    assert code == 0 and "events: 2 (Account)" in out and "04l000000000002AAA" in out and "text/xml" in out
    code, out, _ = verify(capsys, tmp_path, "salesforce", body, extra=("--secret", "00D000000000000AAA"))
    assert code == 1 and "not the integration's org" in out
    code, out, _ = verify(capsys, tmp_path, "salesforce", b"<!DOCTYPE a [<!ENTITY b 'c'>]><a>&b;</a>",
                          extra=("--secret", ORG))
    assert code == 1


def test_apex_callout_with_custom_header_and_encoding(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    body = b'{"id":"c-1","event":"updated"}'
    config = profile("salesforce-apex").config.model_copy(update={"signature_header": "X-Sig", "encoding": "base64"})
    value = build_strategy(config).sign(body, WebhookKey(secret=SecretStr("s")), now=0).headers["X-Sig"]
    options = ("--secret", "s", "--signature-header", "X-Sig", "--encoding", "base64")
    assert verify(capsys, tmp_path, "salesforce-apex", body, f"X-Sig: {value}", extra=options)[0] == 0
    assert verify(capsys, tmp_path, "salesforce-apex", body + b" ", f"X-Sig: {value}", extra=options)[0] == 1


@pytest.fixture(scope="module")
def google_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def minted(google_key: rsa.RSAPrivateKey, now: float, audience: str = AUDIENCE) -> str:
    strategy = build_strategy(profile("google").config, certs=CertCache("mem://", static_fetcher(b"{}")))
    key = WebhookKey(audience=audience, service_account=EMAIL, private_key=SecretStr(pem(google_key)), key_id="kid-1")
    return strategy.sign(b"", key, now=now).headers["Authorization"]


@pytest.mark.parametrize("fmt", ["jwks", "v1"])
def test_google_push_with_minted_jwt(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     google_key: rsa.RSAPrivateKey, fmt: str) -> None:
    certs = tmp_path / "certs.json"
    certs.write_bytes(jwks({"kid-1": google_key}) if fmt == "jwks" else v1_map({"kid-1": google_key}))
    body = json.dumps({"message": {"data": "eyJhIjoxfQ==", "messageId": "42"}, "subscription": "s"}).encode()
    options = ("--audience", AUDIENCE, "--email", EMAIL, "--certs", str(certs))
    token = minted(google_key, SW_TS)
    code, out, _ = verify(capsys, tmp_path, "google", body, f"Authorization: {token}",
                          extra=(*options, "--now", str(SW_TS + 10)))
    assert code == 0 and "dedupe ids: 42" in out
    code, out, _ = verify(capsys, tmp_path, "google", body, f"Authorization: {token}",
                          extra=(*options, "--now", str(SW_TS + 3600 + 61)))
    assert code == 1 and "expired" in out
    other = minted(google_key, SW_TS, audience="https://elsewhere.example/")
    code, out, _ = verify(capsys, tmp_path, "google", body, f"Authorization: {other}",
                          extra=(*options, "--now", str(SW_TS)))
    assert code == 1 and "audience" in out
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    code, out, _ = verify(capsys, tmp_path, "google", body, f"Authorization: {tampered}",
                          extra=(*options, "--now", str(SW_TS)))
    assert code == 1


def test_google_channel_notification_and_sync(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    headers = ("X-Goog-Channel-ID: ch-1", "X-Goog-Channel-Token: tok", "X-Goog-Resource-ID: r-1",
               "X-Goog-Message-Number: 5")
    options = ("--secret", "tok", "--channel-id", "ch-1", "--resource-id", "r-1")
    code, out, _ = verify(capsys, tmp_path, "google-channel", b"", *headers, "X-Goog-Resource-State: update",
                          extra=options)
    assert code == 0 and "ch-1:5" in out
    code, out, _ = verify(capsys, tmp_path, "google-channel", b"", *headers, "X-Goog-Resource-State: sync",
                          extra=options)
    assert code == 0 and "handshake: answer HTTP 204" in out
    wrong = ("--secret", "nope", "--channel-id", "ch-1", "--resource-id", "r-1")
    assert verify(capsys, tmp_path, "google-channel", b"", *headers, "X-Goog-Resource-State: update",
                  extra=wrong)[0] == 1


@pytest.mark.parametrize(
    ("provider", "extra", "words"),
    [
        ("nope", ("--secret", "s"), "unknown provider"),
        ("github", (), "needs --secret"),
        ("github", ("--secret", "s", "--now", "soon"), "--now"),
        ("github", ("--secret", "s", "--header", "no colon"), "is not 'Name: value'"),
        ("google", ("--audience", AUDIENCE), "needs --audience and --email"),
        ("google-channel", ("--secret", "t"), "--channel-id"),
        ("slack", ("--secret", "s", "--encoding", "hex"), "apply to HMAC schemes"),
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path, provider: str,
                             extra: tuple[str, ...], words: str) -> None:
    code, _, err = verify(capsys, tmp_path, provider, b"{}", extra=extra)
    assert code == 2 and words in err


def test_unusable_certs_file_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    certs = tmp_path / "certs.json"
    certs.write_text('{"keys": []}')
    code, _, err = verify(capsys, tmp_path, "google", b"{}", "Authorization: Bearer x",
                          extra=("--audience", AUDIENCE, "--email", EMAIL, "--certs", str(certs)))
    assert code == 2 and "--certs" in err and "usable RSA key" in err


# ---------------------------------------------------------------------- send -> a loopback receiver


class Receiver:
    """Verifies every POST with the profile's strategy and answers what the verdict says."""

    def __init__(self, keys: dict[str, WebhookKey], certs: CertCache) -> None:
        self.keys = keys
        self.certs = certs
        self.verdicts: list[Verdict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                provider, token = ([*self.path.split("/")[1:], ""])[:2]
                strategy = build_strategy(profile(provider).config, certs=receiver.certs)
                verdict = strategy.verify(Delivery(dict(self.headers.items()), body, time.time(), token or None),
                                          receiver.keys[provider])
                receiver.verdicts.append(verdict)
                answer = verdict.answer
                status = answer.status if verdict.valid and answer else (202 if verdict.valid else verdict.status)
                payload = answer.body if verdict.valid and answer else verdict.reason.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                if verdict.valid and answer and answer.content_type:
                    self.send_header("Content-Type", answer.content_type)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(google_key: rsa.RSAPrivateKey) -> Iterator[Receiver]:
    keys = {
        "github": WebhookKey(secret=SecretStr("gh")),
        "notion": WebhookKey(secret=SecretStr("nt")),
        "slack": WebhookKey(secret=SecretStr("sl")),
        "standard-webhooks": WebhookKey(secret=SecretStr(SW_SECRET)),
        "salesforce": WebhookKey(organization_id=ORG, secret=SecretStr("path-tok")),
        "salesforce-apex": WebhookKey(secret=SecretStr("ap")),
        "google": WebhookKey(audience="AUD", service_account=EMAIL),
        "google-channel": WebhookKey(secret=SecretStr("ct"), channel_id="ch", resource_id="rs"),
    }
    found = Receiver(keys, CertCache("mem://", static_fetcher(jwks({"kid-1": google_key}))))
    try:
        yield found
    finally:
        found.server.shutdown()
        found.server.server_close()


SENDS = [
    ("github", "", ("--secret", "gh", "--event", "issues"), "issues"),
    ("notion", "", ("--secret", "nt"), "page.content_updated"),
    ("notion", "", ("--secret", "nt", "--event", "verification"), None),
    ("slack", "", ("--secret", "sl"), "message"),
    ("slack", "", ("--secret", "sl", "--event", "url_verification"), None),
    ("standard-webhooks", "", ("--secret", SW_SECRET, "--event", "invoice.paid"), "invoice.paid"),
    ("salesforce", "/path-tok", ("--secret", ORG, "--count", "3"), "Account"),
    ("salesforce-apex", "", ("--secret", "ap", "--event", "created"), "created"),
    ("google-channel", "", ("--secret", "ct", "--channel-id", "ch", "--resource-id", "rs"), "update"),
    ("google-channel", "", ("--secret", "ct", "--channel-id", "ch", "--resource-id", "rs", "--event", "sync"), None),
]


@pytest.mark.parametrize(("provider", "suffix", "extra", "event_type"), SENDS)
def test_send_delivers_what_the_same_strategy_accepts(capsys: pytest.CaptureFixture[str], receiver: Receiver,
                                                      provider: str, suffix: str, extra: tuple[str, ...],
                                                      event_type: str | None) -> None:
    code, out, err = run(capsys, "webhooks", "send", "--provider", provider, "--to",
                         f"{receiver.url}/{provider}{suffix}", *extra)
    assert code == 0, out + err
    verdict = receiver.verdicts[-1]
    assert verdict.valid, verdict.reason
    if event_type is None:
        assert verdict.handshake
    else:
        assert verdict.event_type == event_type and verdict.events
    if provider == "salesforce":
        assert len(verdict.events) == 3 and "<Ack>true</Ack>" in out
    if extra[-1] == "url_verification":
        assert out.strip().splitlines()[-1] == verdict.payload["challenge"]


def test_send_google_push_signs_a_jwt_with_the_key_file(capsys: pytest.CaptureFixture[str], receiver: Receiver,
                                                        google_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    key_file = tmp_path / "key.pem"
    key_file.write_text(pem(google_key))
    code, out, err = run(capsys, "webhooks", "send", "--provider", "google", "--to", f"{receiver.url}/google",
                         "--key-file", str(key_file), "--kid", "kid-1", "--audience", "AUD", "--email", EMAIL)
    assert code == 0, out + err
    assert receiver.verdicts[-1].valid and receiver.verdicts[-1].event_type == "message"
    code, _, err = run(capsys, "webhooks", "send", "--provider", "google", "--to", f"{receiver.url}/google",
                       "--audience", "AUD", "--email", EMAIL)
    assert code == 2 and "--key-file" in err


def test_send_with_the_wrong_secret_or_body_file_is_refused(capsys: pytest.CaptureFixture[str], receiver: Receiver,
                                                            tmp_path: Path) -> None:
    code, out, _ = run(capsys, "webhooks", "send", "--provider", "github", "--to", f"{receiver.url}/github",
                       "--secret", "wrong")
    assert code == 1 and "HTTP 401" in out
    body = tmp_path / "body.json"
    body.write_bytes(b'{"zen":"custom"}')
    code, out, _ = run(capsys, "webhooks", "send", "--provider", "github", "--to", f"{receiver.url}/github",
                       "--secret", "gh", "--event", "ping", "--body-file", str(body))
    assert code == 0 and receiver.verdicts[-1].payload == {"zen": "custom"}
    code, out, _ = run(capsys, "webhooks", "send", "--provider", "salesforce", "--to", f"{receiver.url}/salesforce/x",
                       "--secret", ORG)
    assert code == 1 and "HTTP 401" in out


def test_send_to_nothing_listening_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "webhooks", "send", "--provider", "github", "--to", "http://127.0.0.1:9/x",
                       "--secret", "s", "--timeout", "2")
    assert code == 1 and "not delivered" in out
    assert run(capsys, "webhooks", "send", "--provider", "github", "--to", "ftp://x", "--secret", "s")[0] == 2
