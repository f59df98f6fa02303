"""``ihub webhooks verify`` and ``ihub webhooks send``: the operator's view of every verification scheme.

Both use the same strategies as the hub (:mod:`adapters.base.verify`), chosen by provider: the
registered adapter's webhook spec when the provider has an adapter, else its profile
(:mod:`adapters.base.verify.profiles`). Exit codes: 0 valid / delivered (2xx), 1 invalid /
refused, 2 usage error. Secrets never appear in the output.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from adapters.base.verify.config import HmacSha256Config, SchemeConfig
from adapters.base.verify.model import Delivery, Verdict, WebhookKey
from adapters.base.verify.profiles import PROFILES, WebhookProfile, profile

USAGE = 2
INVALID = 1
OK = 0


class UsageError(Exception):
    """A command-line mistake: printed as ``error: ...`` with exit status 2."""


def add_parsers(hooks: Any) -> None:
    """Add ``verify`` and ``send`` to the ``webhooks`` sub-parsers."""
    names = ", ".join(sorted(PROFILES))
    verify = hooks.add_parser(
        "verify",
        help="verify a delivery offline; exit 0 valid, 1 invalid, 2 usage error",
        description=f"Verify a webhook delivery with the hub's own strategy. Providers: {names}.",
    )
    verify.add_argument("--provider", required=True, help=f"one of: {names}")
    verify.add_argument("--secret", help="signing secret (salesforce: the expected organization id; "
                        "google-channel: the channel token)")
    verify.add_argument("--header", action="append", metavar="'Name: value'", help="request header (repeatable)")
    verify.add_argument("--body-file", required=True, help="raw body bytes ('-' for stdin)")
    verify.add_argument("--now", help="epoch seconds to judge timestamps at (default: now)")
    _scheme_options(verify)
    verify.set_defaults(func=cmd_verify)

    send = hooks.add_parser(
        "send",
        help="sign and send a realistic delivery; exit 0 on a 2xx answer",
        description=f"Sign and POST a realistic delivery, as the provider would. Providers: {names}.",
    )
    send.add_argument("--provider", required=True, help=f"one of: {names}")
    send.add_argument("--to", required=True, help="endpoint URL (salesforce: including its path token)")
    send.add_argument("--secret", help="signing secret (salesforce: the organization id to send as; "
                      "google-channel: the channel token)")
    send.add_argument("--event", help="event type (default: the provider's usual one)")
    send.add_argument("--body-file", help="send these bytes instead of a generated body")
    send.add_argument("--count", type=int, default=1, help="salesforce: notifications in the message")
    send.add_argument("--key-file", help="google: PEM private key to sign the push JWT with")
    send.add_argument("--kid", help="google: key id to put in the JWT header")
    send.add_argument("--now", help="epoch seconds to sign at (default: now)")
    send.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer")
    _scheme_options(send)
    send.set_defaults(func=cmd_send)

    for name, helptext in (("replay", "re-process a stored webhook event through the admin API"),
                           ("events", "list stored webhook events by status through the admin API")):
        tool = hooks.add_parser(name, help=helptext, description=helptext)
        tool.add_argument("--api", default="http://127.0.0.1:7071/api", help="the app's API base URL")
        tool.add_argument("--tenant", required=True, help="the tenant id")
        tool.add_argument("--key", help="the admin function key (Azure); sent as x-functions-key")
        if name == "replay":
            tool.add_argument("event_id", help="the event id (from 'ihub webhooks events')")
        else:
            tool.add_argument("--status", help="received, enqueued, processed, ignored or failed")
            tool.add_argument("--integration", help="only this integration's events")
        tool.set_defaults(func=cmd_admin)


def _scheme_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--audience", help="google: the JWT audience (send: default --to)")
    parser.add_argument("--email", help="google: the push service account")
    parser.add_argument("--certs", help="google: JWKS file or v1 map of key id to PEM certificate "
                        "(verify default: fetch the provider's certs URL)")
    parser.add_argument("--channel-id", help="google-channel: the channel id")
    parser.add_argument("--resource-id", help="google-channel: the watched resource id")
    parser.add_argument("--signature-header", help="salesforce-apex: header carrying the signature")
    parser.add_argument("--encoding", choices=("hex", "base64"), help="salesforce-apex: signature encoding")
    parser.add_argument("--prefix", help="salesforce-apex: text before the signature")


# ---------------------------------------------------------------------- shared


def _profile(name: str) -> WebhookProfile:
    try:
        return profile(name)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None


def _config(found: WebhookProfile, args: argparse.Namespace) -> SchemeConfig:
    """The registered adapter's scheme config (same scheme as the profile), else the profile's; overrides applied."""
    config: SchemeConfig = found.config
    from adapters.registry import adapter_class, provider_names

    if found.name in provider_names():
        spec = adapter_class(found.name).spec.webhook
        if spec is not None:
            from adapters.base.webhooks import scheme_config

            candidates = [v.verification for v in spec.variants] or [scheme_config(spec)]
            registered = next((c for c in candidates if c.scheme == config.scheme), None)
            if registered is not None:
                config = registered
    overrides = {
        k: v
        for k, v in (("signature_header", args.signature_header), ("encoding", args.encoding), ("prefix", args.prefix))
        if v is not None
    }
    if overrides:
        if not isinstance(config, HmacSha256Config):
            raise UsageError(f"--signature-header/--encoding/--prefix apply to HMAC schemes, not {found.name}")
        config = config.model_copy(update=overrides)
    return config


def _now(text: str | None) -> float:
    if text is None:
        return time.time()
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--now {text!r} is not epoch seconds") from None


def _read(path: str, what: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what}: {exc}") from None


def _headers(raw: list[str] | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in raw or []:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header {item!r} is not 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def _key(found: WebhookProfile, args: argparse.Namespace, *, sending: bool) -> WebhookKey:
    scheme = found.config.scheme
    secret = SecretStr(args.secret) if args.secret is not None else None
    if scheme == "oidc_push":
        audience = args.audience or (args.to if sending else None)
        if not audience or not args.email:
            raise UsageError(f"--provider {found.name} needs --audience and --email")
        if sending:
            if not args.key_file or not args.kid:
                raise UsageError(f"--provider {found.name} send needs --key-file (PEM private key) and --kid")
            pem = _read(args.key_file, "--key-file").decode("utf-8", "replace")
            return WebhookKey(audience=audience, service_account=args.email, private_key=SecretStr(pem),
                              key_id=args.kid)
        return WebhookKey(audience=audience, service_account=args.email)
    if secret is None:
        raise UsageError(f"--provider {found.name} needs --secret ({found.secret_means})")
    if scheme == "soap_outbound":  # the path token is in the URL: only the hub's endpoint can check it
        return WebhookKey(organization_id=args.secret)
    if scheme == "channel_token":
        if not args.channel_id or (sending and not args.resource_id):
            raise UsageError(f"--provider {found.name} needs --channel-id and --resource-id")
        return WebhookKey(secret=secret, channel_id=args.channel_id, resource_id=args.resource_id)
    return WebhookKey(secret=secret)


def _describe(verdict: Verdict) -> list[str]:
    lines = []
    if verdict.events:
        ids = ", ".join(e.id for e in verdict.events[:5]) + (" ..." if len(verdict.events) > 5 else "")
        types = sorted({e.type or "?" for e in verdict.events})
        lines.append(f"  events: {len(verdict.events)} ({', '.join(types)}); dedupe ids: {ids}")
    if verdict.handshake and verdict.answer is not None:
        lines.append(f"  handshake: answer HTTP {verdict.answer.status}, no work")
    elif verdict.answer is not None:
        lines.append(f"  answer after persisting: HTTP {verdict.answer.status} {verdict.answer.content_type or ''}")
    if verdict.captured is not None:
        lines.append("  carries a token for the hub to store (not shown)")
    return lines


# ---------------------------------------------------------------------- verify


def cmd_verify(args: argparse.Namespace) -> int:
    """``ihub webhooks verify``: 0 valid, 1 invalid (reason printed), 2 usage error."""
    try:
        return _verify(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE


def _verify(args: argparse.Namespace) -> int:
    from adapters.base.verify.registry import build_strategy

    found = _profile(args.provider)
    headers = _headers(args.header)
    body = _read(args.body_file, "--body-file")
    now = _now(args.now)
    config = _config(found, args)
    key = _key(found, args, sending=False)
    certs = None
    if config.scheme == "soap_outbound":
        config = config.model_copy(update={"require_path_token": False})
    if config.scheme == "oidc_push" and args.certs:
        from adapters.base.verify.certs import CertCache, parse_keys, static_fetcher

        document = _read(args.certs, "--certs")
        try:
            parse_keys(document)
        except ValueError as exc:
            raise UsageError(f"--certs {args.certs}: {exc}") from None
        certs = CertCache(f"file:{args.certs}", static_fetcher(document))
    strategy = build_strategy(config, certs=certs)
    verdict = strategy.verify(Delivery(headers, body, now), key)
    if verdict.authentic:
        print(f"valid: {verdict.reason}")
        for line in _describe(verdict):
            print(line)
        return OK
    print(f"INVALID: {verdict.reason} (code {verdict.code}, the hub answers {verdict.status})")
    return INVALID


# ---------------------------------------------------------------------- send


def cmd_send(args: argparse.Namespace) -> int:
    """``ihub webhooks send``: 0 when the endpoint answers 2xx, 1 otherwise, 2 usage error."""
    try:
        return _send(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE


def _send(args: argparse.Namespace) -> int:
    import httpx

    from adapters.base.verify.registry import build_strategy
    from adapters.base.verify.samples import Sample, sample

    found = _profile(args.provider)
    if not args.to.startswith(("http://", "https://")):
        raise UsageError(f"--to {args.to!r} is not an http(s) URL")
    now = _now(args.now)
    config = _config(found, args)
    key = _key(found, args, sending=True)
    event = args.event or found.default_event
    generated = sample(found.name, event, now=now, key=key, count=args.count)
    if args.body_file:
        generated = Sample(_read(args.body_file, "--body-file"), event, generated.delivery_id, generated.signed)
    strategy = build_strategy(config)
    try:
        signed = strategy.sign(generated.body, key, now=now, delivery_id=generated.delivery_id, event_type=event)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    headers = dict(signed.headers)
    if not generated.signed:  # a handshake the provider sends unsigned: keep only the content type
        headers = {k: v for k, v in headers.items() if k.lower() == "content-type"}
    headers.setdefault("User-Agent", "ihub-webhooks-send/1")
    try:
        response = httpx.post(args.to, content=signed.body, headers=headers, timeout=args.timeout)
    except httpx.HTTPError as exc:
        print(f"not delivered: {type(exc).__name__}: {exc}")
        return INVALID
    label = f"{found.name} {event}" + (f" ({generated.delivery_id})" if generated.delivery_id else "")
    print(f"sent {label}, {len(signed.body)} bytes -> HTTP {response.status_code}")
    if response.content:
        print(response.text[:500])
    return OK if response.is_success else INVALID


def cmd_admin(args: argparse.Namespace) -> int:
    """``replay`` / ``events``: the admin API's webhook routes; exit 0 on 2xx, 1 otherwise, 2 unreachable."""
    import json

    import httpx

    headers = {"x-tenant-id": args.tenant} | ({"x-functions-key": args.key} if args.key else {})
    base = args.api.rstrip("/") + "/manage"
    try:
        if args.webhooks_command == "replay":
            answer = httpx.post(f"{base}/webhook-events/{args.event_id}/replay", headers=headers, timeout=30)
        else:
            params = {k: v for k, v in (("status", args.status), ("integration", args.integration)) if v}
            answer = httpx.get(f"{base}/webhook-events", params=params, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        print(f"error: {args.api} is not reachable: {exc}", file=sys.stderr)
        return USAGE
    if not answer.is_success:
        print(f"refused: HTTP {answer.status_code}: {answer.text[:500]}", file=sys.stderr)
        return INVALID
    body = answer.json()
    if args.webhooks_command == "replay":
        print(f"replayed {body['id']} ({body['provider']} {body['event_type']}), replay #{body['replays']}")
    else:
        for event in body:
            why = event.get("reason") or event.get("error") or ""
            print(f"{event['id']}  {event['status']:<9} {event['provider']:<10} {event['event_type'][:30]:<30} {why}")
        print(json.dumps({"events": len(body)}))
    return OK
