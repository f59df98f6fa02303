"""Public keys for JWT verification, fetched from a URL and cached: JWKS or a map of key id to PEM certificate.

- **Formats.** A JWKS (``{"keys": [{"kid", "kty": "RSA", "n", "e", ...}]}``) or the "v1"
  format, a JSON object mapping each key id to a PEM X.509 certificate. Entries that do not
  parse are skipped (and logged); a document with no usable key is an error.
- **Cache.** Keys are kept for the response's ``Cache-Control: max-age``, bounded to
  ``[min_refetch_seconds, max_ttl_seconds]`` (``default_ttl_seconds`` without one).
- **Rotation.** A token naming an unknown ``kid`` triggers one refetch, but never more than
  once per ``min_refetch_seconds``, so forged kids cannot make the hub hammer the key server.
- **Failure.** A failed fetch keeps serving the keys already held; with none, the caller
  gets :class:`KeysUnavailable` (the delivery should be retried, not refused).
- **Injectable.** The fetcher is any callable from URL to :class:`FetchedDocument`: the
  default uses httpx; tests and the CLI pass an in-memory or loopback source.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from shared import jsonio

log = logging.getLogger("ihub.webhooks.certs")

MAX_KEYS = 64
"""Most keys read from one document."""


@dataclass(frozen=True)
class FetchedDocument:
    """A key document as fetched: status, body bytes and response headers (names any case)."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


Fetcher = Callable[[str], FetchedDocument]
"""Fetches a key document from a URL; raises on transport failure."""


class KeysUnavailable(Exception):
    """No key is available to judge a token (the key source is unreachable or unusable)."""


def httpx_fetcher(client: httpx.Client | None = None, *, timeout: float = 5.0) -> Fetcher:
    """A fetcher over httpx (a private client with ``timeout`` unless one is given)."""
    own = client or httpx.Client(timeout=timeout, follow_redirects=False)

    def fetch(url: str) -> FetchedDocument:
        response = own.get(url, headers={"Accept": "application/json"})
        return FetchedDocument(response.status_code, response.content, dict(response.headers))

    return fetch


def static_fetcher(document: bytes, headers: Mapping[str, str] | None = None) -> Fetcher:
    """A fetcher that always returns ``document`` (a file's content, an in-memory key set)."""
    fixed = FetchedDocument(200, document, dict(headers or {}))
    return lambda url: fixed


def parse_keys(document: bytes) -> dict[str, RSAPublicKey]:
    """RSA public keys by key id from a JWKS or a v1 ``{kid: PEM certificate}`` map.

    Raises:
        ValueError: The document is not JSON, not one of the two formats, or has no usable key.
    """
    try:
        data = jsonio.loads(document, what="key document")
    except jsonio.InvalidJson as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(data, dict):
        raise ValueError("the key document is not a JSON object")
    keys: dict[str, RSAPublicKey] = {}
    if isinstance(data.get("keys"), list):
        for jwk in data["keys"][:MAX_KEYS]:
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or jwk.get("kty") != "RSA":
                continue
            try:
                key = jwt.PyJWK(jwk, algorithm="RS256").key
            except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
                log.warning("skipping JWK %.40r: %s", jwk.get("kid"), exc)
                continue
            if isinstance(key, RSAPublicKey):
                keys[jwk["kid"]] = key
    else:
        for kid, pem in list(data.items())[:MAX_KEYS]:
            if not isinstance(pem, str):
                continue
            try:
                public = x509.load_pem_x509_certificate(pem.encode()).public_key()
            except ValueError as exc:
                log.warning("skipping certificate %.40r: %s", kid, exc)
                continue
            if isinstance(public, RSAPublicKey):
                keys[kid] = public
    if not keys:
        raise ValueError(
            "the key document has no usable RSA key (expected a JWKS or a map of key id to PEM certificate)"
        )
    return keys


_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,10})\"?", re.IGNORECASE)


def max_age(headers: Mapping[str, str]) -> int | None:
    """``Cache-Control: max-age`` in seconds, or None (also for ``no-store``/``no-cache``: 0)."""
    value = next((v for k, v in headers.items() if k.lower() == "cache-control"), None)
    if value is None:
        return None
    lowered = value.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0
    match = _MAX_AGE.search(value)
    return int(match.group(1)) if match else None


class CertCache:
    """Keys from one URL with caching, bounded rotation refetches and stale-on-error.

    Args:
        url: Where the key document lives.
        fetcher: URL to :class:`FetchedDocument` (default: httpx with a 5 s timeout).
        clock: Monotonic seconds (tests pass a fake).
        default_ttl_seconds: Lifetime of keys served without ``max-age``.
        max_ttl_seconds: Longest lifetime honoured, whatever ``max-age`` says.
        min_refetch_seconds: Fewest seconds between two fetches (also the shortest lifetime).
    """

    def __init__(
        self,
        url: str,
        fetcher: Fetcher | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        default_ttl_seconds: float = 300.0,
        max_ttl_seconds: float = 24 * 3600.0,
        min_refetch_seconds: float = 30.0,
    ) -> None:
        self.url = url
        self._fetcher = fetcher or httpx_fetcher()
        self._clock = clock
        self._default_ttl = default_ttl_seconds
        self._max_ttl = max_ttl_seconds
        self._min_refetch = min_refetch_seconds
        self._lock = threading.Lock()
        self._keys: dict[str, RSAPublicKey] = {}
        self._expires = float("-inf")
        self._fetched_at: float | None = None
        self._last_error: str | None = None
        self.fetches = 0
        """How many fetches were attempted (for tests and diagnostics)."""

    def key(self, kid: str) -> RSAPublicKey | None:
        """The key named ``kid``; None when the source does not have it (after at most one refetch).

        Raises:
            KeysUnavailable: No keys could be obtained at all.
        """
        with self._lock:
            now = self._clock()
            if now >= self._expires:
                self._refresh(now)
            found = self._keys.get(kid)
            if found is None and self._may_fetch(now):
                self._refresh(now)  # rotation: a new kid appears before our copy expires
                found = self._keys.get(kid)
            if not self._keys:
                raise KeysUnavailable(f"no keys from {self.url}: {self._last_error or 'not fetched yet'}")
            return found

    def _may_fetch(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at >= self._min_refetch

    def _refresh(self, now: float) -> None:
        if not self._may_fetch(now):
            return
        self._fetched_at = now
        self.fetches += 1
        try:
            document = self._fetcher(self.url)
            if document.status != 200:
                raise ValueError(f"HTTP {document.status}")
            keys = parse_keys(document.body)
        except Exception as exc:  # any fetch/parse failure keeps the old keys
            self._last_error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("key document %s unusable (%s); %d cached key(s) kept", self.url, self._last_error,
                        len(self._keys))
            self._expires = now + self._min_refetch
            return
        age = max_age(document.headers)
        ttl = self._default_ttl if age is None else float(age)
        self._keys = keys
        self._last_error = None
        self._expires = now + min(max(ttl, self._min_refetch), self._max_ttl)

    def known_ids(self) -> list[str]:
        """Key ids currently held (no fetch)."""
        with self._lock:
            return sorted(self._keys)


_SHARED: dict[str, CertCache] = {}
_SHARED_LOCK = threading.Lock()


def shared_cache(url: str) -> CertCache:
    """The process-wide cache for ``url`` (one per URL, default fetcher)."""
    with _SHARED_LOCK:
        cache = _SHARED.get(url)
        if cache is None:
            cache = _SHARED[url] = CertCache(url)
        return cache

