"""The cost estimate's pricing table: what one request to a surface (and model) costs.

The table is data, not code: `pricing.yaml` beside this module is the built-in one, read once on
first use like any other part of the package. An operator admin overrides it with a file of the
same shape, which the shell reads at start (BENTHAM_PRICING_FILE) and hands to
`pricing_with_overrides`: its top-level numbers replace the built-in ones, and each surface it
names replaces that surface's entry as a whole. Amounts are decimals, so an estimate is exact
arithmetic on the figures as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bentham.api.manifest import SurfaceId
from bentham.api.validation import describe

BUILTIN_PRICING = "pricing.yaml"

Usd = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
Multiplier = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]


class PricingInvalid(ValueError):
    """A pricing file that cannot be used; the message names the field."""


class _PricingModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelPrice(_PricingModel):
    """One model of a surface: its average tokens per query and answer, and their prices."""

    inputTokens: int = Field(default=0, ge=0)
    outputTokens: int = Field(default=0, ge=0)
    inputUsdPer1kTokens: Usd = Decimal(0)
    outputUsdPer1kTokens: Usd = Decimal(0)
    requestUsd: Usd = Decimal(0)
    """A fixed price per request (a search tool, an amortised subscription)."""

    @property
    def per_request(self) -> Decimal:
        """USD per request: the average tokens in and out at their prices, plus the fixed price."""
        return self.cost_of(self.inputTokens, self.outputTokens)

    def cost_of(self, input_tokens: int, output_tokens: int) -> Decimal:
        """USD of one request that used these tokens: each at its price, plus the fixed price."""
        return (
            input_tokens * self.inputUsdPer1kTokens / 1000
            + output_tokens * self.outputUsdPer1kTokens / 1000
            + self.requestUsd
        )


class SurfacePrices(_PricingModel):
    """The models of one surface, and the one used when a manifest names none."""

    defaultModel: str = Field(min_length=1)
    models: dict[str, ModelPrice] = Field(min_length=1)

    @model_validator(mode="after")
    def _default_is_listed(self) -> SurfacePrices:
        if self.defaultModel not in self.models:
            raise ValueError(f"defaultModel {self.defaultModel!r} is not one of models ({', '.join(self.models)})")
        return self


class PricingTable(_PricingModel):
    """Prices per surface and model, and the estimate's adjustments."""

    unknownSurfaceRequestUsd: Usd
    """Per request of a surface, or a model of a surface, that the table does not list."""
    mobileProxyMultiplier: Multiplier
    """Applied when any location uses a mobile proxy."""
    fullEvidenceMultiplier: Multiplier
    """Applied with evidenceLevel full."""
    rangeLowMultiplier: Multiplier
    rangeHighMultiplier: Multiplier
    surfaces: dict[SurfaceId, SurfacePrices] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _range_is_ordered(self) -> PricingTable:
        if self.rangeLowMultiplier > self.rangeHighMultiplier:
            raise ValueError("rangeLowMultiplier must not be more than rangeHighMultiplier")
        return self

    def price_of(self, surface: SurfaceId, model: str | None) -> Price:
        """The price of one request to `surface` with `model` (None: the surface's default model)."""
        prices = self.surfaces.get(surface)
        if prices is None:
            return Price(model, listed=False, per_request=self.unknownSurfaceRequestUsd)
        chosen = model or prices.defaultModel
        listed = prices.models.get(chosen)
        if listed is None:
            return Price(chosen, listed=False, per_request=self.unknownSurfaceRequestUsd)
        return Price(chosen, listed=True, per_request=listed.per_request)

    def default_model(self, surface: SurfaceId) -> str | None:
        """The model a request to `surface` uses when the manifest names none (None: the table has no entry)."""
        prices = self.surfaces.get(surface)
        return None if prices is None else prices.defaultModel

    def request_cost(self, surface: SurfaceId, model: str, *, input_tokens: int, output_tokens: int) -> Decimal:
        """What one request that used these tokens cost, at the same prices as the estimate.

        A surface, or a model of a surface, that the table does not list costs
        unknownSurfaceRequestUsd, as in the estimate.
        """
        listed = self.surfaces[surface].models.get(model) if surface in self.surfaces else None
        if listed is None:
            return self.unknownSurfaceRequestUsd
        return listed.cost_of(input_tokens, output_tokens)


@dataclass(frozen=True)
class Price:
    """What one request costs, and whether the table knew the surface and model or guessed."""

    model: str | None
    listed: bool
    per_request: Decimal


@cache
def _builtin_entries() -> dict[str, Any]:
    text = resources.files(__package__).joinpath(BUILTIN_PRICING).read_text(encoding="utf-8")
    return _entries(text, BUILTIN_PRICING)


@cache
def builtin_pricing() -> PricingTable:
    """The table shipped with the operator (`pricing.yaml`)."""
    return _validated(_builtin_entries(), BUILTIN_PRICING)


def pricing_with_overrides(text: str, source: str = "the pricing file") -> PricingTable:
    """The built-in table with an admin's file (YAML or JSON, `text`) laid over it.

    Raises `PricingInvalid`, naming `source` and the field, for a file that is not a mapping of
    the table's fields or breaks a limit (a negative price, an unknown surface id).
    """
    overrides = _entries(text, source)
    merged = {**_builtin_entries(), **overrides}
    merged["surfaces"] = {**_builtin_entries().get("surfaces", {}), **(overrides.get("surfaces") or {})}
    return _validated(merged, source)


def _entries(text: str, source: str) -> dict[str, Any]:
    try:
        entries = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PricingInvalid(f"{source} is not YAML: {error}") from error
    if entries is None:
        return {}
    if not isinstance(entries, Mapping) or not isinstance(entries.get("surfaces", {}) or {}, Mapping):
        raise PricingInvalid(f"{source} must be a mapping of the pricing table's fields, with surfaces by id")
    return dict(entries)


def _validated(entries: Mapping[str, Any], source: str) -> PricingTable:
    try:
        return PricingTable.model_validate(entries)
    except ValidationError as error:
        problems = "; ".join(line for e in error.errors() for line in describe(e))
        raise PricingInvalid(f"{source} is not a usable pricing table: {problems}") from error
