"""The cost estimate of a manifest, as the original orchestrator's validator makes it.

Every surface has a price per request (`pricing`: tokens in and out at their prices plus a fixed
price; a surface or model the table does not list costs `unknownSurfaceRequestUsd`). Then, as the
original does:

    base       = sum over surfaces of (queries x locations x price per request), to the cent
    multiplier = mobileProxyMultiplier if any location's proxyType is mobile (x1.2)
                 x fullEvidenceMultiplier with evidenceLevel full (x1.1)
    range      = base x multiplier x rangeLowMultiplier (0.8) .. x rangeHighMultiplier (1.3), to the cent

Each surface's share is worked out the same way from its own subtotal, so the shares are rounded
apart and need not add up to the total to the cent. The arithmetic is decimal and rounds halves
up, as the original means to; it does not copy JavaScript's binary-float slips at a half cent.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from bentham.api.manifest import EvidenceLevel, Manifest, ProxyType
from bentham.api.status import CostEstimate, SurfaceEstimate
from bentham.core.pricing import PricingTable, builtin_pricing

CENT = Decimal("0.01")


def estimate_cost(manifest: Manifest, pricing: PricingTable | None = None) -> CostEstimate:
    """The estimate of `manifest` under `pricing` (the built-in table when None)."""
    pricing = pricing if pricing is not None else builtin_pricing()
    cells_per_surface = len(manifest.queries) * len(manifest.locations)
    multiplier = Decimal(1)
    if any(location.proxyType is ProxyType.MOBILE for location in manifest.locations):
        multiplier *= pricing.mobileProxyMultiplier
    if manifest.evidenceLevel is EvidenceLevel.FULL:
        multiplier *= pricing.fullEvidenceMultiplier

    base = Decimal(0)
    by_surface: dict[str, SurfaceEstimate] = {}
    for surface in manifest.surfaces:
        price = pricing.price_of(surface.id, model_asked_for(surface))
        subtotal = cells_per_surface * price.per_request
        base += subtotal
        low, high = _range(subtotal, multiplier, pricing)
        by_surface[surface.id.value] = SurfaceEstimate(
            model=price.model,
            listed=price.listed,
            perRequestUsd=float(price.per_request),
            cells=cells_per_surface,
            minUsd=float(low),
            maxUsd=float(high),
        )
    low, high = _range(base, multiplier, pricing)
    return CostEstimate(
        cells=manifest.cell_count,
        minUsd=float(low),
        maxUsd=float(high),
        multiplier=float(multiplier),
        bySurface=by_surface,
    )


def model_asked_for(surface: Any) -> str | None:
    """`surfaces[].options.model`, if the manifest names one (options typed, a mapping, or absent)."""
    options = getattr(surface, "options", None)
    model = options.get("model") if isinstance(options, Mapping) else getattr(options, "model", None)
    return model if isinstance(model, str) and model else None


def _range(amount: Decimal, multiplier: Decimal, pricing: PricingTable) -> tuple[Decimal, Decimal]:
    """The low and high ends for `amount`: rounded to the cent, adjusted, each end rounded again."""
    adjusted = _cents(amount) * multiplier
    return _cents(adjusted * pricing.rangeLowMultiplier), _cents(adjusted * pricing.rangeHighMultiplier)


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)
