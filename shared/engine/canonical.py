"""Canonical entity types, their dedupe strategies, and the normalizers of natural keys and names."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

CANONICAL_TYPES = ("person", "organization", "task", "message", "document", "event", "channel")

STRATEGIES = ("external_id", "content_hash", "natural_key", "fuzzy")
"""The dedupe strategies, in the order they are tried."""


@dataclass(frozen=True)
class DedupeConfig:
    """Which strategies a canonical type uses and the fuzzy thresholds (0-100 similarity).

    ``merge_at``: a fuzzy score at or above it merges; ``propose_at``: at or above it (and
    below ``merge_at``) a merge proposal is stored for review instead.
    """

    strategies: tuple[str, ...] = ("external_id", "content_hash")
    natural_keys: tuple[str, ...] = ()
    merge_at: float = 95.0
    propose_at: float = 85.0


DEDUPE: dict[str, DedupeConfig] = {
    "person": DedupeConfig(STRATEGIES, natural_keys=("email", "phone")),
    "organization": DedupeConfig(STRATEGIES, natural_keys=("domain",), merge_at=96.0, propose_at=85.0),
    "task": DedupeConfig(),
    "message": DedupeConfig(),
    "document": DedupeConfig(),
    "event": DedupeConfig(),
    "channel": DedupeConfig(),
}

NAME_FIELDS = {"person": "name", "organization": "name", "channel": "name", "task": "title", "document": "title"}
"""The field a canonical type is named by (fuzzy matching and ``q`` search)."""

_NON_DIGIT = re.compile(r"[^0-9]")
_SPACES = re.compile(r"\s+")
_LEGAL = re.compile(r"\b(inc|incorporated|llc|ltd|limited|gmbh|corp|corporation|co|plc|sa|ag)\b")
_PUNCT = re.compile(r"[^\w\s]")


def norm_email(value: Any) -> str | None:
    """``Alice@Example.COM `` -> ``alice@example.com``; None when it is not an address."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if text.startswith("mailto:"):
        text = text[7:]
    if text.count("@") != 1 or text.startswith("@") or text.endswith("@") or " " in text:
        return None
    return text


def norm_domain(value: Any) -> str | None:
    """``https://www.Acme.com/about`` -> ``acme.com``; an email gives its domain."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().lower()
    if "@" in text:
        text = text.rsplit("@", 1)[1]
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text).split("/", 1)[0].split(":", 1)[0]
    if text.startswith("www."):
        text = text[4:]
    return text if "." in text and " " not in text else None


def norm_phone(value: Any) -> str | None:
    """Digits only, at least 7 (``+1 (555) 010-2000`` -> ``15550102000``)."""
    if not isinstance(value, str | int):
        return None
    digits = _NON_DIGIT.sub("", str(value))
    return digits if len(digits) >= 7 else None


NORMALIZERS = {"email": norm_email, "domain": norm_domain, "phone": norm_phone}


def norm_name(value: Any, kind: str = "person") -> str:
    """A name for comparison: accents folded, lower case, punctuation and legal suffixes dropped."""
    if not isinstance(value, str):
        return ""
    text = value if value.isascii() else unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    text = text.lower()
    if kind != "organization" and "  " not in text and text.replace(" ", "").isalnum() and text == text.strip():
        return text  # the common case: already letters, digits and single spaces
    text = _PUNCT.sub(" ", text)
    if kind == "organization":
        text = _LEGAL.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def natural_key(kind: str, fields: dict[str, Any]) -> str | None:
    """The entity's natural key (``email:...``, ``phone:...``, ``domain:...``), first found wins."""
    config = DEDUPE.get(kind)
    if config is None or "natural_key" not in config.strategies:
        return None
    for name in config.natural_keys:
        if name == "domain":
            value = norm_domain(fields.get("domain") or fields.get("website"))
        else:
            value = NORMALIZERS[name](fields.get(name))
        if value:
            return f"{name}:{value}"
    return None


def fuzzy_block(kind: str, name: str) -> str | None:
    """The blocking key of fuzzy candidates: type and the first three letters of the name."""
    config = DEDUPE.get(kind)
    if config is None or "fuzzy" not in config.strategies or len(name) < 3:
        return None
    return f"{kind}:{name[:3]}"
