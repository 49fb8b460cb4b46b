"""The environment of one attempt of a one-cell study against a local service, from the operator's Job template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bentham.api.manifest import SurfaceId
from bentham.core.pricing import builtin_pricing
from tests.executor.contract import attempt_env
from tests.executor.dialects import ANSWER_TOKENS, PROMPT_TOKENS, Dialect
from tests.support import study

API_KEY = "sk-test-key-0123"
KEYS_SECRET = "api-keys"


def study_spec(
    dialect: Dialect,
    root: str,
    evidence: Path | None,
    *,
    evidence_level: str = "full",
    model: str | None = None,
    locations: tuple[str, ...] = ("us-nyc",),
    env: list[dict[str, Any]] | None = None,
    **manifest: Any,
) -> dict[str, Any]:
    """A one-query study of `dialect`'s surface using the reference executor, keys from a Secret."""
    spec: dict[str, Any] = study("shoes", required=(dialect.surface,), locations=locations, queries=1)["spec"]
    if model is not None:
        spec["manifest"]["surfaces"][0]["options"] = {"model": model}
    spec["manifest"]["evidenceLevel"] = evidence_level
    spec["manifest"].update(manifest)
    spec["executor"]["env"] = [
        {"name": dialect.key_variable, "valueFrom": {"secretKeyRef": {"name": KEYS_SECRET, "key": "key"}}},
        {"name": dialect.base_url_variable, "value": dialect.base_url(root)},
        *([{"name": "BENTHAM_EVIDENCE_DIR", "value": str(evidence)}] if evidence is not None else []),
        *(env or []),
    ]
    return spec


def env_for(
    dialect: Dialect,
    root: str,
    evidence: Path | None,
    *,
    cell_index: int = 0,
    overrides: dict[str, str] | None = None,
    secrets: dict[str, dict[str, str]] | None = None,
    **spec: Any,
) -> dict[str, str]:
    """The attempt's environment as the operator's Job gives it, plus `overrides` (e.g. a short query timeout)."""
    env = attempt_env(
        study_spec(dialect, root, evidence, **spec),
        cell_index=cell_index,
        secrets=secrets or {KEYS_SECRET: {"key": API_KEY}},
    )
    return env | (overrides or {})


def default_model(surface: str) -> str:
    """The model the executor asks when the manifest names none."""
    model = builtin_pricing().default_model(SurfaceId(surface))
    assert model is not None
    return model


def expected_cost(
    surface: str, model: str, input_tokens: int = PROMPT_TOKENS, output_tokens: int = ANSWER_TOKENS
) -> float:
    """The cost, worked out by hand from pricing.yaml's figures for the model, to the micro-dollar."""
    price = builtin_pricing().surfaces[SurfaceId(surface)].models[model]
    usd = (
        input_tokens * float(price.inputUsdPer1kTokens) / 1000
        + output_tokens * float(price.outputUsdPer1kTokens) / 1000
        + float(price.requestUsd)
    )
    return round(usd, 6)
