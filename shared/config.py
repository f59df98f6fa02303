"""Typed settings, named like the Azure app settings they mirror.

Every setting is read from the environment (the Functions host puts app settings there; the
local dev host loads ``local.settings.json`` ``Values`` into it, like Core Tools). Backends
are chosen here, per port, never by ``if running_in_azure`` branches in services.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ConfigurationError


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    """All settings of the hub. Field docs name the app setting."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, case_sensitive=False)

    # --- backend choice per port -------------------------------------------------------
    document_backend: Literal["sqlite", "cosmos"] = Field("sqlite", validation_alias=_env("IHUB_DOCUMENT_BACKEND"))
    secret_backend: Literal["local", "keyvault"] = Field("local", validation_alias=_env("IHUB_SECRET_BACKEND"))
    queue_backend: Literal["sqlite", "servicebus"] = Field("sqlite", validation_alias=_env("IHUB_QUEUE_BACKEND"))
    event_backend: Literal["local", "eventgrid"] = Field("local", validation_alias=_env("IHUB_EVENT_BACKEND"))
    blob_backend: Literal["local", "azure"] = Field("local", validation_alias=_env("IHUB_BLOB_BACKEND"))

    # --- embedded backends -------------------------------------------------------------
    data_dir: Path = Field(Path(".local/data"), validation_alias=_env("IHUB_DATA_DIR"))
    secret_key: SecretStr | None = Field(None, validation_alias=_env("IHUB_SECRET_KEY"))
    secret_key_file: Path | None = Field(None, validation_alias=_env("IHUB_SECRET_KEY_FILE"))
    queue_lock_seconds: float = Field(30.0, gt=0, validation_alias=_env("IHUB_QUEUE_LOCK_SECONDS"))
    queue_max_delivery_count: int = Field(10, ge=1, validation_alias=_env("IHUB_QUEUE_MAX_DELIVERY_COUNT"))
    queue_duplicate_window_seconds: float = Field(
        600.0, ge=0, validation_alias=_env("IHUB_QUEUE_DUPLICATE_WINDOW_SECONDS")
    )
    queue_max_message_bytes: int = Field(
        256 * 1024, ge=16 * 1024, validation_alias=_env("IHUB_QUEUE_MAX_MESSAGE_BYTES")
    )
    """Largest queue message (body + ids + application properties), as the Service Bus tier allows:
    Standard 262144 (256 KB); Premium up to the entity's configured maximum. Bigger bodies go to
    Blob Storage as a claim check (``BLOB_CONTAINER_CLAIM_CHECKS``)."""

    # --- Cosmos DB -----------------------------------------------------------------------
    cosmos_endpoint: str | None = Field(None, validation_alias=_env("COSMOS_ENDPOINT"))
    cosmos_key: SecretStr | None = Field(None, validation_alias=_env("COSMOS_KEY"))
    cosmos_database: str = Field("ihub", validation_alias=_env("COSMOS_DATABASE"))
    container_integrations: str = Field("integrations", validation_alias=_env("COSMOS_CONTAINER_INTEGRATIONS"))
    container_checkpoints: str = Field("checkpoints", validation_alias=_env("COSMOS_CONTAINER_CHECKPOINTS"))
    container_runs: str = Field("runs", validation_alias=_env("COSMOS_CONTAINER_RUNS"))
    container_records: str = Field("records", validation_alias=_env("COSMOS_CONTAINER_RECORDS"))
    container_webhook_events: str = Field("webhook_events", validation_alias=_env("COSMOS_CONTAINER_WEBHOOK_EVENTS"))
    container_dead_letters: str = Field("dead_letters", validation_alias=_env("COSMOS_CONTAINER_DEAD_LETTERS"))
    container_schedules: str = Field("schedules", validation_alias=_env("COSMOS_CONTAINER_SCHEDULES"))
    container_id_claims: str = Field("id_claims", validation_alias=_env("COSMOS_CONTAINER_ID_CLAIMS"))
    container_push_receipts: str = Field("push_receipts", validation_alias=_env("COSMOS_CONTAINER_PUSH_RECEIPTS"))
    container_credential_leases: str = Field(
        "credential_leases", validation_alias=_env("COSMOS_CONTAINER_CREDENTIAL_LEASES")
    )
    """Refresh leases (fencing tokens), single-use OAuth states and expiry-notice markers (TTL on)."""
    container_entities: str = Field("entities", validation_alias=_env("COSMOS_CONTAINER_ENTITIES"))
    container_derived_records: str = Field("derived_records", validation_alias=_env("COSMOS_CONTAINER_DERIVED_RECORDS"))
    container_conflicts: str = Field("conflicts", validation_alias=_env("COSMOS_CONTAINER_CONFLICTS"))
    container_merge_proposals: str = Field("merge_proposals", validation_alias=_env("COSMOS_CONTAINER_MERGE_PROPOSALS"))
    container_webhook_subscriptions: str = Field(
        "webhook_subscriptions", validation_alias=_env("COSMOS_CONTAINER_WEBHOOK_SUBSCRIPTIONS")
    )
    """Integration-id claims: one fixed partition, written create-if-absent (ids unique across tenants)."""

    # --- Key Vault -----------------------------------------------------------------------
    key_vault_uri: str | None = Field(None, validation_alias=_env("KEY_VAULT_URI"))

    # --- Service Bus (identity-based connection, same setting the trigger uses) ----------
    servicebus_namespace: str | None = Field(
        None, validation_alias=_env("ServiceBusConnection__fullyQualifiedNamespace")
    )
    servicebus_connection_string: SecretStr | None = Field(
        None, validation_alias=_env("ServiceBusConnection")
    )
    """The connection-string form (the Service Bus emulator under ``func start``); the identity
    form above wins when both are set, as in Azure, where the connection string is never set."""
    sync_inbound_queue: str = Field("sync-inbound", validation_alias=_env("SYNC_INBOUND_QUEUE"))
    sync_outbound_queue: str = Field("sync-outbound", validation_alias=_env("SYNC_OUTBOUND_QUEUE"))

    # --- Event Grid ------------------------------------------------------------------------
    eventgrid_topic_endpoint: str | None = Field(None, validation_alias=_env("EVENTGRID_TOPIC_ENDPOINT"))

    # --- Blob Storage ----------------------------------------------------------------------
    blob_account_url: str | None = Field(None, validation_alias=_env("BLOB_ACCOUNT_URL"))
    blob_connection_string: SecretStr | None = Field(None, validation_alias=_env("BLOB_CONNECTION_STRING"))
    blob_container_webhooks: str = Field("webhook-archive", validation_alias=_env("BLOB_CONTAINER_WEBHOOKS"))
    blob_container_claim_checks: str = Field(
        "queue-claim-checks", validation_alias=_env("BLOB_CONTAINER_CLAIM_CHECKS")
    )
    """Blob container for queue message bodies too large to travel (see ``shared.claim_check``)."""

    # --- schedules (NCRONTAB, 6 fields with seconds) -------------------------------------
    sync_schedule: str = Field("0 */1 * * * *", validation_alias=_env("SYNC_SCHEDULE"))
    token_refresh_schedule: str = Field("0 */5 * * * *", validation_alias=_env("TOKEN_REFRESH_SCHEDULE"))

    # --- behaviour ------------------------------------------------------------------------
    webhook_max_body_bytes: int = Field(25 * 1024 * 1024, gt=0, validation_alias=_env("WEBHOOK_MAX_BODY_BYTES"))
    webhook_inline_max_bytes: int = Field(64 * 1024, ge=0, validation_alias=_env("WEBHOOK_INLINE_MAX_BYTES"))
    webhook_event_ttl_seconds: int = Field(30 * 86400, gt=0, validation_alias=_env("WEBHOOK_EVENT_TTL_SECONDS"))
    webhook_sweep_after_seconds: int = Field(120, ge=0, validation_alias=_env("WEBHOOK_SWEEP_AFTER_SECONDS"))
    """Age at which a webhook event still ``received`` is re-enqueued by the SyncScheduler's sweep."""
    webhook_certs_urls: dict[str, str] = Field(default_factory=dict, validation_alias=_env("IHUB_WEBHOOK_CERTS_URLS"))
    """Provider -> URL of the keys its signed push tokens are checked against (default: the spec's)."""
    public_base_url: str | None = Field(None, validation_alias=_env("IHUB_PUBLIC_BASE_URL"))
    """``https://<app>.azurewebsites.net/api``: where providers reach the webhook routes (subscriptions)."""
    subscription_renew_schedule: str = Field("0 */10 * * * *", validation_alias=_env("SUBSCRIPTION_RENEW_SCHEDULE"))
    token_refresh_window_seconds: int = Field(900, ge=0, validation_alias=_env("TOKEN_REFRESH_WINDOW_SECONDS"))
    token_refresh_concurrency: int = Field(16, ge=1, le=256, validation_alias=_env("TOKEN_REFRESH_CONCURRENCY"))
    credential_expiry_notice_days: float = Field(14.0, ge=0, validation_alias=_env("CREDENTIAL_EXPIRY_NOTICE_DAYS"))
    oauth_base_urls: dict[str, str] = Field(default_factory=dict, validation_alias=_env("IHUB_OAUTH_BASE_URLS"))
    """Provider -> base URL re-hosting the spec's OAuth URLs (the sandboxes, a GitHub Enterprise server)."""
    oauth_clients: SecretStr | None = Field(None, validation_alias=_env("IHUB_OAUTH_CLIENTS"))
    """JSON: provider -> {client_id, client_secret} of the hub's OAuth app there (a Key Vault reference in Azure)."""
    oauth_redirect_url: str | None = Field(None, validation_alias=_env("IHUB_OAUTH_REDIRECT_URL"))
    """The callback URL registered at the providers; default ``<request's /api base>/oauth/callback``."""
    oauth_state_key: SecretStr | None = Field(None, validation_alias=_env("IHUB_OAUTH_STATE_KEY"))
    """HMAC key of OAuth states; default a random key kept in the secret store."""
    sync_stale_run_seconds: int = Field(3600, gt=0, validation_alias=_env("SYNC_STALE_RUN_SECONDS"))
    provider_base_urls: dict[str, str] = Field(default_factory=dict, validation_alias=_env("IHUB_PROVIDER_BASE_URLS"))
    http_timeout_seconds: float = Field(30.0, gt=0, validation_alias=_env("IHUB_HTTP_TIMEOUT_SECONDS"))
    max_retry_wait_seconds: float = Field(3900.0, gt=0, validation_alias=_env("IHUB_MAX_RETRY_WAIT_SECONDS"))
    """Longest wait a provider header (``Retry-After``, a reset time) or a backoff may impose."""
    max_pages_per_run: int | None = Field(None, ge=1, validation_alias=_env("IHUB_MAX_PAGES_PER_RUN"))
    """Overrides every stream's ``max_pages_per_run`` ceiling from the provider spec."""
    traces_exporter: Literal["none", "console", "otlp"] = Field("none", validation_alias=_env("IHUB_TRACES_EXPORTER"))
    """Span export where Application Insights is not configured (``shared.telemetry``): the dev host's."""
    traces_file: Path | None = Field(None, validation_alias=_env("IHUB_TRACES_FILE"))
    """With ``IHUB_TRACES_EXPORTER=console``: append spans here as JSON lines instead of stderr."""
    log_format: Literal["text", "json"] = Field("text", validation_alias=_env("IHUB_LOG_FORMAT"))
    """Log lines as text with the correlation ids appended, or one JSON object per line."""
    rate_limit_backend: Literal["memory", "redis"] = Field("memory", validation_alias=_env("IHUB_RATE_LIMIT_BACKEND"))
    """Where rate-limit budgets live: ``memory`` (one instance) or ``redis`` (shared by every instance)."""
    redis_url: SecretStr | None = Field(None, validation_alias=_env("IHUB_REDIS_URL"))
    """``redis://host:port/0`` or ``rediss://:<access key>@<name>.redis.cache.windows.net:6380/0``."""
    rate_limit_overrides: str = Field("[]", validation_alias=_env("IHUB_RATE_LIMIT_OVERRIDES"))
    """JSON list of budget overrides: ``[{"provider", "budget", "tenant", "integration", "limit", ...}]``."""
    rate_limit_fail_closed_seconds: float = Field(
        30.0, ge=0, validation_alias=_env("IHUB_RATE_LIMIT_FAIL_CLOSED_SECONDS")
    )
    """How long every provider call is deferred after Redis stops answering, before local budgets take over."""
    rate_limit_fallback_share: float = Field(
        0.25, gt=0, le=1, validation_alias=_env("IHUB_RATE_LIMIT_FALLBACK_SHARE")
    )
    """Share of each limit one instance's local budgets allow while Redis is down."""

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: object) -> object:
        """An empty app setting means "not set" (Azure and local.settings.json both allow it)."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return data

    @field_validator("provider_base_urls", "webhook_certs_urls", "oauth_base_urls", mode="before")
    @classmethod
    def _parse_json_map(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return {}
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f'must be a JSON object like {{"github": "http://..."}}: {exc}') from exc
        return value

    @property
    def containers(self) -> dict[str, str]:
        """Logical container name -> configured container name."""
        return {
            "integrations": self.container_integrations,
            "checkpoints": self.container_checkpoints,
            "runs": self.container_runs,
            "records": self.container_records,
            "webhook_events": self.container_webhook_events,
            "dead_letters": self.container_dead_letters,
            "schedules": self.container_schedules,
            "push_receipts": self.container_push_receipts,
            "credential_leases": self.container_credential_leases,
            "entities": self.container_entities,
            "derived_records": self.container_derived_records,
            "conflicts": self.container_conflicts,
            "merge_proposals": self.container_merge_proposals,
            "webhook_subscriptions": self.container_webhook_subscriptions,
        }

    def require(self, field: str, why: str) -> str:
        """Return a string setting or raise ConfigurationError naming the app setting."""
        value = getattr(self, field)
        if value in (None, ""):
            info = type(self).model_fields[field]
            alias = info.validation_alias
            name = alias.choices[0] if isinstance(alias, AliasChoices) else field
            raise ConfigurationError(f"setting {name} is required {why}")
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def load_settings() -> Settings:
    """Read settings from the environment, turning validation errors into one readable error."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigurationError(f"invalid settings: {problems}") from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings (read once)."""
    return load_settings()
