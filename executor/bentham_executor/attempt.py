"""One attempt, read from the `BENTHAM_*` environment the operator gives its Job (docs/executor.md).

Reading is pure (a mapping in, an `Attempt` out) and strict: a variable that is missing or not of
its shape raises `ConfigurationError` naming the variable and the rule, because an executor that
guesses would ask the wrong question and report it as the right one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bentham.api.manifest import EvidenceLevel, Timeouts

# Without an execution block the operator sets no timeouts: the manifest's defaults apply.
DEFAULT_QUERY_TIMEOUT_MS: int = Timeouts.model_fields["queryTimeoutMs"].default
DEFAULT_CONNECTION_TIMEOUT_MS: int = Timeouts.model_fields["connectionTimeoutMs"].default


class ConfigurationError(ValueError):
    """The executor's environment cannot run an attempt; the message names the variable and the rule."""


@dataclass(frozen=True)
class Retention:
    """How long the study's evidence must be kept (the manifest's retention fields)."""

    days: int | None = None
    preserve_forever: bool = False
    legal_hold: bool = False

    @property
    def requested(self) -> bool:
        """Whether the manifest asks for any retention at all."""
        return self.days is not None or self.preserve_forever or self.legal_hold


@dataclass(frozen=True)
class Attempt:
    """What the operator asked of this Job: one query, one surface, one location, one try."""

    study: str
    study_uid: str
    cell: str
    cell_index: int
    query_index: int
    query_text: str
    query_context: str | None
    surface: str
    surface_options: dict[str, Any]
    location: str
    attempt: int
    evidence_level: EvidenceLevel
    query_timeout_ms: int = DEFAULT_QUERY_TIMEOUT_MS
    connection_timeout_ms: int = DEFAULT_CONNECTION_TIMEOUT_MS
    retention: Retention = Retention()

    @property
    def model(self) -> str | None:
        """`options.model`: the model the manifest names, or None for the surface's default."""
        model = self.surface_options.get("model")
        return model if isinstance(model, str) and model else None


def read_attempt(env: Mapping[str, str]) -> Attempt:
    """The attempt that `env` describes; raises `ConfigurationError` for a variable that is missing or malformed."""
    evidence_level = _required(env, "BENTHAM_EVIDENCE_LEVEL")
    if evidence_level not in {level.value for level in EvidenceLevel}:
        raise ConfigurationError(f"BENTHAM_EVIDENCE_LEVEL must be full, metadata or none, not {evidence_level!r}")
    return Attempt(
        study=_required(env, "BENTHAM_STUDY"),
        study_uid=_required(env, "BENTHAM_STUDY_UID", hint="the operator sets it in every attempt's Job"),
        cell=_required(env, "BENTHAM_CELL"),
        cell_index=_count(env, "BENTHAM_CELL_INDEX", least=0),
        query_index=_count(env, "BENTHAM_QUERY_INDEX", least=0),
        query_text=_required(env, "BENTHAM_QUERY_TEXT"),
        query_context=env.get("BENTHAM_QUERY_CONTEXT") or None,
        surface=_required(env, "BENTHAM_SURFACE"),
        surface_options=_json_object(env, "BENTHAM_SURFACE_OPTIONS"),
        location=_required(env, "BENTHAM_LOCATION"),
        attempt=_count(env, "BENTHAM_ATTEMPT", least=1),
        evidence_level=EvidenceLevel(evidence_level),
        query_timeout_ms=_count(env, "BENTHAM_QUERY_TIMEOUT_MS", least=1, default=DEFAULT_QUERY_TIMEOUT_MS),
        connection_timeout_ms=_count(
            env, "BENTHAM_CONNECTION_TIMEOUT_MS", least=1, default=DEFAULT_CONNECTION_TIMEOUT_MS
        ),
        retention=Retention(
            days=_count(env, "BENTHAM_RETENTION_DAYS", least=1) if env.get("BENTHAM_RETENTION_DAYS") else None,
            preserve_forever=_flag(env, "BENTHAM_PRESERVE_FOREVER"),
            legal_hold=_flag(env, "BENTHAM_LEGAL_HOLD"),
        ),
    )


def _required(env: Mapping[str, str], name: str, hint: str = "") -> str:
    value = env.get(name)
    if not value:
        raise ConfigurationError(
            f"{name} is not set: the operator sets it on every attempt's Job{'; ' + hint if hint else ''}"
        )
    return value


def _count(env: Mapping[str, str], name: str, *, least: int, default: int | None = None) -> int:
    text = env.get(name)
    if not text:
        if default is None:
            raise ConfigurationError(f"{name} is not set: the operator sets it on every attempt's Job")
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {text!r}") from None
    if value < least:
        raise ConfigurationError(f"{name} must be at least {least}, not {value}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    text = env.get(name, "false")
    if text not in ("true", "false"):
        raise ConfigurationError(f"{name} must be true or false, not {text!r}")
    return text == "true"


def _json_object(env: Mapping[str, str], name: str) -> dict[str, Any]:
    text = env.get(name) or "{}"
    try:
        value = json.loads(text)
    except ValueError:
        raise ConfigurationError(f"{name} must be a JSON object, not {text[:80]!r}") from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"{name} must be a JSON object, not {type(value).__name__}")
    return value
