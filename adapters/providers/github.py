"""GitHub: issues stream, Link-header pagination, x-ratelimit-* headers, HMAC webhooks.

Protocol facts: ``../shared/PROVIDERS.md`` (GitHub section).
"""

from __future__ import annotations

from typing import Any

import httpx

from adapters.base.adapter import Adapter, Entity
from adapters.base.spec import (
    APP_BUDGET,
    AuthSpec,
    BudgetSpec,
    PaginationSpec,
    ProviderSpec,
    PushOp,
    PushSpec,
    RateLimitSpec,
    StreamSpec,
)
from adapters.base.verify import profiles
from adapters.base.webhook_spec import EventRoute, SubscriptionOp, SubscriptionSpec, WebhookSpec
from adapters.providers.mappings import GITHUB_ISSUES

SPEC = ProviderSpec(
    name="github",
    display_name="GitHub",
    base_url="https://api.github.com",
    base_url_from="base_url",  # GitHub Enterprise: https://HOST/api/v3
    default_headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"},
    auth=AuthSpec(
        mode="bearer",
        token_url="https://github.com/login/oauth/access_token",  # noqa: S106 - a URL, not a secret
        refresh_token_rotates=True,
        authorize_url="https://github.com/login/oauth/authorize",
        revoke_url="https://api.github.com/applications/{client_id}/token",
        revoke_style="delete_access_token_basic",
        pkce=True,
        installation_token_path="/app/installations/{installation_id}/access_tokens",  # noqa: S106 - a path
    ),
    pagination=PaginationSpec(style="link_header", page_size_param="per_page", page_size=100),
    rate_limit=RateLimitSpec(
        limit_header="x-ratelimit-limit",
        remaining_header="x-ratelimit-remaining",
        reset_header="x-ratelimit-reset",
        reset_kind="epoch_seconds",
        limited_statuses=(403, 429),
        default_wait_seconds=60,
        budgets=(
            APP_BUDGET,
            # primary: 5,000 an hour per token (the headers pace what is left until the reset)
            BudgetSpec(name="token", level="integration", key="{connection}", limit=5000, window_seconds=3600,
                       burst=50, learn=True),
            # secondary: 900 points a minute per token for REST reads, 80 content-creating requests a minute
            BudgetSpec(name="secondary", level="integration", key="{connection}", limit=900, window_seconds=60,
                       burst=30),
            BudgetSpec(name="writes", level="operation", key="{connection}", limit=80, window_seconds=60, burst=5,
                       methods=("POST", "PATCH", "PUT", "DELETE")),
        ),
    ),
    webhook=WebhookSpec(
        verification=profiles.GITHUB,
        max_body_bytes=25 * 1024 * 1024,
        routes=(
            EventRoute(events=("issues",), when={"issue": None}, action="sync", stream="issues"),
            EventRoute(events=("issues",), when={"action": "deleted"}, action="delete", stream="issues",
                       id_path="issue.id"),
            EventRoute(events=("issues", "issue_comment"), action="upsert", stream="issues", record_path="issue"),
            EventRoute(events=("label", "milestone"), action="sync", stream="issues"),
            EventRoute(events=("ping",), action="ignore", reason="ping: GitHub's test delivery, nothing to sync"),
        ),
        subscription=SubscriptionSpec(
            kind="hook",
            create=SubscriptionOp(
                method="POST",
                path="/repos/{owner}/{repo}/hooks",
                body={
                    "name": "web",
                    "active": True,
                    "events": "{events}",
                    "config": {"url": "{url}", "content_type": "json", "secret": "{secret}", "insecure_ssl": "0"},
                },
            ),
            delete=SubscriptionOp(method="DELETE", path="/repos/{owner}/{repo}/hooks/{hook_id}"),
            events=("issues", "issue_comment", "label", "milestone"),
        ),
    ),
    health_path="/rate_limit",
    streams={
        "issues": StreamSpec(
            path="/repos/{owner}/{repo}/issues",
            entity_type="issue",
            params={"state": "all", "sort": "updated", "direction": "asc"},
            id_field="id",
            updated_field="updated_at",
            delta_param="since",
            required_config=("owner", "repo"),
            deletes="full_listing",
            push=PushSpec(update=PushOp(method="PATCH", path="/repos/{owner}/{repo}/issues/{number}")),
            mapping=GITHUB_ISSUES,
        ),
    },
)


class GitHubAdapter(Adapter):
    """GitHub REST API v3."""

    spec = SPEC

    def is_rate_limited(self, response: httpx.Response) -> bool:
        """429 always; 403 only with remaining=0, a retry-after, or the documented message."""
        if response.status_code == 429:
            return True
        headers = response.headers
        if headers.get("x-ratelimit-remaining") == "0" or "retry-after" in headers:
            return True
        return "rate limit" in self.error_detail(response).lower()

    def map_record(self, stream: str, raw: dict[str, Any]) -> list[Entity]:
        """Issues and pull requests share the endpoint; keep them apart by entity type."""
        entities = super().map_record(stream, raw)
        if "pull_request" in raw:
            return [Entity("pull_request", e.external_id, e.data, e.updated_at) for e in entities]
        return entities
