"""Google push for the sandbox: Drive/Calendar watch channels and Pub/Sub push with signed JWTs.

Watch channels (developers.google.com/drive/api/guides/push, calendar/api/guides/push):

- ``watch`` takes ``{"id", "type": "web_hook", "address", "token"?, "expiration"? (ms), "params"?}``
  and answers ``{"kind": "api#channel", "id", "resourceId", "resourceUri", "token", "expiration"}``
  (``expiration`` in ms as a string; capped at the API's maximum lifetime).
- A ``sync`` notification (message number 1) follows every new channel. Each later change sends
  one per live channel on that resource: an empty-body POST with ``X-Goog-Channel-ID``,
  ``X-Goog-Channel-Token`` (when set), ``X-Goog-Channel-Expiration`` (RFC 1123),
  ``X-Goog-Resource-ID``, ``X-Goog-Resource-URI``, ``X-Goog-Resource-State`` (``sync``, ``exists``
  for Calendar, ``change`` for Drive changes, ``update``/``trash``/``untrash``/``remove`` for a
  Drive file, with ``X-Goog-Changed``) and ``X-Goog-Message-Number``. Answers 500/502/503/504
  or no answer are retried (same message number). Stopped or expired channels send nothing.

Pub/Sub push (cloud.google.com/pubsub/docs/authenticate-push-subscriptions): a POST of
``{"message": {"data": base64, "attributes", "messageId", "message_id", "publishTime",
"publish_time"}, "subscription"}`` with ``Authorization: Bearer <RS256 JWT>`` whose claims are
``iss`` (``https://accounts.google.com``), ``aud``, ``azp``, ``sub``, ``email``, ``email_verified``,
``iat`` and ``exp``. The signing keys' certificates are served in Google's two formats: the v1
map of key id → PEM X.509 certificate and the v3 JWKS (see :class:`PubSubPusher`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sandbox.google_common import GoogleError, bad_request, random_id, rfc3339
from sandbox.server import post_webhook

USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"
RETRY_STATUSES = {500, 502, 503, 504}


@dataclass
class Channel:
    """One watch channel."""

    id: str
    resource_id: str
    resource_uri: str
    address: str
    token: str | None
    expiration_ms: int
    resource: tuple[str, ...]  # ("drive", "changes") / ("drive", "file", id) / ("calendar", "events", cal)
    message_number: int = 0
    stopped: bool = False

    def answer(self) -> dict[str, Any]:
        """The ``watch`` response body."""
        body = {"kind": "api#channel", "id": self.id, "resourceId": self.resource_id,
                "resourceUri": self.resource_uri, "expiration": str(self.expiration_ms)}
        return body | ({"token": self.token} if self.token is not None else {})


@dataclass
class Notification:
    """A notification waiting to be sent, and what became of it."""

    channel: Channel
    state: str
    number: int
    changed: str | None = None
    statuses: list[int] = field(default_factory=list)  # one per attempt; 0 = no answer


class ChannelHub:
    """Watch channels of both APIs, their notification outbox and its delivery.

    Args:
        clock: The sandbox clock (channel expiry follows it).
        seed: Seed of the resource-id generator.
        max_retries: Retries of a notification answered 5xx or not at all.
        timeout_seconds: How long to wait for the receiver's answer.
    """

    def __init__(self, clock: Callable[[], float], seed: int = 1, *, max_retries: int = 2,
                 timeout_seconds: float = 10.0) -> None:
        self.clock, self.max_retries, self.timeout_seconds = clock, max_retries, timeout_seconds
        self._rng = random.Random(f"google-channels-{seed}")
        self._ids: set[str] = set()
        self._resource_ids: dict[tuple[str, ...], str] = {}
        self._channels: dict[str, Channel] = {}
        self._outbox: list[Notification] = []
        self.sent: list[Notification] = []
        self._lock = threading.RLock()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def create(self, resource: tuple[str, ...], resource_uri: str, body: Mapping[str, Any], *,
               default_ttl: int, max_ttl: int) -> Channel:
        """Open a channel from a ``watch`` request body and queue its ``sync`` notification."""
        channel_id, address = body.get("id"), body.get("address")
        if not isinstance(channel_id, str) or not channel_id:
            raise bad_request("Required parameter: id", "id", "required")
        if body.get("type") not in ("web_hook", "webhook"):
            raise bad_request("Invalid value for type: the channel type must be web_hook.", "type")
        if not isinstance(address, str) or not address.startswith(("https://", "http://")):
            raise bad_request("Invalid value for address: an https URL is required.", "address")
        now_ms = int(self.clock() * 1000)
        requested = body.get("expiration")
        raw_params = body.get("params")
        params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
        try:
            if requested is not None:
                expiration = int(str(requested))
            elif "ttl" in params:
                expiration = now_ms + int(str(params["ttl"])) * 1000
            else:
                expiration = now_ms + default_ttl * 1000
        except ValueError:
            raise bad_request("Invalid value for expiration or params.ttl: give whole milliseconds / seconds.",
                              "expiration") from None
        with self._lock:
            if channel_id in self._channels:
                raise bad_request(f"Channel id {channel_id} not unique", "id", "channelIdNotUnique")
            if resource not in self._resource_ids:
                self._resource_ids[resource] = random_id(self._rng, "abcdefghijklmnopqrstuvwxyz0123456789-_", 27,
                                                         self._ids)
            token = body.get("token")
            channel = Channel(channel_id, self._resource_ids[resource], resource_uri, address,
                              None if token is None else str(token), min(expiration, now_ms + max_ttl * 1000),
                              resource)
            self._channels[channel_id] = channel
            self._queue(channel, "sync")
            return channel

    def stop(self, body: Mapping[str, Any]) -> None:
        """``channels.stop``: 404 ``notFound`` unless ``id`` and ``resourceId`` name a live channel."""
        with self._lock:
            channel = self._channels.get(str(body.get("id")))
            if channel is None or channel.stopped or channel.resource_id != body.get("resourceId"):
                raise GoogleError(404, "notFound", f"Channel '{body.get('id')}' not found for project 'sandbox'")
            channel.stopped = True

    @property
    def channels(self) -> list[Channel]:
        """Every channel ever opened (stopped ones flagged)."""
        with self._lock:
            return list(self._channels.values())

    def live(self) -> list[Channel]:
        """Channels neither stopped nor expired."""
        now_ms = self.clock() * 1000
        with self._lock:
            return [c for c in self._channels.values() if not c.stopped and c.expiration_ms > now_ms]

    def _queue(self, channel: Channel, state: str, changed: str | None = None) -> None:
        channel.message_number += 1
        self._outbox.append(Notification(channel, state, channel.message_number, changed))
        self._wake.set()

    def notify(self, resource: tuple[str, ...], state: str, changed: str | None = None) -> int:
        """Queue a notification on every live channel watching ``resource``; returns how many."""
        channels = [c for c in self.live() if c.resource == resource]
        with self._lock:
            for channel in channels:
                self._queue(channel, state, changed)
        return len(channels)

    @property
    def pending(self) -> list[Notification]:
        """Queued notifications."""
        with self._lock:
            return list(self._outbox)

    def headers(self, note: Notification) -> dict[str, str | None]:
        """The headers of one notification."""
        channel = note.channel
        expiry = datetime.fromtimestamp(channel.expiration_ms / 1000, UTC)
        return {"User-Agent": USER_AGENT, "Content-Type": None, "X-Goog-Channel-ID": channel.id,
                "X-Goog-Channel-Token": channel.token,
                "X-Goog-Channel-Expiration": format_datetime(expiry, usegmt=True),
                "X-Goog-Resource-ID": channel.resource_id, "X-Goog-Resource-URI": channel.resource_uri,
                "X-Goog-Resource-State": note.state, "X-Goog-Message-Number": str(note.number),
                "X-Goog-Changed": note.changed}

    def send(self, note: Notification, *, headers_override: Mapping[str, str | None] | None = None,
             client: httpx.Client | None = None) -> list[int]:
        """POST one notification (retrying 5xx / no answer); returns the status of each attempt."""
        headers = self.headers(note) | dict(headers_override or {})
        statuses: list[int] = []
        for _ in range(self.max_retries + 1):
            try:
                if client is None:
                    with httpx.Client(timeout=self.timeout_seconds) as own:
                        status = post_webhook(note.channel.address, b"", headers, own).status_code
                else:
                    status = post_webhook(note.channel.address, b"", headers, client).status_code
            except httpx.HTTPError:
                status = 0
            statuses.append(status)
            if status and status not in RETRY_STATUSES:
                break
        note.statuses += statuses
        return statuses

    def flush(self, client: httpx.Client | None = None) -> list[Notification]:
        """Send every queued notification in order; returns them with their statuses."""
        with self._lock:
            batch, self._outbox = self._outbox, []
        for note in batch:
            self.send(note, client=client)
        with self._lock:
            self.sent += batch
        return batch

    def start_auto_delivery(self) -> None:
        """Send queued notifications from a background thread as soon as they are queued."""
        if self._thread is not None:
            return
        self._stop.clear()

        def run() -> None:
            with httpx.Client(timeout=self.timeout_seconds) as client:
                while not self._stop.is_set():
                    self._wake.wait(0.5)
                    self._wake.clear()
                    if not self._stop.is_set():
                        self.flush(client)

        self._thread = threading.Thread(target=run, name="google-channels", daemon=True)
        self._thread.start()

    def stop_delivery(self) -> None:
        """Stop the auto-delivery thread (queued notifications stay queued)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


@dataclass
class _SigningKey:
    kid: str
    private: rsa.RSAPrivateKey
    certificate_pem: str


class PubSubPusher:
    """Pub/Sub push deliveries authenticated with Google-style OIDC tokens.

    Args:
        service_account: The push subscription's service account (the JWT ``email``).
        project: Project id in the subscription name.
        subscription: Subscription id.
        push_endpoint: Default push URL (also the default ``aud``).
        audience: A configured audience overriding the endpoint as ``aud``.
        seed: Seed of the message-id generator.
        clock: Wall clock for ``iat``/``exp`` and ``publishTime``.
    """

    issuer = "https://accounts.google.com"

    def __init__(self, service_account: str = "hub-push@sandbox-project.iam.gserviceaccount.com",
                 project: str = "sandbox-project", subscription: str = "hub-push", *,
                 push_endpoint: str | None = None, audience: str | None = None, seed: int = 1,
                 clock: Callable[[], float] = time.time) -> None:
        self.service_account, self.push_endpoint, self.audience, self.clock = (
            service_account, push_endpoint, audience, clock)
        self.subscription = f"projects/{project}/subscriptions/{subscription}"
        self.subject = str(100000000000000000000 + int(hashlib.sha256(service_account.encode()).hexdigest()[:12], 16))
        self._rng = random.Random(f"pubsub-{seed}")
        self._keys: list[_SigningKey] = []
        self._lock = threading.Lock()

    # -- keys and certificates --------------------------------------------------------------------

    def _new_key(self) -> _SigningKey:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = private.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "federated-signon.system.gserviceaccount.com")])
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=14)).sign(private, hashes.SHA256()))
        return _SigningKey(hashlib.sha1(der).hexdigest(), private,  # a key id, not a security hash
                           cert.public_bytes(serialization.Encoding.PEM).decode())

    def _current(self) -> _SigningKey:
        with self._lock:
            if not self._keys:
                self._keys.append(self._new_key())
            return self._keys[-1]

    def rotate_key(self, keep_previous: bool = True) -> str:
        """Sign with a new key from now on; the previous one stays published unless ``keep_previous`` is false.

        Returns:
            The new key id. At most two keys are published, as Google usually does.
        """
        fresh = self._new_key()
        with self._lock:
            self._keys = ([*self._keys[-1:]] if keep_previous else []) + [fresh]
            return fresh.kid

    @property
    def key_ids(self) -> list[str]:
        """Published key ids, newest last."""
        self._current()
        with self._lock:
            return [k.kid for k in self._keys]

    def certs_v1(self) -> dict[str, str]:
        """``/oauth2/v1/certs``: key id → PEM X.509 certificate."""
        self._current()
        with self._lock:
            return {k.kid: k.certificate_pem for k in self._keys}

    def certs_v3(self) -> dict[str, Any]:
        """``/oauth2/v3/certs``: a JWKS of the RSA public keys."""
        self._current()
        with self._lock:
            keys = []
            for key in self._keys:
                jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.private.public_key(), as_dict=True)
                keys.append(jwk | {"kid": key.kid, "alg": "RS256", "use": "sig"})
            return {"keys": keys}

    # -- tokens and deliveries --------------------------------------------------------------------

    def mint(self, audience: str, *, issued_at: float | None = None, lifetime: int = 3600,
             claims: Mapping[str, Any] | None = None, kid: str | None = None) -> str:
        """An RS256 ID token as Pub/Sub attaches to a push request (``claims`` override or add claims)."""
        key = self._current()
        if kid is not None:
            with self._lock:
                key = next(k for k in self._keys if k.kid == kid)
        iat = int(self.clock() if issued_at is None else issued_at)
        payload = {"aud": audience, "azp": self.subject, "email": self.service_account, "email_verified": True,
                   "exp": iat + lifetime, "iat": iat, "iss": self.issuer, "sub": self.subject} | dict(claims or {})
        return jwt.encode(payload, key.private, algorithm="RS256", headers={"kid": key.kid, "typ": "JWT"})

    def envelope(self, data: bytes | str | Mapping[str, Any], attributes: Mapping[str, str] | None = None, *,
                 message_id: str | None = None, delivery_attempt: int | None = None) -> dict[str, Any]:
        """The push request body (both the camelCase and snake_case keys Pub/Sub sends)."""
        raw = data if isinstance(data, bytes) else (data.encode() if isinstance(data, str) else json.dumps(
            data, separators=(",", ":")).encode())
        with self._lock:
            identifier = message_id or str(self._rng.randrange(10**15, 10**16))
        published = rfc3339(datetime.fromtimestamp(self.clock(), UTC))
        message = {"attributes": dict(attributes or {}), "data": base64.b64encode(raw).decode(),
                   "messageId": identifier, "message_id": identifier, "publishTime": published,
                   "publish_time": published}
        body: dict[str, Any] = {"message": message, "subscription": self.subscription}
        if delivery_attempt is not None:
            body["deliveryAttempt"] = delivery_attempt
        return body

    def push(self, body: Mapping[str, Any] | bytes, url: str | None = None, *, audience: str | None = None,
             token: str | None = None, headers_override: Mapping[str, str | None] | None = None,
             client: httpx.Client | None = None) -> httpx.Response:
        """POST one push request (an :meth:`envelope` or exact bytes) with a fresh bearer token.

        Raises:
            ValueError: No push endpoint is configured.
            httpx.HTTPError: The endpoint could not be reached.
        """
        target = url or self.push_endpoint
        if not target:
            raise ValueError("no Pub/Sub push endpoint: pass url= or configure pubsub_endpoint")
        raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        bearer = token or self.mint(audience or self.audience or target)
        headers: dict[str, str | None] = {"Content-Type": "application/json", "User-Agent": "APIs-Google",
                                          "Authorization": f"Bearer {bearer}"}
        if client is None:
            with httpx.Client(timeout=10.0) as own:
                return post_webhook(target, raw, headers | dict(headers_override or {}), own)
        return post_webhook(target, raw, headers | dict(headers_override or {}), client)
