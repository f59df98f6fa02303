"""Where the engine finds each stream's compiled mapping and conflict policy (from the provider specs)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from adapters.base.spec import ProviderSpec
from adapters.registry import adapter_class
from shared.domain import Direction, Integration, StreamConfig
from shared.engine.mapping import Mapper
from shared.engine.merge import ALIASES, STRATEGY_NAMES, Policy


@dataclass(frozen=True)
class StreamMapping:
    """A stream's mapper and what the engine needs to know about it."""

    provider: str
    stream: str
    entity_type: str
    mapper: Mapper
    pushable: bool


class Catalog:
    """Compiled mappings per (provider, entity type), built once per process from the specs."""

    def __init__(self) -> None:
        self._by_type: dict[tuple[str, str], StreamMapping | None] = {}
        self._derived: dict[tuple[str, str], Mapper] = {}
        self._lock = threading.Lock()
        self._loaded: set[str] = set()

    def _load(self, provider: str) -> None:
        if provider in self._loaded:
            return
        with self._lock:
            if provider in self._loaded:
                return
            cls = adapter_class(provider)
            self._add(provider, cls.spec, cls)
            self._loaded.add(provider)

    def _add(self, provider: str, spec: ProviderSpec, cls: object) -> None:
        for name, stream in spec.streams.items():
            if stream.mapping is None or (provider, stream.entity_type) in self._by_type:
                continue
            hook = getattr(cls, stream.mapping.hook) if stream.mapping.hook else None
            mapper = Mapper(stream.mapping, hook)
            pushable = stream.push_spec() is not None
            self._by_type[(provider, stream.entity_type)] = StreamMapping(
                provider, name, stream.entity_type, mapper, pushable
            )
            for derived, dmapper in mapper.derived:
                self._derived.setdefault((provider, derived.entity_type), dmapper)

    def mapping(self, provider: str, entity_type: str) -> StreamMapping | None:
        """The mapping of ``entity_type`` records of ``provider`` (None: not canonical)."""
        self._load(provider)
        return self._by_type.get((provider, entity_type))

    def versions(self, provider: str) -> dict[str, int]:
        """The current mapping version of each entity type the provider's streams map."""
        self._load(provider)
        return {t: m.mapper.version for (p, t), m in sorted(self._by_type.items()) if p == provider and m is not None}

    def also_listed(self, provider: str, entity_type: str) -> bool:
        """Whether records of ``entity_type`` are both derived (from another stream) and listed by a stream
        of their own (a Slack message's author and ``users``): the same provider object either way."""
        self._load(provider)
        return (provider, entity_type) in self._derived and (provider, entity_type) in self._by_type

    def mapper(self, provider: str, entity_type: str) -> Mapper | None:
        """The mapper of a stream's or a derived record type."""
        found = self.mapping(provider, entity_type)
        return found.mapper if found is not None else self._derived.get((provider, entity_type))


def policy_for(integration: Integration, stream: str | None, mapper: Mapper) -> Policy:
    """The stream's conflict policy: the integration's stream config, else the mapping's."""
    spec = mapper.spec
    config = _config(integration, stream)
    strategy: str = spec.strategy
    fields: dict[str, str] = dict(spec.field_strategies)
    priority: dict[str, list[str]] = {}
    if config is not None:
        chosen = ALIASES.get(config.conflict_strategy, config.conflict_strategy)
        if chosen in STRATEGY_NAMES and config.conflict_strategy != "last_writer_wins":
            strategy = chosen  # the old default name means "not chosen": the mapping's strategy holds
        fields.update(getattr(config, "field_strategies", {}) or {})
        priority = dict(getattr(config, "source_priority", {}) or {})
    return Policy(strategy=strategy, fields=fields, priority=priority)


def two_way(integration: Integration, stream: str | None) -> bool:
    """Whether local changes flow out to this integration's stream."""
    config = _config(integration, stream)
    return config is not None and config.direction is Direction.BIDIRECTIONAL


def _config(integration: Integration, stream: str | None) -> StreamConfig | None:
    """The integration's config of ``stream`` (a child stream's key ``messages:C1`` names ``messages``)."""
    if not stream:
        return None
    name = stream.split(":", 1)[0]
    return next((s for s in integration.streams if s.name == name), None)


CATALOG = Catalog()
