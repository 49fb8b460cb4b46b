"""An attempt's cost, from the operator's own pricing table (`bentham.core.pricing`).

The same table prices the operator's estimate, so what an attempt reports and what the study was
estimated to cost are in the same units and figures. An admin's table (`BENTHAM_PRICING_FILE`,
the operator's setting) laid over the built-in one is honoured here too when it is mounted.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN
from pathlib import Path

from bentham.api.manifest import SurfaceId
from bentham.core.money import micro_usd, usd
from bentham.core.pricing import PricingInvalid, PricingTable, builtin_pricing, pricing_with_overrides
from bentham_executor.attempt import ConfigurationError

PRICING_VARIABLE = "BENTHAM_PRICING_FILE"


def pricing_table(env: Mapping[str, str]) -> PricingTable:
    """The built-in table, with the admin's file laid over it when `BENTHAM_PRICING_FILE` names one."""
    path = env.get(PRICING_VARIABLE)
    if not path:
        return builtin_pricing()
    try:
        return pricing_with_overrides(Path(path).read_text(encoding="utf-8"), path)
    except OSError as error:
        raise ConfigurationError(f"{PRICING_VARIABLE}: cannot read {path}: {error.strerror}") from None
    except PricingInvalid as error:
        raise ConfigurationError(f"{PRICING_VARIABLE}: {error}") from None


def default_model(table: PricingTable, surface: str) -> str | None:
    """The model a surface is asked with when the manifest's options.model names none."""
    return table.default_model(SurfaceId(surface))


def request_cost_usd(table: PricingTable, surface: str, model: str, *, input_tokens: int, output_tokens: int) -> float:
    """USD of one request, to the micro-dollar (so the operator's integer micro-dollar sums are exact)."""
    cost = table.request_cost(SurfaceId(surface), model, input_tokens=input_tokens, output_tokens=output_tokens)
    return usd(micro_usd(cost, rounding=ROUND_HALF_EVEN))
