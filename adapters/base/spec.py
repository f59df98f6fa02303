"""Provider capabilities as data (in the spirit of Nango's ``providers.yaml``).

Each provider module declares one :class:`ProviderSpec`; the framework reads auth mode,
pagination style and field names, rate-limit headers, retryable statuses and the webhook
scheme from it. Streams may override pagination per endpoint.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapters.base.webhook_spec import WebhookSpec


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ErrorAction = Literal["rate_limited", "reauth", "retry", "resync", "fail", "skip"]
"""What an error code or status means to the hub (see :class:`ErrorSpec`)."""

DeleteMode = Literal["tombstone", "endpoint", "full_listing", "none"]
"""How a stream learns of deletions (see :class:`StreamSpec`)."""


class AuthSpec(_Spec):
    """How the credential goes on a request and where tokens are refreshed."""

    mode: Literal["bearer", "basic", "api_key_header", "none"] = "bearer"
    header: str = "Authorization"
    scheme: str = "Bearer"
    token_url: str | None = None
    scopes: tuple[str, ...] = ()
    refresh_token_rotates: bool = False
    # OAuth connect, token requests and revocation (shared.credentials); URLs are the provider's
    # own, re-hosted by IHUB_OAUTH_BASE_URLS or an integration's ``oauth_base_url`` config key.
    authorize_url: str | None = None
    revoke_url: str | None = None
    revoke_style: Literal["form_token", "json_token_basic", "bearer", "delete_access_token_basic"] = "form_token"
    """``delete_access_token_basic``: DELETE with client Basic auth and ``{"access_token"}`` (GitHub)."""
    pkce: bool = False
    client_auth: Literal["basic", "body"] = "body"
    token_body: Literal["form", "json"] = "form"  # noqa: S105 - a body format, not a secret
    scope_separator: str = " "
    authorize_params: dict[str, str] = Field(default_factory=dict)
    installation_token_path: str | None = None
    """An app-installation token's path under the API base, with ``{installation_id}``."""
    api_key_in: Literal["header", "query"] = "header"
    api_key_name: str = "X-API-Key"


class PaginationSpec(_Spec):
    """Which pagination strategy and the names of its fields.

    ``link_header``: follow ``Link: <...>; rel="next"``. ``body_cursor``: read ``token_path``
    from the body (stop when empty, or when ``has_more_path`` is false) and send it as
    ``token_param``. ``next_url``: read a (relative) URL at ``token_path``; stop when
    ``done_path`` is true. ``none``: a single page.

    ``token_in``/``page_size_in`` say whether the cursor and the page size travel in the query
    string (the default) or in the JSON body (Notion's ``POST .../query``).

    ``max_pages_per_run`` is a hard ceiling: a run that reaches it without the provider saying
    "last page" fails (the ``IHUB_MAX_PAGES_PER_RUN`` setting overrides it for every stream).
    """

    style: Literal["link_header", "body_cursor", "next_url", "none"]
    page_size_param: str | None = None
    page_size: int = 100
    token_path: str | None = None
    token_param: str | None = None
    has_more_path: str | None = None
    done_path: str | None = None
    token_in: Literal["query", "body"] = "query"  # noqa: S105 - where the cursor goes
    page_size_in: Literal["query", "body"] = "query"
    max_pages_per_run: int = Field(10_000, ge=1)


class BudgetSpec(_Spec):
    """One rate-limit budget the provider imposes, as data (see :mod:`shared.ratelimit`).

    ``key`` is a template like ``bucket_key`` (``{provider}``, ``{tenant}``, ``{integration}``,
    ``{connection}``, ``{bucket}``, ``{endpoint}`` = the URL's last path segment, ``{config[KEY]}``,
    ``{body[KEY]}``, ``{params[KEY]}``); a budget whose key cannot be rendered for a request does
    not apply to it. ``buckets``/``methods``/``path_pattern`` (a regex searched in the URL path)
    narrow which requests it applies to. ``limit`` requests per ``window_seconds``; ``strict``: a
    hard count per window (never more in any window), else an average; ``reserve``: share of the
    limit kept back (a Salesforce org's own use); ``fair``: shared fairly among tenants (an app
    budget); ``learn``: remaining/reset (or quota) headers pace it.
    """

    name: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    level: Literal["app", "tenant", "integration", "operation"]
    key: str
    limit: float = Field(gt=0)
    window_seconds: float = Field(gt=0)
    burst: int | None = Field(None, ge=1)
    strict: bool = True
    reserve: float = Field(0.0, ge=0, lt=1)
    fair: bool = False
    learn: bool = False
    enabled: bool = True
    """False: off until an operator's override gives it a limit (an app budget no provider publishes)."""
    buckets: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    path_pattern: str | None = None


APP_BUDGET = BudgetSpec(name="app", level="app", key="app", limit=5000, window_seconds=3600, burst=25, fair=True,
                        enabled=False)
"""The provider app across every tenant, shared fairly among them. No provider publishes such a limit for
the hub's providers, so it is off until an operator sets one (``IHUB_RATE_LIMIT_OVERRIDES``, budget ``app``)."""


class RateLimitSpec(_Spec):
    """The provider's rate-limit headers, answers and buckets.

    ``bucket_key`` names the budget a request draws on: a template over ``{provider}``,
    ``{tenant}``, ``{integration}``, ``{connection}`` (``tenant:integration``), ``{bucket}``
    (the request's bucket, e.g. a Slack method tier, or "") and ``{config[KEY]}`` (an
    integration config value), e.g. ``{connection}:{bucket}`` or ``{provider}:{config[org_id]}``.
    A block the provider names applies to every request of the same bucket.

    ``quota_header``/``quota_pattern``: a usage header whose pattern captures ``used`` and
    ``limit`` (e.g. ``Sforce-Limit-Info`` and ``api-usage=(\\d+)/(\\d+)``); when used reaches the
    limit, the bucket blocks for the error spec's ``quota_reset_seconds`` (else
    ``default_wait_seconds``).
    """

    bucket_key: str = "{connection}"
    quota_header: str | None = None
    quota_pattern: str | None = None
    limit_header: str | None = None
    remaining_header: str | None = None
    reset_header: str | None = None
    reset_kind: Literal["epoch_seconds", "delta_seconds"] = "epoch_seconds"
    retry_after_header: str = "retry-after"
    limited_statuses: tuple[int, ...] = (429,)
    default_wait_seconds: float = 60.0
    budgets: tuple[BudgetSpec, ...] = ()
    """Budgets at every level (app, tenant, integration, operation); a request goes only when all permit it."""

    @model_validator(mode="after")
    def _quota_pattern_reads_two_numbers(self) -> RateLimitSpec:
        if self.quota_pattern is None:
            return self
        try:
            pattern = re.compile(self.quota_pattern)
        except re.error as exc:
            raise ValueError(f"quota_pattern is not a regular expression: {exc}") from None
        if not {"used", "limit"} <= set(pattern.groupindex) and pattern.groups < 2:
            raise ValueError("quota_pattern needs groups 'used' and 'limit' (or two groups: used, then limit)")
        if self.quota_header is None:
            raise ValueError("quota_pattern needs quota_header")
        return self


class RetrySpec(_Spec):
    """Transient failures retried in place (rate limits are never retried in place).

    ``backoff="exponential"``: a rate-limit answer that names no time (Google's 403
    ``userRateLimitExceeded``) waits ``backoff_base_seconds * 2**n`` truncated at
    ``max_backoff_seconds``, where ``n`` counts the bucket's consecutive limits; a wait up to
    ``max_inline_wait_seconds`` is retried in place, a longer one is rescheduled
    (``RateLimited(retry_at)``). ``"none"``: such an answer waits the rate-limit spec's
    ``default_wait_seconds``.
    """

    retry_statuses: tuple[int, ...] = (500, 502, 503, 504)
    max_attempts: int = Field(3, ge=1, le=10)
    backoff_base_seconds: float = Field(0.5, ge=0)
    max_inline_wait_seconds: float = Field(5.0, ge=0)
    backoff: Literal["none", "exponential"] = "none"
    max_backoff_seconds: float = Field(64.0, ge=0)


class BodyError(_Spec):
    """An error reported inside a body: ``when_path`` marks it, ``code_path`` names it.

    ``equals`` None means "the path is present"; otherwise the value there must equal it
    (``False`` for Slack's ``ok``, ``"error"`` for Notion's ``object``). Paths are dotted and
    may index lists (``0.errorCode``, ``error.errors.0.reason``).
    """

    when_path: str
    equals: Any = None
    code_path: str
    message_path: str | None = None


class ErrorSpec(_Spec):
    """Errors the provider reports in bodies (any status, 200 included) or by status.

    ``body`` rules are checked first (the first that matches names the provider's error code),
    then ``statuses``; what a code or status means is one of:

    - ``rate_limited``: come back later (``Retry-After``/reset header, else
      ``quota_reset_seconds``, else backoff or the rate-limit spec's default wait);
    - ``reauth``: the credential is refused; ``retry``: transient, retried then rescheduled;
    - ``resync``: the stream's delta position is gone (:class:`~shared.errors.ResyncRequired`);
    - ``fail``: fail the run; ``skip``: skip this one item.

    A body code that ``codes`` does not name fails the run with that code (unless the HTTP
    status itself says retry, rate limit, re-authenticate or resync, or ``statuses`` names it).
    """

    body: tuple[BodyError, ...] = ()
    codes: dict[str, ErrorAction] = Field(default_factory=dict)
    statuses: dict[int, ErrorAction] = Field(default_factory=dict)
    quota_reset_seconds: float | None = Field(None, ge=0)

    def merged(self, override: ErrorSpec | None) -> ErrorSpec:
        """This spec with a stream's ``override`` on top (its rules first, its maps winning)."""
        if override is None:
            return self
        return ErrorSpec(
            body=override.body + self.body,
            codes={**self.codes, **override.codes},
            statuses={**self.statuses, **override.statuses},
            quota_reset_seconds=(
                override.quota_reset_seconds if override.quota_reset_seconds is not None else self.quota_reset_seconds
            ),
        )


class PushOp(_Spec):
    """One write: ``method`` to ``path`` (placeholders from the integration config and the record).

    ``body_field`` wraps the changes under that key (``{"properties": changes}``); ``body`` is a
    JSON template (same placeholders) the changes are merged into, for APIs that name the target
    in the body (Slack ``chat.update``: ``{"channel": "{channel}", "ts": "{ts}"}``);
    ``record_path`` is where the answer carries the written record (default: the body).
    """

    method: Literal["POST", "PUT", "PATCH", "DELETE"]
    path: str
    body_field: str | None = None
    body: dict[str, Any] | None = None
    record_path: str | None = None


class PushSpec(_Spec):
    """How a stream accepts changes: one :class:`PushOp` per operation the API allows."""

    create: PushOp | None = None
    update: PushOp | None = None
    delete: PushOp | None = None
    idempotency_header: str | None = None
    version_path: str | None = None


CanonicalType = Literal["person", "organization", "task", "message", "document", "event", "channel"]
ConflictStrategy = Literal["remote_wins", "local_wins", "last_write_wins", "field_merge", "source_priority", "manual"]


class FieldMap(_Spec):
    """One canonical field from the raw record (see :class:`MappingSpec`).

    ``path`` is dotted (``profile.email``, ``labels.0.name``); several paths with ``join``
    are joined by ``sep``. ``transform``: ``copy``; ``join``; ``split`` (``path`` split on
    ``sep``, part ``index``); ``date`` (ISO 8601 or epoch seconds to ``...Z``); ``enum``
    (``values`` maps the raw value; others become ``default``); ``lower``; ``list`` (the
    ``item`` path of each element of a list).
    """

    path: str | tuple[str, ...]
    transform: Literal["copy", "join", "split", "date", "enum", "lower", "list"] = "copy"
    sep: str = " "
    index: int = 0
    values: dict[str, Any] = Field(default_factory=dict)
    item: str | None = None
    default: Any = None


class LinkMap(_Spec):
    """A typed relationship: the raw record names the target's external id at ``path``.

    ``path`` may end at a list (``assignees``) whose elements' ``item`` field is the id. The
    target is the record of ``entity_type`` (the provider's type) with that external id in the
    same integration; until it is stored the link is pending.
    """

    rel: str
    path: str
    entity_type: str
    item: str | None = None


class DerivedMap(_Spec):
    """Records produced from one source record (a GitHub issue's author: a ``person``).

    ``path`` names an object or a list of objects in the raw record; each becomes a record of
    ``entity_type`` with external id at ``id_field``, mapped by ``mapping``, linked from the
    source as ``rel``.
    """

    path: str
    entity_type: str
    id_field: str = "id"
    rel: str
    mapping: MappingSpec


class MappingSpec(_Spec):
    """The declarative mapping of a stream's records onto one canonical entity type.

    ``version``: raise it when the mapping changes; stored raw data is re-mapped (no fetch).
    ``hook``: an adapter method ``(raw, fields) -> fields`` for the rare custom case.
    ``writable``: canonical fields a local change may push back: a plain ``copy`` path is written
    back as that field, or ``writes`` gives the provider's change as a JSON template where the
    string ``"{value}"`` stands for the value (Notion's ``{"Name": {"title": [...]}}``).
    ``strategy``/``field_strategies``: conflict strategy of the stream and per-field overrides.
    """

    canonical: CanonicalType
    version: int = Field(1, ge=1)
    fields: dict[str, str | FieldMap] = Field(default_factory=dict)
    links: tuple[LinkMap, ...] = ()
    derived: tuple[DerivedMap, ...] = ()
    hook: str | None = None
    writable: tuple[str, ...] = ()
    writes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    strategy: ConflictStrategy = "field_merge"
    field_strategies: dict[str, ConflictStrategy] = Field(default_factory=dict)


class StreamSpec(_Spec):
    """One pullable collection of the provider's API.

    Request templates (``path``, ``params``, ``body``, ``delta_params``, ``delta_body``) take
    ``{name}`` placeholders from the integration config, ``{parent_id}`` (child streams) and
    ``{watermark}``/``{sync_token}``/``{start_page_token}`` (the incremental state).

    Delta: when a run resumes from a watermark (not a full listing), ``delta_param`` carries it
    as a query param, ``delta_params`` are merged into the params and ``delta_body`` is deep-
    merged into the body. A stored sync token goes as ``sync_token_param`` instead; the page
    carrying the next one has it at ``sync_token_path`` (Calendar ``nextSyncToken``). A change
    feed ends on the page carrying ``start_page_token_path`` (Drive ``newStartPageToken``).

    Deletes (``deletes``): ``tombstone`` - the delta carries them (``is_deleted`` hook, default
    ``tombstone_path == tombstone_value``); ``endpoint`` - the companion ``deleted_stream``
    lists them; ``full_listing`` - the services compare a complete listing with what is
    stored; ``none``.

    Child streams: ``parent`` names the parent stream; the child runs once per parent record
    with ``{parent_id}`` = the record's ``parent_id_field``.

    Hosts: ``base_url_key`` (a config key) or ``base_url`` (absolute) override the
    connection's base URL for this stream.
    """

    path: str
    entity_type: str
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    record_path: str | None = None
    id_field: str = "id"
    updated_field: str | None = None
    delta_param: str | None = None
    delta_params: dict[str, str] = Field(default_factory=dict)
    delta_body: dict[str, Any] | None = None
    sync_token_param: str | None = None
    sync_token_path: str | None = None
    start_page_token_path: str | None = None
    deletes: DeleteMode = "full_listing"
    tombstone_path: str | None = None
    tombstone_value: Any = True
    deleted_stream: str | None = None
    parent: str | None = None
    parent_id_field: str = "id"
    rate_bucket: str | None = None
    base_url: str | None = None
    base_url_key: str | None = None
    errors: ErrorSpec | None = None
    pagination: PaginationSpec | None = None
    required_config: tuple[str, ...] = ()
    push: PushSpec | None = None
    lists_everything: bool = False
    """The stream has no delta (Slack ``users.list``, Notion search): every run lists everything,
    so every run is a full listing and, when it completes, may sweep deletes."""
    push_path: str | None = None
    push_method: Literal["PATCH", "PUT", "POST"] = "PATCH"
    mapping: MappingSpec | None = None
    """How the stream's records become canonical entities (:mod:`shared.engine`)."""

    def push_spec(self) -> PushSpec | None:
        """``push``, or the ``push_path``/``push_method`` shorthand as an update-only spec."""
        if self.push is not None:
            return self.push
        if self.push_path is None:
            return None
        return PushSpec(
            update=PushOp(method=self.push_method, path=self.push_path), idempotency_header="Idempotency-Key"
        )


class ProviderSpec(_Spec):
    """Everything declarative about one provider."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    display_name: str
    base_url: str
    base_url_from: str | None = None
    default_headers: dict[str, str] = Field(default_factory=dict)
    auth: AuthSpec = AuthSpec()
    pagination: PaginationSpec = PaginationSpec(style="none")
    rate_limit: RateLimitSpec = RateLimitSpec()
    retry: RetrySpec = RetrySpec()
    errors: ErrorSpec = ErrorSpec()
    webhook: WebhookSpec | None = None
    health_path: str | None = None
    streams: dict[str, StreamSpec] = Field(default_factory=dict)

    def pagination_for(self, stream: str) -> PaginationSpec:
        """The stream's pagination override, else the provider default."""
        return self.streams[stream].pagination or self.pagination

    def errors_for(self, stream: str | None) -> ErrorSpec:
        """The provider's error spec with the stream's override on top."""
        found = self.streams.get(stream) if stream else None
        return self.errors.merged(found.errors if found else None)

    @model_validator(mode="after")
    def _streams_refer_to_streams(self) -> ProviderSpec:
        for name, stream in self.streams.items():
            for field, other in (("parent", stream.parent), ("deleted_stream", stream.deleted_stream)):
                if other is not None and other not in self.streams:
                    raise ValueError(f"stream {name!r}: {field} {other!r} is not a stream of {self.name}")
            if stream.parent == name:
                raise ValueError(f"stream {name!r} cannot be its own parent")
            if stream.deletes == "endpoint" and stream.deleted_stream is None:
                raise ValueError(f"stream {name!r}: deletes='endpoint' needs deleted_stream")
            if stream.deleted_stream is not None:
                companion = self.streams[stream.deleted_stream]
                if companion.entity_type != stream.entity_type:
                    raise ValueError(
                        f"stream {name!r}: deleted_stream {stream.deleted_stream!r} lists {companion.entity_type!r}, "
                        f"not {stream.entity_type!r}"
                    )
        return self
