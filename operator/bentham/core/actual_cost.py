"""What a study has cost so far: the executors' reported `costUsd`, summed into `status.cost`.

An attempt's cost is added by the decision that records its outcome (`outcomes.record_outcomes`),
into the same status as that outcome. Both are written together or not at all: a pass that sees
the same finished Job again, or a restarted operator deciding from the written status, finds the
outcome already recorded and adds nothing, and a status lost before its write loses the sum with
the outcome, which the next pass records (and adds) again. The running sums therefore live only
in the status. Failed attempts count too: the money was spent.

Sums are kept to the micro-dollar in decimal, so adding many small costs never drifts.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from bentham.api.manifest import Manifest
from bentham.api.status import ActualCost
from bentham.core.cells import surface_position
from bentham.core.outcomes import CellOutcome

MICRO_USD = Decimal("0.000001")


def add_reported_costs(
    previous: ActualCost | None, outcomes: Sequence[CellOutcome], manifest: Manifest
) -> ActualCost | None:
    """`previous` plus the cost of each newly recorded attempt that reported one; None while none has."""
    reported = [outcome for outcome in outcomes if outcome.cost_usd is not None]
    if not reported:
        return previous
    total = _usd(previous.totalUsd) if previous is not None else Decimal(0)
    by_surface = {surface: _usd(usd) for surface, usd in previous.bySurface.items()} if previous is not None else {}
    for outcome in reported:
        assert outcome.cost_usd is not None
        cost = _usd(outcome.cost_usd)
        surface = manifest.surfaces[surface_position(manifest, outcome.cell_index)].id.value
        total += cost
        by_surface[surface] = by_surface.get(surface, Decimal(0)) + cost
    return ActualCost(
        totalUsd=float(total),
        bySurface={surface: float(usd) for surface, usd in by_surface.items()},
        attempts=(previous.attempts if previous is not None else 0) + len(reported),
    )


def _usd(amount: float) -> Decimal:
    """A float amount as the decimal it was written as, to the micro-dollar."""
    return Decimal(repr(amount)).quantize(MICRO_USD, rounding=ROUND_HALF_UP)
