"""The nine credential types, a discriminated union on ``type``, and how one is stored.

A credential is stored as **one secret** (one Key Vault secret; every write is a new version):
its JSON form (secrets revealed only there), ``expires_on`` set where the type expires, and tags
``type``, ``tenant``, ``integration``, ``provider``, ``kind`` (``auth`` or ``webhook``),
``expiry`` (ISO time or ``none``) and, on a refreshed version, ``fence`` (the fencing token of the
lease it was written under). Every secret value is a :class:`~pydantic.SecretStr`: it never prints,
and a model's ``repr`` or JSON dump shows ``**********``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, ValidationError, field_validator

from shared.domain import Integration, doc_id, iso, utcnow
from shared.errors import InvalidInput

MANAGED_TAG = "ihub-managed"
CONTENT_TYPE = "application/vnd.ihub.credential+json"

Secret = Annotated[SecretStr, Field(min_length=1, max_length=16384)]
Scopes = Annotated[list[Annotated[str, Field(min_length=1, max_length=512)]], Field(max_length=64)]
Extra = Annotated[
    dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=2048)]], Field(max_length=16)
]


class RotationPolicy(BaseModel):
    """How often a static secret is replaced, and how long the previous one stays accepted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period_days: float = Field(90.0, gt=0, le=3650)
    overlap_hours: float = Field(24.0, ge=0, le=24 * 90)

    @property
    def period(self) -> timedelta:
        return timedelta(days=self.period_days)

    @property
    def overlap(self) -> timedelta:
        return timedelta(hours=self.overlap_hours)


class _Credential(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ClassVar[Literal["auth", "webhook"]] = "auth"
    refreshable: ClassVar[bool] = False
    """Whether the hub can get a new access token by itself (refresh, client credentials, JWT)."""

    expires_at: datetime | None = None
    """When the value put on requests stops working (``None``: no known end)."""

    @field_validator("*", mode="after")
    @classmethod
    def _aware(cls, value: Any) -> Any:
        """Naive times are UTC (expiries are compared with the hub's UTC clock)."""
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    def bearer(self) -> SecretStr | None:
        """The value an auth strategy puts on a request (``None``: nothing to send yet)."""
        return None

    def can_refresh(self) -> bool:
        """Whether this instance can be refreshed (an auth code grant needs a refresh token)."""
        return self.refreshable


class OAuth2AuthorizationCode(_Credential):
    """1. OAuth 2.0 authorization code (with PKCE at connect time): a user's delegated tokens."""

    type: Literal["oauth2_authorization_code"] = "oauth2_authorization_code"
    refreshable: ClassVar[bool] = True
    access_token: Secret
    refresh_token: Secret | None = None
    refresh_token_expires_at: datetime | None = None
    token_type: str = Field("bearer", min_length=1, max_length=64)
    scopes: Scopes = Field(default_factory=list)
    client_id: str | None = Field(None, max_length=512)
    client_secret: Secret | None = None
    """Only when this connection uses its own client; otherwise the hub's client for the provider."""
    extra: Extra = Field(default_factory=dict)
    """Non-secret token-response facts (Salesforce ``instance_url``, a workspace id)."""

    def bearer(self) -> SecretStr | None:
        return self.access_token

    def can_refresh(self) -> bool:
        return self.refresh_token is not None


class OAuth2ClientCredentials(_Credential):
    """2. OAuth 2.0 client credentials: the hub's own machine identity at the provider."""

    type: Literal["oauth2_client_credentials"] = "oauth2_client_credentials"
    refreshable: ClassVar[bool] = True
    client_id: str = Field(min_length=1, max_length=512)
    client_secret: Secret
    token_url: str | None = Field(None, max_length=2048)
    scopes: Scopes = Field(default_factory=list)
    access_token: Secret | None = None

    def bearer(self) -> SecretStr | None:
        return self.access_token


class OAuth2JwtBearer(_Credential):
    """3. OAuth 2.0 JWT bearer (RFC 7523): Salesforce's JWT flow, a Google service account.

    The hub signs an RS256 assertion (``iss`` = ``issuer``, ``sub`` = ``subject`` - the user to
    impersonate - ``aud`` = ``audience`` or the token URL, ``scope`` when scopes are given).
    """

    type: Literal["oauth2_jwt_bearer"] = "oauth2_jwt_bearer"
    refreshable: ClassVar[bool] = True
    issuer: str = Field(min_length=1, max_length=512)
    private_key: Secret
    key_id: str | None = Field(None, max_length=256)
    subject: str | None = Field(None, max_length=512)
    audience: str | None = Field(None, max_length=2048)
    token_url: str | None = Field(None, max_length=2048)
    scopes: Scopes = Field(default_factory=list)
    access_token: Secret | None = None
    extra: Extra = Field(default_factory=dict)

    def bearer(self) -> SecretStr | None:
        return self.access_token


class AppInstallation(_Credential):
    """4. GitHub App installation: an RS256 app JWT exchanged for a 1-hour installation token."""

    type: Literal["app_installation"] = "app_installation"
    refreshable: ClassVar[bool] = True
    app_id: str = Field(min_length=1, max_length=64)
    installation_id: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")
    private_key: Secret
    access_token: Secret | None = None

    def bearer(self) -> SecretStr | None:
        return self.access_token


class ApiKey(_Credential):
    """5. API key, sent in the header or query parameter the spec names (or this credential does)."""

    type: Literal["api_key"] = "api_key"
    key: Secret
    placement: Literal["header", "query"] | None = None
    name: str | None = Field(None, min_length=1, max_length=128)
    rotation: RotationPolicy | None = None
    previous_key: Secret | None = None
    previous_valid_until: datetime | None = None
    rotated_at: datetime | None = None

    def bearer(self) -> SecretStr | None:
        return self.key


class Basic(_Credential):
    """6. HTTP Basic auth."""

    type: Literal["basic"] = "basic"
    username: str = Field(min_length=1, max_length=512)
    password: Secret

    def bearer(self) -> SecretStr | None:
        return SecretStr(f"{self.username}:{self.password.get_secret_value()}")


class StaticBearer(_Credential):
    """7. A static bearer token (a personal or internal-integration token)."""

    type: Literal["static_bearer"] = "static_bearer"
    token: Secret

    def bearer(self) -> SecretStr | None:
        return self.token


class WebhookSigningSecret(_Credential):
    """8. Webhook signing secret, with the previous one kept during a rotation window."""

    type: Literal["webhook_signing_secret"] = "webhook_signing_secret"
    kind: ClassVar[Literal["auth", "webhook"]] = "webhook"
    secret: Secret
    previous_secret: Secret | None = None
    previous_valid_until: datetime | None = None
    rotation: RotationPolicy | None = None
    rotated_at: datetime | None = None

    def bearer(self) -> SecretStr | None:
        return self.secret


class ClientCertificate(_Credential):
    """9. Client certificate for mutual TLS (the PEM certificate is public; the key is secret)."""

    type: Literal["client_certificate"] = "client_certificate"
    certificate_pem: str = Field(min_length=1, max_length=16384)
    private_key: Secret
    rotation: RotationPolicy | None = None
    rotated_at: datetime | None = None


Credential = Annotated[
    OAuth2AuthorizationCode
    | OAuth2ClientCredentials
    | OAuth2JwtBearer
    | AppInstallation
    | ApiKey
    | Basic
    | StaticBearer
    | WebhookSigningSecret
    | ClientCertificate,
    Field(discriminator="type"),
]
CREDENTIAL_TYPES: tuple[type[_Credential], ...] = (
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    OAuth2JwtBearer,
    AppInstallation,
    ApiKey,
    Basic,
    StaticBearer,
    WebhookSigningSecret,
    ClientCertificate,
)
AnyCredential = (
    OAuth2AuthorizationCode
    | OAuth2ClientCredentials
    | OAuth2JwtBearer
    | AppInstallation
    | ApiKey
    | Basic
    | StaticBearer
    | WebhookSigningSecret
    | ClientCertificate
)
_ADAPTER: TypeAdapter[AnyCredential] = TypeAdapter(Credential)


def parse_credential(data: Any) -> AnyCredential:
    """Validate caller input as one credential type; InvalidInput names each bad field (never a value)."""
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'credential'}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidInput(f"invalid credential: {problems}", code="invalid_credential") from None


# ------------------------------------------------------------------------------ storage form


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return _reveal(value.model_dump())
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_reveal(v) for v in value]
    if isinstance(value, datetime):
        return iso(value)
    return value


def to_secret_value(cred: AnyCredential) -> str:
    """The JSON stored as the secret's value (the only place secrets are revealed)."""
    return json.dumps(_reveal(cred), separators=(",", ":"), sort_keys=True)


def from_secret_value(text: str, content_type: str | None = None, *, kind: str = "auth") -> AnyCredential:
    """Parse a stored value, including the two formats written before typed credentials.

    Older token bundles (``{"access_token", "refresh_token", "token_type", "scope", "extra"}``)
    become an authorization-code grant (or a static bearer token without a refresh token);
    an older plain-text webhook secret becomes a :class:`WebhookSigningSecret`.
    """
    if content_type == "text/plain" or (kind == "webhook" and not text.lstrip().startswith("{")):
        return WebhookSigningSecret(secret=SecretStr(text))
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidInput("the stored credential is not JSON; set it again", code="invalid_credential") from None
    if isinstance(data, dict) and "type" not in data:
        data = _legacy_bundle(data)
    return parse_credential(data)


def _legacy_bundle(data: dict[str, Any]) -> dict[str, Any]:
    access, refresh = data.get("access_token"), data.get("refresh_token")
    if refresh:
        return {
            "type": "oauth2_authorization_code",
            "access_token": access or "-",
            "refresh_token": refresh,
            "token_type": data.get("token_type") or "bearer",
            "scopes": str(data.get("scope") or "").split(),
            "extra": data.get("extra") or {},
            "expires_at": data.get("expires_at"),
        }
    return {"type": "static_bearer", "token": access or "-", "expires_at": data.get("expires_at")}


def secret_base_name(integration: Integration) -> str:
    """Key Vault-valid, stable, unique name of an integration's credential secret.

    ``ihub-<readable id, at most 60 characters>-<12 hex of sha256(tenant/integration)>``: at most
    78 characters (``-webhook`` added for the webhook secret stays under Key Vault's 127), the
    same for the same tenant and integration forever, and distinct across tenants.
    """
    return secret_name_for(integration.tenant_id, integration.id)


def secret_name_for(tenant_id: str, integration_id: str) -> str:
    """:func:`secret_base_name` from the two ids."""
    readable = re.sub(r"[^0-9a-zA-Z]+", "-", integration_id).strip("-")[:60] or "int"
    digest = doc_id("x", f"{tenant_id}/{integration_id}")[2:14]
    return f"ihub-{readable}-{digest}"


def secret_name(integration: Integration, kind: str) -> str:
    """The secret holding the integration's ``auth`` or ``webhook`` credential."""
    base = secret_base_name(integration)
    return base if kind == "auth" else f"{base}-{kind}"


def credential_tags(integration: Integration, cred: AnyCredential, *, fence: int | None = None) -> dict[str, str]:
    """Tags of a stored credential version (Key Vault allows 15 tags of 256 characters)."""
    tags = {
        MANAGED_TAG: "true",
        "type": cred.type,
        "kind": "token" if cred.kind == "auth" else "webhook",
        "tenant": integration.tenant_id[:256],
        "integration": integration.id[:256],
        "provider": integration.provider[:256],
        "expiry": iso(cred.expires_at) if cred.expires_at else "none",
        "refreshable": "true" if cred.can_refresh() else "false",
    }
    if fence is not None:
        tags["fence"] = str(fence)
    return tags


def secret_expires_on(cred: AnyCredential) -> datetime | None:
    """The secret's ``expires_on``: when its *content* stops being usable.

    For a credential that refreshes itself that is not the access token's expiry (the ``expiry``
    tag has that) but the refresh token's, when the provider says it (GitHub: six months), or none:
    Key Vault may refuse to read an expired secret, and the refresh token inside must stay readable
    after the access token expired. Other types expire with their value (an API key's end date).
    """
    if isinstance(cred, OAuth2AuthorizationCode):
        return cred.refresh_token_expires_at if cred.refresh_token is not None else cred.expires_at
    if cred.can_refresh():
        return None
    return cred.expires_at


def tag_time(value: str | None) -> datetime | None:
    """A time written by :func:`credential_tags` (``none``, absent or unreadable: ``None``)."""
    if not value or value == "none":
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def is_due(cred: AnyCredential, window_seconds: float, now: datetime | None = None) -> bool:
    """Whether a refreshable credential should be refreshed now (no token yet, or expiring in the window)."""
    if not cred.can_refresh():
        return False
    if cred.bearer() is None or cred.expires_at is None:
        return cred.bearer() is None
    return cred.expires_at <= (now or utcnow()) + timedelta(seconds=window_seconds)
