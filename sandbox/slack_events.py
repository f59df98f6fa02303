"""Slack Events API deliveries for the sandbox: envelopes, v0 signatures, retries, URL verification.

Behaviour (``PROVIDERS.md`` § Slack; ``slack_sdk.signature``; docs.slack.dev "Events API"):

- Every request is a POST of JSON with ``X-Slack-Request-Timestamp`` (epoch seconds, wall clock)
  and ``X-Slack-Signature: v0=<hex HMAC-SHA256(signing_secret, "v0:{timestamp}:{body}")>``.
- ``url_verification`` carries ``token``, ``challenge`` and ``type``; the endpoint must answer
  with the challenge.
- ``event_callback`` envelopes carry ``token``, ``team_id``, ``api_app_id``, ``event``, ``type``,
  ``event_id``, ``event_time``, ``authorizations``, ``is_ext_shared_channel`` and
  ``event_context``.
- A delivery that fails (no answer within the timeout, 3 s like Slack, or a non-2xx answer) is
  retried up to three times with the same body, so the same ``event_id``, a fresh timestamp and
  signature, and ``X-Slack-Retry-Num`` (1, 2, 3) and ``X-Slack-Retry-Reason`` (``http_timeout``,
  ``http_error``, ``connection_failed``). Slack waits 0 s, 1 min and 5 min; the sandbox's delays
  are configurable and 0 by default. An answer with ``X-Slack-No-Retry: 1`` stops the retries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from sandbox.server import post_webhook
from sandbox.slack_store import SlackWorkspace

USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


@dataclass
class Attempt:
    """One POST of a delivery: which retry it was and what came back (``status`` 0 = no answer)."""

    event_id: str | None
    retry_num: int
    status: int
    reason: str = ""


def sign(signing_secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """``v0=<hex HMAC-SHA256(secret, "v0:{timestamp}:{body}")>``: the ``X-Slack-Signature`` value."""
    key = signing_secret.encode() if isinstance(signing_secret, str) else signing_secret
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(key, base, hashlib.sha256).hexdigest()


class SlackEventSender:
    """Builds, signs and delivers Events API requests for one workspace and app.

    Args:
        workspace: The workspace events come from (team id, app id, bot user).
        signing_secret: The app's signing secret.
        verification_token: The deprecated ``token`` field every envelope still carries.
        url: Default Request URL (``None`` until configured).
        seed: Seed of the ``event_id`` generator.
        clock: Wall clock for ``X-Slack-Request-Timestamp`` (not the sandbox's data clock).
        timeout_seconds: How long to wait for an answer before counting an ``http_timeout``.
        retry_delays: Seconds to wait before retry 1, 2 and 3 (its length is the retry count).
    """

    def __init__(self, workspace: SlackWorkspace, signing_secret: str = "slack-signing-secret",
                 verification_token: str = "slack-verification-token", url: str | None = None, *, seed: int = 1,
                 clock: Callable[[], float] = time.time, timeout_seconds: float = 3.0,
                 retry_delays: Sequence[float] = (0.0, 0.0, 0.0)) -> None:
        self.workspace, self.signing_secret, self.verification_token = workspace, signing_secret, verification_token
        self.url, self.clock, self.timeout_seconds = url, clock, timeout_seconds
        self.retry_delays = list(retry_delays)
        self.attempts: list[Attempt] = []
        self._rng = random.Random(f"slack-events-{seed}")
        self._lock = threading.Lock()
        self._outbox: list[dict[str, Any]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- building ---------------------------------------------------------------------------------

    def new_event_id(self) -> str:
        """A fresh ``Ev…`` id (deterministic from the seed)."""
        with self._lock:
            return "Ev" + "".join(self._rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(10))

    def envelope(self, event: Mapping[str, Any], *, event_id: str | None = None,
                 event_time: int | None = None) -> dict[str, Any]:
        """Wrap an ``event`` object in an ``event_callback`` envelope."""
        ws = self.workspace
        stamp = event_time if event_time is not None else int(float(event.get("event_ts", self.clock())))
        return {
            "token": self.verification_token, "team_id": ws.team_id, "context_team_id": ws.team_id,
            "context_enterprise_id": None, "api_app_id": ws.app_id, "event": dict(event), "type": "event_callback",
            "event_id": event_id or self.new_event_id(), "event_time": stamp,
            "authorizations": [{"enterprise_id": None, "team_id": ws.team_id, "user_id": ws.bot_user_id,
                                "is_bot": True, "is_enterprise_install": False}],
            "is_ext_shared_channel": False, "event_context": f"4-{ws.team_id}-{stamp}",
        }

    # -- sending ----------------------------------------------------------------------------------

    def post(self, body: Mapping[str, Any] | bytes, url: str | None = None, *, timestamp: int | None = None,
             retry_num: int = 0, retry_reason: str | None = None, secret: str | None = None,
             headers_override: Mapping[str, str | None] | None = None,
             client: httpx.Client | None = None) -> httpx.Response:
        """POST one signed request (no retries).

        Args:
            body: The envelope (serialised compactly) or exact body bytes.
            url: Receiver URL (defaults to :attr:`url`).
            timestamp: ``X-Slack-Request-Timestamp`` (now by default; pass an old one for a stale request).
            retry_num: ``X-Slack-Retry-Num`` (0 leaves the retry headers out).
            retry_reason: ``X-Slack-Retry-Reason`` (``http_timeout`` by default on a retry).
            secret: Signing secret (defaults to :attr:`signing_secret`; pass another to forge).
            headers_override: Headers to replace; ``None`` removes one.
            client: An ``httpx.Client`` to send with.

        Raises:
            ValueError: No URL is configured.
            httpx.HTTPError: The receiver could not be reached or did not answer in time.
        """
        target = url or self.url
        if not target:
            raise ValueError("no Events API Request URL: pass url= or configure events_url")
        raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        stamp = int(self.clock()) if timestamp is None else timestamp
        headers: dict[str, str | None] = {
            "Content-Type": "application/json", "User-Agent": USER_AGENT,
            "X-Slack-Request-Timestamp": str(stamp),
            "X-Slack-Signature": sign(self.signing_secret if secret is None else secret, stamp, raw),
        }
        if retry_num:
            headers |= {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason or "http_timeout"}
        if client is None:
            with httpx.Client(timeout=self.timeout_seconds) as own:
                return post_webhook(target, raw, headers | dict(headers_override or {}), own)
        return post_webhook(target, raw, headers | dict(headers_override or {}), client)

    def deliver(self, envelope: Mapping[str, Any], url: str | None = None, *,
                client: httpx.Client | None = None) -> list[Attempt]:
        """Deliver an envelope like Slack: the first POST, then retries while it fails. Returns every attempt."""
        attempts: list[Attempt] = []
        reason = ""
        event_id = envelope.get("event_id")
        for retry_num in range(len(self.retry_delays) + 1):
            if retry_num:
                self._stop.wait(self.retry_delays[retry_num - 1])
            try:
                response = self.post(envelope, url, retry_num=retry_num, retry_reason=reason or None, client=client)
            except httpx.TimeoutException:
                attempts.append(Attempt(event_id, retry_num, 0, "http_timeout"))
                reason = "http_timeout"
                continue
            except httpx.HTTPError:
                attempts.append(Attempt(event_id, retry_num, 0, "connection_failed"))
                reason = "connection_failed"
                continue
            attempts.append(Attempt(event_id, retry_num, response.status_code))
            if response.is_success or response.headers.get("x-slack-no-retry") == "1":
                break
            reason = "http_error"
        with self._lock:
            self.attempts.extend(attempts)
        return attempts

    def redeliver(self, envelope: Mapping[str, Any], retry_num: int = 1, retry_reason: str = "http_timeout",
                  url: str | None = None, *, client: httpx.Client | None = None) -> httpx.Response:
        """Send an envelope again as Slack's retry ``retry_num`` (same ``event_id``, fresh timestamp)."""
        return self.post(envelope, url, retry_num=retry_num, retry_reason=retry_reason, client=client)

    def url_verification(self, url: str | None = None, challenge: str | None = None, *,
                         client: httpx.Client | None = None) -> tuple[httpx.Response, bool]:
        """Send the ``url_verification`` handshake; returns the answer and whether it echoed the challenge.

        Slack accepts the challenge as the plain-text body or as ``{"challenge": …}`` JSON.
        """
        challenge = challenge or "".join(self._rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(48))
        body = {"token": self.verification_token, "challenge": challenge, "type": "url_verification"}
        response = self.post(body, url, client=client)
        echoed = response.text.strip() == challenge
        if not echoed:
            try:
                echoed = response.json().get("challenge") == challenge
            except (ValueError, AttributeError):
                echoed = False
        return response, response.is_success and echoed

    # -- outbox -----------------------------------------------------------------------------------

    def enqueue(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Wrap an event and queue it for :meth:`flush` (or the auto-delivery thread); returns the envelope."""
        envelope = self.envelope(event)
        with self._lock:
            self._outbox.append(envelope)
        self._wake.set()
        return envelope

    @property
    def pending(self) -> list[dict[str, Any]]:
        """Envelopes queued and not yet delivered."""
        with self._lock:
            return list(self._outbox)

    def flush(self, url: str | None = None, *, client: httpx.Client | None = None) -> list[Attempt]:
        """Deliver every queued envelope in order (with retries); returns all attempts.

        Nothing is sent (and the queue is kept) while no URL is configured.
        """
        if not (url or self.url):
            return []
        with self._lock:
            batch, self._outbox = self._outbox, []
        attempts: list[Attempt] = []
        for envelope in batch:
            attempts += self.deliver(envelope, url, client=client)
        return attempts

    def start_auto_delivery(self) -> None:
        """Deliver queued events from a background thread as soon as they are queued (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()

        def run() -> None:
            with httpx.Client(timeout=self.timeout_seconds) as client:
                while not self._stop.is_set():
                    self._wake.wait(0.5)
                    self._wake.clear()
                    if not self._stop.is_set():
                        self.flush(client=client)

        self._thread = threading.Thread(target=run, name="slack-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the auto-delivery thread (queued events stay queued)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
