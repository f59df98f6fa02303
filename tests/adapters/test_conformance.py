"""Conformance suite run for every provider in ``adapters.registry`` (new providers join automatically)."""

from __future__ import annotations

import inspect
import json
import string
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from adapters.base.adapter import Adapter, Connection
from adapters.base.pagination import PAGINATORS, paginator_for
from adapters.base.spec import PaginationSpec, ProviderSpec
from adapters.base.verify.config import HmacSha256Config, TimestampedHmacConfig
from adapters.base.verify.model import Delivery, WebhookKey
from adapters.base.verify.registry import build_strategy
from adapters.base.webhooks import SUBSCRIPTION_STREAM, scheme_config
from adapters.registry import adapter_class, provider_names
from shared.errors import NotFound, RateLimited, ReauthRequired, RetryLater

ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 250  # issue 7: a provider is a spec plus a small module

pytestmark = pytest.mark.parametrize("name", provider_names())


@pytest.fixture
def cls(name: str) -> type[Adapter]:
    return adapter_class(name)


@pytest.fixture
def adapter(cls: type[Adapter]) -> Iterator[Adapter]:
    instance = cls()
    try:
        yield instance
    finally:
        instance.close()


def answer(spec: ProviderSpec, status: int, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, headers=headers, json={"message": "test"}, request=httpx.Request("GET", spec.base_url + "/x")
    )


def placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def test_spec_validates(name: str, cls: type[Adapter]) -> None:
    assert isinstance(cls.spec, ProviderSpec)
    assert ProviderSpec.model_validate(cls.spec.model_dump()) == cls.spec
    assert ProviderSpec.model_validate_json(cls.spec.model_dump_json()) == cls.spec
    assert cls.spec.base_url.startswith("https://")
    assert cls.spec.streams, "a provider declares at least one stream"


def test_name_matches_registry_key(name: str, cls: type[Adapter]) -> None:
    assert cls.spec.name == name
    assert issubclass(cls, Adapter)


def test_stream_path_placeholders_are_required_config(name: str, cls: type[Adapter]) -> None:
    with cls() as adapter:  # values the adapter fills itself (an API version with a default)
        own = set(adapter.template_values(Connection("t", "i", "https://x.invalid", None, {})))
    for stream, spec in cls.spec.streams.items():
        filled = own | ({"parent_id"} if spec.parent else set())
        missing = placeholders(spec.path) - set(spec.required_config) - filled
        assert not missing, f"{name}.{stream}: path {spec.path!r} needs {sorted(missing)} not in required_config"
        assert spec.path.startswith("/"), f"{name}.{stream}: path must start with /"


def test_pagination_style_has_a_registered_paginator(name: str, cls: type[Adapter]) -> None:
    specs: list[PaginationSpec] = [cls.spec.pagination] + [cls.spec.pagination_for(s) for s in cls.spec.streams]
    for spec in specs:
        assert spec.style in PAGINATORS
        assert isinstance(paginator_for(spec), PAGINATORS[spec.style])  # constructs: required fields present
        assert 0 < spec.page_size


def test_rate_limit_spec_is_sane(name: str, cls: type[Adapter]) -> None:
    spec = cls.spec.rate_limit
    assert spec.limited_statuses
    assert all(400 <= status < 500 for status in spec.limited_statuses)
    assert 401 not in spec.limited_statuses
    assert spec.default_wait_seconds > 0
    assert spec.retry_after_header
    if spec.remaining_header:
        assert spec.reset_header, "a remaining header without a reset header cannot name a retry time"
    assert not set(spec.limited_statuses) & set(cls.spec.retry.retry_statuses)


def test_webhook_spec_and_verification(name: str, cls: type[Adapter], adapter: Adapter) -> None:
    spec = cls.spec.webhook
    if spec is None:
        verdict = adapter.verify_webhook({}, b"{}", "secret")
        assert not verdict.valid and verdict.reason
        return
    assert spec.max_body_bytes > 0
    configs = [v.verification for v in spec.variants] or [scheme_config(spec)]
    body = json.dumps({"hello": "world"}).encode()
    for config in configs:
        # every kind of delivery is deduplicable on the provider's own id
        if isinstance(config, HmacSha256Config | TimestampedHmacConfig):
            assert config.id_header or config.id_path, f"{name}: deliveries must be deduplicable"
        strategy = build_strategy(config)
        unsigned = strategy.verify(Delivery({}, body, 0.0), WebhookKey(secret=SecretStr("the-secret")))
        assert not unsigned.valid and unsigned.reason and unsigned.status in (400, 401)
    streams = set(cls.spec.streams)
    for route in spec.routes:
        named = {route.stream} if route.stream not in (None, "*", SUBSCRIPTION_STREAM) else set()
        assert named | set(route.stream_map.values()) <= streams, f"{name}: a route names an unknown stream"
    if spec.subscription is not None and spec.subscription.kind == "channel":
        assert set(spec.subscription.channels) <= streams


@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, ReauthRequired), (500, RetryLater), (502, RetryLater), (503, RetryLater)],
)
def test_classify_error_core_statuses(name: str, adapter: Adapter, status: int, expected: type) -> None:
    error = adapter.classify_error(answer(adapter.spec, status))
    assert type(error) is expected
    assert not isinstance(error, RateLimited)


@pytest.mark.parametrize("status", [200, 201, 204, 304])
def test_classify_success_is_none(name: str, adapter: Adapter, status: int) -> None:
    assert adapter.classify_error(answer(adapter.spec, status)) is None


def test_classify_limited_status_with_retry_after_is_rate_limited(name: str, adapter: Adapter) -> None:
    spec = adapter.spec.rate_limit
    for status in spec.limited_statuses:
        error = adapter.classify_error(answer(adapter.spec, status, **{spec.retry_after_header: "30"}))
        assert isinstance(error, RateLimited), status
        assert error.retry_at is not None


def test_adapter_module_is_small(name: str, cls: type[Adapter]) -> None:
    source = inspect.getsourcefile(cls)
    assert source is not None
    lines = len(Path(source).read_text().splitlines())
    assert lines < MAX_MODULE_LINES, f"{source} has {lines} lines"


def test_importing_the_provider_does_not_import_azure(name: str) -> None:
    code = (
        "import sys\n"
        "from adapters.registry import adapter_class\n"
        f"adapter_class({name!r})\n"
        "print(','.join(sorted(m for m in sys.modules if m == 'azure' or m.startswith('azure.'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"importing {name} pulled in: {result.stdout.strip()}"


def test_unknown_provider_is_not_found(name: str) -> None:
    with pytest.raises(NotFound):
        adapter_class(name + "_does_not_exist")
